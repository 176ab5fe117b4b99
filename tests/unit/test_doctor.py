"""The doctor's pure parts: the report model, the mapping round trip and duplicate-key checks, the
key-type and read-cost arithmetic, and the verdicts of the DynamoDB and Kafka probes on canned answers."""

from __future__ import annotations

import json
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from parity.config_loader import parse_config
from parity.core.config import ParityConfig, TableMapping
from parity.doctor import checks_dynamodb, checks_kafka
from parity.doctor.checks_mapping import duplicate_keys, round_trip
from parity.doctor.checks_postgres import Column, _fits
from parity.doctor.report import Report, Status, fail, ok, warn

pytestmark = pytest.mark.unit


def mapping(**kw: Any) -> TableMapping:
    base: dict[str, Any] = {"source": "public.items", "primary_key": ["id"], "target": "Items",
                            "keys": {"PK": "ITEM#{id}"}, "columns": {"id": {}, "name": {}}}
    return TableMapping.model_validate({**base, **kw})


def config(*tables: dict[str, Any], **extra: Any) -> ParityConfig:
    return parse_config({"postgres": {"dsn": "postgresql://x@h/db"},
                         "kafka": {"bootstrap_servers": "h:9092", "topic_prefix": "cdc"},
                         "tables": list(tables), **extra}, env={})


TABLE = {"source": "public.items", "primary_key": ["id"], "target": "Items", "keys": {"PK": "ITEM#{id}"},
         "columns": {"id": {}, "name": {}}}


# --- report -------------------------------------------------------------------------------------------


def test_warnings_exit_0_and_any_failure_exits_1() -> None:
    report = Report([ok("kafka", "reachable", "fine"), warn("postgres", "columns", "extra", "list them")])
    assert report.exit_code() == 0
    report.checks.append(fail("dynamodb", "table", "missing", "create it", subject="T"))
    assert report.exit_code() == 1
    assert report.summary() == "1 ok, 1 warn, 1 fail"


def test_checks_are_grouped_by_system_source_first_and_the_fix_shown_only_when_not_ok() -> None:
    report = Report([ok("kafka", "reachable", "fine"), fail("postgres", "wal_level", "replica", "set logical"),
                     ok("postgres", "table", "exists", subject="public.items")])
    assert [s for s, _ in report.by_system()] == ["postgres", "kafka"]
    text = report.to_text()
    assert "fail wal_level: replica -> fix: set logical" in text
    assert "ok   table [public.items]: exists\n" in text
    body = json.loads(json.dumps(report.to_dict()))
    assert body["ok"] is False and body["summary"] == {"ok": 2, "warn": 0, "fail": 1}
    assert body["checks"][1]["status"] == "fail" and body["checks"][1]["fix"] == "set logical"


# --- mapping round trip ----------------------------------------------------------------------------------


def test_round_trip_names_each_unstorable_row_by_its_key() -> None:
    m = mapping(keys={"PK": "{name}", "SK": "I#{id}"},
                columns={"id": {}, "name": {}, "body": {}, "amount": {"type": "number"}})
    rows = [
        {"id": 1, "name": "a", "body": "x", "amount": Decimal("1.5")},
        {"id": 2, "name": "b", "body": "y" * (400 * 1024), "amount": 1},  # over 400 KB
        {"id": 3, "name": "c", "body": "z", "amount": Decimal("1E+200")},  # out of DynamoDB's range
        {"id": 4, "name": "", "body": "z", "amount": 1},  # empty key string
    ]
    check = round_trip(m, rows)
    assert check.status is Status.FAIL
    assert check.reason.startswith("3 of 4 sample rows cannot become items")
    assert "(id=2): item is" in check.reason and "byte limit" in check.reason
    assert "(id=3): column 'amount'" in check.reason and "does not fit DynamoDB" in check.reason
    assert "(id=4): key attribute 'PK' is an empty string" in check.reason


def test_round_trip_of_good_rows_is_ok_and_redacted_keys_stay_hidden() -> None:
    m = mapping(columns={"id": {"redact": True}, "name": {}})
    assert round_trip(m, [{"id": 1, "name": "a"}]).status is Status.OK
    bad = round_trip(m, [{"id": 7, "name": object()}])
    assert bad.status is Status.FAIL and "(id=<redacted>)" in bad.reason and "7" not in bad.reason


