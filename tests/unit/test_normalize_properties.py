"""Properties of normalization (hypothesis): idempotent, and the Postgres side and the DynamoDB
side of the same logical row compare equal and hash equal."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parity.core.compare import Match, compare
from parity.core.digest import digest_item
from parity.core.mapping import ItemMapper
from parity.core.normalize import comparable_item
from parity.core.values import item_from_wire, item_to_wire

from .mapping_helpers import mapper

pytestmark = pytest.mark.unit

UTC = dt.UTC
zones = st.sampled_from([UTC, dt.timezone(dt.timedelta(hours=5, minutes=30)), dt.timezone(dt.timedelta(hours=-8))])
naive = st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1))
aware = st.builds(lambda d, z: d.replace(tzinfo=UTC).astimezone(z), naive, zones)
decimals = st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-(10**12), max_value=10**12)
json_docs = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(10**9), 10**9), st.text(max_size=5), decimals),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=6,
)

# DynamoDB holds magnitudes 1E-130..9.99E+125 only; outside that a double is a MappingError.
storable_floats = st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: x == 0 or 1e-100 < abs(x) < 1e100)

# column -> (rule, strategy of Postgres values as psycopg returns them)
COLUMNS: dict[str, tuple[dict[str, Any], st.SearchStrategy[Any]]] = {
    "n": ({}, decimals),
    "i": ({}, st.integers(-(10**18), 10**18)),
    "f": ({}, storable_floats),
    "s": ({}, st.text(max_size=8)),
    "b": ({}, st.booleans()),
    "raw": ({}, st.binary(max_size=8)),
    "u": ({}, st.uuids()),
    "d": ({}, st.dates()),
    "ts": ({}, naive),
    "tz": ({}, aware),
    "ms": ({"type": "timestamp_iso", "precision": "ms"}, aware),
    "ep": ({"type": "timestamp_epoch_ms", "precision": "ms"}, aware),
    "eps": ({"type": "timestamp_epoch_s"}, aware),
    "j": ({"type": "json_map"}, st.dictionaries(st.text(max_size=3), json_docs, max_size=3)),
    "js": ({"type": "json_string"}, json_docs),
    "arr": ({}, st.lists(st.one_of(st.none(), st.integers(-99, 99)), max_size=4)),
    # Empty arrays included: each set rule's empty representation must round-trip too.
    "tags": ({"type": "string_set"}, st.lists(st.text(max_size=3), max_size=3)),
    "nums": ({"type": "number_set"}, st.lists(decimals, max_size=3)),
    "etags": ({"type": "string_set", "null_as": "null"}, st.none() | st.lists(st.text(max_size=3), max_size=2)),
    "enull": ({"type": "string_set", "empty_set_as": "null"}, st.none() | st.lists(st.text(max_size=3), max_size=2)),
    "elist": ({"type": "number_set", "empty_set_as": "empty_list"}, st.none() | st.lists(decimals, max_size=2)),
    "opt": ({"null_as": "null"}, st.one_of(st.none(), st.text(max_size=3))),
    "es": ({"empty_string_as_null": True}, st.one_of(st.none(), st.just(""), st.text(max_size=3))),
    "tol": ({"tolerance": 0.01}, storable_floats.filter(lambda x: abs(x) < 1e6)),
    "span": ({}, st.timedeltas(min_value=dt.timedelta(days=-999), max_value=dt.timedelta(days=999))),
}

MAPPER: ItemMapper = mapper(
    {c: rule for c, (rule, _) in COLUMNS.items()},
    indexes={"GSI1PK": "D#{d}", "GSI1SK": "{tz:%Y-%m-%dT%H:%M:%S}#{u}"},
    constants={"EntityType": "T"},
)
rows = st.fixed_dictionaries({"id": st.integers(0, 10**9), **{c: s for c, (_, s) in COLUMNS.items()}})


@settings(deadline=None)  # wall-clock deadlines flake on a busy machine
@given(rows)
def test_the_postgres_side_and_the_dynamodb_side_compare_and_hash_equal(row: dict[str, Any]) -> None:
    expected = MAPPER.item(row)
    stored = item_from_wire(item_to_wire(expected))  # what a GetItem or Scan gives back
    assert compare(MAPPER, expected, stored) == Match()
    assert digest_item(MAPPER, expected, 1024) == digest_item(MAPPER, stored, 1024)


@settings(deadline=None)  # wall-clock deadlines flake on a busy machine
@given(rows)
def test_normalization_is_idempotent(row: dict[str, Any]) -> None:
    once = comparable_item(MAPPER, MAPPER.item(row))
    assert comparable_item(MAPPER, once) == once


@settings(deadline=None)  # wall-clock deadlines flake on a busy machine
@given(rows, st.data())
def test_a_changed_value_is_found(row: dict[str, Any], data: st.DataObject) -> None:
    expected = MAPPER.item(row)
    column = data.draw(st.sampled_from(["s", "n", "i", "b", "u"]))
    changed = dict(row)
    changed[column] = {
        "s": lambda v: v + "!",
        "n": lambda v: v + 1,
        "i": lambda v: v + 1,
        "b": lambda v: not v,
        "u": lambda v: uuid.UUID(int=(v.int + 1) % (1 << 128)),
    }[column](row[column])
    result = compare(MAPPER, expected, item_from_wire(item_to_wire(MAPPER.item(changed))))
    assert result != Match()
    assert [d.attribute for d in result.diffs] == [column] + (["GSI1SK"] if column == "u" else [])  # type: ignore[union-attr]
    assert digest_item(MAPPER, expected, 1024)[1] != digest_item(MAPPER, MAPPER.item(changed), 1024)[1]


def test_decimal_rows_compare_by_value() -> None:
    row = {"id": 1, "n": Decimal("1.10")}
    m = mapper({"n": {}})
    assert compare(m, m.item(row), {"id": Decimal(1), "PK": "T#1", "n": Decimal("1.1")}) == Match()
