"""The verifier on the other two examples: the billing single-table design (six Postgres tables in
one DynamoDB table) and the two-table example. An application mirrors every row to DynamoDB the
way the mapping says, with one corrupted item per source table and some representation-only
differences that must not count as drift."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql
from psycopg.rows import dict_row

from parity.core.config import TableMapping
from parity.core.keys import key_document
from parity.core.mapping import ItemMapper
from parity.core.values import item_to_wire
from tests.conftest import unique
from tests.integration.verify_harness import DaemonThread, deploy_example, drift_set, settle

pytestmark = pytest.mark.integration

FAST = {"grace_period_s": 5, "recheck_schedule_s": [1, 2, 5]}

BILLING_ROWS = """
INSERT INTO {customer} VALUES
 (1, 'Ada', 'Lovelace', 'ada@example.com', 'T-1', '1815-12-10', '{{"lang": "en", "paper": false}}', now()),
 (2, 'Alan', 'Turing', NULL, NULL, NULL, '{{}}', now());
INSERT INTO {billing_account} VALUES
 (1001, 1, 'I', 'O', 7, '2020-01-01', 150.00, now()),
 (1002, 2, 'B', 'S', 14, '2021-06-30', NULL, now());
INSERT INTO {subscriber} VALUES
 (1001, '5550001', 'A', 'UNL-5G', '2020-01-02', NULL, ARRAY['VOICE','DATA'], now()),
 (1001, '5550002', 'A', 'BASIC', '2020-02-02', NULL, NULL, now()),
 (1002, '5550003', 'S', 'BIZ', '2021-07-01', '2022-01-01', ARRAY['DATA'], now());
INSERT INTO {service_agreement} VALUES
 (1001, '5550001', 'ROAM', '2020-01-02', NULL, 9.99, '{{"zone": 2}}', now()),
 (1001, '5550002', 'VM', '2020-02-02', '2021-02-02', 1.50, NULL, now());
INSERT INTO {bill} VALUES
 (1001, 1, 7, '2024-01-07', '2024-01-28', 55.10, 'CLOSED', now()),
 (1001, 2, 7, '2024-02-07', '2024-02-28', 10.01, 'OPEN', now()),
 (1002, 1, 14, '2024-01-14', '2024-02-04', 0.00, 'OPEN', now());
INSERT INTO {charge} VALUES
 (1001, 1, 1, 1, '5550001', 'MRC', 45.00, 4.50, 'Monthly plan', '2024-01-01'),
 (1001, 2, 1, NULL, NULL, 'LATE', 5.00, 0, NULL, '2024-01-20'),
 (1002, 1, 1, 1, '5550003', 'MRC', 30.00, 3.00, 'Business plan', '2024-01-14');
"""

MULTI_ROWS = """
INSERT INTO {integration_logs} (integration, direction, http_status, request_payload, response_payload,
                                error_message, duration_ms, created_at)
SELECT CASE WHEN i % 3 = 0 THEN NULL ELSE 'bank-' || (i % 2) END, 'OUTBOUND', 200,
       jsonb_build_object('id', i, 'nested', jsonb_build_object('a', 1, 'b', ARRAY[1, 2])),
       jsonb_build_object('ok', true, 'n', i * 1.5), CASE WHEN i % 4 = 0 THEN '' END, i / 7.0,
       now() - make_interval(secs => i)
FROM generate_series(1, 12) AS i;
INSERT INTO {payments} (customer_id, loan_id, amount, payment_date, method, status, created_at, updated_at)
SELECT i, 100 + i, 10.50 + i, now() - make_interval(days => i), 'ACH', 'SETTLED', now(), now()
FROM generate_series(1, 12) AS i;
"""


def _mirror(conn: Any, client: Any, mappings: list[TableMapping], corrupt_one: bool) -> list[tuple[str, str, str]]:
    """Write every row's item as the mapping says; corrupt one item per table. Returns the drift
    expected (table, key, kind). Representation-only noise is added to the other items."""
    expected: list[tuple[str, str, str]] = []
    for m in mappings:
        mapper = ItemMapper(m)
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(sql.SQL("SELECT * FROM {} ORDER BY 1").format(sql.Identifier(m.schema, m.table)))
            rows = cur.fetchall()
        assert rows, m.source
        for i, row in enumerate(rows):
            item = mapper.item(row)
            if corrupt_one and i == 0:
                victim = next(a for a in item if a not in m.keys and a not in m.indexes and a not in m.constants)
                item[victim] = "CORRUPTED"
                expected.append(
                    (m.source, json.dumps(json.loads(key_document(mapper.key(row))), sort_keys=True), "value_mismatch")
                )
            else:
                item = _noise(item, m)
            client.put_item(TableName=m.target, Item=item_to_wire(item))
    return sorted(expected)


def _noise(item: dict[str, Any], m: TableMapping) -> dict[str, Any]:
    """Differences in representation only: JSON text with other key order and spacing, a float
    within its tolerance."""
    item = dict(item)
    for col, rule in m.columns.items():
        name = rule.attribute(col)
        if name not in item:
            continue
        if rule.type == "json_string" and isinstance(item[name], str):
            doc = json.loads(item[name])
            item[name] = (
                json.dumps(dict(reversed(list(doc.items()))), indent=1) if isinstance(doc, dict) else item[name]
            )
        if rule.tolerance and not isinstance(item[name], str):
            item[name] = item[name] + type(item[name])("0.0001")
    return item


@pytest.mark.parametrize(("example", "rows"), [("billing-single-table", BILLING_ROWS), ("multi-table", MULTI_ROWS)])
def test_example_drift_is_found_per_source_table(
    example: str, rows: str, pg: Any, kafka: Any, dynamodb: Any, bridge_factory: Any, tmp_path: Path
) -> None:
    suffix = unique("x")
    dep = deploy_example(
        example,
        pg=pg,
        dynamodb=dynamodb,
        kafka=kafka,
        suffix=suffix,
        state_dir=tmp_path / "state",
        table_overrides={"mode": "verify", **FAST},
    )
    mappings = list(dep.config.tables)
    bridge = bridge_factory([m.source for m in mappings], topic_prefix=dep.config.kafka.topic_prefix)
    names = {
        k: sql.Identifier(*next(m.source for m in mappings if m.table == v).split(".")).as_string()
        for k, v in dep.names.items()
        if k[0].islower()
    }
    with pg.connect() as conn, DaemonThread(dep.config) as runner:
        conn.execute(rows.format(**names))
        expected = _mirror(conn, dynamodb.client(), mappings, corrupt_one=True)
        # Every inserted row is one change event; wait until the bridge has published them all.
        inserted = sum(
            conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(m.schema, m.table))).fetchone()[0]
            for m in mappings
        )
        total = settle(dep.config, kafka.bootstrap, bridge.topics, runner.daemon, at_least=inserted)
        counts = runner.daemon.state.outcome_counts()
    assert len(expected) == len(mappings)
    assert drift_set(dep.config) == expected
    # Drift is routed to the right source table: one per table, never another table's name.
    assert sorted(t for t, _, _ in drift_set(dep.config)) == sorted(m.source for m in mappings)
    assert sum(n for c in counts.values() for n in c.values()) == total
