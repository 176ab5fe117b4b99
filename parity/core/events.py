"""Debezium envelope -> ChangeEvent.

CONTRACT (shared by the daemon, shadow mode and tests; change it only with all of them):
- `decode_record(topic, key, value, hints)` never raises for bad data except `DecodeError`
  with a reason naming what is wrong; it returns a `ChangeEvent`, a `Tombstone`, or a `Skip`
  (heartbeats, transaction metadata, schema-change messages).
- Row values are plain Python values, the same as psycopg 3 returns for the column type, so a
  row read from Postgres and a row decoded from Debezium map and compare alike:
  numeric -> Decimal, integer -> int, float -> float, text/enum -> str, bool -> bool,
  bytea -> bytes, uuid -> uuid.UUID, json/jsonb -> parsed (dict/list/str/int/...),
  date -> datetime.date, time -> datetime.time, timestamp -> naive datetime,
  timestamptz -> aware datetime in UTC, arrays -> list, NULL -> None,
  TOAST placeholder `__debezium_unavailable_value` -> `UNAVAILABLE` (never a value).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from parity.core.config import ColumnRule
from parity.core.errors import DecodeError
from parity.core.types import UNAVAILABLE as UNAVAILABLE  # the contract's TOAST marker
from parity.core.types import (
    ColumnHint,
    ValueDecoder,
    as_hint,
    field_kind,
    hinted_decoder,
    schema_decoder,
    unavailable_or_same,
)


class Op(enum.StrEnum):
    CREATE = "c"
    UPDATE = "u"
    DELETE = "d"
    READ = "r"  # snapshot
    TRUNCATE = "t"


Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    source: str  # schema.table
    op: Op
    key: Row  # primary-key column -> decoded value (from the record key, else from before/after)
    before: Row | None
    after: Row | None
    lsn: int | None
    tx_id: int | None
    ts_ms: int | None  # commit time at the source (source.ts_ms)
    snapshot: bool  # part of the initial snapshot (source.snapshot is true/first/last/...)
    snapshot_last: bool = False  # the last record of the snapshot (source.snapshot == "last")
    # The last snapshot record of this table ("last_in_data_collection", or "last" for the final table).
    snapshot_table_last: bool = False

    @property
    def row(self) -> Row | None:
        """The row state after the event; None for deletes and truncates."""
        return self.after if self.op in (Op.CREATE, Op.UPDATE, Op.READ) else None


@dataclass(frozen=True, slots=True)
class Tombstone:
    """The null-valued record Kafka Connect writes after a delete, for log compaction."""

    source: str | None
    key: Row


@dataclass(frozen=True, slots=True)
class Skip:
    """A message that is not a row change: heartbeat, transaction metadata, schema change."""

    reason: str


Decoded = ChangeEvent | Tombstone | Skip


# ---- decoding ------------------------------------------------------------------------------
# Kafka Connect's JsonConverter writes `{"schema":<schema>,"payload":<payload>}` compactly, and the
# schema (most of the bytes) is the same in every record of a table. So a record is split on the
# bytes: when the schema text is one already seen (and validated) only the payload is parsed,
# and the row decoders built for that schema are reused.

Hints = Mapping[str, ColumnHint | ColumnRule]

_SCHEMA_PREFIX: Final = b'{"schema":'
_PAYLOAD_SEP: Final = b',"payload":'
_PREFIX_LEN: Final = len(_SCHEMA_PREFIX)
_SEP_LEN: Final = len(_PAYLOAD_SEP)
_CACHE_LIMIT: Final = 512
_OPS: Final = {op.value: op for op in Op}
_NEEDS_AFTER: Final = frozenset({Op.CREATE, Op.UPDATE, Op.READ})
_HEARTBEAT_SCHEMA: Final = "io.debezium.connector.common.Heartbeat"
_HEARTBEAT_TOPIC: Final = "__debezium-heartbeat"
# What a decoder may raise on a bad value; anything else would be a bug in the decoder.
_VALUE_ERRORS: Final = (ValueError, TypeError, ArithmeticError, KeyError, IndexError, AttributeError)


class _RowDecoder:
    """Decodes one row object in place: converted columns, type-checked identity columns and,
    when nothing is known about some columns (schemaless), the TOAST markers of the rest."""

    __slots__ = ("checked", "converters", "known")

    def __init__(
        self,
        converters: list[tuple[str, ValueDecoder]],
        checked: list[tuple[str, tuple[type, ...]]],
        known: frozenset[str] | None,
    ) -> None:
        self.converters = tuple(converters)
        self.checked = tuple(checked)  # identity columns and the JSON types they may hold
        self.known = known  # None: the schema names every column

    def decode(self, raw: Any, where: str) -> Row:
        if type(raw) is not dict:
            raise DecodeError(f"{where} is not an object")
        name = ""
        try:
            for name, convert in self.converters:
                v = raw.get(name)
                if v is not None:
                    raw[name] = convert(v)
            for name, types in self.checked:
                v = raw.get(name)
                if v is not None and type(v) not in types:
                    raise TypeError(f"expected {_TYPE_NAMES[types]}, got {type(v).__name__}")
            known = self.known
            if known is not None:
                for name, v in raw.items():
                    if (type(v) is str or type(v) is list) and name not in known:
                        raw[name] = unavailable_or_same(v)
        except _VALUE_ERRORS as exc:
            raise DecodeError(f"{where}.{name}: {exc}") from None
        return raw


_KIND_TYPES: Final[dict[str, tuple[type, ...]]] = {"int": (int,), "float": (float, int), "bool": (bool,)}
_TYPE_NAMES: Final[dict[tuple[type, ...], str]] = {(int,): "an integer", (float, int): "a number", (bool,): "a boolean"}


def _struct_decoder(schema: Any, hints: Mapping[str, ColumnHint], where: str) -> _RowDecoder:
    if not isinstance(schema, dict) or schema.get("type") != "struct":
        raise DecodeError(f"{where} schema is not a struct")
    if not isinstance(schema.get("fields"), list):
        raise DecodeError(f"{where} schema is not a struct")
    converters: list[tuple[str, ValueDecoder]] = []
    checked: list[tuple[str, tuple[type, ...]]] = []
    for f in schema["fields"]:
        name = f.get("field") if isinstance(f, dict) else None
        if not isinstance(name, str):
            raise DecodeError(f"{where} schema has a field without a name")
        try:
            decoder = schema_decoder(f, hints.get(name))
            kind = field_kind(f)
        except _VALUE_ERRORS as exc:
            raise DecodeError(f"{where} schema of {name!r} is invalid: {exc}") from None
        if decoder is not None:
            converters.append((name, decoder))
        elif kind in _KIND_TYPES:
            checked.append((name, _KIND_TYPES[kind]))
    return _RowDecoder(converters, checked, None)


def _hinted_decoder(hints: Mapping[str, ColumnHint]) -> _RowDecoder:
    converters = [(name, hinted_decoder(h)) for name, h in hints.items() if h.pg_type is not None]
    return _RowDecoder(converters, [], frozenset(name for name, _ in converters))


@dataclass(frozen=True, slots=True)
class _Schema:
    """What one record schema gives: its name and the decoder of its rows (before/after), or of
    its own fields for a key schema."""

    name: str | None
    rows: _RowDecoder | None


# What a record's schema describes: a key struct, a Debezium envelope, or a flat row (the value
# of a topic flattened by ExtractNewRecordState: the row's columns plus the added `__` fields).
Kind = Literal["key", "envelope", "row"]


def _build(schema: Any, hints: Mapping[str, ColumnHint], kind: Kind) -> _Schema | None:
    if schema is None:
        return None  # {"schema": null, ...}: decode as schemaless
    if not isinstance(schema, dict):
        raise DecodeError("record schema is not an object")
    name = schema.get("name")
    name = name if isinstance(name, str) else None
    if kind != "envelope":
        if kind == "row" and schema.get("type") != "struct":
            return _Schema(name, None)  # not a row (a heartbeat's or a message's own schema)
        return _Schema(name, _struct_decoder(schema, hints, kind))
    fields = schema.get("fields")
    if not isinstance(fields, list):
        return _Schema(name, None)
    for f in fields:
        if isinstance(f, dict) and f.get("field") in ("after", "before") and f.get("type") == "struct":
            return _Schema(name, _struct_decoder(f, hints, "row"))
    return _Schema(name, None)


_schemas: dict[tuple[bytes, int, Kind], tuple[object, _Schema | None]] = {}
# Per topic, the last schema seen (text, hints object, decoders): the fast path of `_split`.
_Recent = tuple[bytes, object, "_Schema | None"]
_recent: dict[Kind, dict[str, _Recent]] = {"key": {}, "envelope": {}, "row": {}}
_hinted: dict[int, tuple[object, Mapping[str, ColumnHint], _RowDecoder]] = {}


def _load(raw: bytes, what: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"{what} is not valid JSON: {exc}") from None


def _plain_hints(hints: Hints | None) -> tuple[Mapping[str, ColumnHint], _RowDecoder]:
    """ColumnHints for `hints` and the schemaless row decoder, built once per hints object."""
    entry = _hinted.get(id(hints))
    if entry is not None and entry[0] is hints:
        return entry[1], entry[2]
    plain = {name: as_hint(h) for name, h in (hints or {}).items()}
    decoder = _hinted_decoder(plain)
    if len(_hinted) >= _CACHE_LIMIT:
        _hinted.clear()
    # The entry keeps `hints` alive, so its id cannot be reused by another object meanwhile.
    _hinted[id(hints)] = (hints, plain, decoder)
    return plain, decoder


def _split(raw: bytes, what: str, hints: Hints | None, kind: Kind, topic: str) -> tuple[Any, _Schema | None]:
    """(payload, schema decoders) of a JSON-converter record; (document, None) without schemas."""
    recent = _recent[kind]
    last = recent.get(topic)
    if last is not None:
        text, owner, known = last
        end = _PREFIX_LEN + len(text)
        # Compared in place (no copy, no hash): the topic's schema is almost always the last one.
        if (
            owner is hints
            and raw.startswith(text, _PREFIX_LEN)
            and raw.startswith(_PAYLOAD_SEP, end)
            and raw.startswith(_SCHEMA_PREFIX)
            and raw.endswith(b"}")
        ):
            # The cached text is one complete JSON value, so it is exactly the "schema"
            # member and what follows up to the closing brace is exactly the payload.
            return _load(raw[end + _SEP_LEN : -1], what), known
    schema_text = b""
    if raw.startswith(_SCHEMA_PREFIX) and raw.endswith(b"}"):
        sep = raw.find(_PAYLOAD_SEP, _PREFIX_LEN)
        if sep > 0:
            schema_text = raw[_PREFIX_LEN:sep]
            entry = _schemas.get((schema_text, id(hints), kind))
            if entry is not None and entry[0] is hints:
                _remember(recent, topic, (schema_text, hints, entry[1]))
                return _load(raw[sep + _SEP_LEN : -1], what), entry[1]
    doc = _load(raw, what)
    if type(doc) is not dict or "payload" not in doc or "schema" not in doc or len(doc) != 2:
        return doc, None
    plain, _ = _plain_hints(hints)
    schema = _build(doc["schema"], plain, kind)
    if schema_text:
        try:
            same = orjson.loads(schema_text) == doc["schema"]
        except orjson.JSONDecodeError:
            same = False
        if same:
            if len(_schemas) >= _CACHE_LIMIT:
                _schemas.clear()
            _schemas[(schema_text, id(hints), kind)] = (hints, schema)
            _remember(recent, topic, (schema_text, hints, schema))
    return doc["payload"], schema


def _remember(recent: dict[str, _Recent], topic: str, entry: _Recent) -> None:
    if len(recent) >= _CACHE_LIMIT:
        recent.clear()
    recent[topic] = entry


def _as_bytes(data: Any, what: str) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8", "surrogatepass")
    raise DecodeError(f"{what} is a {type(data).__name__}, not bytes")


# ByLogicalTableRouter (key.enforce.uniqueness, its default) adds the original topic to the key.
PHYSICAL_TABLE_FIELD: Final = "__dbz__physicalTableIdentifier"


def decode_key(key: Any, hints: Hints | None, topic: str) -> tuple[Row, str | None]:
    """The record key's columns, and the source (schema.table) a ByLogicalTableRouter key names."""
    payload, schema = _split(_as_bytes(key, "key"), "key", hints, "key", topic)
    rows = schema.rows if schema is not None and schema.rows is not None else _plain_hints(hints)[1]
    if type(payload) is not dict:
        raise DecodeError("key is not a JSON object (a key struct)")
    origin = payload.pop(PHYSICAL_TABLE_FIELD, None)
    if not payload:
        raise DecodeError("key has no fields")
    source = source_of_topic(origin) if type(origin) is str else None
    return rows.decode(payload, "key"), source