def test_round_trip_accepts_empty_arrays_in_set_columns_and_still_refuses_a_null_member() -> None:
    # An empty set is an absent attribute (empty_set_as), as the daemon and the reconciler write it.
    m = mapping(columns={"id": {}, "tags": {"type": "string_set"}, "nums": {"type": "number_set"}})
    assert round_trip(m, [{"id": 1, "tags": [], "nums": []}, {"id": 2, "tags": [""], "nums": None}]).status \
        is Status.OK
    bad = round_trip(m, [{"id": 3, "tags": ["a", None], "nums": []}])
    assert bad.status is Status.FAIL and "(id=3): column 'tags'" in bad.reason and "cannot hold NULL" in bad.reason


def test_an_ambiguous_template_collides_within_one_table() -> None:
    m = mapping(primary_key=["a", "b"], keys={"PK": "{a}{b}"}, columns={"a": {}, "b": {}})
    checks = duplicate_keys([(m, [{"a": 1, "b": 23}, {"a": 12, "b": 3}, {"a": 4, "b": 4}])])
    assert [c.status for c in checks] == [Status.FAIL]
    assert "1 collision(s) among 3 sampled keys" in checks[0].reason
    assert "(a=1, b=23) and public.items (a=12, b=3) -> PK=123" in checks[0].reason


def test_tables_sharing_a_target_collide_across_mappings_and_distinct_ones_do_not() -> None:
    a = mapping(source="s.a", keys={"PK": "X#{id}"})
    b = mapping(source="s.b", keys={"PK": "X#{id}"})
    c = mapping(source="s.c", keys={"PK": "C#{id}"})
    checks = duplicate_keys([(a, [{"id": 1}]), (b, [{"id": 1}, {"id": 2}]), (c, [{"id": 1}])])
    assert [c.status for c in checks] == [Status.FAIL]
    assert "['s.a', 's.b']" in checks[0].reason
    assert duplicate_keys([(a, [{"id": 1}]), (c, [{"id": 1}])])[0].status is Status.OK


# --- DynamoDB arithmetic and verdicts --------------------------------------------------------------------


def col(typname: str, category: str) -> Column:
    return Column("c", typname, typname, category, False, False)


def test_expected_key_types_follow_the_bare_template_rule() -> None:
    m = mapping(keys={"PK": "{id}"}, columns={"id": {}, "name": {}, "b": {"type": "binary"}})
    assert checks_dynamodb.expected_type(m, "PK", "{id}", {"id": col("int8", "N")}) == "N"
    assert checks_dynamodb.expected_type(m, "PK", "{id}", {"id": col("text", "S")}) == "S"
    assert checks_dynamodb.expected_type(m, "PK", "{id}", {"id": col("bytea", "U")}) == "B"
    assert checks_dynamodb.expected_type(m, "PK", "{id}", {}) is None  # column type unknown
    assert checks_dynamodb.expected_type(m, "PK", "I#{id}", {"id": col("int8", "N")}) == "S"
    assert checks_dynamodb.expected_type(m, "X", "{b}", {}) == "B"


def test_reconcile_read_units_half_a_unit_per_4kb_plus_one_rounding_per_page() -> None:
    assert checks_dynamodb.reconcile_read_units(1 << 20, 1000, 1000, consistent=False) == (256 + 1) * 0.5
    assert checks_dynamodb.reconcile_read_units(1 << 20, 2500, 1000, consistent=True) == 256 + 3
    assert checks_dynamodb.reconcile_read_units(0, 0, 1000, consistent=False) == 0.5


def test_provisioned_capacity_warns_without_a_read_rate_limit() -> None:
    desc = {"TableSizeBytes": 4096 * 100, "ItemCount": 100,
            "ProvisionedThroughput": {"ReadCapacityUnits": 100, "WriteCapacityUnits": 5}}
    check = checks_dynamodb._capacity("T", desc, config(TABLE))
    assert check.status is Status.WARN and "unlimited" in check.reason and "read_rate_limit" in check.fix
    limited = config(TABLE, reconcile={"read_rate_limit": 10})
    check = checks_dynamodb._capacity("T", desc, limited)
    assert check.status is Status.OK and "50.5 read units" in check.reason and "about 5 s" in check.reason


def test_the_column_types_each_rule_can_convert() -> None:
    assert _fits("timestamp_iso", col("timestamptz", "D"))
    assert not _fits("timestamp_iso", col("time", "D"))
    assert _fits("json_map", col("jsonb", "U"))
    assert not _fits("json_map", col("int4", "N"))
    assert not _fits("auto", col("inet", "I"))
    assert _fits("string", col("inet", "I"))


