"""The billing single-table example: six Postgres tables in one DynamoDB table. Drift in each
entity type must be found and reported under the source table it belongs to."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from parity.config_loader import parse_config
from parity.core.mapping import ItemMapper
from parity.core.values import item_to_wire
from parity.daemon.dynamo import DynamoStore
from parity.reconcilers.reconcile import Reconciler
from parity.reconcilers.repair import Repairer
from tests.conftest import unique
from tests.integration.reconcile_harness import EXAMPLES, fill_target, rows_of

pytestmark = pytest.mark.integration

DATA = """
INSERT INTO {s}.customer SELECT i, 'First' || i, 'Last' || i, 'c' || i || '@example.com', 'TAX' || i,
    date '1980-01-01' + i, jsonb_build_object('paper', i % 2 = 0, 'lang', 'en'), now() FROM generate_series(1, 60) i;
INSERT INTO {s}.billing_account SELECT 1000 + i, i, 'I', 'O', 1 + i % 4, date '2020-01-01' + i, 500.50, now()
    FROM generate_series(1, 60) i;
INSERT INTO {s}.subscriber SELECT 1000 + i, '555' || lpad((i * 10 + k)::text, 7, '0'), 'A', 'PLAN' || k,
    date '2021-01-01' + i, NULL, CASE WHEN k = 1 THEN ARRAY['VM', 'DATA'] ELSE NULL END, now()
    FROM generate_series(1, 60) i, generate_series(1, 2) k;
INSERT INTO {s}.service_agreement SELECT ban, subscriber_no, 'SOC1', date '2022-01-01', NULL, 9.99,
    '{{"speed": 100, "roaming": false}}', now() FROM {s}.subscriber;
INSERT INTO {s}.bill SELECT 1000 + i, k, 1 + i % 4, date '2024-01-01' + k * 30, date '2024-01-15' + k * 30,
    12.30 * k, 'CLOSED', now() FROM generate_series(1, 60) i, generate_series(1, 2) k;
INSERT INTO {s}.charge SELECT 1000 + i, k, 1, k,
    CASE WHEN k = 3 THEN NULL ELSE '555' || lpad((i * 10 + 1)::text, 7, '0') END,
    'MRC', 10.00 + k, 1.10, CASE WHEN k = 2 THEN '' ELSE 'monthly' END, date '2024-02-01'
    FROM generate_series(1, 60) i, generate_series(1, 3) k;
"""

CHANGES = {  # source table -> (attribute, new value) written to the first item of that table
    "billing_account": ("account_status", "C"),
    "customer": ("first_name", "Someone"),
    "subscriber": ("price_plan", "OTHER"),
    "service_agreement": ("parameters", '{"roaming":true,"speed":100}'),
    "bill": ("total_due", "99.99"),
    "charge": ("charge_code", "OCC"),
}


@pytest.fixture
def billing(pg: Any, dynamodb: Any, tmp_path: Path) -> Any:
    schema = unique("billing")
    target = f"BillingSystem_{schema}"
    sql_text = re.sub(r"\bbilling\.", f"{schema}.", (EXAMPLES / "billing-single-table.sql").read_text())
    sql_text = sql_text.replace("SCHEMA IF NOT EXISTS billing;", f"SCHEMA IF NOT EXISTS {schema};")
    with pg.connect() as conn:
        conn.execute(sql_text)
        conn.execute(DATA.format(s=schema))
    for req in json.loads((EXAMPLES / "billing-single-table.dynamodb.json").read_text()):
        dynamodb.client().create_table(**{**req, "TableName": target})
    raw = yaml.safe_load((EXAMPLES / "billing-single-table.yaml").read_text())
    raw["defaults"]["target"] = target
    for t in raw["tables"]:
        t["source"] = t["source"].replace("billing.", f"{schema}.")
    raw["reconcile"] = {"report_dir": str(tmp_path / "reports"), "grace_period_s": 0.5, "segments": 3, "workers": 2}
    env = {"PARITY_PG_DSN": pg.dsn, "PARITY_KAFKA_BOOTSTRAP": "127.0.0.1:1",
           "PARITY_DYNAMODB_ENDPOINT": dynamodb.endpoint}
    config = parse_config(raw, env=env)
    store = DynamoStore(dynamodb.client(), concurrency=4)
    for mapping in config.tables:
        fill_target(pg, store, mapping)
    yield config, store, schema, target
    store.close()
    dynamodb.client().delete_table(TableName=target)
    with pg.connect() as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_drift_in_each_entity_type_is_routed_to_its_source_table(billing: Any, pg: Any) -> None:
    config, store, _schema, target = billing
    injected: dict[str, str] = {}
    for mapping in config.tables:
        mapper = ItemMapper(mapping)
        row = sorted(rows_of(pg, mapping), key=lambda r: [str(r[c]) for c in mapping.primary_key])[0]
        item = mapper.item(row)
        attribute, value = CHANGES[mapping.table]
        item[attribute] = Decimal(value) if attribute == "total_due" else value
        store.call("PutItem", TableName=target, Item=item_to_wire(item))
        injected[mapping.source] = f"{item['PK']}|{item['SK']}"
    # One item in no entity type's key shape: unmapped, not drift of any table.
    store.call("PutItem", TableName=target, Item=item_to_wire({"PK": "SESSION#1", "SK": "X", "EntityType": "SESSION"}))

    report = Reconciler(config, dynamo=store, dsn=pg.dsn).run()

    found = {
        source: {f"{d['key']['PK']['S']}|{d['key']['SK']['S']}" for d in t["drift"]}
        for source, t in report["tables"].items()
    }
    assert found == {source: {key} for source, key in injected.items()}
    for source, t in report["tables"].items():
        assert t["drift_counts"] == {"value_mismatch": 1}, source
        attribute = CHANGES[source.split(".")[1]][0]
        assert [d["attribute"] for d in t["drift"][0]["diffs"]] == [attribute]
        assert t["rows_postgres"] == t["items_dynamodb"] > 0
    assert report["targets"][target]["unmapped"]["count"] == 1

    done = Repairer(config, dynamo=store, dsn=pg.dsn, rate=200).run(report, execute=True, echo=lambda _: None)
    assert done["updated"] == 6 and done["put"] == 0
    after = Reconciler(config, dynamo=store, dsn=pg.dsn).run()
    assert after["drift_total"] == 0
