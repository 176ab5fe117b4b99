"""Canonical values: representation-only differences disappear, real ones stay."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from parity.core.normalize import comparable_item

from .mapping_helpers import mapper, table

pytestmark = pytest.mark.unit
D = Decimal

# (rule, one representation, another representation of the same data)
SAME: list[tuple[dict[str, Any], Any, Any]] = [
    ({}, D("1.50"), D("1.5")),
    ({}, D("-0"), D("0")),
    ({}, D("1E+2"), D("100")),
    ({"type": "number"}, [D("1.0")], [D("1")]),
    ({"type": "timestamp_iso"}, "2024-03-01T12:00:00Z", "2024-03-01T14:00:00+02:00"),
    ({"type": "timestamp_iso"}, "2024-03-01T12:00:00Z", "2024-03-01T12:00:00.000000"),
    ({"type": "timestamp_iso", "precision": "ms"}, "2024-03-01T12:00:00.123456Z", "2024-03-01T12:00:00.123Z"),
    ({"type": "timestamp_iso", "precision": "s"}, "2024-03-01T12:00:00.999Z", "2024-03-01T12:00:00Z"),
    ({"type": "timestamp_iso", "precision": "s"}, "2024-03-01T12:00:00Z", D("1709294400")),
    ({"type": "timestamp_epoch_ms"}, D("1709294400000"), "2024-03-01T12:00:00Z"),
    ({"type": "timestamp_epoch_s", "precision": "s"}, D("1709294400.9"), D("1709294400")),
    ({"precision": "ms"}, "2024-03-01T12:00:00.0001Z", "2024-03-01T12:00:00Z"),
    ({"pg_type": "timestamptz"}, "2024-03-01T12:00:00Z", "2024-03-01 12:00:00+00:00"),
    ({"type": "date_iso"}, "2024-03-01", "2024-03-01T00:00:00Z"),
    ({"type": "json_string"}, '{"a": 1, "b": [1.50, 2]}', '{"b":[1.5,2],"a":1.0}'),
    ({"type": "json_map"}, {"a": [D("1.0")], "b": "x"}, {"b": "x", "a": [D(1)]}),
    ({"tolerance": 0.01}, D("1.001"), D("1.003")),
]

DIFFERENT: list[tuple[dict[str, Any], Any, Any]] = [
    ({}, D("1.5"), D("1.51")),
    ({}, "1", D(1)),
    ({}, True, D(1)),
    ({"type": "timestamp_iso", "precision": "ms"}, "2024-03-01T12:00:00.123Z", "2024-03-01T12:00:00.124Z"),
    ({"type": "timestamp_iso"}, "2024-03-01T12:00:00Z", "2024-03-01T12:00:00+01:00"),
    ({"type": "json_string"}, '{"a": 1}', '{"a": "1"}'),
    ({"type": "json_string"}, '{"a": [1, 2]}', '{"a": [2, 1]}'),
    ({}, "", "x"),
]


@pytest.mark.parametrize(("rule", "one", "other"), SAME)
def test_representations_of_the_same_data_normalize_alike(rule: dict[str, Any], one: Any, other: Any) -> None:
    m = mapper({"c": rule})
    assert comparable_item(m, {"c": one}) == comparable_item(m, {"c": other})


@pytest.mark.parametrize(("rule", "one", "other"), DIFFERENT)
def test_different_data_stays_different(rule: dict[str, Any], one: Any, other: Any) -> None:
    m = mapper({"c": rule})
    a, b = comparable_item(m, {"c": one}), comparable_item(m, {"c": other})
    assert a != b or type(a["c"]) is not type(b["c"])


def test_null_and_absent_are_one_thing() -> None:
    m = mapper({"c": {"null_as": "null"}})
    assert comparable_item(m, {"c": None}) == comparable_item(m, {}) == {}


def test_empty_string_is_absent_only_with_the_rule() -> None:
    assert comparable_item(mapper({"c": {"empty_string_as_null": True}}), {"c": ""}) == {}
    assert comparable_item(mapper({"c": {}}), {"c": ""}) == {"c": ""}


def test_timestamps_come_out_as_utc_iso_at_the_precision() -> None:
    m = mapper({"ms": {"type": "timestamp_iso", "precision": "ms"}, "s": {"type": "timestamp_epoch_s"}})
    out = comparable_item(m, {"ms": "2024-03-01T14:00:00.123789+02:00", "s": D("0.5")})
    assert out == {"ms": "2024-03-01T12:00:00.123Z", "s": "1970-01-01T00:00:00.500000Z"}


def test_unparseable_values_are_kept_so_they_show_as_mismatches() -> None:
    m = mapper({"t": {"type": "timestamp_iso"}, "j": {"type": "json_string"}})
    assert comparable_item(m, {"t": "soon", "j": "{not json"}) == {"t": "soon", "j": "{not json"}


def test_ignored_version_and_target_only_attributes_are_dropped() -> None:
    m = mapper({"c": {}}, ignore_attributes=["ExpiresAt"], constants={"EntityType": "T"})
    item = {"id": D(1), "PK": "T#1", "c": "x", "EntityType": "T", "ExpiresAt": D(9), "_parity_version": D(5), "new": 1}
    assert comparable_item(m, item) == {"id": D(1), "PK": "T#1", "c": "x", "EntityType": "T"}


def test_a_table_mapping_works_in_place_of_a_mapper() -> None:
    item = {"id": D("1.0"), "PK": "T#1"}
    assert comparable_item(table(), item) == comparable_item(mapper(), item) == {"id": D(1), "PK": "T#1"}


@pytest.mark.parametrize(
    "text",
    ["2024-03-01T12:00:00.123Z", "2024-13-01T00:00:00.000Z", "0001-01-01T00:00:00.000Z", "2024-02-30T00:00:00.000Z"],
)
def test_canonical_looking_timestamps_are_kept_valid_or_not(text: str) -> None:
    m = mapper({"t": {"type": "timestamp_iso", "precision": "ms"}})
    assert comparable_item(m, {"t": text}) == {"t": text}
