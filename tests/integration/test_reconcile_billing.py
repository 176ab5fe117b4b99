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

from parity.adapters.dynamodb import DynamoStore
from parity.config_loader import parse_config
from parity.core.mapping import ItemMapper
from parity.core.values import item_to_wire
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


def _get(store: DynamoStore, target: str, pk: str, sk: str) -> dict[str, Any]:
    got = store.call("GetItem", TableName=target, Key={"PK": {"S": pk}, "SK": {"S": sk}}, ConsistentRead=True)
    return dict(got["Item"])


def _findings(report: dict[str, Any], pk: str, sk: str) -> list[tuple[str, str]]:
    return [
        (source, d["kind"])
        for source, t in report["tables"].items()
        for d in t["drift"]
        if d["key"] == {"PK": {"S": pk}, "SK": {"S": sk}}
    ]


def test_a_key_of_one_entity_with_the_discriminator_of_another_is_one_finding_with_one_action(
    billing: Any, pg: Any, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from parity.cli import app
    from parity.reconcilers.reconcile import write_report

    config, store, _schema, target = billing
    # Low-level writes, not through parity's mapper: the bill BAN#1001/BILL#1 now says it is a
    # CHARGE; the bill BAN#1002/BILL#1 says SESSION (no mapping has it); BAN#1003/BILL#99 is a
    # bill key with no Postgres row, labelled CHARGE.
    swapped = _get(store, target, "BAN#1001", "BILL#1")
    swapped["EntityType"] = {"S": "CHARGE"}
    store.call("PutItem", TableName=target, Item=swapped)
    unknown = _get(store, target, "BAN#1002", "BILL#1")
    unknown["EntityType"] = {"S": "SESSION"}
    store.call("PutItem", TableName=target, Item=unknown)
    store.call("PutItem", TableName=target, Item={
        "PK": {"S": "BAN#1003"}, "SK": {"S": "BILL#99"}, "EntityType": {"S": "CHARGE"}, "amount": {"N": "1"}})

    report = Reconciler(config, dynamo=store, dsn=pg.dsn).run()

    bill = next(m.source for m in config.tables if m.table == "bill")
    charge = next(m.source for m in config.tables if m.table == "charge")
    # The Postgres row decides whose key it is: one value_mismatch of the bill, nothing else.
    assert _findings(report, "BAN#1001", "BILL#1") == [(bill, "value_mismatch")]
    assert _findings(report, "BAN#1002", "BILL#1") == [(bill, "value_mismatch")]
    # No row has the key: the item's own discriminator routes it.
    assert _findings(report, "BAN#1003", "BILL#99") == [(charge, "unexpected_in_target")]
    diffs = {d["key"]["PK"]["S"]: [x["attribute"] for x in d["diffs"]] for d in report["tables"][bill]["drift"]}
    assert diffs == {"BAN#1001": ["EntityType"], "BAN#1002": ["EntityType"]}
    assert report["drift_total"] == 3
    # The SESSION-labelled bill is compared (and drifted), not also counted as unroutable.
    assert report["targets"][target]["unmapped"]["count"] == 0
    assert report["tables"][bill]["items_scanned"] == report["tables"][bill]["rows_postgres"]

    # Checking the bill table alone gives the same findings; the other tables' items are counted.
    only = Reconciler(config, dynamo=store, dsn=pg.dsn).run(tables=[bill])
    assert [(d["key"]["PK"]["S"], d["kind"]) for d in only["tables"][bill]["drift"]] == [
        ("BAN#1001", "value_mismatch"), ("BAN#1002", "value_mismatch")]
    t = only["targets"][target]
    assert t["items_compared"] + t["items_not_compared"] + t["items_other_tables"] == t["items_scanned"]
    assert t["items_scanned"] == report["targets"][target]["items_scanned"] and t["items_other_tables"] > 0

    path = write_report(report, tmp_path / "reports")
    raw = yaml.safe_load((EXAMPLES / "billing-single-table.yaml").read_text())
    raw["defaults"]["target"] = target
    raw["tables"] = [{**t, "source": m.source} for t, m in zip(raw["tables"], config.tables, strict=True)]
    raw["postgres"]["dsn"] = pg.dsn
    raw["dynamodb"]["endpoint"] = store.client.meta.endpoint_url
    raw["kafka"]["bootstrap_servers"] = "127.0.0.1:1"
    config_path = tmp_path / "parity.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(app, ["repair", "--config", str(config_path), "--report", str(path),
                                      "--dry-run", "--delete-unexpected"])
    assert result.exit_code == 0, result.output
    actions = [line for line in result.stdout.splitlines() if line.startswith("would ")]
    assert len([a for a in actions if '"BAN#1001"' in a]) == 1, actions
    assert [a.split(" ")[1] for a in actions if '"BAN#1001"' in a] == ["UPDATE"]
    assert [a.split(" ")[1] for a in actions if '"BAN#1003"' in a] == ["DELETE"]
    assert len(actions) == 3

    done = Repairer(config, dynamo=store, dsn=pg.dsn, rate=200).run(
        report, execute=True, delete_unexpected=True, echo=lambda _: None)
    assert (done["updated"], done["deleted"], done["failed"]) == (2, 1, 0)
    assert _get(store, target, "BAN#1001", "BILL#1")["EntityType"] == {"S": "BILL"}
    assert Reconciler(config, dynamo=store, dsn=pg.dsn).run()["drift_total"] == 0


def test_repair_refuses_a_report_with_two_findings_for_one_key(billing: Any, pg: Any) -> None:
    from parity.reconcilers.repair import RepairError

    config, store, _schema, target = billing
    bill = next(m.source for m in config.tables if m.table == "bill")
    charge = next(m.source for m in config.tables if m.table == "charge")
    key = {"PK": {"S": "BAN#1001"}, "SK": {"S": "BILL#1"}}
    # The shape an older version wrote: the same key under two tables.
    report = {"tables": {
        bill: {"target": target, "drift": [{"kind": "value_mismatch", "key": key, "diffs": [],
                                            "seen": {"EntityType": {"S": "CHARGE"}}}]},
        charge: {"target": target, "drift": [{"kind": "unexpected_in_target", "key": key, "diffs": [],
                                              "seen": {"EntityType": {"S": "CHARGE"}}}]},
    }}
    lines: list[str] = []
    with pytest.raises(RepairError, match="BAN#1001") as err:
        Repairer(config, dynamo=store, dsn=pg.dsn).run(report, execute=False, delete_unexpected=True,
                                                       echo=lines.append)
    assert bill in str(err.value) and charge in str(err.value)
    assert not [line for line in lines if line.startswith("would ")]
