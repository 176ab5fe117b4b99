"""decode_record: envelopes, ops, keys, skips, the reasons of DecodeError, and that nothing but
DecodeError ever escapes, whatever the bytes."""

from __future__ import annotations

import contextlib
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parity.core.config import ColumnRule
from parity.core.errors import DecodeError
from parity.core.events import UNAVAILABLE, ChangeEvent, Op, Skip, Tombstone, decode_record
from parity.core.types import ColumnHint
from tests import debezium

pytestmark = pytest.mark.unit

TOPIC = "pg.public.subscriber"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "debezium"

ROW_FIELDS = [
    {"type": "int32", "optional": False, "field": "id"},
    {"type": "string", "optional": True, "field": "name"},
    {
        "type": "bytes",
        "optional": True,
        "name": "org.apache.kafka.connect.data.Decimal",
        "version": 1,
        "parameters": {"scale": "2"},
        "field": "amount",
    },
]
KEY_SCHEMA = debezium.key_schema([ROW_FIELDS[0]], name="pg.public.subscriber")


def source(**over: Any) -> dict[str, Any]:
    """The source block every test starts from; `over` replaces wire fields, with any value."""
    return {**debezium.source_block("subscriber", lsn=100, tx_id=7, ts_ms=1700000000000), **over}


def payload(op: str = "c", after: Any = None, **over: Any) -> dict[str, Any]:
    if after is None and op in "cur":
        after = {"id": 1, "name": "a", "amount": "BNI="}
    return {**debezium.envelope(op, source(), after=after, ts_ms=1), **over}


def with_schema(body: dict[str, Any], fields: list[dict[str, Any]] = ROW_FIELDS) -> bytes:
    return debezium.value(body, debezium.envelope_schema(fields, name="pg.public.subscriber"))


def key_bytes(id_: int = 1, schemas: bool = True) -> bytes:
    return debezium.key({"id": id_}, KEY_SCHEMA if schemas else None)


def test_a_create_with_schemas_decodes_key_row_and_source() -> None:
    got = decode_record(TOPIC, key_bytes(), with_schema(payload()))
    assert got == ChangeEvent(
        source="public.subscriber",
        op=Op.CREATE,
        key={"id": 1},
        before=None,
        after={"id": 1, "name": "a", "amount": Decimal("12.34")},
        lsn=100,
        tx_id=7,
        ts_ms=1700000000000,
        snapshot=False,
        snapshot_last=False,
    )


def test_a_create_without_schemas_uses_the_hints_which_may_be_column_rules() -> None:
    rules = {"amount": ColumnRule(pg_type="numeric", scale=2)}
    got = decode_record(TOPIC, key_bytes(schemas=False), debezium.value(payload()), rules)
    assert isinstance(got, ChangeEvent)
    assert got.after == {"id": 1, "name": "a", "amount": Decimal("12.34")}
    unhinted = decode_record(TOPIC, key_bytes(schemas=False), debezium.value(payload()))
    assert isinstance(unhinted, ChangeEvent) and unhinted.after is not None
    assert unhinted.after["amount"] == "BNI="  # nothing says it is NUMERIC


@pytest.mark.parametrize("op", ["c", "u", "r", "d"])
def test_every_row_op_decodes(op: str) -> None:
    body = payload(op, before={"id": 1, "name": None, "amount": None}) if op == "d" else payload(op)
    got = decode_record(TOPIC, key_bytes(), with_schema(body))
    assert isinstance(got, ChangeEvent) and got.op.value == op
    assert (got.row is None) == (op == "d")


def test_a_truncate_has_no_key_and_no_rows() -> None:
    got = decode_record(TOPIC, None, with_schema(payload("t", after=None)))
    assert isinstance(got, ChangeEvent)
    assert (got.op, got.key, got.before, got.after) == (Op.TRUNCATE, {}, None, None)


def test_a_tombstone_carries_the_key_and_the_table_of_its_topic() -> None:
    assert decode_record(TOPIC, key_bytes(5), None) == Tombstone(source="public.subscriber", key={"id": 5})
    assert decode_record("odd", key_bytes(5, schemas=False), None) == Tombstone(source=None, key={"id": 5})


@pytest.mark.parametrize(
    ("marker", "snapshot", "last"),
    [
        ("true", True, False),
        ("first", True, False),
        ("first_in_data_collection", True, False),
        ("last_in_data_collection", True, False),
        ("last", True, True),
        ("incremental", True, False),
        ("false", False, False),
        (None, False, False),
    ],
)
def test_snapshot_markers(marker: str | None, snapshot: bool, last: bool) -> None:
    body = payload("r")
    body["source"] = source(snapshot=marker)
    got = decode_record(TOPIC, key_bytes(), with_schema(body))
    assert isinstance(got, ChangeEvent)
    assert (got.snapshot, got.snapshot_last) == (snapshot, last)


