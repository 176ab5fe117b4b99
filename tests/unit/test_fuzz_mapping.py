"""Fuzzing the mapping and the pipeline with hostile rows: wrong types, huge and deeply nested
values, numbers DynamoDB cannot hold, items over 400 KB. A row either maps or raises
`MappingError` with a reason; through the pipeline every such record becomes a dead letter with
that reason and the batch goes on. Never any other exception."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, get_args

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parity.adapters.kafka import Record
from parity.core.config import AttrType, PgTypeHint
from parity.core.errors import MappingError
from parity.core.mapping import ItemMapper
from parity.daemon.pipeline import Pipeline
from tests import debezium
from tests.fakes import FakeDynamoStore
from tests.unit.mapping_helpers import config, table, table_spec

pytestmark = pytest.mark.unit

ATTR_TYPES: tuple[str, ...] = get_args(AttrType)
PG_TYPES: tuple[str, ...] = get_args(PgTypeHint)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**60), max_value=10**60)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.binary(max_size=40)
    | st.decimals(allow_nan=True, allow_infinity=True)
    | st.sampled_from(["", "NaN", "1e400", "-0", "2024-13-45", "9" * 60, "\x00", "{}", "[1,", "true"])
    | st.datetimes(timezones=st.none() | st.just(dt.UTC))
    | st.dates()
)
# JSON-like trees, a few levels deep (deeper ones are built explicitly below).
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _mapper(attr_type: str, pg_type: str | None) -> ItemMapper:
    rule: dict[str, Any] = {"name": "V", "type": attr_type}
    if pg_type is not None:
        rule["pg_type"] = pg_type
    return ItemMapper(table({"v": rule}))


def _map(m: ItemMapper, row: dict[str, Any]) -> None:
    try:
        item = m.item(row)
    except MappingError as exc:
        assert str(exc).strip(), "a MappingError must carry a reason"
        return
    assert isinstance(item, dict) and "PK" in item


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(ATTR_TYPES), st.none() | st.sampled_from(PG_TYPES), values, values)
def test_any_value_under_any_rule_maps_or_raises_mapping_error(
    attr_type: str, pg_type: str | None, value: Any, key: Any
) -> None:
    m = _mapper(attr_type, pg_type)
    _map(m, {"id": 1, "v": value})
    _map(m, {"id": key, "v": value})  # a wrong-typed key column too


def _nested(depth: int, leaf: Any) -> Any:
    out = leaf
    for i in range(depth):
        out = [out] if i % 2 else {"k": out}
    return out


@pytest.mark.parametrize("attr_type", ATTR_TYPES)
@pytest.mark.parametrize("depth", [40, 200])
def test_deeply_nested_values_map_or_raise_mapping_error(attr_type: str, depth: int) -> None:
    _map(_mapper(attr_type, None), {"id": 1, "v": _nested(depth, "x")})


@pytest.mark.parametrize("attr_type", ATTR_TYPES)
@pytest.mark.parametrize(
    "value",
    [
        "x" * 500_000,
        b"\x01" * 500_000,
        ["y" * 1000] * 500,
        {f"k{i}": "z" * 1000 for i in range(500)},
        [Decimal(i) for i in range(60_000)],
    ],
    ids=["str", "bytes", "list", "map", "numbers"],
)
def test_items_over_400_kb_are_refused_with_a_reason(attr_type: str, value: Any) -> None:
    m = _mapper(attr_type, None)
    try:
        item = m.item({"id": 1, "v": value})
    except MappingError as exc:
        assert str(exc)
        return
    # Some rules legitimately cannot take such a value and say so above; one that maps it must
    # have produced an item DynamoDB could store (under 400 KB): e.g. a number rule cannot.
    from parity.core.values import item_size

    assert item_size(item) <= 400 * 1024


@pytest.mark.parametrize(
    "value",
    [
        Decimal("1e126"),
        Decimal("-1e126"),
        Decimal("1e-131"),
        Decimal("1." + "1" * 40),  # 41 significant digits: DynamoDB keeps 38
        "NaN",
        "Infinity",
        float("nan"),
        float("inf"),
        10**130,
    ],
    ids=str,
)
def test_numbers_dynamodb_cannot_hold_are_refused_with_a_reason(value: Any) -> None:
    with pytest.raises(MappingError) as info:
        _mapper("number", None).item({"id": 1, "v": value})
    assert str(info.value)


# -- through the pipeline: dead letters with a reason, the batch goes on ------------------------

TOPIC = "cdc.public.t"


def _pipeline(attr_type: str) -> tuple[Pipeline, FakeDynamoStore]:
    store = FakeDynamoStore()
    store.create_table("T", ["PK"])
    pipeline = Pipeline(config(table_spec({"v": {"name": "V", "type": attr_type}})), store)
    return pipeline, store


def _record(offset: int, after: Any, op: str = "c") -> Record:
    source = debezium.source_block("t", lsn=1000 + offset, ts_ms=1_000_000)
    value = debezium.value(debezium.envelope(op, source, after=after))
    return Record(TOPIC, 0, offset, debezium.key({"id": offset}), value, 1_000_000)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=10,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(ATTR_TYPES),
    st.lists(st.tuples(json_values, json_values, st.sampled_from(["c", "u", "r"])), min_size=1, max_size=8),
)
def test_every_hostile_record_gets_exactly_one_outcome_and_dead_letters_carry_a_reason(
    attr_type: str, rows: list[tuple[Any, Any, str]]
) -> None:
    pipeline, _ = _pipeline(attr_type)
    records = [_record(i, {"id": key, "v": v}, op) for i, (key, v, op) in enumerate(rows)]
    result = pipeline.process(records, 1_000.0)
    pipeline.recheck_due(1_000.0, result)
    settled = sum(result.outcomes.values()) + len(pipeline.rechecks)
    assert settled == len(records)
    for dl in result.dead_letters:
        assert dl.reason.startswith(("undecodable:", "unmappable:")), dl.reason
        body = orjson.loads(dl.to_json())
        assert body["reason"] == dl.reason and body["offset"] == dl.record.offset


@pytest.mark.parametrize(
    ("attr_type", "value", "reason"),
    [
        ("string", "x" * 450_000, "byte limit"),
        ("number", "1e200", "number"),
        ("number", "NaN", "number"),
        ("json_map", "[" * 50 + "]" * 50, "nested"),
    ],
)
def test_poison_rows_are_dead_lettered_with_a_reason_and_the_good_row_behind_them_is_verified(
    attr_type: str, value: Any, reason: str
) -> None:
    pipeline, store = _pipeline(attr_type)
    store.put("T", {"PK": "T#2", "id": Decimal(2)})
    result = pipeline.process([_record(1, {"id": 1, "v": value}), _record(2, {"id": 2, "v": None})], 1_000.0)
    assert [dl.record.offset for dl in result.dead_letters] == [1]
    text = result.dead_letters[0].reason
    assert text.startswith("unmappable:") and reason in text.lower(), text
    assert result.outcomes[("public.t", "match")] == 1
    assert pipeline.ledger.committable() == {(TOPIC, 0): 3}


@pytest.mark.parametrize("attr_type", ["json_map", "json_string", "auto"])
@pytest.mark.parametrize("depth", [33, 400, 900, 3000])
def test_json_nested_past_dynamodb_limits_is_a_dead_letter_not_a_crash(attr_type: str, depth: int) -> None:
    # jsonb arrives as JSON text; hundreds of levels used to raise RecursionError out of the
    # pipeline, crashing the daemon on every restart (the record is never committed).
    pipeline, _ = _pipeline(attr_type)
    deep = "[" * depth + "]" * depth
    result = pipeline.process([_record(1, {"id": 1, "v": deep}), _record(2, {"id": 2, "v": "[]"})], 1_000.0)
    settled = sum(result.outcomes.values()) + len(pipeline.rechecks)
    assert settled == 2
    for dl in result.dead_letters:
        assert dl.reason.startswith("unmappable:") and "nested" in dl.reason, dl.reason
    if attr_type == "json_map":
        assert [dl.record.offset for dl in result.dead_letters] == [1]
