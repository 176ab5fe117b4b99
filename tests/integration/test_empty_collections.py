"""Empty Postgres arrays on the real stack (issue 16, defect 1).

DynamoDB refuses an empty set (DynamoDB Local: "An string set may not be empty"), so an empty
array in a `string_set` / `number_set` column is, by DynamoDB's own convention, an absent
attribute (`empty_set_as: absent`, the default); `empty_set_as: empty_list` writes `L: []`
instead. Empty lists, empty maps and empty strings inside a set are storable and stay values.

The `codes` column takes `null_as: null`: NULL is written as NULL while an empty array is absent,
so NULL and empty stay distinguishable, and a target holding the other one is drift.

Items are written here as low-level wire dicts, never through parity's mapper, so the test data
does not depend on the code under test.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from parity.adapters.dynamodb import DynamoStore
from parity.adapters.state import key_json
from parity.reconcilers.reconcile import Reconciler
from parity.reconcilers.repair import Repairer
from parity.reconcilers.report import exit_code
from tests.conftest import unique
from tests.integration import reconcile_harness
from tests.integration.test_shadow import create_table, outcomes, shadow_config, wait_drained
from tests.integration.verify_harness import DaemonThread, drift_set, settle

pytestmark = pytest.mark.integration

TABLE_SQL = """
CREATE SCHEMA {s};
CREATE TABLE {s}.profiles (
    id     int PRIMARY KEY,
    name   text NOT NULL,
    tags   text[],   -- string_set, empty -> absent (the default)
    scores int[],    -- number_set, empty -> absent
    codes  text[],   -- string_set, NULL -> NULL, empty -> absent: distinguishable
    labels text[],   -- string_set, empty -> L []
    items  int[],    -- list: an empty array is an empty L
    doc    jsonb     -- json_map: an empty object is an empty M
);
"""

COLUMNS: dict[str, Any] = {
    "id": {},
    "name": {},
    "tags": {"type": "string_set"},
    "scores": {"type": "number_set"},
    "codes": {"type": "string_set", "null_as": "null"},
    "labels": {"type": "string_set", "empty_set_as": "empty_list"},
    "items": {"type": "list"},
    "doc": {"type": "json_map"},
}

FAST_GRACE = {"grace_period_s": 8, "recheck_schedule_s": [1, 2, 4, 8]}

EMPTY_ROW = "'{}', '{}', '{}', '{}', '{}', '{}'"


def mapping(schema: str, target: str, mode: str) -> dict[str, Any]:
    return {"source": f"{schema}.profiles", "primary_key": ["id"], "target": target, "mode": mode,
            "keys": {"PK": "P#{id}"}, "columns": COLUMNS, **(FAST_GRACE if mode == "verify" else {})}


def empty_item(i: int, name: str) -> dict[str, Any]:
    """The item of a row whose every array is empty and whose doc is {}."""
    return {"PK": {"S": f"P#{i}"}, "id": {"N": str(i)}, "name": {"S": name},
            "labels": {"L": []}, "items": {"L": []}, "doc": {"M": {}}}


def get(client: Any, table: str, pk: str) -> dict[str, Any]:
    """The stored item in wire form, set members sorted (DynamoDB keeps no order in a set)."""
    item: dict[str, Any] = client.get_item(TableName=table, Key={"PK": {"S": pk}}, ConsistentRead=True)["Item"]
    return canonical(item)


def canonical(item: dict[str, Any]) -> dict[str, Any]:
    return {name: ({kind: sorted(members)} if kind in ("SS", "NS") else {kind: members})
            for name, value in item.items() for kind, members in value.items()}


@pytest.fixture
def schema(pg: Any) -> Iterator[str]:
    name = unique("empty")
    with pg.connect() as conn:
        conn.execute(TABLE_SQL.format(s=name))
    yield name
    with pg.connect() as conn:
        conn.execute(f"DROP SCHEMA {name} CASCADE")


def _deploy(
    schema: str, mode: str, pg: Any, kafka: Any, dynamodb: Any, bridge_factory: Any, tmp_path: Path
) -> tuple[Any, str, Any]:
    """The profiles table's DynamoDB table, a config in `mode`, and its bridge: (config, target, bridge)."""
    target = f"Profiles_{schema}"
    create_table(dynamodb, target)
    cfg, _ = shadow_config(pg=pg, kafka=kafka, dynamodb=dynamodb, state_dir=tmp_path / "state",
                           prefix=unique("cdc"), tables=[mapping(schema, target, mode)])
    return cfg, target, bridge_factory([f"{schema}.profiles"], topic_prefix=cfg.kafka.topic_prefix)