SKIPS: list[tuple[str, bytes, str]] = [
    ("__debezium-heartbeat.pg", orjson.dumps({"ts_ms": 1}), "heartbeat"),
    (
        "elsewhere",
        orjson.dumps(
            {
                "schema": {"type": "struct", "name": "io.debezium.connector.common.Heartbeat", "fields": []},
                "payload": {"ts_ms": 1},
            }
        ),
        "heartbeat",
    ),
    (
        "pg.transaction",
        orjson.dumps({"status": "BEGIN", "id": "730:22334312", "event_count": None}),
        "transaction BEGIN",
    ),
    ("pg.transaction", orjson.dumps({"status": "END", "id": "730:22334704", "event_count": 1}), "transaction END"),
    ("pg", orjson.dumps({"ddl": "CREATE TABLE t ()", "source": {}}), "schema change"),
    (
        "pg.message",
        orjson.dumps({"op": "m", "source": source(), "message": {"prefix": "x"}}),
        "logical decoding message",
    ),
]


@pytest.mark.parametrize(("topic", "value", "reason"), SKIPS)
def test_messages_that_are_not_row_changes_are_skipped(topic: str, value: bytes, reason: str) -> None:
    assert decode_record(topic, None, value) == Skip(reason)


def _no_source() -> bytes:
    body = payload()
    del body["source"]
    return with_schema(body)


ERRORS: list[tuple[bytes | None, bytes | None, str]] = [
    (key_bytes(), b"{not json", "value is not valid JSON"),
    (key_bytes(), b"\xff\xfe", "value is not valid JSON"),
    (key_bytes(), b"[1, 2]", "payload is not an object"),
    (key_bytes(), orjson.dumps({"schema": None, "payload": 3}), "payload is not an object"),
    (key_bytes(), orjson.dumps({"hello": "world"}), "no 'op' field"),
    (key_bytes(), with_schema(payload("x")), "unknown op 'x'"),
    (key_bytes(), with_schema({**payload(), "op": 1}), "unknown op 1"),
    (key_bytes(), with_schema(payload("c", after=None) | {"after": None}), "op 'c' without 'after'"),
    (key_bytes(), with_schema(payload("u") | {"after": None}), "op 'u' without 'after'"),
    (key_bytes(), with_schema(payload("r") | {"after": None}), "op 'r' without 'after'"),
    (None, with_schema(payload()), "record has no key"),
    (key_bytes(), _no_source(), "no 'source' block"),
    (key_bytes(), with_schema(payload() | {"source": source(table=None)}), "no schema/table"),
    (key_bytes(), with_schema(payload() | {"source": source(lsn="12")}), "source.lsn is not an integer"),
    (key_bytes(), with_schema(payload() | {"source": source(txId=1.5)}), "source.txId is not an integer"),
    (key_bytes(), with_schema(payload() | {"source": source(snapshot=1)}), "source.snapshot is not a string"),
    (key_bytes(), with_schema(payload(after={"id": "1"})), "after.id: expected an integer"),
    (key_bytes(), with_schema(payload(after={"id": 1, "amount": "!!"})), "after.amount:"),
    (key_bytes(), with_schema(payload(after={"id": 1, "name": 3})), "after.name: expected text"),
    (key_bytes(), with_schema(payload(after=[1])), "after is not an object"),
    (
        key_bytes(),
        orjson.dumps(
            {
                "schema": {
                    "type": "struct",
                    "fields": [{"type": "struct", "fields": [{"type": "x"}], "field": "after"}],
                },
                "payload": payload(),
            }
        ),
        "field without a name",
    ),
    (key_bytes(), orjson.dumps({"schema": 5, "payload": payload()}), "record schema is not an object"),
    (b"nope", with_schema(payload()), "key is not valid JSON"),
    (b"[1]", with_schema(payload()), "key is not a JSON object"),
    (b"{}", with_schema(payload()), "key has no fields"),
    (None, None, "tombstone without a key"),
]


@pytest.mark.parametrize(("key", "value", "reason"), ERRORS)
def test_decode_errors_name_what_is_wrong(key: bytes | None, value: bytes | None, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        decode_record(TOPIC, key, value)


def test_a_bad_schema_parameter_is_a_decode_error() -> None:
    fields = [ROW_FIELDS[0], {**ROW_FIELDS[2], "parameters": {}}]
    with pytest.raises(DecodeError, match="schema of 'amount' is invalid"):
        decode_record(TOPIC, key_bytes(), with_schema(payload(after={"id": 1, "amount": "BNI="}), fields))


def test_non_bytes_input_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="value is a int"):
        decode_record(TOPIC, key_bytes(), 5)  # type: ignore[arg-type]


# ---- the schema cache ----------------------------------------------------------------------


def test_a_cached_schema_decodes_the_same_as_a_fresh_one() -> None:
    value = with_schema(payload())
    first = decode_record("cache.public.a", key_bytes(), value)
    second = decode_record("cache.public.a", key_bytes(), value)
    other_topic = decode_record("cache.public.b", key_bytes(), value)
    assert first == second == other_topic


