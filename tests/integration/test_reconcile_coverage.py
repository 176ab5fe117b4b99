"""Coverage is a figure: every row and every item a reconcile could not compare is counted, by
reason, with a sample of keys, and fails the run; and repair writes values as the mapping
describes them (timestamp precision), with typed keys in the report.

The DynamoDB side is written with low-level wire dicts, never through parity's mapper."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from parity.adapters.dynamodb import DynamoStore
from parity.reconcilers.reconcile import Reconciler
from parity.reconcilers.repair import Repairer
from parity.reconcilers.report import exit_code
from tests.conftest import unique
from tests.integration.reconcile_harness import config_for, create_table, write_config

pytestmark = pytest.mark.integration

ROWS = 200
HUGE = 10**40  # 41 digits: DynamoDB numbers hold 38
BAD_AMOUNT = (11, 12, 13)
BAD_SECRET = (21, 22)
EMPTY_CODE = (31, 32)
UNROUTABLE = ("OTHER#1", "OTHER#2")


class Stack:
    def __init__(self, pg: Any, dynamodb: Any, tmp: Path, table_sql: str, mapping: dict[str, Any],
                 keys: tuple[str, ...]) -> None:
        self.pg, self.dynamodb = pg, dynamodb
        self.schema = unique("cov")
        self.target = f"Cov_{self.schema}"
        with pg.connect() as conn:
            conn.execute(f"CREATE SCHEMA {self.schema}")
            conn.execute(table_sql.format(s=self.schema))
        create_table(dynamodb, self.target, keys)
        mapping = {**mapping, "source": f"{self.schema}.{mapping['source']}", "target": self.target}
        self.config, self.raw = config_for(pg, dynamodb, [mapping], tmp / "reports", segments=2, workers=2)
        self.source = self.config.tables[0].source
        self.store = DynamoStore(dynamodb.client(), concurrency=4)
        self.tmp = tmp

    def put(self, *items: dict[str, Any]) -> None:
        for item in items:
            self.store.call("PutItem", TableName=self.target, Item=item)

    def get(self, key: dict[str, Any]) -> dict[str, Any]:
        return dict(self.store.call("GetItem", TableName=self.target, Key=key, ConsistentRead=True)["Item"])

    def close(self) -> None:
        self.store.close()
        self.dynamodb.client().delete_table(TableName=self.target)
        with self.pg.connect() as conn:
            conn.execute(f"DROP SCHEMA {self.schema} CASCADE")


COV_SQL = """
CREATE TABLE {s}.thing (id bigint PRIMARY KEY, code text NOT NULL, amount numeric, secret numeric);
INSERT INTO {s}.thing SELECT i, 'c' || i, i, NULL FROM generate_series(1, ROWS) i;
UPDATE {s}.thing SET amount = HUGE + id WHERE id IN (11, 12, 13);
UPDATE {s}.thing SET secret = HUGE + id WHERE id IN (21, 22);
UPDATE {s}.thing SET code = '' WHERE id IN (31, 32);
""".replace("ROWS", str(ROWS)).replace("HUGE", str(HUGE))

COV_MAPPING = {
    "source": "thing",
    "primary_key": ["id"],
    "keys": {"PK": "T#{id}", "SK": "{code}"},
    "columns": {"id": {}, "code": {}, "amount": {"type": "number"}, "secret": {"type": "number", "redact": True}},
}


def thing_item(i: int) -> dict[str, Any]:
    return {"PK": {"S": f"T#{i}"}, "SK": {"S": f"c{i}"}, "id": {"N": str(i)}, "code": {"S": f"c{i}"},
            "amount": {"N": str(i)}}


@pytest.fixture
def cov(pg: Any, dynamodb: Any, tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(pg, dynamodb, tmp_path, COV_SQL, COV_MAPPING, ("PK", "SK"))
    # Every row that maps has its item; rows 11 and 12 (amounts DynamoDB cannot hold) also have
    # one, written by some earlier tool; plus items of no mapping.
    items = [thing_item(i) for i in range(1, ROWS + 1) if i not in (*BAD_AMOUNT, *BAD_SECRET, *EMPTY_CODE)]
    items += [thing_item(11), thing_item(12)]
    items += [{"PK": {"S": k}, "SK": {"S": "x"}, "kind": {"S": "session"}} for k in UNROUTABLE]
    for chunk in range(0, len(items), 25):
        stack.store.call("BatchWriteItem", RequestItems={
            stack.target: [{"PutRequest": {"Item": it}} for it in items[chunk : chunk + 25]]})
    yield stack
    stack.close()


def _groups(not_compared: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {g["reason"]: g for g in not_compared}


def test_rows_and_items_that_could_not_be_compared_are_counted_by_reason_and_fail_the_run(cov: Stack) -> None:
    report = Reconciler(cov.config, dynamo=cov.store, dsn=cov.pg.dsn).run()
    table = report["tables"][cov.source]
    target = report["targets"][cov.target]

    bad_rows = len(BAD_AMOUNT) + len(BAD_SECRET) + len(EMPTY_CODE)
    assert table["rows_postgres"] == ROWS
    assert table["rows_not_compared"] == bad_rows
    assert table["rows_compared"] == ROWS - bad_rows
    assert table["rows_compared"] + table["rows_not_compared"] == table["rows_postgres"]

    rows = _groups(table["rows_not_compared_by_reason"])
    assert sorted(g["count"] for g in rows.values()) == [2, 2, 3]
    samples = {r: sorted(k["id"] for k in g["sample"]) for r, g in rows.items()}
    assert sorted(samples.values()) == [list(BAD_AMOUNT), list(BAD_SECRET), list(EMPTY_CODE)]
    for reason in rows:
        assert not re.search(r"\d{10}", reason), reason  # the row's own value never becomes a reason
    empty = next(r for r, ids in samples.items() if ids == list(EMPTY_CODE))
    assert "SK" in empty and "empty" in empty

    # Items: the two whose Postgres row fails to map are not compared (never "resolved").
    items_total = ROWS - bad_rows + 2 + len(UNROUTABLE)
    assert target["items_scanned"] == items_total
    assert table["items_scanned"] == ROWS - bad_rows + 2
    assert table["items_not_compared"] == 2
    assert table["items_compared"] == ROWS - bad_rows
    assert table["items_compared"] + table["items_not_compared"] == table["items_scanned"]
    items = _groups(table["items_not_compared_by_reason"])
    assert [g["count"] for g in items.values()] == [2]
    ((reason, group),) = items.items()
    assert "Postgres" in reason and "amount" in reason
    assert sorted(k["primary_key"]["id"] for k in group["sample"]) == [11, 12]
    assert {k["key"]["PK"]["S"] for k in group["sample"]} == {"T#11", "T#12"}
    assert table["drift_counts"] == {} and table["resolved_in_flight"] == 0

    unroutable = _groups(target["items_not_compared_by_reason"])
    assert unroutable[next(iter(unroutable))]["count"] == len(UNROUTABLE)
    assert target["items_compared"] + target["items_not_compared"] == target["items_scanned"]
    assert target["items_not_compared"] == 2 + len(UNROUTABLE)
    assert report["not_compared_total"] == bad_rows + 2 + len(UNROUTABLE)
    assert exit_code(report) == 1


def test_cli_json_and_summary_show_coverage_and_exit_1(cov: Stack) -> None:
    from typer.testing import CliRunner

    from parity.cli import app

    config_path = write_config(cov.raw, cov.tmp / "parity.yaml")
    runner = CliRunner()
    result = runner.invoke(app, ["reconcile", "--config", str(config_path), "--once", "--json"])
    assert result.exit_code == 1, result.output
    report = orjson.loads(result.stdout)
    assert report["tables"][cov.source]["rows_not_compared"] == 7
    text = runner.invoke(app, ["reconcile", "--config", str(config_path), "--once"])
    assert text.exit_code == 1, text.output
    assert "7 of 200 rows not compared" in text.stdout
    assert "2 of 195 items not compared" in text.stdout
    assert "T#11" in text.stdout and "OTHER#1" in text.stdout
    assert str(HUGE + 21) not in text.stdout and str(HUGE + 21) not in result.stdout  # redacted column


TS_SQL = """
CREATE TABLE {s}.event (id bigint PRIMARY KEY, note text NOT NULL, at timestamptz NOT NULL,
                        at_epoch timestamptz NOT NULL);
