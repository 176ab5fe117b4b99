"""Fixtures that start the real local services a test needs, and always stop them.

Each test session gets its own temporary state directory; nothing assumes a service already
runs. Services are session-scoped (they are slow to start and tests isolate themselves by table,
topic and slot names); bridges are per test. Teardown runs on failure and on Ctrl-C, and an
atexit hook SIGKILLs anything still running if pytest itself is torn down abruptly.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

# Shared 2-core machines: data generation speed and per-example time vary with load, which says
# nothing about the code under test. Correctness checks stay; timing health checks go.
settings.register_profile(
    "parity", deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.load_profile("parity")

# DynamoDB Local accepts any credentials but boto3 needs some; daemons started by tests inherit them.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
# One DynamoDB Local serves the whole session, and its in-memory tables add up (pgbench alone is
# 100k items): a bigger heap keeps it from garbage-collecting itself into timeouts.
os.environ.setdefault("PARITY_DYNAMODB_HEAP", "2g")

_started: list[Any] = []  # ManagedProcess objects, for the atexit safety net


@atexit.register
def _kill_leftovers() -> None:
    for process in _started:
        with contextlib.suppress(Exception):
            process.kill9()


@contextlib.contextmanager
def running(service: Any, *helpers: Any) -> Iterator[Any]:
    """`service` (and the `helpers` processes it needs) under the atexit safety net, stopped
    however the block ends."""
    _started.extend([service.process, *helpers])
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def stack_dir() -> Iterator[Path]:
    """A fresh state directory for this session's services (world-searchable: the private
    PostgreSQL cluster runs as the `postgres` OS user when tests run as root)."""
    path = Path(tempfile.mkdtemp(prefix="parity-stack-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def unique(prefix: str) -> str:
    """A name no other test uses (tables, topics, slots: all must be lower-case identifiers)."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def pg(stack_dir: Path) -> Iterator[Any]:
    from parity.devstack.postgres import start_postgres

    with running(start_postgres(stack_dir)) as service:
        try:
            yield service
        finally:
            with contextlib.suppress(Exception):
                service.drop_replication_slots()


@pytest.fixture(scope="session")
def kafka(stack_dir: Path) -> Iterator[Any]:
    """A tansu broker with memory storage (everything is lost if it restarts)."""
    from parity.devstack.kafka import start_kafka

    with running(start_kafka(stack_dir / "kafka-memory")) as service:
        yield service


@pytest.fixture
def persistent_kafka(tmp_path: Path) -> Iterator[Any]:
    """A tansu broker on s3rver storage: survives restart() and kill9(). Per test, since tests
    that use it restart it."""
    from parity.devstack.kafka import start_kafka

    service = start_kafka(tmp_path, persistent=True)
    with running(service, service.s3):
        yield service


@pytest.fixture(scope="session")
def dynamodb(stack_dir: Path) -> Iterator[Any]:
    from parity.devstack.dynamodb import start_dynamodb

    with running(start_dynamodb(stack_dir)) as service:
        yield service


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    """Path of the `prometheus` binary (for promtool-like checks and live servers)."""
    from parity.devstack.prereqs import program

    return program("prometheus", "prometheus")


@pytest.fixture
def payments(pg: Any, kafka: Any, dynamodb: Any, bridge_factory: Callable[..., Any], tmp_path: Path) -> Any:
    """examples/payments under unique names on the session's services, its bridge started."""
    from tests.integration.payments_harness import FAST_GRACE, PaymentsStack

    stack = PaymentsStack(pg, kafka, dynamodb, tmp_path, tag="pay", table_overrides=FAST_GRACE)
    stack.start_cdc(bridge_factory)
    return stack


@pytest.fixture
def bridge_factory(stack_dir: Path, pg: Any, kafka: Any) -> Iterator[Callable[..., Any]]:
    """`bridge_factory(tables, **kw)` starts a Debezium bridge (own slot, own topic prefix by
    default) against the session's Postgres and Kafka; every bridge is stopped and its slot dropped."""
    from parity.devstack.debezium import start_bridge

    bridges: list[Any] = []

    def make(tables: list[str], **kwargs: Any) -> Any:
        kwargs.setdefault("slot_name", unique("slot"))
        kwargs.setdefault("topic_prefix", unique("cdc"))
        bridge = start_bridge(stack_dir, pg.dsn, kafka.bootstrap, tables, **kwargs)
        bridges.append(bridge)
        _started.append(bridge.process)
        return bridge

    yield make
    for bridge in bridges:
        bridge.stop()
        with pg.connect() as conn:
            conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                         "WHERE slot_name = %s AND NOT active", (bridge.name,))
