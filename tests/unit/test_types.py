"""Debezium value decoding: each Connect logical type and each schemaless hint -> psycopg's value."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parity.core.config import ColumnRule
from parity.core.events import UNAVAILABLE
from parity.core.types import (
    PLACEHOLDER,
    ColumnHint,
    as_hint,
    decimal_from_bytes,
    decimal_to_bytes,
    hinted_decoder,
    schema_decoder,
    unavailable_or_same,
)

pytestmark = pytest.mark.unit

UTC = dt.UTC


def field(type_: str, name: str | None = None, **extra: Any) -> dict[str, Any]:
    f: dict[str, Any] = {"type": type_, "optional": True, "field": "c", **extra}
    if name:
        f["name"] = name
    return f


def decode(schema: dict[str, Any], value: Any, hint: ColumnHint | None = None) -> Any:
    decoder = schema_decoder(schema, hint)
    return value if decoder is None else decoder(value)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


DECIMAL = "org.apache.kafka.connect.data.Decimal"

# (schema, JSON value as Debezium sends it, expected Python value). The JSON values are the ones
# seen in tests/fixtures/debezium for the literals in capture_debezium.py, plus edge values.
SCHEMA_CASES: list[tuple[dict[str, Any], Any, Any]] = [
    (
        field("bytes", DECIMAL, parameters={"scale": "2", "connect.decimal.precision": "12"}),
        "EtaH",
        Decimal("12345.67"),
    ),
    (field("bytes", DECIMAL, parameters={"scale": "2"}), "/w==", Decimal("-0.01")),
    (field("bytes", DECIMAL, parameters={"scale": "0"}), "AA==", Decimal(0)),
    (
        field("struct", "io.debezium.data.VariableScaleDecimal"),
        {"scale": 14, "value": "AR2552okgw=="},
        Decimal("3.14159265358979"),
    ),
    (field("struct", "io.debezium.data.VariableScaleDecimal"), {"scale": 20, "value": "AQ=="}, Decimal("1E-20")),
    (field("string", "io.debezium.data.Json"), '{"a": [1, 2.5, "x"], "b": null}', {"a": [1, 2.5, "x"], "b": None}),
    (field("string", "io.debezium.data.Json"), '"str"', "str"),
    (
        field("string", "io.debezium.data.Uuid"),
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    ),
    (field("string", "io.debezium.data.Enum", parameters={"allowed": "sad,ok,happy"}), "happy", "happy"),
    (field("int32", "io.debezium.time.Date"), 19782, dt.date(2024, 2, 29)),
    (field("int32", "io.debezium.time.Date"), -165, dt.date(1969, 7, 20)),
    (field("int32", "org.apache.kafka.connect.data.Date"), 10957, dt.date(2000, 1, 1)),
    (field("int32", "io.debezium.time.Time"), 49530123, dt.time(13, 45, 30, 123000)),
    (field("int32", "org.apache.kafka.connect.data.Time"), 1, dt.time(0, 0, 0, 1000)),
    (field("int64", "io.debezium.time.MicroTime"), 86399999999, dt.time(23, 59, 59, 999999)),
    (field("int64", "io.debezium.time.NanoTime"), 49530123456789, dt.time(13, 45, 30, 123456)),
    (field("int64", "io.debezium.time.Timestamp"), 1709294400123, dt.datetime(2024, 3, 1, 12, 0, 0, 123000)),
    (field("int64", "org.apache.kafka.connect.data.Timestamp"), -1, dt.datetime(1969, 12, 31, 23, 59, 59, 999000)),
    (field("int64", "io.debezium.time.MicroTimestamp"), 1709294400123456, dt.datetime(2024, 3, 1, 12, 0, 0, 123456)),
    (field("int64", "io.debezium.time.MicroTimestamp"), -2208988799999999, dt.datetime(1900, 1, 1, 0, 0, 0, 1)),
    (field("int64", "io.debezium.time.NanoTimestamp"), 1709294400123456789, dt.datetime(2024, 3, 1, 12, 0, 0, 123456)),
    (
        field("string", "io.debezium.time.ZonedTimestamp"),
        "2024-03-01T11:00:00.654321Z",
        dt.datetime(2024, 3, 1, 11, 0, 0, 654321, tzinfo=UTC),
    ),
    (
        field("string", "io.debezium.time.ZonedTimestamp"),
        "2024-03-01T12:00:00+01:00",
        dt.datetime(2024, 3, 1, 11, 0, 0, tzinfo=UTC),
    ),
    (field("string", "io.debezium.time.ZonedTime"), "11:45:30.5Z", dt.time(11, 45, 30, 500000, tzinfo=UTC)),
    (field("int64", "io.debezium.time.MicroDuration"), 93784500000, dt.timedelta(days=1, seconds=7384.5)),
    (field("int64", "io.debezium.time.MicroDuration"), -259201000000, dt.timedelta(days=-3, seconds=-1)),
    (
        field("string", "io.debezium.time.Interval"),
        "P1Y2M3DT4H5M6.5S",
        dt.timedelta(days=365 + 60 + 3, hours=4, minutes=5, seconds=6.5),
    ),
    (field("bytes"), "AP8Q", b"\x00\xff\x10"),
    (field("bytes"), "", b""),
    (field("string"), "héllo", "héllo"),
    (field("int64"), 9223372036854775807, 9223372036854775807),
    (field("boolean"), True, True),
    (field("double"), 2.718281828459045, 2.718281828459045),
    (field("array", items={"type": "int32", "optional": True}), [1, 2, None, 4], [1, 2, None, 4]),
    (field("array", items={"type": "string", "optional": True}), [PLACEHOLDER, "é"], [PLACEHOLDER, "é"]),
    (
        field("array", items={"type": "int32", "optional": True, "name": "io.debezium.time.Date"}),
        [0, None],
        [dt.date(1970, 1, 1), None],
    ),
    # decimal.handling.mode=double/string with column.propagate.source.type
    (field("double", parameters={"__debezium.source.column.type": "NUMERIC"}), 12345.67, Decimal("12345.67")),
    (field("string", parameters={"__debezium.source.column.type": "NUMERIC"}), "-0.01", Decimal("-0.01")),
    (field("double", parameters={"__debezium.source.column.type": "MONEY"}), 12.34, Decimal("12.34")),
]


@pytest.mark.parametrize(("schema", "raw", "want"), SCHEMA_CASES)
def test_schema_driven_value(schema: dict[str, Any], raw: Any, want: Any) -> None:
    got = decode(schema, raw)
    assert got == want
    assert type(got) is type(want)


def test_a_numeric_hint_makes_a_plain_string_or_double_field_a_decimal() -> None:
    hint = ColumnHint("numeric")
    assert decode(field("string"), "12345.67", hint) == Decimal("12345.67")
    assert decode(field("double"), 1e-20, hint) == Decimal("1E-20")
    assert decode(field("string"), "12345.67") == "12345.67"  # without it, the text stays text


PLACEHOLDER_CASES: list[tuple[dict[str, Any], Any]] = [
    (field("string"), PLACEHOLDER),
    (field("string", "io.debezium.data.Json"), PLACEHOLDER),
    (field("bytes"), b64(PLACEHOLDER.encode())),
    (field("array", items={"type": "string", "optional": True}), [PLACEHOLDER]),
    (field("array", items={"type": "int32", "optional": True}), list(PLACEHOLDER.encode())),
]


@pytest.mark.parametrize(("schema", "raw"), PLACEHOLDER_CASES)
def test_every_shape_of_the_toast_placeholder_is_unavailable(schema: dict[str, Any], raw: Any) -> None:
    assert decode(schema, raw) is UNAVAILABLE


@pytest.mark.parametrize("raw", [PLACEHOLDER, [PLACEHOLDER], list(PLACEHOLDER.encode())])
def test_unhinted_schemaless_columns_map_only_the_placeholder(raw: Any) -> None:
    assert unavailable_or_same(raw) is UNAVAILABLE
    assert unavailable_or_same("text") == "text"
    assert unavailable_or_same([1, 2]) == [1, 2]


HINT_CASES: list[tuple[ColumnHint, Any, Any]] = [
    (ColumnHint("numeric", 2), "EtaH", Decimal("12345.67")),
    (ColumnHint("numeric", 2), 12.34, Decimal("12.34")),
    (ColumnHint("numeric"), "12345.67", Decimal("12345.67")),
    (ColumnHint("numeric"), 3.14159265358979, Decimal("3.14159265358979")),
    (ColumnHint("numeric"), {"scale": 14, "value": "AR2552okgw=="}, Decimal("3.14159265358979")),
    (ColumnHint("timestamp"), 1709294400123456, dt.datetime(2024, 3, 1, 12, 0, 0, 123456)),
    (ColumnHint("timestamp", time_unit="ms"), 1709294400123, dt.datetime(2024, 3, 1, 12, 0, 0, 123000)),
    (ColumnHint("timestamptz"), "2024-03-01T11:00:00.654321Z", dt.datetime(2024, 3, 1, 11, 0, 0, 654321, tzinfo=UTC)),
    (ColumnHint("date"), 19782, dt.date(2024, 2, 29)),
    (ColumnHint("time"), 49530123456, dt.time(13, 45, 30, 123456)),
    (ColumnHint("time", time_unit="ms"), 49530123, dt.time(13, 45, 30, 123000)),
    (ColumnHint("time"), "11:45:30.5Z", dt.time(11, 45, 30, 500000, tzinfo=UTC)),
    (ColumnHint("json"), '{"k": {"n": 1}}', {"k": {"n": 1}}),
    (ColumnHint("json"), PLACEHOLDER, UNAVAILABLE),
    (ColumnHint("bytea"), "3q2+7w==", b"\xde\xad\xbe\xef"),
    (ColumnHint("bytea"), b64(PLACEHOLDER.encode()), UNAVAILABLE),
    (ColumnHint("uuid"), "ffffffff-ffff-ffff-ffff-ffffffffffff", uuid.UUID(int=(1 << 128) - 1)),
    (ColumnHint("interval"), 1, dt.timedelta(microseconds=1)),
    (ColumnHint("interval"), "P-3DT-1S", dt.timedelta(days=-3, seconds=-1)),
    (ColumnHint("array"), ["a", None], ["a", None]),
    (ColumnHint("array"), [PLACEHOLDER], UNAVAILABLE),
    (ColumnHint("text"), PLACEHOLDER, UNAVAILABLE),
    (ColumnHint("integer"), 7, 7),
]


@pytest.mark.parametrize(("hint", "raw", "want"), HINT_CASES)
def test_schemaless_value_with_a_hint(hint: ColumnHint, raw: Any, want: Any) -> None:
    got = hinted_decoder(hint)(raw)
    assert got == want
    assert type(got) is type(want)


def test_a_column_rule_serves_as_a_hint() -> None:
    hint = as_hint(ColumnRule(pg_type="numeric", scale=2))
    assert hint == ColumnHint("numeric", 2, "us")
    assert hinted_decoder(hint)("BNI=") == Decimal("12.34")


BAD_VALUES: list[tuple[dict[str, Any], Any]] = [
    (field("bytes", DECIMAL, parameters={"scale": "2"}), "not base64!"),
    (field("bytes", DECIMAL, parameters={"scale": "2"}), 12),
    (field("struct", "io.debezium.data.VariableScaleDecimal"), {"scale": -1, "value": "AQ=="}),
    (field("struct", "io.debezium.data.VariableScaleDecimal"), {"value": "AQ=="}),
    (field("string", "io.debezium.data.Json"), "{not json"),
    (field("string", "io.debezium.data.Uuid"), "not-a-uuid"),
    (field("int32", "io.debezium.time.Date"), "2024-01-01"),
    (field("int32", "io.debezium.time.Date"), 10**9),
    (field("int64", "io.debezium.time.MicroTime"), 86_400_000_000),  # 24:00:00: no Python time
    (field("int64", "io.debezium.time.MicroTimestamp"), 10**20),
    (field("string", "io.debezium.time.ZonedTimestamp"), "yesterday"),
    (field("string", "io.debezium.time.Interval"), "P1W"),
    (field("array", items={"type": "int32"}), "[1]"),
    (field("string"), 5),
]


@pytest.mark.parametrize(("schema", "raw"), BAD_VALUES)
def test_bad_values_raise_value_or_type_errors(schema: dict[str, Any], raw: Any) -> None:
    with pytest.raises((ValueError, TypeError, ArithmeticError, KeyError)):
        decode(schema, raw)


def test_unknown_connect_type_is_rejected_when_the_decoder_is_built() -> None:
    with pytest.raises(ValueError, match="unknown Connect type"):
        schema_decoder(field("int128"))


finite_decimals: st.SearchStrategy[Decimal] = st.builds(
    lambda unscaled, exponent: Decimal(f"{unscaled}E{exponent}"),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.integers(min_value=-50, max_value=50),
)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(finite_decimals)
def test_precise_decimal_round_trips_through_base64_twos_complement(value: Decimal) -> None:
    data, scale = decimal_to_bytes(value)
    schema = field("bytes", DECIMAL, parameters={"scale": str(scale)})
    decoded = decode(schema, b64(data))
    assert decoded == value
    assert decimal_from_bytes(data, scale) == value
    # The variable-scale struct carries the same bytes and the scale.
    variable = field("struct", "io.debezium.data.VariableScaleDecimal")
    assert decode(variable, {"scale": scale, "value": b64(data)}) == value


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.integers(min_value=-(1 << 200), max_value=1 << 200), st.integers(min_value=0, max_value=40))
def test_twos_complement_bytes_are_minimal_and_signed(unscaled: int, scale: int) -> None:
    data, got_scale = decimal_to_bytes(Decimal(f"{unscaled}E-{scale}"))
    assert got_scale == scale
    assert int.from_bytes(data, "big", signed=True) == unscaled
    # Minimal, like Java's BigInteger.toByteArray(): one byte less would change the value.
    assert len(data) == 1 or int.from_bytes(data[1:], "big", signed=True) != unscaled