INSERT INTO {s}.event VALUES
  (1, 'one', '2024-01-01 00:00:01.234567+00', '2024-01-01 00:00:01.234567+00'),
  (2, 'two', '2024-01-01 00:00:02+00', '2024-01-01 00:00:02+00'),
  (3, 'three', '2024-01-01 00:00:03.5+00', '2024-01-01 00:00:03.5+00');
"""

TS_MAPPING = {
    "source": "event",
    "primary_key": ["id"],
    "keys": {"PK": "E#{id}"},
    "columns": {"id": {}, "note": {}, "at": {"type": "timestamp_iso", "precision": "ms"},
                "at_epoch": {"type": "timestamp_epoch_ms", "precision": "ms"}},
}


@pytest.fixture
def events(pg: Any, dynamodb: Any, tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(pg, dynamodb, tmp_path, TS_SQL, TS_MAPPING, ("PK",))
    yield stack
    stack.close()


def _drift_one_missing_two(events: Stack) -> dict[str, Any]:
    # Item 1 drifted in `note`; items 2 and 3 are missing.
    events.put({"PK": {"S": "E#1"}, "id": {"N": "1"}, "note": {"S": "ONE"},
                "at": {"S": "2024-01-01T00:00:01.234Z"}, "at_epoch": {"N": "1704067201234"}})
    report = Reconciler(events.config, dynamo=events.store, dsn=events.pg.dsn).run()
    drift = {d["key"]["PK"]["S"]: d["kind"] for d in report["tables"][events.source]["drift"]}
    assert drift == {"E#1": "value_mismatch", "E#2": "missing_in_target", "E#3": "missing_in_target"}
    return report


def test_repair_writes_timestamps_at_the_mapping_precision(events: Stack) -> None:
    report = _drift_one_missing_two(events)
    done = Repairer(events.config, dynamo=events.store, dsn=events.pg.dsn, rate=100).run(
        report, execute=True, echo=lambda _: None)
    assert (done["updated"], done["put"], done["failed"]) == (1, 2, 0)
    one, two, three = (events.get({"PK": {"S": f"E#{i}"}}) for i in (1, 2, 3))
    assert one["note"] == {"S": "one"}
    # precision: ms -> exactly milliseconds, never the row's microseconds nor a bare-seconds form.
    assert one["at"] == {"S": "2024-01-01T00:00:01.234Z"}
    assert one["at_epoch"] == {"N": "1704067201234"}
    assert two["at"] == {"S": "2024-01-01T00:00:02.000Z"}
    assert two["at_epoch"] == {"N": "1704067202000"}
    assert three["at"] == {"S": "2024-01-01T00:00:03.500Z"}
    assert three["at_epoch"] == {"N": "1704067203500"}
    assert Reconciler(events.config, dynamo=events.store, dsn=events.pg.dsn).run()["drift_total"] == 0


def test_report_keys_keep_their_types(events: Stack, tmp_path: Path) -> None:
    from parity.reconcilers.reconcile import write_report

    report = _drift_one_missing_two(events)
    written = orjson.loads(write_report(report, tmp_path).read_bytes())
    drift = {d["key"]["PK"]["S"]: d for d in written["tables"][events.source]["drift"]}
    assert drift["E#1"]["primary_key"] == {"id": 1}  # a bigint key is a JSON number, not "1"
    assert isinstance(drift["E#1"]["primary_key"]["id"], int)
    assert drift["E#1"]["key"] == {"PK": {"S": "E#1"}}