# -- verify ------------------------------------------------------------------------------------------


def test_verify_an_absent_attribute_matches_an_empty_array_and_other_drift_of_such_a_row_is_reported(
    schema: str, pg: Any, kafka: Any, dynamodb: Any, bridge_factory: Any, tmp_path: Path
) -> None:
    cfg, target, bridge = _deploy(schema, "verify", pg, kafka, dynamodb, bridge_factory, tmp_path)
    client = dynamodb.client()
    full = {"PK": {"S": "P#3"}, "id": {"N": "3"}, "name": {"S": "three"}, "tags": {"SS": ["", "a"]},
            "scores": {"NS": ["1", "2"]}, "codes": {"NULL": True}, "labels": {"SS": ["x"]},
            "items": {"L": [{"N": "1"}]}, "doc": {"M": {"k": {"N": "1"}}}}
    items = [
        empty_item(1, "one"),
        empty_item(2, "WRONG"),  # drift on another attribute of a row with empty arrays
        full,
        {**empty_item(4, "four"), "labels": {"SS": ["x"]}} | {"codes": {"NULL": True}},
        # codes NULL in Postgres but absent here: absent means an empty array for this column
        {**empty_item(5, "five"), "labels": {"SS": ["x"]}},
        # codes empty in Postgres but NULL here
        {**empty_item(6, "six"), "codes": {"NULL": True}},
    ]
    for item in items:
        client.put_item(TableName=target, Item=item)
    source = f"{schema}.profiles"
    with pg.connect() as conn, DaemonThread(cfg) as runner:
        conn.execute(
            f"INSERT INTO {schema}.profiles VALUES "
            f"(1, 'one', {EMPTY_ROW}), (2, 'two', {EMPTY_ROW}),"
            "(3, 'three', '{a,\"\"}', '{1,2}', NULL, '{x}', '{1}', '{\"k\": 1}'),"
            "(4, 'four', NULL, NULL, NULL, '{x}', '{}', '{}'),"
            "(5, 'five', NULL, NULL, NULL, '{x}', '{}', '{}'),"
            f"(6, 'six', {EMPTY_ROW})"
        )
        settle(cfg, kafka.bootstrap, bridge.topics, runner.daemon, at_least=6)
        counts = runner.daemon.state.outcome_counts()[source]
        records = {json.dumps(r["key"], sort_keys=True): r for r in runner.daemon.state.drift_records()}

    def k(i: int) -> str:
        return json.dumps(json.loads(key_json({"PK": f"P#{i}"})), sort_keys=True)

    assert drift_set(cfg) == sorted((source, k(i), "value_mismatch") for i in (2, 5, 6))
    assert [d["attribute"] for d in records[k(2)]["diffs"]] == ["name"]
    assert records[k(5)]["diffs"] == [{"attribute": "codes", "expected": "null", "actual": "<absent>"}]
    assert records[k(6)]["diffs"] == [{"attribute": "codes", "expected": "<absent>", "actual": "null"}]
    assert counts.get("dead_letter", 0) == 0 and counts.get("unverified", 0) == 0
    assert counts["match"] == 3


# -- shadow ------------------------------------------------------------------------------------------


