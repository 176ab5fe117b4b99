"""The docker-compose topology rehearsed on the local stack (no Docker engine needed): PostgreSQL with
the example schema, the Debezium bridge with the shared connector settings, a 4-partition change
topic, DynamoDB Local with the tables `compose/create_tables.py` creates, TWO `parity run` replicas
in one consumer group configured from `compose/parity.yaml`, and `compose/workload.py` injecting
drift. The drift must show up in the replicas' Prometheus metrics, and both replicas must work."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict

from parity.config_loader import parse_config
from parity.devstack.debezium import start_bridge
from parity.devstack.dynamodb import CREDENTIALS
from tests.conftest import unique

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
TOPIC_PREFIX = "parity"  # compose/parity.yaml and debezium/connector-settings.json


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _metric_sum(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _scrape(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
        return str(resp.read().decode())


def _assigned(port: int) -> list[str]:
    return list(json.loads(_scrape(port, "/status")).get("assigned_partitions", []))


@pytest.fixture
def payments_dsn(pg: Any) -> Iterator[str]:
    """A private database holding the example schema: the workload deletes rows at random, so it
    must not share a table with other tests."""
    name = unique("compose")
    with pg.connect() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    dsn = pg.dsn.rsplit("/", 1)[0] + f"/{name}"  # the bridge takes the URL form
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute((ROOT / "examples" / "payments.sql").read_text())
    yield dsn
    with pg.connect() as admin:
        admin.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                      "WHERE database = %s AND NOT active", (name,))
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def replicas(
    payments_dsn: str, stack_dir: Path, kafka: Any, dynamodb: Any, tmp_path: Path
) -> Iterator[tuple[list[int], str]]:
    table = unique("Payments")
    requests = json.loads((ROOT / "examples" / "payments.dynamodb.json").read_text())
    requests[0]["TableName"] = table
    (tmp_path / "tables.json").write_text(json.dumps(requests))
    aws = {"AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
           "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"], "AWS_REGION": CREDENTIALS["region_name"],
           "PARITY_DYNAMODB_ENDPOINT": dynamodb.endpoint}
    env = {**os.environ, **aws}
    subprocess.run([sys.executable, str(ROOT / "compose" / "create_tables.py"), str(tmp_path / "tables.json")],
                   env=env, check=True, timeout=120, capture_output=True)

    prefix = unique("cdc")  # the broker is shared by the session: a private prefix, as compose's own
    kafka.create_topics([f"{prefix}.public.payments"], partitions=4)
    # The bridge reads debezium/connector-settings.json, as the compose connector does.
    bridge = start_bridge(stack_dir, payments_dsn, kafka.bootstrap, ["public.payments"],
                          topic_prefix=prefix, slot_name=unique("slot"))
    processes: list[subprocess.Popen[bytes]] = []
    ports: list[int] = []
    group = unique("group")
    try:
        for i in (1, 2):
            cfg = yaml.safe_load((ROOT / "compose" / "parity.yaml").read_text())
            assert cfg["kafka"]["topic_prefix"] == TOPIC_PREFIX
            port = _free_port()
            cfg["postgres"]["dsn"] = payments_dsn
            cfg["kafka"].update(bootstrap_servers=kafka.bootstrap, topic_prefix=prefix, group_id=group,
                                session_timeout_ms=6000, drift_topic=None)
            cfg["dynamodb"]["endpoint"] = dynamodb.endpoint
            cfg["daemon"].update(state_dir=str(tmp_path / f"parity-{i}"), drift_log=None,
                                 http={"host": "127.0.0.1", "port": port})
            # Shorter rechecks than compose's, so that the test waits seconds, not a minute.
            cfg["tables"][0].update(target=table, grace_period_s=3, recheck_schedule_s=[1, 2])
            parse_config(cfg, env={})  # still a valid configuration after the local substitutions
            path = tmp_path / f"parity-{i}.yaml"
            path.write_text(yaml.safe_dump(cfg))
            log = (tmp_path / f"parity-{i}.log").open("wb")
            processes.append(subprocess.Popen([sys.executable, "-m", "parity.cli", "run", "--config", str(path)],
                                              env=env, stdout=log, stderr=subprocess.STDOUT))
            ports.append(port)
        yield ports, table
    finally:
        for p in processes:
            p.terminate()
        for p in processes:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        bridge.stop()
        for i in (1, 2):
            with contextlib.suppress(OSError):
                print(f"--- parity-{i} log tail ---\n" + (tmp_path / f"parity-{i}.log").read_text()[-3000:])


def test_workload_drift_reaches_the_metrics_of_two_replicas(
    replicas: tuple[list[int], str], payments_dsn: str, dynamodb: Any
) -> None:
    ports, table = replicas
    deadline = time.monotonic() + 60
    while True:  # both replicas serve and share the 4 partitions of the change topic
        try:
            assigned = [_assigned(p) for p in ports]
        except OSError:
            assigned = []
        if len(assigned) == 2 and all(assigned) and len(set(assigned[0]) | set(assigned[1])) == 4:
            assert not set(assigned[0]) & set(assigned[1])
            break
        assert time.monotonic() < deadline, f"partitions not shared by both replicas: {assigned}"
        time.sleep(1)

    dsn = conninfo_to_dict(payments_dsn)
    env = {**os.environ,
           "POSTGRES_HOST": str(dsn.get("host", "127.0.0.1")), "POSTGRES_PORT": str(dsn.get("port", 5432)),
           "POSTGRES_DB": str(dsn.get("dbname", "postgres")), "POSTGRES_USER": str(dsn.get("user", "postgres")),
           "POSTGRES_PASSWORD": "", "PARITY_DYNAMODB_ENDPOINT": dynamodb.endpoint,
           "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
           "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"], "AWS_REGION": CREDENTIALS["region_name"],
           "WORKLOAD_TABLE": table, "WORKLOAD_RATE": "25", "WORKLOAD_DRIFT_RATE": "0.2", "WORKLOAD_SEED": "8",
           "WORKLOAD_MAX_CHANGES": "200"}
    run = subprocess.run([sys.executable, str(ROOT / "compose" / "workload.py")], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    injected = re.search(r'"injected_drift": (\{[^}]*\})', run.stdout)
    assert injected and injected.group(1) != "{}", run.stdout

    deadline = time.monotonic() + 120
    while True:
        texts = [_scrape(p) for p in ports]
        drift = sum(_metric_sum(t, "parity_drift_total") for t in texts)
        verdicts = [_metric_sum(t, "parity_verdicts_total") for t in texts]
        if drift > 0 and all(verdicts):
            break
        assert time.monotonic() < deadline, f"drift={drift} verdicts per replica={verdicts}"
        time.sleep(2)