def test_text_that_looks_like_the_payload_separator_does_not_confuse_the_split() -> None:
    tricky = ',"payload":{"op":"d"}}'
    fields = [ROW_FIELDS[0], {**ROW_FIELDS[1], "default": tricky}]
    body = payload(after={"id": 1, "name": tricky})
    for _ in range(2):  # a miss, then the cached path
        got = decode_record("cache.public.tricky", key_bytes(), with_schema(body, fields))
        assert isinstance(got, ChangeEvent) and got.after == {"id": 1, "name": tricky}


def test_a_new_schema_on_the_same_topic_replaces_the_cached_one() -> None:
    topic = "cache.public.evolving"
    decode_record(topic, key_bytes(), with_schema(payload(after={"id": 1, "name": "x"}), ROW_FIELDS[:2]))
    got = decode_record(topic, key_bytes(), with_schema(payload()))
    assert isinstance(got, ChangeEvent) and got.after is not None
    assert got.after["amount"] == Decimal("12.34")


def test_each_hints_object_gets_its_own_decoders() -> None:
    topic = "cache.public.hints"
    fields = [ROW_FIELDS[0], {"type": "string", "optional": True, "field": "amount"}]  # decimal mode string
    value = with_schema(payload(after={"id": 1, "amount": "12.34"}), fields)
    as_numeric = decode_record(topic, key_bytes(), value, {"amount": ColumnHint("numeric")})
    as_text = decode_record(topic, key_bytes(), value, {})
    assert isinstance(as_numeric, ChangeEvent) and isinstance(as_text, ChangeEvent)
    assert as_numeric.after == {"id": 1, "amount": Decimal("12.34")}
    assert as_text.after == {"id": 1, "amount": "12.34"}


def test_the_toast_placeholder_without_schemas_or_hints_is_unavailable() -> None:
    after = {"id": 1, "note": "__debezium_unavailable_value", "tags": ["__debezium_unavailable_value"]}
    got = decode_record(TOPIC, key_bytes(schemas=False), debezium.value(payload(after=after)))
    assert isinstance(got, ChangeEvent)
    assert got.after == {"id": 1, "note": UNAVAILABLE, "tags": UNAVAILABLE}


# ---- fuzz: only DecodeError escapes --------------------------------------------------------


def _outcome(topic: str, key: bytes | None, value: bytes | None, hints: Any = None) -> None:
    with contextlib.suppress(DecodeError):
        decode_record(topic, key, value, hints)


def _dumps(value: Any) -> bytes:
    # json, not orjson: it also writes integers beyond 64 bits, which the decoder must survive.
    return json.dumps(value).encode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=25,
)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=300), st.none() | st.binary(max_size=60))
def test_arbitrary_bytes_raise_only_decode_error(value: bytes, key: bytes | None) -> None:
    _outcome(TOPIC, key, value)
    _outcome(TOPIC, value, None)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(json_values, json_values)
def test_arbitrary_json_raises_only_decode_error(value: Any, key: Any) -> None:
    _outcome(TOPIC, _dumps(key), _dumps(value))
    _outcome(TOPIC, _dumps(key), _dumps({"schema": value, "payload": key}))


def _real_records() -> list[dict[str, Any]]:
    rows = []
    for path in sorted(FIXTURES.glob("*.jsonl")):
        with path.open() as f:
            rows += [r for r in map(json.loads, f) if r["value"] and '"op":"c"' in r["value"]]
    return rows


REAL = _real_records()
HINTS = {
    "amount": ColumnHint("numeric", 2),
    "ts": ColumnHint("timestamp"),
    "uid": ColumnHint("uuid"),
    "js": ColumnHint("json"),
    "d": ColumnHint("date"),
    "iv": ColumnHint("interval"),
}


def _mutate(doc: Any, path: list[int], replacement: Any) -> Any:
    """Replace one node, chosen by `path` (indexes into the containers met on the way)."""
    if not path or not isinstance(doc, dict | list) or not doc:
        return replacement
    items = list(doc.items()) if isinstance(doc, dict) else list(enumerate(doc))
    k, child = items[path[0] % len(items)]
    new = _mutate(child, path[1:], replacement)
    if isinstance(doc, dict):
        return {**doc, k: new}
    return [new if i == k else c for i, c in enumerate(doc)]


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.integers(0, 10**6), st.lists(st.integers(0, 50), max_size=6), json_values, st.booleans())
def test_mutated_real_envelopes_raise_only_decode_error(which: int, path: list[int], new: Any, hinted: bool) -> None:
    record = REAL[which % len(REAL)]
    value = _mutate(json.loads(record["value"]), path, new)
    _outcome(record["topic"], record["key"].encode(), _dumps(value), HINTS if hinted else None)
