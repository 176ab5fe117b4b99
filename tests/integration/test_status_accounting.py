"""`parity status --json` on the real stack, read the way a script would: the totals add up to the
records on the topics (events of a table that is not configured included), `stream.drained`
turns true once everything is verified, and a drift is readable (typed key, same text in the log
line as in drift.jsonl, an NFC/NFD difference shown as code points).

Postgres -> Debezium (embedded) -> tansu -> `parity run` (a subprocess) <- DynamoDB Local. The
DynamoDB items are written here with boto3, literally, not through parity's mapper.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.payments_harness import PaymentsStack
from tests.integration.verify_harness import start_daemon_process, terminate, topic_record_count, wait_for

pytestmark = pytest.mark.integration

FAST_GRACE = {"grace_period_s": 6, "recheck_schedule_s": [1, 2, 4, 6]}
NFC, NFD = "Jos\u00e9", "Jose\u0301"  # the same text to the eye, different code points
CUSTOMER = 210  # canonical Decimal('2.1E+2'): the key text that used to show up in logs


def _item(payment_id: int, customer_id: int, status: str) -> dict[str, Any]:
    at = "2024-03-01T12:00:00Z"
    return {
        "CustomerId": {"N": str(customer_id)},
        "PaymentDateId": {"S": f"{at}#{payment_id}"},
        "PaymentId": {"N": str(payment_id)},
        "LoanId": {"N": "7"},
        "Amount": {"N": "10.5"},
        "PaymentDate": {"S": at},
        "Method": {"S": "ACH"},
        "Status": {"S": status},
        "TransactionReference": {"S": f"TX-{payment_id}"},
        "CreatedAt": {"S": at},
        "UpdatedAt": {"S": at},
    }


def _insert_payment(conn: Any, table: str, payment_id: int, customer_id: int, status: str) -> None:
    conn.execute(
        f"INSERT INTO public.{table} (payment_id, customer_id, loan_id, amount, payment_date, method, status,"
        " transaction_reference, created_at, updated_at) VALUES (%s, %s, 7, 10.50, '2024-03-01 12:00:00+00',"
        " 'ACH', %s, %s, '2024-03-01 12:00:00+00', '2024-03-01 12:00:00+00')",
        (payment_id, customer_id, status, f"TX-{payment_id}"),
    )


def _status(config_path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "parity.cli", "status", "--config", str(config_path), "--json"],
        capture_output=True,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout)


def test_status_totals_add_up_drained_turns_true_and_drift_is_readable(
    pg: Any, kafka: Any, dynamodb: Any, bridge_factory: Any, tmp_path: Path
) -> None:
    stack = PaymentsStack(pg, kafka, dynamodb, tmp_path, tag="st", table_overrides=FAST_GRACE)
    dep = stack.dep
    payments = dep.names["payments"]
    other = f"other_{stack.suffix}"  # captured by Debezium, not in parity's configuration
    with pg.connect() as conn:
        conn.execute(f"CREATE TABLE public.{other} (id bigint PRIMARY KEY, note text)")
    prefix = dep.config.kafka.topic_prefix
    topic = dep.config.kafka.topic_for(dep.config.tables[0].source)
    # Debezium's topic routing puts the other table's events on the payments topic: a real way
    # for events of an unconfigured table to reach the daemon (they are dead-lettered).
    bridge = bridge_factory(
        [f"public.{payments}", f"public.{other}"],
        topic_prefix=prefix,
        extra_properties={
            "transforms": "route",
            "transforms.route.type": "io.debezium.transforms.ByLogicalTableRouter",
            "transforms.route.topic.regex": rf"{prefix}\.public\.{other}",
            "transforms.route.topic.replacement": topic,
            "transforms.route.key.enforce.uniqueness": "false",
        },
    )
    client = dynamodb.client()
    target = dep.config.tables[0].target
    matching = list(range(1, 11))
    for pid in matching:
        client.put_item(TableName=target, Item=_item(pid, 100 + pid, "SETTLED"))
    drift_id = 99
    client.put_item(TableName=target, Item=_item(drift_id, CUSTOMER, NFD))
    log = tmp_path / "daemon.log"
    proc = start_daemon_process(dep.config_path, log)
    try:
        with pg.connect() as conn:
            for pid in matching:
                _insert_payment(conn, payments, pid, 100 + pid, "SETTLED")
            _insert_payment(conn, payments, drift_id, CUSTOMER, NFC)
            for i in range(5):
                conn.execute(f"INSERT INTO public.{other} (id, note) VALUES (%s, 'x')", (i,))
        produced = len(matching) + 1 + 5  # one change event per INSERT

        # What a script does: poll `parity status --json` until drained with everything counted.
        seen: list[dict[str, Any]] = []

        def drained() -> bool:
            seen.append(_status(dep.config_path))
            s = seen[-1]
            return bool(s["stream"]["drained"]) and s["totals"]["consumed"] >= produced

        wait_for(drained, 120, "parity status to report a drained stream", interval=1.0)
        status = seen[-1]
        assert topic_record_count(kafka.bootstrap, bridge.topics) == produced

        totals = status["totals"]
        assert totals["consumed"] == produced == totals["resolved"]
        assert totals["pending_rechecks"] == 0
        assert sum(row["consumed"] for row in status["tables"].values()) == produced
        for row in status["tables"].values():
            assert row["consumed"] == sum(row["outcomes"].values()) + row["pending_rechecks"]
        mine = status["tables"][dep.config.tables[0].source]
        assert mine["outcomes"] == {"match": len(matching), "drift": 1}
        unconfigured = status["tables"][f"public.{other}"]
        assert (unconfigured["configured"], unconfigured["outcomes"]) == (False, {"dead_letter": 5})
        stream = status["stream"]
        assert stream["daemon_live"] is True and stream["snapshot_age_s"] < 30
        assert stream["pending_rechecks"] == 0
        assert stream["partitions"] and all(p["lag"] == 0 for p in stream["partitions"].values())
        assert stream["last_event_at"] is not None
        # While the drift's check was pending (a grace period of 6 s), the stream was not drained.
        assert any(s["stream"]["pending_rechecks"] and not s["stream"]["drained"] for s in seen)

        # The drift record: the key keeps its type, and the NFC/NFD difference shows code points.
        lines = Path(dep.config.daemon.drift_log or "").read_text(encoding="utf-8").splitlines()
        assert len(lines) == 1
        record = json.loads(lines[0])
        assert record["key"] == {"CustomerId": CUSTOMER, "PaymentDateId": f"2024-03-01T12:00:00Z#{drift_id}"}
        assert record["kind"] == "value_mismatch"
        assert record["diffs"] == [{"attribute": "Status", "expected": '"Jos\\u00e9"', "actual": '"Jose\\u0301"'}]
        key_text = lines[0][lines[0].index('"key":') : lines[0].index(',"kind"')]
        assert key_text == f'"key":{{"CustomerId":{CUSTOMER},"PaymentDateId":"2024-03-01T12:00:00Z#{drift_id}"}}'
        # The daemon's log line names the key with exactly that text (greppable across both).
        drift_logs = [x for x in log.read_text(encoding="utf-8").splitlines() if '"event":"drift"' in x]
        assert len(drift_logs) == 1, log.read_text()[-3000:]
        assert key_text in drift_logs[0]
        assert "2.1E+2" not in drift_logs[0]
    finally:
        terminate(proc, 20)
    # A stopped daemon is not watching the stream: no longer drained.
    after = _status(dep.config_path)
    assert after["stream"]["drained"] is False
    assert after["stream"]["daemon_live"] is False
