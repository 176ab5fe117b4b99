"""Row -> item: every attribute type and rule, key templates, keys, errors, TOAST."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest

from parity.core.config import TableMapping
from parity.core.errors import MappingError
from parity.core.events import UNAVAILABLE
from parity.core.mapping import ItemMapper, render

from .mapping_helpers import mapper, table

pytestmark = pytest.mark.unit

UTC = dt.UTC
PLUS2 = dt.timezone(dt.timedelta(hours=2))
D = Decimal

# (rule, postgres value, expected DynamoDB value)
TYPE_CASES: list[tuple[dict[str, Any], Any, Any]] = [
    # auto: by the decoded value
    ({}, "text", "text"),
    ({}, "", ""),
    ({}, 42, D(42)),
    ({}, D("10.50"), D("10.5")),
    ({}, 2.5, D("2.5")),
    ({}, 0.1, D("0.1")),
    ({}, True, True),
    ({}, b"\x01\x02", b"\x01\x02"),
    ({}, memoryview(b"ab"), b"ab"),
    ({}, uuid.UUID("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    ({}, {"b": 1, "a": [1.5, None, "x"]}, {"b": D(1), "a": [D("1.5"), None, "x"]}),
    ({}, [1, 2, None], [D(1), D(2), None]),
    ({}, dt.date(2024, 3, 1), "2024-03-01"),
    ({}, dt.time(12, 30, 5), "12:30:05"),
    ({}, dt.datetime(2024, 3, 1, 12, 0, 0), "2024-03-01T12:00:00"),
    ({}, dt.datetime(2024, 3, 1, 14, 0, 0, 500, tzinfo=PLUS2), "2024-03-01T12:00:00.000500Z"),
    ({}, dt.timedelta(minutes=1, microseconds=5), D("60.000005")),
    # explicit types
    ({"type": "number"}, "12.30", D("12.3")),
    ({"type": "number"}, 7, D(7)),
    ({"type": "number"}, dt.timedelta(seconds=90), D(90)),
    ({"type": "string"}, 42, "42"),
    ({"type": "string"}, D("1E+2"), "100"),
    ({"type": "string"}, True, "true"),
    ({"type": "string"}, dt.datetime(2024, 1, 1, tzinfo=UTC), "2024-01-01T00:00:00Z"),
    ({"type": "bool"}, "t", True),
    ({"type": "bool"}, 0, False),
    ({"type": "binary"}, "é", "é".encode()),
    ({"type": "timestamp_iso"}, dt.datetime(2024, 3, 1, 14, 0, tzinfo=PLUS2), "2024-03-01T12:00:00Z"),
    ({"type": "timestamp_iso"}, dt.date(2024, 3, 1), "2024-03-01T00:00:00"),
    ({"type": "timestamp_epoch_s"}, dt.datetime(1970, 1, 2, tzinfo=UTC), D(86400)),
    ({"type": "timestamp_epoch_s"}, dt.datetime(1970, 1, 1, 0, 0, 1, 500000), D("1.5")),
    ({"type": "timestamp_epoch_ms"}, dt.datetime(1970, 1, 1, 0, 0, 1, 234567, tzinfo=UTC), D("1234.567")),
    ({"type": "date_iso"}, dt.date(2024, 2, 29), "2024-02-29"),
    ({"type": "date_iso"}, dt.datetime(2024, 3, 1, 1, 0, tzinfo=PLUS2), "2024-02-29"),
    ({"type": "json_map"}, '{"a": 1.50, "b": [true, null]}', {"a": D("1.5"), "b": [True, None]}),
    ({"type": "json_map"}, {"k": 1}, {"k": D(1)}),
    ({"type": "json_string"}, {"b": 1, "a": 2.0}, '{"a":2,"b":1}'),
    ({"type": "json_string"}, '{ "b" : 1,  "a" : 2 }', '{"a":2,"b":1}'),
    ({"type": "json_string"}, "not json", '"not json"'),
    ({"type": "list"}, (1, "a"), [D(1), "a"]),
    ({"type": "string_set"}, ["b", "a", "b"], frozenset({"a", "b"})),
    ({"type": "string_set"}, [1, 2], frozenset({"1", "2"})),
    ({"type": "number_set"}, [1, D("1.0"), "2.50"], frozenset({D(1), D("2.5")})),
]


@pytest.mark.parametrize(("rule", "value", "expected"), TYPE_CASES)
def test_each_type_rule_maps_a_value(rule: dict[str, Any], value: Any, expected: Any) -> None:
    item = mapper({"c": rule}).item({"id": 1, "c": value})
    assert item["c"] == expected
    assert type(item["c"]) is type(expected)


@pytest.mark.parametrize(
    ("rule", "value", "message"),
    [
        ({}, float("nan"), "column 'c' \\(attribute 'c'\\): number nan cannot be stored"),
        ({}, D("1" * 39), "does not fit DynamoDB"),
        ({"type": "number"}, "abc", "text is not a number"),
        ({"type": "number"}, True, "boolean is not a number"),
        ({"type": "number_set"}, [1, None], "cannot hold NULL"),
        ({"type": "timestamp_iso"}, "yesterday", "not an ISO timestamp"),
        ({"type": "bool"}, "maybe", "not a boolean"),
        ({}, object(), "has no DynamoDB type"),
    ],
)
def test_values_dynamodb_cannot_hold_raise_naming_the_column(
    rule: dict[str, Any], value: Any, message: str
) -> None:
    with pytest.raises(MappingError, match=message):
        mapper({"c": rule}).item({"id": 1, "c": value})


def test_rename_exclude_and_constants() -> None:
    m = mapper(
        {"amount": {"name": "Amount"}, "secret": {"exclude": True}},
        constants={"EntityType": "T", "Version": 2, "Live": True},
    )
    item = m.item({"id": 5, "amount": D("1.00"), "secret": "x"})
    assert item == {"id": D(5), "Amount": D(1), "PK": "T#5", "EntityType": "T", "Version": D(2), "Live": True}


def test_null_is_absent_by_default_or_dynamodb_null_when_asked() -> None:
    m = mapper({"a": {}, "b": {"null_as": "null"}})
    assert m.item({"id": 1, "a": None, "b": None}) == {"id": D(1), "PK": "T#1", "b": None}


@pytest.mark.parametrize("kind", ["string_set", "number_set"])
@pytest.mark.parametrize("empty", [[], (), "[]", " []"])
def test_an_empty_array_in_a_set_column_is_absent_by_default(kind: str, empty: Any) -> None:
    # DynamoDB cannot store an empty set; its convention is no attribute at all.
    m = mapper({"c": {"type": kind}})
    assert m.item({"id": 1, "c": empty}) == {"id": D(1), "PK": "T#1"}


@pytest.mark.parametrize(
    ("rule", "null_item", "empty_item"),
    [
        ({}, {}, {}),
        ({"null_as": "null"}, {"c": None}, {}),
        ({"empty_set_as": "null"}, {}, {"c": None}),
        ({"empty_set_as": "null", "null_as": "null"}, {"c": None}, {"c": None}),
        ({"empty_set_as": "empty_list"}, {}, {"c": []}),
        ({"empty_set_as": "empty_list", "null_as": "null"}, {"c": None}, {"c": []}),
    ],
)
def test_null_and_an_empty_array_are_written_by_their_own_rules(
    rule: dict[str, Any], null_item: dict[str, Any], empty_item: dict[str, Any]
) -> None:
    m = mapper({"c": {"type": "string_set", **rule}})
    key = {"id": D(1), "PK": "T#1"}
    assert m.item({"id": 1, "c": None}) == {**key, **null_item}
    assert m.item({"id": 1, "c": []}) == {**key, **empty_item}
    assert m.item({"id": 1, "c": ["a"]}) == {**key, "c": frozenset({"a"})}
    # The list is new per item: shadow/repair may hold several items at once.
    if empty_item.get("c") == []:
        first = m.item({"id": 1, "c": []})
        assert first["c"] is not m.item({"id": 1, "c": []})["c"]


def test_empty_lists_maps_and_empty_strings_in_sets_stay_values() -> None:
    # DynamoDB (Local 3.3, checked) stores L [], M {} and "" inside a set: only an empty set is refused.
    m = mapper({"l": {"type": "list"}, "j": {"type": "json_map"}, "t": {"type": "json_map"},
                "a": {}, "s": {"type": "string_set"}})
    item = m.item({"id": 1, "l": [], "j": {}, "t": "{}", "a": [], "s": ["", "x"]})
    assert item == {"id": D(1), "PK": "T#1", "l": [], "j": {}, "t": {}, "a": [], "s": frozenset({"", "x"})}


def test_a_set_index_or_key_column_with_an_empty_array_is_still_an_error() -> None:
    with pytest.raises(MappingError, match="must be a string, number or binary"):
        mapper({"c": {"type": "string_set"}}, indexes={"GSI1PK": "{c}"}).item({"id": 1, "c": []})


def test_empty_string_as_null() -> None:
    m = mapper({"a": {"empty_string_as_null": True}, "b": {}})
    assert m.item({"id": 1, "a": "", "b": ""}) == {"id": D(1), "PK": "T#1", "b": ""}


def test_unavailable_toast_columns_are_left_out_and_reported() -> None:
    m = mapper({"doc": {"name": "Doc"}, "note": {}}, indexes={"GSI1PK": "DOC#{doc}"})
    row = {"id": 1, "doc": UNAVAILABLE, "note": "n"}
    assert m.item(row) == {"id": D(1), "PK": "T#1", "note": "n"}
    assert m.unavailable(row) == ["Doc", "GSI1PK"]
    assert m.unavailable({"id": 1, "doc": "d", "note": None}) == []


# --- key templates --------------------------------------------------------------------------------


def payments() -> ItemMapper:
    return ItemMapper(
        table(
            {"customer_id": {"exclude": True}, "payment_date": {}, "n": {}},
            source="public.payments",
            primary_key=["id"],
            keys={"CustomerId": "{customer_id}", "PaymentDateId": "{payment_date:%Y-%m-%dT%H:%M:%SZ}#{id}"},
        )
    )


def test_spec_formats_dates_in_utc_and_a_bare_field_keeps_its_type() -> None:
    m = payments()
    row = {"id": 7, "customer_id": 42, "payment_date": dt.datetime(2024, 3, 1, 14, 0, 5, 9, tzinfo=PLUS2)}
    assert m.key(row) == {"CustomerId": D(42), "PaymentDateId": "2024-03-01T12:00:05Z#7"}
    assert m.key_columns == frozenset({"customer_id", "payment_date", "id"})


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("a#b", "a#b"),
        (True, "true"),
        (D("1.50"), "1.5"),
        (D("1E+3"), "1000"),
        (D("-0.0"), "0"),
        (2.5, "2.5"),
        (uuid.UUID(int=255), "00000000-0000-0000-0000-0000000000ff"),
        (dt.date(2024, 1, 2), "2024-01-02"),
        (dt.datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05"),
        (dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=PLUS2), "2024-01-02T01:04:05Z"),
        (b"\xff", "/w=="),
        ({"b": 1, "a": 2}, '{"a":2,"b":1}'),
    ],
)
def test_canonical_rendering_in_templates(value: Any, text: str) -> None:
    assert render(value) == text
    assert mapper({"c": {}}, keys={"PK": "X#{c}#{id}"}).key({"id": 1, "c": value}) == {"PK": f"X#{text}#1"}


def test_python_format_spec_for_non_dates() -> None:
    m = mapper({"n": {}}, keys={"PK": "N#{n:08.2f}#{id}"})
    assert m.key({"id": 1, "n": D("3.14159")}) == {"PK": "N#00003.14#1"}
    with pytest.raises(MappingError, match="cannot format column 'n'"):
        m.key({"id": 1, "n": "text"})


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"id": None}, "key attribute 'PK': column 'id' is NULL"),
        ({"id": UNAVAILABLE}, "key attribute 'PK': column 'id' is not in the event"),
        ({}, "column 'id' is not in the event"),
    ],
)
def test_null_or_unavailable_key_columns_are_errors(row: dict[str, Any], message: str) -> None:
    with pytest.raises(MappingError, match=message):
        mapper().key(row)


def test_empty_and_oversized_keys_are_errors() -> None:
    m = mapper({"c": {}}, primary_key=["id"], keys={"PK": "{c}{id}"})
    with pytest.raises(MappingError, match="empty string"):
        m.key({"id": "", "c": ""})
    with pytest.raises(MappingError, match="over 2048 bytes"):
        m.key({"id": 1, "c": "x" * 2048})


def test_items_over_400_kb_are_errors() -> None:
    m = mapper({"blob": {}})
    assert m.item({"id": 1, "blob": "x" * 300_000})["blob"]
    with pytest.raises(MappingError, match="over DynamoDB's 409600 byte limit"):
        m.item({"id": 1, "blob": "x" * 410_000})


def test_key_works_from_a_row_with_only_the_key_columns() -> None:
    assert payments().key({"id": 1, "customer_id": 2, "payment_date": dt.date(2024, 5, 6)}) == {
        "CustomerId": D(2),
        "PaymentDateId": "2024-05-06T00:00:00Z#1",
    }


def test_index_attributes_are_sparse_when_a_column_is_null() -> None:
    m = mapper({"sub": {}}, indexes={"GSI1PK": "SUB#{sub}", "GSI1SK": "T#{id}"})
    assert m.item({"id": 1, "sub": "9"})["GSI1PK"] == "SUB#9"
    item = m.item({"id": 1, "sub": None})
    assert "GSI1PK" not in item
    assert item["GSI1SK"] == "T#1"


def test_bare_index_templates_keep_the_type_and_skip_empty_strings() -> None:
    m = mapper({"name": {}, "flag": {"exclude": True}}, indexes={"ByName": "{name}", "ById": "{id}"})
    assert m.item({"id": 3, "name": "x"})["ById"] == D(3)
    assert "ByName" not in m.item({"id": 3, "name": ""})
    bad = mapper({"flag": {}}, indexes={"ByFlag": "{flag}"})
    with pytest.raises(MappingError, match="index attribute 'ByFlag' must be a string, number or binary"):
        bad.item({"id": 1, "flag": True})


# --- reverse: item -> primary key -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "row"),
    [
        ({"PK": "BAN#{ban}", "SK": "CHARGE#{seq}#{act}"}, {"ban": 1, "seq": 22, "act": 333}),
        ({"PK": "BAN#{ban}", "SK": "CHARGE#{seq}#{act}"}, {"ban": "a#b", "seq": "x", "act": "y"}),
        ({"PK": "{ban}", "SK": "{seq}|{act}"}, {"ban": 10, "seq": "s", "act": "t"}),
        ({"PK": "B#{ban}#{ban}", "SK": "{seq}.{act}"}, {"ban": 5, "seq": "p", "act": "q"}),
    ],
)
def test_primary_key_is_recovered_from_the_item_key(keys: dict[str, str], row: dict[str, Any]) -> None:
    m = ItemMapper(
        TableMapping.model_validate(
            {
                "source": "s.t",
                "target": "T",
                "primary_key": ["ban", "seq", "act"],
                "keys": keys,
                "columns": {"ban": {}, "seq": {}, "act": {}},
            }
        )
    )
    item = m.item(row)
    recovered = m.primary_key_from_item(item)
    assert recovered == {c: render(row[c]) for c in ("ban", "seq", "act")}


def test_reverse_needs_the_primary_key_only() -> None:
    m = payments()
    item = m.item({"id": 7, "customer_id": 42, "payment_date": dt.datetime(2024, 3, 1, tzinfo=UTC), "n": 1})
    assert m.primary_key_from_item(item) == {"id": "7"}


@pytest.mark.parametrize(
    "item",
    [
        {"PK": "OTHER#1"},
        {"PK": "T#"},
        {},
        {"PK": D(1)},
        {"PK": True},
    ],
)
def test_foreign_keys_do_not_parse(item: dict[str, Any]) -> None:
    assert mapper().primary_key_from_item(item) is None


def test_a_column_used_twice_must_agree() -> None:
    m = mapper(keys={"PK": "T#{id}", "SK": "S#{id}"})
    assert m.primary_key_from_item({"PK": "T#1", "SK": "S#1"}) == {"id": "1"}
    assert m.primary_key_from_item({"PK": "T#1", "SK": "S#2"}) is None


def test_the_multi_table_example_maps_an_integration_log() -> None:
    from pathlib import Path

    from parity.config_loader import load_config

    path = Path(__file__).resolve().parents[2] / "examples" / "multi-table.yaml"
    config = load_config(path, env={"PARITY_PG_DSN": "postgresql://x@h/db", "PARITY_KAFKA_BOOTSTRAP": "h:1"})
    m = ItemMapper(config.table("public.integration_logs"))
    row = {
        "log_id": 11,
        "integration": "bureau",
        "direction": "OUTBOUND",
        "http_status": 200,
        "request_payload": {"b": 1, "a": "x"},
        "response_payload": {"score": 712.5},
        "error_message": "",
        "duration_ms": 12.25,
        "created_at": dt.datetime(2024, 3, 1, 12, 0, 0, 250000, tzinfo=UTC),
    }
    assert m.item(row) == {
        "LogId": D(11),
        "Direction": "OUTBOUND",
        "HttpStatus": D(200),
        "RequestPayload": '{"a":"x","b":1}',
        "ResponsePayload": {"score": D("712.5")},
        "DurationMs": D("12.25"),
        "CreatedAt": D("1709294400250"),
        "IntegrationName": "bureau",
        "CreatedAtLogId": "2024-03-01T12:00:00.250000Z#11",
    }
    assert m.primary_key_from_item(m.item(row)) == {"log_id": "11"}
