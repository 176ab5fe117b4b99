"""Issue 16 on the real stack (Postgres -> Debezium -> Kafka -> parity <- DynamoDB Local): late
DynamoDB deletes, a resurrecting late write, a verdict that must not depend on timing, and drift
that heals.

Only deletes are exercised, so the test needs nothing of the mapping but the DynamoDB key, which it
builds by hand from examples/payments.yaml (`CustomerId` = customer_id, `PaymentDateId` =
payment_date as %Y-%m-%dT%H:%M:%SZ, '#', payment_id) and writes with boto3 directly. The seeded
rows are in Postgres before Debezium starts; their snapshot events are skipped by policy.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from parity.adapters.state import StateStore
from parity.daemon.run import state_path
from tests.integration.payments_harness import PaymentsStack
from tests.integration.verify_harness import DaemonThread, drift_set, wait_for

pytestmark = pytest.mark.integration

PAYMENT_DATE = "2024-01-02 03:04:05+00"


def _key(pid: int) -> dict[str, Any]:
    return {"CustomerId": {"N": str(pid)}, "PaymentDateId": {"S": f"2024-01-02T03:04:05Z#{pid}"}}


def _key_text(pid: int) -> str:
    return json.dumps({"CustomerId": pid, "PaymentDateId": f"2024-01-02T03:04:05Z#{pid}"}, sort_keys=True)


class Payments(PaymentsStack):
    """The example with rows and items written by hand; seeded rows are a snapshot parity skips."""

    def __init__(self, pg: Any, kafka: Any, dynamodb: Any, tmp_path: Path, **table: Any) -> None:
        super().__init__(pg, kafka, dynamodb, tmp_path, tag="rc", table_overrides={"snapshot_policy": "skip", **table})
        self.client = dynamodb.client()
        self.table = self.mapping.target
        self.pg_table = self.mapping.source

    def seed(self, ids: list[int]) -> None:
        with self.pg.connect() as conn:
            for pid in ids:
                conn.execute(
                    f"INSERT INTO {self.pg_table} (payment_id, customer_id, loan_id, amount, payment_date, method, "
                    "status) VALUES (%s, %s, 1, 10.50, %s, 'ACH', 'PENDING')",
                    (pid, pid, PAYMENT_DATE),
                )
        for pid in ids:
            self.put(pid)

    def put(self, pid: int) -> None:
        item = {**_key(pid), "PaymentId": {"N": str(pid)}, "Method": {"S": "ACH"}, "Status": {"S": "PENDING"}}
        self.client.put_item(TableName=self.table, Item=item)

    def delete_item(self, pid: int) -> None:
        self.client.delete_item(TableName=self.table, Key=_key(pid))

    def delete_row(self, pid: int) -> float:
        with self.pg.connect() as conn:
            conn.execute(f"DELETE FROM {self.pg_table} WHERE payment_id = %s", (pid,))
        return time.time()

    def status(self) -> dict[str, Any]:
        out = subprocess.run(
            [sys.executable, "-m", "parity.cli", "status", "--config", str(self.dep.config_path), "--json"],
            capture_output=True,
            check=True,
            timeout=60,
        )
        return json.loads(out.stdout)["tables"][self.pg_table]


def _unexpected(app: Payments, ids: list[int]) -> list[tuple[str, str, str]]:
    return sorted((app.pg_table, _key_text(pid), "unexpected_in_target") for pid in ids)


def test_a_late_delete_then_a_resurrecting_write_is_reported(
    pg: Any, kafka: Any, dynamodb: Any, bridge_factory: Any, tmp_path: Path
) -> None:
    """The first read still sees the item, the DynamoDB delete lands, a re-read sees it gone, then
    a late write of the old row puts it back within the grace period: `unexpected_in_target`."""
    app = Payments(pg, kafka, dynamodb, tmp_path, grace_period_s=8, recheck_schedule_s=[1, 2, 4, 8])
    app.seed([1, 2])
    app.start_cdc(bridge_factory)
    with DaemonThread(app.dep.config) as runner:
        pipeline = runner.daemon.pipeline
        # The grace period runs from the delete's commit: the daemon must be reading when it
        # commits, or its first read could come late enough (a slow group join) that the
        # grace-point read lands before the resurrecting write below.
        wait_for(lambda: runner.daemon.source.joined, 60, "the daemon to join its consumer group")
        app.delete_row(1)
        wait_for(lambda: len(pipeline.rechecks) == 1, 30, "the first read to see the item still there")
        app.delete_item(1)  # the delete lands after the first read
        time.sleep(2.5)  # re-reads at +1 s and +2 s see the item gone
        app.put(1)  # the application's late write of the old row resurrects it
        app.delete_row(2)  # a control: deleted on both sides at once
        app.delete_item(2)
        app.settle(runner.daemon)
    assert drift_set(app.dep.config) == _unexpected(app, [1])


@pytest.mark.parametrize("daemon_late_s", [0.0, 8.0], ids=["live", "backlog"])
def test_a_delete_12s_late_with_a_5s_grace_is_reported_every_time(
    daemon_late_s: float, pg: Any, kafka: Any, dynamodb: Any, bridge_factory: Any, tmp_path: Path
) -> None:
    """Defect 7: a DynamoDB delete that lands 12 s after the commit, with a 5 s grace period, is
    drift, however the consumer is timed. `live`: the daemon keeps up; background deletes on the
    same partitions keep the stream moving. `backlog`: the daemon starts 8 s after the deletes;
    when the grace period ran from parity's first read (+8 s), the look at its end (+13 s) came
    after the delete had landed, and the drift was missed."""
    app = Payments(pg, kafka, dynamodb, tmp_path, grace_period_s=5)
    late = [1, 2, 3]
    background = list(range(100, 160))
    app.seed(late + background)
    app.start_cdc(bridge_factory)
    runner = DaemonThread(app.dep.config)
    stop = threading.Event()

    def traffic() -> None:  # prompt dual deletes: matches, which move every partition along
        for pid in background:
            if stop.is_set():
                return
            app.delete_row(pid)
            app.delete_item(pid)
            time.sleep(0.2)

    worker = threading.Thread(target=traffic)
    timers: list[threading.Timer] = []
    started = time.time()
    if not daemon_late_s:
        runner.__enter__()
    try:
        worker.start()
        for pid in late:
            app.delete_row(pid)
            t = threading.Timer(12.0, app.delete_item, args=(pid,))  # lands 12 s after the commit
            t.start()
            timers.append(t)
            time.sleep(0.5)
        if daemon_late_s:
            time.sleep(max(0.0, started + daemon_late_s - time.time()))
            runner.__enter__()
        for t in timers:
            t.join(30)
        worker.join(60)
        app.settle(runner.daemon)
    finally:
        stop.set()
        for t in timers:
            t.cancel()
        runner.__exit__(None, None, None)
    assert drift_set(app.dep.config) == _unexpected(app, late)


def test_drift_that_heals_is_shown_resolved_and_the_drift_log_keeps_its_history(
    pg: Any, kafka: Any, dynamodb: Any, bridge_factory: Any, tmp_path: Path
) -> None:
    """A DynamoDB delete that never landed in time is drift; when it lands after confirmation, the
    daemon's re-read of open drift resolves it: `parity status` shows no open drift, one
    resolved, and the drift log holds the drift record followed by a `resolved` record."""
    app = Payments(pg, kafka, dynamodb, tmp_path, grace_period_s=3, recheck_schedule_s=[1, 2])
    app.seed([7])
    app.start_cdc(bridge_factory)
    with DaemonThread(app.dep.config) as runner:
        app.delete_row(7)
        wait_for(lambda: drift_set(app.dep.config) == _unexpected(app, [7]), 60, "the drift to be confirmed")
        before = app.status()
        assert (before["drift"], before["drift_open"], before["drift_resolved"]) == (1, 1, 0)
        app.delete_item(7)  # the late delete lands, after confirmation
        wait_for(lambda: app.status()["drift_open"] == 0, 60, "the re-read to resolve the drift")
        runner.daemon.stop_event.set()
    after = app.status()
    assert after["drift"] == 1  # the verdict stays counted: it was drift when confirmed
    assert (after["drift_open"], after["drift_resolved"], after["drift_resolved_by"]) == (0, 1, {"reread": 1})
    lines = [json.loads(x) for x in Path(app.dep.config.daemon.drift_log or "").read_text().splitlines()]
    assert [x.get("event", "drift") for x in lines] == ["drift", "resolved"]
    assert lines[1]["how"] == "reread" and lines[1]["kind"] == "unexpected_in_target"
    assert lines[1]["key"] == lines[0]["key"]
    store = StateStore(state_path(app.dep.config))
    try:
        assert len(store.drift_records()) == 1  # the history is kept
        assert store.open_drift_counts() == {}
    finally:
        store.close()