def table_desc(name: str = "Items") -> dict[str, Any]:
    return {"TableName": name, "TableStatus": "ACTIVE", "ItemCount": 0, "TableSizeBytes": 0,
            "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
            "AttributeDefinitions": [{"AttributeName": "PK", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "PK", "KeyType": "HASH"}]}


def test_shadow_permissions_accept_a_refused_condition_and_name_a_denied_operation() -> None:
    client = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    cfg = config({**TABLE, "mode": "shadow"})
    with Stubber(client) as stub:
        stub.add_response("get_item", {})
        stub.add_response("batch_get_item", {"Responses": {"Items": []}})
        stub.add_response("scan", {"Count": 0, "ScannedCount": 0})
        stub.add_client_error("update_item", "ConditionalCheckFailedException")
        stub.add_client_error("delete_item", "AccessDeniedException", "not authorized to perform dynamodb:DeleteItem")
        checks = checks_dynamodb.probe_permissions(client, "Items", table_desc(), cfg.tables, cfg)
    verdicts = {c.reason.split()[0]: c.status for c in checks}
    assert verdicts == {"GetItem": Status.OK, "BatchGetItem": Status.OK, "Scan": Status.OK,
                        "UpdateItem": Status.OK, "DeleteItem": Status.FAIL}
    denied = next(c for c in checks if c.status is Status.FAIL)
    assert "allow dynamodb:DeleteItem on table/Items" in denied.fix


def test_a_gsi_keyed_with_the_wrong_type_fails() -> None:
    m = {**TABLE, "columns": {"id": {}, "name": {}}, "indexes": {"GSI1PK": "{id}"}}
    cfg = config(m)
    desc = table_desc()
    desc["AttributeDefinitions"].append({"AttributeName": "GSI1PK", "AttributeType": "S"})
    desc["GlobalSecondaryIndexes"] = [{"IndexName": "GSI1", "IndexStatus": "ACTIVE",
                                       "KeySchema": [{"AttributeName": "GSI1PK", "KeyType": "HASH"}]}]
    facts = {"public.items": SimpleNamespace(columns={"id": col("int8", "N")})}
    checks = checks_dynamodb._indexes("Items", desc, cfg.tables, facts)  # type: ignore[arg-type]
    assert [(c.status, c.subject) for c in checks] == [(Status.FAIL, "Items/GSI1")]
    assert "GSI1PK is S but the template writes N" in checks[0].reason


# --- Kafka verdicts on canned metadata --------------------------------------------------------------------


class FakeConsumer:
    def __init__(self, offsets: dict[tuple[str, int], int]) -> None:
        self.offsets = offsets

    def committed(self, partitions: list[Any], timeout: float) -> list[Any]:
        return [SimpleNamespace(topic=p.topic, partition=p.partition,
                                offset=self.offsets.get((p.topic, p.partition), -1001)) for p in partitions]


def metadata(topics: dict[str, int]) -> Any:
    return SimpleNamespace(topics={t: SimpleNamespace(error=None, partitions=dict.fromkeys(range(n)))
                                   for t, n in topics.items()})


def test_kafka_names_the_missing_topic_and_reports_committed_offsets() -> None:
    cfg = config(TABLE, {**TABLE, "source": "public.other", "target": "Other"})
    md = metadata({"cdc.public.items": 2, "parity.dlq": 1})
    checks = checks_kafka.probe_kafka(md, FakeConsumer({("cdc.public.items", 1): 42}), cfg)
    by = {(c.name, c.subject): c for c in checks}
    assert by[("topic", "cdc.public.items")].status is Status.OK
    missing = by[("topic", "cdc.public.other")]
    assert missing.status is Status.FAIL and "topic.prefix=cdc" in missing.fix
    assert "1/2 partitions committed on cdc.public.items: p1@42" in by[("consumer_group", "parity")].reason
    assert by[("drift_topic", "parity.drift")].status is Status.WARN
    assert by[("dead_letter_topic", "parity.dlq")].status is Status.OK


def test_the_terminal_rendering_prints_every_check_with_its_fix(capsys: pytest.CaptureFixture[str]) -> None:
    from parity.doctor import render

    report = Report([fail("postgres", "wal_level", "wal_level=replica", "set [logical]"),
                     ok("kafka", "reachable", "1 broker(s)")])
    assert render(report, as_json=False, colour=True) is None
    out = capsys.readouterr().out
    assert "fail wal_level: wal_level=replica" in out and "fix: set [logical]" in out
    assert out.index("postgres") < out.index("kafka") and "1 ok, 0 warn, 1 fail" in out
    assert json.loads(render(report, as_json=True, colour=True) or "")["ok"] is False