def _decode_key(key: Any, hints: Hints | None, topic: str) -> Row:
    return decode_key(key, hints, topic)[0]


def source_of_topic(topic: str) -> str | None:
    """schema.table of Debezium's default topic name `<prefix>.<schema>.<table>`."""
    parts = topic.rsplit(".", 2)
    return f"{parts[1]}.{parts[2]}" if len(parts) == 3 and all(parts) else None


def positions(block: Mapping[str, Any]) -> tuple[int | None, int | None, int | None]:
    """source.lsn, source.txId and source.ts_ms, each an integer or absent."""
    lsn, tx_id, ts_ms = block.get("lsn"), block.get("txId"), block.get("ts_ms")
    for name, v in (("lsn", lsn), ("txId", tx_id), ("ts_ms", ts_ms)):
        if v is not None and type(v) is not int:
            raise DecodeError(f"source.{name} is not an integer: {v!r}")
    return lsn, tx_id, ts_ms


def snapshot_marker(block: Mapping[str, Any]) -> tuple[bool, bool]:
    v = block.get("snapshot")
    if v is None or v is False or v == "false":
        return False, False
    if v is True:
        return True, False
    if type(v) is not str:
        raise DecodeError(f"source.snapshot is not a string: {v!r}")
    # Any other marker a newer Debezium adds still means "read by a snapshot".
    return True, v == "last"


