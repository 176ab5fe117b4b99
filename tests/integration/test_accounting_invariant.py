"""Nothing passes unverified, as arithmetic: over a seeded random workload with injected drift,
every consumed event ends in one named outcome and every row and item is either compared or
counted as not compared. Every figure parity reports is checked against a count taken here,
independently of parity: records read off the topics, `count(*)` in Postgres, a COUNT Scan of
DynamoDB.

Postgres -> Debezium (embedded) -> tansu -> `parity run` (a subprocess) <- DynamoDB Local, then
`parity reconcile --json` over the same tables.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from psycopg import sql

from parity.workload import PaymentsApp
from tests.integration.payments_harness import PaymentsStack
from tests.integration.verify_harness import partition_ends, start_daemon_process, wait_for

pytestmark = pytest.mark.integration

FAST_GRACE = {"grace_period_s": 6, "recheck_schedule_s": [1, 2, 4, 6]}
OPERATIONS = 300
DRIFT_EVERY = 15  # 20 injected drifts, four of each kind in parity.workload.DRIFT_KINDS
POISON = [b"{not json", b'{"payload": {"op": "x", "source": {"schema": "public", "table": "t"}}}']


def _cli(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "parity.cli", *args, "--config", str(config), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _status(config: Path) -> dict[str, Any]:
    out = _cli("status", config=config)
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def _dynamodb_count(client: Any, table: str) -> int:
    """Items in the DynamoDB table, counted by a plain COUNT Scan (Limit keeps DynamoDB Local fast)."""
    total, start = 0, None
    while True:
        more = {"ExclusiveStartKey": start} if start else {}
        page = client.scan(TableName=table, Select="COUNT", Limit=1000, **more)
        total += page["Count"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return total


def test_outcomes_add_up_to_the_records_consumed_and_rows_compared_plus_not_compared_to_the_table(
    pg: Any, kafka: Any, dynamodb: Any, bridge_factory: Any, tmp_path: Path
) -> None:
    stack = PaymentsStack(pg, kafka, dynamodb, tmp_path, tag="inv", table_overrides=FAST_GRACE)
    dep, mapping = stack.dep, stack.mapping
    bridge = stack.start_cdc(bridge_factory)
    topic = bridge.topics[0]
    client = dynamodb.client()

    # Items no mapping produces (a sort key without the template's "#"): the reconcile must count them as
    # not compared, never pass over them. Written literally, not through parity's mapper.
    strays = [
        {"CustomerId": {"N": str(90_000 + i)}, "PaymentDateId": {"S": f"session-{i}"}, "Note": {"S": "cache"}}
        for i in range(3)
    ]
    for item in strays:
        client.put_item(TableName=mapping.target, Item=item)

    proc = start_daemon_process(dep.config_path, tmp_path / "daemon.log")
    try:
        with pg.connect() as conn:
            app = PaymentsApp(conn, client, mapping, lag_ms=800, seed=20261130)
            app.run(OPERATIONS // 2, drift_every=DRIFT_EVERY, rate=120)
            producer = Producer({"bootstrap.servers": kafka.bootstrap})
            for i, value in enumerate(POISON):  # undecodable records between the real ones
                producer.produce(topic, key=b'{"id": %d}' % i, value=value, partition=i % 4)
            producer.flush(10)
            app.run(OPERATIONS - OPERATIONS // 2, drift_every=DRIFT_EVERY, rate=120)
            app.finish()
            with conn.cursor() as cur:
                cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(*mapping.source.split("."))))
                row = cur.fetchone()
                assert row is not None
                rows_in_postgres = int(row[0])

        # Every Postgres change (OPERATIONS, less the updates of a row deleted meanwhile: none here,
        # the workload only touches live rows) plus the poison is on the topic before we count.
        wait_for(
            lambda: sum(partition_ends(kafka.bootstrap, [topic]).values()) >= OPERATIONS + len(POISON),
            120,
            "every change event on the topic",
        )
        on_topic = sum(partition_ends(kafka.bootstrap, [topic]).values())

        seen: list[dict[str, Any]] = []

        def drained() -> bool:
            seen.append(_status(dep.config_path))
            return bool(seen[-1]["stream"]["drained"]) and seen[-1]["totals"]["consumed"] >= on_topic

        wait_for(drained, 180, "parity status to report every record consumed and the stream drained", 1.0)
        status = seen[-1]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)

    # -- the stream: outcomes add up to the records consumed, per table and in total -----------
    row = status["tables"][mapping.source]
    assert row["consumed"] == sum(row["outcomes"].values()) + row["pending_rechecks"]
    assert row["pending_rechecks"] == 0
    assert status["totals"]["consumed"] == on_topic, (status["totals"], on_topic)
    assert row["consumed"] == on_topic  # the poison was on this table's topic: counted here too
    assert row["outcomes"].get("dead_letter", 0) == len(POISON)
    assert row["outcomes"].get("unverified", 0) == 0
    # Every injected drift is an outcome too (a late overwrite of a verified key may escape the
    # stream by design: the reconcile below is what catches it).
    assert 0 < row["outcomes"].get("drift", 0) <= len(app.injected)

    # -- the reconcile: rows and items compared or counted as not compared -----------------------
    items_in_dynamodb = _dynamodb_count(client, mapping.target)
    out = _cli("reconcile", config=dep.config_path)
    assert out.returncode == 1, out.stderr  # drift and not-compared items: both make it non-zero
    report = json.loads(out.stdout)
    table = report["tables"][mapping.source]
    assert table["rows_postgres"] == rows_in_postgres
    assert table["rows_compared"] + table["rows_not_compared"] == rows_in_postgres
    target = report["targets"][mapping.target]
    assert target["items_scanned"] == items_in_dynamodb
    assert target["items_compared"] + target["items_not_compared"] == items_in_dynamodb
    assert target["items_not_compared"] == len(strays)
    stray_groups = target["items_not_compared_by_reason"]
    assert sum(g["count"] for g in stray_groups) == len(strays)
    assert all(g["sample"] for g in stray_groups)  # a reason always comes with keys to look at
    assert report["not_compared_total"] >= len(strays)
    # Every injected drift is still in place (the workload never touches a drifted row again).
    assert report["drift_total"] == len(app.injected)