def test_shadow_writes_an_empty_array_per_its_rule_and_removes_a_set_that_became_empty(
    schema: str, pg: Any, kafka: Any, dynamodb: Any, bridge_factory: Any, tmp_path: Path
) -> None:
    cfg, target, bridge = _deploy(schema, "shadow", pg, kafka, dynamodb, bridge_factory, tmp_path)
    client = dynamodb.client()
    source = table = f"{schema}.profiles"
    group = cfg.kafka.group_id
    with pg.connect() as conn, DaemonThread(cfg):
        conn.execute(f"INSERT INTO {table} VALUES (1, 'one', {EMPTY_ROW}),"
                     " (2, 'two', NULL, NULL, NULL, NULL, NULL, NULL)")
        wait_drained(kafka.bootstrap, group, bridge.topics, 120, at_least=2)
        first = get(client, target, "P#1")
        second = get(client, target, "P#2")

        conn.execute(f"UPDATE {table} SET tags = '{{a,b}}', scores = '{{1}}', codes = '{{c}}', labels = '{{x}}',"
                     " items = '{7}', doc = '{\"k\": true}' WHERE id = 1")
        wait_drained(kafka.bootstrap, group, bridge.topics, 120, at_least=3)
        filled = get(client, target, "P#1")

        conn.execute(f"UPDATE {table} SET tags = '{{}}', scores = '{{}}', codes = '{{}}', labels = '{{}}',"
                     " items = '{}', doc = '{}' WHERE id = 1")
        wait_drained(kafka.bootstrap, group, bridge.topics, 120, at_least=4)
        emptied = get(client, target, "P#1")

        conn.execute(f"UPDATE {table} SET codes = NULL WHERE id = 1")
        wait_drained(kafka.bootstrap, group, bridge.topics, 120, at_least=5)
        nulled = get(client, target, "P#1")

    version = "_parity_version"
    assert {k: v for k, v in first.items() if k != version} == empty_item(1, "one")
    assert {k: v for k, v in second.items() if k != version} == {
        "PK": {"S": "P#2"}, "id": {"N": "2"}, "name": {"S": "two"}, "codes": {"NULL": True}}
    assert filled["tags"] == {"SS": ["a", "b"]} and filled["scores"] == {"NS": ["1"]}
    assert filled["codes"] == {"SS": ["c"]} and filled["labels"] == {"SS": ["x"]}
    assert filled["items"] == {"L": [{"N": "7"}]} and filled["doc"] == {"M": {"k": {"BOOL": True}}}
    # Non-empty -> empty: the sets are REMOVEd, the list and the map become empty values.
    assert {k: v for k, v in emptied.items() if k != version} == empty_item(1, "one")
    assert nulled["codes"] == {"NULL": True}
    counts = outcomes(cfg)[source]
    assert counts.get("failed", 0) == 0 and counts.get("dead_letter", 0) == 0
    assert counts.get("applied", 0) == 5


# -- reconcile and repair ----------------------------------------------------------------------------

ROWS = 400

DATA_SQL = """
INSERT INTO {s}.profiles
SELECT i, 'name ' || i,
       CASE i % 4 WHEN 0 THEN '{{}}' WHEN 1 THEN NULL WHEN 2 THEN ARRAY['a', 'b'] ELSE ARRAY['t' || i, ''] END,
       CASE i % 2 WHEN 0 THEN '{{}}' ELSE ARRAY[i, i + 1] END,
       CASE i % 3 WHEN 0 THEN '{{}}' WHEN 1 THEN NULL ELSE ARRAY['c'] END,
       CASE i % 2 WHEN 0 THEN '{{}}' ELSE ARRAY['x'] END,
       CASE i % 5 WHEN 0 THEN '{{}}' ELSE ARRAY[i] END,
       CASE i % 2 WHEN 0 THEN '{{}}'::jsonb ELSE jsonb_build_object('n', i) END
FROM generate_series(1, {rows}) AS i;
"""