def not_a_change(topic: str, payload: dict[str, Any], schema: _Schema | None) -> Skip:
    if (schema is not None and schema.name == _HEARTBEAT_SCHEMA) or topic.startswith(_HEARTBEAT_TOPIC):
        return Skip("heartbeat")
    status = payload.get("status")
    if status in ("BEGIN", "END") and "id" in payload:
        return Skip(f"transaction {status}")
    if "ddl" in payload or "tableChanges" in payload:
        return Skip("schema change")
    if payload.keys() == {"ts_ms"}:
        return Skip("heartbeat")
    raise DecodeError("value is not a Debezium envelope: no 'op' field")


def decode_record(
    topic: str, key: bytes | None, value: bytes | None, hints: Hints | None = None
) -> ChangeEvent | Tombstone | Skip:
    """One Kafka record of a Debezium Postgres topic -> ChangeEvent | Tombstone | Skip.

    `hints` maps column names to `ColumnHint`s (or the table's `ColumnRule`s, whose `pg_type` and
    `scale` are used) and is needed only for JSON without schemas; pass the same mapping object
    for every record of a table: decoders are built once per (schema, hints object).
    Raises only `DecodeError`.
    """
    if value is None:
        if key is None:
            raise DecodeError("tombstone without a key")
        row_key, origin = decode_key(key, hints, topic)
        return Tombstone(source=origin or source_of_topic(topic), key=row_key)
    payload, schema = _split(_as_bytes(value, "value"), "value", hints, "envelope", topic)
    if type(payload) is not dict:
        raise DecodeError("value is not a Debezium envelope: payload is not an object")
    head = envelope_head(topic, payload, schema)
    if isinstance(head, Skip):
        return head
    op, op_text, src, source = head
    rows = schema.rows if schema is not None and schema.rows is not None else _plain_hints(hints)[1]
    before_raw, after_raw = payload.get("before"), payload.get("after")
    before = None if before_raw is None else rows.decode(before_raw, "before")
    after = None if after_raw is None else rows.decode(after_raw, "after")
    return change_event(op, op_text, source, src, key, hints, topic, before, after)


