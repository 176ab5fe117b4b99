"""A mapped column the source does not have, on the real stack (issue 16, defect 2).

Postgres -> Debezium -> Kafka -> parity (in a thread, with its Prometheus telemetry) <- DynamoDB
Local. The DynamoDB items are written here with boto3, by hand, not through parity's mapper.

- A mapped column dropped while the daemon runs: events after the drop are `not_compared`
  (never `match`), one log line per (table, column), counted per column in the metric.
- A config naming a column the table does not have (`amont`): its events are `not_compared`,
  `parity config check --live` names the field and exits 2, without `--live` the check is the
  static one it always was, and `parity reconcile` refuses with the same text.
"""

from __future__ import annotations

import copy
import datetime as dt
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import structlog
from prometheus_client import CollectorRegistry

from parity.daemon.telemetry import PrometheusTelemetry
from parity.metrics.catalog import Metrics
from tests.integration.payments_harness import PaymentsStack
from tests.integration.verify_harness import DaemonThread

pytestmark = pytest.mark.integration

FAST_GRACE = {"grace_period_s": 4, "recheck_schedule_s": [1, 2, 4]}
METRIC = "parity_columns_not_compared_total"
WHEN = dt.datetime(2024, 3, 1, 12, 0, 0, tzinfo=dt.UTC)


def _insert(conn: Any, table: str, pid: int, *, with_reference: bool = True) -> None:
    cols = "payment_id, customer_id, loan_id, amount, payment_date, method, status, created_at, updated_at"
    values = [pid, 100 + pid, 900 + pid, Decimal("10.50") + pid, WHEN, "ACH", "SETTLED", WHEN, WHEN]
    if with_reference:
        cols += ", transaction_reference"
        values.append(f"ref-{pid}")
    marks = ", ".join(["%s"] * len(values))
    conn.execute(f"INSERT INTO public.{table} ({cols}) VALUES ({marks})", values)


def _put(client: Any, target: str, pid: int, *, with_reference: bool = True, amount: Decimal | None = None) -> None:
    """The item the application's dual write leaves: written by hand from the example's mapping."""
    stamp = "2024-03-01T12:00:00Z"
    item: dict[str, Any] = {
        "CustomerId": {"N": str(100 + pid)},
        "PaymentDateId": {"S": f"{stamp}#{pid}"},
        "PaymentId": {"N": str(pid)},
        "LoanId": {"N": str(900 + pid)},
        "Amount": {"N": str(amount if amount is not None else Decimal("10.50") + pid)},
        "PaymentDate": {"S": stamp},
        "Method": {"S": "ACH"},
        "Status": {"S": "SETTLED"},
        "CreatedAt": {"S": stamp},
        "UpdatedAt": {"S": stamp},
    }
    if with_reference:
        item["TransactionReference"] = {"S": f"ref-{pid}"}
    client.put_item(TableName=target, Item=item)


def _dual_write(conn: Any, client: Any, table: str, target: str, pids: range, *, with_reference: bool = True) -> None:
    for pid in pids:
        _put(client, target, pid, with_reference=with_reference)
        _insert(conn, table, pid, with_reference=with_reference)


def _deploy(
    pg: Any, kafka: Any, dynamodb: Any, tmp_path: Path, tag: str, **table: Any
) -> tuple[PaymentsStack, str, str]:
    """The example under unique names; returns it with its Postgres table and DynamoDB table."""
    stack = PaymentsStack(pg, kafka, dynamodb, tmp_path, tag=tag, table_overrides={**FAST_GRACE, **table})
    return stack, stack.dep.names["payments"], stack.dep.names["Payments"]


def _start(stack: PaymentsStack, bridge_factory: Any) -> tuple[DaemonThread, CollectorRegistry]:
    """Debezium on the table, and a daemon (not yet running) with Prometheus telemetry."""
    stack.start_cdc(bridge_factory)
    registry = CollectorRegistry()
    tables = stack.config.tables
    metrics = Metrics(registry, tables=[t.source for t in tables], columns={t.source: list(t.columns) for t in tables})
    return DaemonThread(stack.config, telemetry=PrometheusTelemetry(metrics)), registry


def _settle(stack: PaymentsStack, runner: DaemonThread, at_least: int) -> dict[str, int]:
    total = stack.settle(runner.daemon, at_least=at_least)
    counts: dict[str, int] = runner.daemon.state.outcome_counts()[stack.mapping.source]
    assert sum(counts.values()) == total
    return counts


def _assert_missing_reported(
    logs: list[dict[str, Any]], registry: CollectorRegistry, source: str, column: str, events: int
) -> None:
    """One log line for the (table, column), and the metric counting each event without it."""
    assert [(e["table"], e["column"]) for e in logs if e.get("reason") == "column_missing"] == [(source, column)]
    labels = {"table": source, "column": column, "reason": "column_missing"}
    assert registry.get_sample_value(METRIC, labels) == events