def wire_item(i: int) -> dict[str, Any]:
    """The item DATA_SQL's row `i` should be, written out by hand."""
    item: dict[str, Any] = {"PK": {"S": f"P#{i}"}, "id": {"N": str(i)}, "name": {"S": f"name {i}"}}
    if i % 4 == 2:
        item["tags"] = {"SS": ["a", "b"]}
    elif i % 4 == 3:
        item["tags"] = {"SS": [f"t{i}", ""]}
    if i % 2:
        item["scores"] = {"NS": [str(i), str(i + 1)]}
    if i % 3 == 1:
        item["codes"] = {"NULL": True}
    elif i % 3 == 2:
        item["codes"] = {"SS": ["c"]}
    item["labels"] = {"SS": ["x"]} if i % 2 else {"L": []}
    item["items"] = {"L": [{"N": str(i)}]} if i % 5 else {"L": []}
    item["doc"] = {"M": {"n": {"N": str(i)}}} if i % 2 else {"M": {}}
    return item


def test_reconcile_counts_and_compares_rows_with_empty_arrays_and_repair_leaves_them_right(
    schema: str, pg: Any, dynamodb: Any, tmp_path: Path
) -> None:
    target = f"Profiles_{schema}"
    with pg.connect() as conn:
        conn.execute(DATA_SQL.format(s=schema, rows=ROWS))
    reconcile_harness.create_table(dynamodb, target)
    config, _raw = reconcile_harness.config_for(pg, dynamodb, [mapping(schema, target, "verify")],
                                                tmp_path / "reports", segments=2, workers=2)
    source = config.tables[0].source
    store = DynamoStore(dynamodb.client(), concurrency=4)
    try:
        items = {i: wire_item(i) for i in range(1, ROWS + 1)}
        items[8]["name"] = {"S": "drifted"}  # row 8: every set empty; drift elsewhere
        items[12]["tags"] = {"SS": ["stale"]}  # row 12: tags '{}' in Postgres, a set here
        items[24]["codes"] = {"NULL": True}  # row 24: codes '{}' (absent), NULL here
        items[30]["labels"] = {"SS": ["x"]}  # row 30: labels '{}' (an empty L), a set here
        for chunk in range(0, ROWS, 25):
            batch = [{"PutRequest": {"Item": items[i]}} for i in range(chunk + 1, min(chunk + 26, ROWS + 1))]
            store.call("BatchWriteItem", RequestItems={target: batch})

        report = Reconciler(config, dynamo=store, dsn=pg.dsn).run()
        table = report["tables"][source]
        assert report["not_compared_total"] == 0, table["rows_not_compared_by_reason"]
        assert table["rows_postgres"] == ROWS and table["items_dynamodb"] == ROWS
        assert table["rows_compared"] == ROWS and table["items_compared"] == ROWS
        diffs = {d["key"]["PK"]["S"]: [x["attribute"] for x in d["diffs"]] for d in table["drift"]}
        assert diffs == {"P#8": ["name"], "P#12": ["tags"], "P#24": ["codes"], "P#30": ["labels"]}
        assert {d["kind"] for d in table["drift"]} == {"value_mismatch"}

        done = Repairer(config, dynamo=store, dsn=pg.dsn, rate=500).run(report, execute=True, echo=lambda _: None)
        assert done["updated"] == 4 and done["failed"] == 0 and done["skipped_changed"] == 0
        time.sleep(0.2)
        after = Reconciler(config, dynamo=store, dsn=pg.dsn).run()
        assert after["drift_total"] == 0 and exit_code(after) == 0
        assert after["tables"][source]["rows_postgres"] == ROWS
        for i in (8, 12, 24, 30):
            assert get(dynamodb.client(), target, f"P#{i}") == canonical(wire_item(i)), i
    finally:
        store.close()
        dynamodb.client().delete_table(TableName=target)
