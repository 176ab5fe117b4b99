"""Library log lines (librdkafka through confluent-kafka's `logger`, botocore) are rate-limited, and
the daemon names an unreachable dependency in its own line, rate-limited too."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest

from parity.logging import KAFKA_CLIENT_LOGGER, RateLimitFilter, configure_logging

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _record(name: str, msg: str, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, (), None)


def test_identical_library_lines_pass_once_per_interval_with_a_suppressed_count() -> None:
    clock = Clock()
    f = RateLimitFilter(interval_s=30, clock=clock)
    passed = [f.filter(_record(KAFKA_CLIENT_LOGGER, f"Connect failed (after {i}ms in state CONNECT)"))
              for i in range(100)]
    assert passed.count(True) == 1
    clock.now = 31
    r = _record(KAFKA_CLIENT_LOGGER, "Connect failed (after 7ms in state CONNECT)")
    assert f.filter(r)
    assert "99 identical lines suppressed" in r.getMessage()


def test_different_messages_and_parity_own_lines_are_not_limited() -> None:
    f = RateLimitFilter(interval_s=30, clock=Clock())
    assert f.filter(_record(KAFKA_CLIENT_LOGGER, "broker down"))
    assert f.filter(_record(KAFKA_CLIENT_LOGGER, "group rebalanced"))
    assert all(f.filter(_record("parity.daemon", "drift")) for _ in range(5))


def test_found_credentials_is_logged_once_per_process() -> None:
    clock = Clock()
    f = RateLimitFilter(interval_s=30, clock=clock)
    msg = "Found credentials in environment variables."
    assert f.filter(_record("botocore.credentials", msg, logging.INFO))
    clock.now = 10_000
    assert not f.filter(_record("botocore.credentials", msg, logging.INFO))


def test_configured_logging_routes_kafka_client_lines_as_json_and_limits_them() -> None:
    out = io.StringIO()
    configure_logging("info", stream=out)
    for i in range(50):
        logging.getLogger(KAFKA_CLIENT_LOGGER).error("FAIL [rdkafka#consumer-1] Connect to 127.0.0.1:1 failed "
                                                      "(after %dms)", i)
    lines = [json.loads(ln) for ln in out.getvalue().splitlines()]
    assert len(lines) == 1
    assert lines[0]["logger"] == KAFKA_CLIENT_LOGGER and lines[0]["level"] == "error"


def test_reachability_probe_names_the_dead_dependency_rate_limited(monkeypatch: Any) -> None:
    from parity.config_loader import parse_config
    from parity.daemon import app

    cfg = parse_config({
        "postgres": {"dsn": "postgresql://u@127.0.0.1:1/db"},
        "kafka": {"bootstrap_servers": "b1:9092,b2:9092", "topic_prefix": "cdc"},
        "tables": [{"source": "public.t", "primary_key": ["id"], "target": "T", "keys": {"PK": "{id}"},
                    "columns": {"id": {}}}],
    })
    events: list[tuple[str, str, dict[str, Any]]] = []

    class Log:
        def warning(self, event: str, **kw: Any) -> None:
            events.append(("warning", event, kw))

        def info(self, event: str, **kw: Any) -> None:
            events.append(("info", event, kw))

    monkeypatch.setattr(app, "log", Log())
    probe = app.ReachabilityProbe(cfg, log_every_s=60)
    probe._results = [("postgres", True, ""), ("dynamodb", True, ""), ("kafka", False, "no answer")]
    for t in (0, 10, 20, 59):
        probe.log_changes(t)
    assert events == [("warning", "kafka unreachable, retrying", {"detail": "no answer", "brokers": "b1:9092,b2:9092"})]
    probe.log_changes(61)
    assert len(events) == 2
    probe._results = [("postgres", True, ""), ("dynamodb", True, ""), ("kafka", True, "")]
    probe.log_changes(70)
    assert events[-1][:2] == ("info", "kafka reachable again")


def test_readiness_check_is_group_membership_not_partition_ownership() -> None:
    from types import SimpleNamespace

    from parity.daemon.app import readiness
    from parity.daemon.run import Health

    source = SimpleNamespace(joined=True, assigned=set())
    daemon: Any = SimpleNamespace(source=source, health=Health())
    probe: Any = SimpleNamespace(checks=lambda: [])
    [group, *_rest] = readiness(daemon, probe)
    assert (group.name, group.ok) == ("group_joined", True)
    source.joined = False
    [group, *_rest] = readiness(daemon, probe)
    assert not group.ok


def test_a_long_wait_says_what_it_waits_for_and_a_short_one_does_not(caplog: Any) -> None:
    import time

    from parity.waits import announced

    with caplog.at_level(logging.WARNING, logger="parity.wait"):
        with announced("Postgres u@h:5432/db to answer", gives_up_after="10 s", after_s=0.05):
            time.sleep(0.3)
        with announced("Kafka to answer", after_s=0.5):
            pass
        time.sleep(0.6)
    assert [r.getMessage() for r in caplog.records] == [
        "waiting for Postgres u@h:5432/db to answer (gives up after 10 s)"]


def test_kafka_client_lines_are_redacted() -> None:
    out = io.StringIO()
    configure_logging("info", stream=out)
    logging.getLogger(KAFKA_CLIENT_LOGGER).warning("CONFWARN [rdkafka#producer-1] sasl.password=hunter2xyz set")
    assert "hunter2xyz" not in out.getvalue() and "CONFWARN" in out.getvalue()