def envelope_head(
    topic: str, payload: dict[str, Any], schema: _Schema | None
) -> Skip | tuple[Op, str, dict[str, Any], str]:
    """An envelope's op and source block -> (op, its text, source block, `schema.table`), or the
    Skip of a record that is no row change; shared with the compiled plan (parity.core.plan)."""
    op_text = payload.get("op")
    if op_text is None:
        return not_a_change(topic, payload, schema)
    if op_text == "m":
        return Skip("logical decoding message")
    op = _OPS.get(op_text) if type(op_text) is str else None
    if op is None:
        raise DecodeError(f"unknown op {op_text!r}")
    src = payload.get("source")
    if type(src) is not dict:
        raise DecodeError("envelope has no 'source' block")
    db_schema, table = src.get("schema"), src.get("table")
    if type(db_schema) is not str or type(table) is not str:
        raise DecodeError("source block has no schema/table names")
    return op, op_text, src, f"{db_schema}.{table}"


def change_event(
    op: Op,
    op_text: str,
    source: str,
    src: dict[str, Any],
    key: bytes | None,
    hints: Hints | None,
    topic: str,
    before: Row | None,
    after: Row | None,
) -> ChangeEvent:
    """The envelope's rows decoded -> its `ChangeEvent` (key, snapshot marker, positions); shared
    by `decode_record` and the compiled plan (parity.core.plan), which decodes the rows itself."""
    if after is None and op in _NEEDS_AFTER:
        raise DecodeError(f"op {op_text!r} without 'after'")
    if key is None:
        if op is not Op.TRUNCATE:
            raise DecodeError(f"op {op_text!r} record has no key")
        record_key: Row = {}
    else:
        record_key = _decode_key(key, hints, topic)
    snapshot, snapshot_last = snapshot_marker(src)
    lsn, tx_id, ts_ms = positions(src)
    return ChangeEvent(
        source=source,
        op=op,
        key=record_key,
        before=before,
        after=after,
        lsn=lsn,
        tx_id=tx_id,
        ts_ms=ts_ms,
        snapshot=snapshot,
        snapshot_last=snapshot_last,
        snapshot_table_last=snapshot_last or src.get("snapshot") == "last_in_data_collection",
    )