def test_a_column_dropped_mid_stream_makes_later_events_not_compared(
    pg: Any, kafka: Any, dynamodb: Any, bridge_factory: Any, tmp_path: Path
) -> None:
    stack, table, target = _deploy(pg, kafka, dynamodb, tmp_path, "colgone")
    source = stack.mapping.source
    client = dynamodb.client()
    runner, registry = _start(stack, bridge_factory)
    with structlog.testing.capture_logs() as logs, pg.connect() as conn, runner:
        conn.autocommit = True
        _dual_write(conn, client, table, target, range(1, 6))
        before = _settle(stack, runner, at_least=5)
        assert before == {"match": 5}, before  # the hand-written items are right

        conn.execute(f"ALTER TABLE public.{table} DROP COLUMN transaction_reference")
        _dual_write(conn, client, table, target, range(6, 11), with_reference=False)
        _put(client, target, 1, amount=Decimal("99.00"))
        conn.execute(f"UPDATE public.{table} SET amount = 99.00 WHERE payment_id = 1")
        counts = _settle(stack, runner, at_least=11)

    assert counts == {"match": 5, "not_compared": 6}, counts
    _assert_missing_reported(logs, registry, source, "transaction_reference", 6)
    events = "parity_events_total"
    labels = {"table": source, "outcome": "not_compared", "direction": "forward"}
    assert registry.get_sample_value(events, {**labels, "op": "c"}) == 5
    assert registry.get_sample_value(events, {**labels, "op": "u"}) == 1


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "parity.cli", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_a_typo_column_is_never_a_match_and_config_check_live_names_it(
    pg: Any, kafka: Any, dynamodb: Any, bridge_factory: Any, tmp_path: Path
) -> None:
    import yaml

    raw = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "payments.yaml").read_text())
    columns = copy.deepcopy(raw["tables"][0]["columns"])
    columns = {("amont" if c == "amount" else c): rule for c, rule in columns.items()}
    stack, table, target = _deploy(pg, kafka, dynamodb, tmp_path, "typo", columns=columns)
    dep, source = stack.dep, stack.mapping.source

    # --- config check: static as before, --live names the field and the near miss -------------------
    static = _cli("config", "check", str(dep.config_path))
    assert static.returncode == 0, static.stdout + static.stderr
    live = _cli("config", "check", "--live", str(dep.config_path))
    out = live.stdout + live.stderr
    assert live.returncode == 2, out
    assert (
        f"{dep.config_path.name}: tables[0].columns.amont: column does not exist in {source} (did you mean 'amount'?)"
        in out
    ), out
    assert pg.dsn not in out and "password" not in out.lower(), out

    # --- the reconciler refuses, with the same text, instead of comparing without the column -----------
    rec = _cli("reconcile", "--config", str(dep.config_path), "--once")
    assert rec.returncode == 2, rec.stdout + rec.stderr
    assert f"tables[0].columns.amont: column does not exist in {source} (did you mean 'amount'?)" in rec.stderr

    # --- the daemon: no event of this table is a match ---------------------------------------------
    client = dynamodb.client()
    runner, registry = _start(stack, bridge_factory)
    with structlog.testing.capture_logs() as logs, pg.connect() as conn, runner:
        conn.autocommit = True
        _dual_write(conn, client, table, target, range(1, 4))
        counts = _settle(stack, runner, at_least=3)

    assert counts == {"not_compared": 3}, counts
    _assert_missing_reported(logs, registry, source, "amont", 3)


def test_shadow_mode_does_not_apply_an_event_without_a_dropped_column(
    pg: Any, kafka: Any, dynamodb: Any, bridge_factory: Any, tmp_path: Path
) -> None:
    """Shadow mode: a write without the column would leave that attribute silently stale, so the
    event is not applied: `not_compared`, and the item keeps its last applied state."""
    stack, table, target = _deploy(pg, kafka, dynamodb, tmp_path, "colshadow", mode="shadow")
    source = stack.mapping.source
    client = dynamodb.client()
    runner, registry = _start(stack, bridge_factory)
    with structlog.testing.capture_logs() as logs, pg.connect() as conn, runner:
        conn.autocommit = True
        for pid in (1, 2):
            _insert(conn, table, pid)
        assert _settle(stack, runner, at_least=2) == {"applied": 2}
        conn.execute(f"ALTER TABLE public.{table} DROP COLUMN transaction_reference")
        _insert(conn, table, 3, with_reference=False)
        conn.execute(f"UPDATE public.{table} SET amount = 99.00 WHERE payment_id = 1")
        counts = _settle(stack, runner, at_least=4)

    assert counts == {"applied": 2, "not_compared": 2}, counts
    _assert_missing_reported(logs, registry, source, "transaction_reference", 2)
    key = {"CustomerId": {"N": "101"}, "PaymentDateId": {"S": "2024-03-01T12:00:00Z#1"}}
    item = client.get_item(TableName=target, Key=key, ConsistentRead=True)["Item"]
    assert item["Amount"] == {"N": "11.5"} and item["TransactionReference"] == {"S": "ref-1"}
    key3 = {"CustomerId": {"N": "103"}, "PaymentDateId": {"S": "2024-03-01T12:00:00Z#3"}}
    assert "Item" not in client.get_item(TableName=target, Key=key3, ConsistentRead=True)
