"""Flattened Debezium events (the `ExtractNewRecordState` transform) -> ChangeEvent.

The transform replaces the envelope by the row itself (`after`; for a delete under `rewrite`, the
old row plus `__deleted: "true"`) and adds the metadata listed in `add.fields` as prefixed
fields (`__op`, `__lsn`, `__source_ts_ms`, `__table`, ...). What each variant loses, and so what
parity can and cannot do with it (config.py refuses the rest at config check):

- never a `before` image: deletes are keyed by the record key (or the rewritten old row);
- no LSN unless `lsn` is added: events of a key are ordered by Kafka offset (one key stays on one
  partition), which verify mode needs and shadow mode's conditional writes cannot use;
- no op unless `op` is added: a create and an update are both "the row is now this"; snapshot rows
  cannot be told from changes;
- deletes: `rewrite` keeps them as records; `tombstone`/`delete-to-tombstone` leave only the
  tombstone, whose key still identifies the row; `drop` loses them altogether;
- no TRUNCATE (skipped by the connector's `skipped.operations` default), no source timestamp
  unless `source.ts_ms` is added.

Same contract as `parity.core.events.decode_record`: raises only `DecodeError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

from parity.core.config import FlattenedEvents
from parity.core.errors import DecodeError
from parity.core.events import (
    _HEARTBEAT_SCHEMA as HEARTBEAT_SCHEMA,
)
from parity.core.events import (
    _HEARTBEAT_TOPIC as HEARTBEAT_TOPIC,
)
from parity.core.events import (
    PHYSICAL_TABLE_FIELD,
    ChangeEvent,
    Hints,
    Op,
    Row,
    Skip,
    Tombstone,
    _as_bytes,
    _plain_hints,
    _split,
    decode_key,
    decode_record,
    not_a_change,
    source_of_topic,
)

_OPS: Final = {op.value: op for op in Op}
_NEEDS_ROW: Final = frozenset({Op.CREATE, Op.UPDATE, Op.READ})
_DEFAULT = FlattenedEvents()


def _metadata(payload: dict[str, Any], flat: FlattenedEvents, name: str) -> Any:
    field = flat.field_name(name)
    return None if field is None else payload.pop(field, None)


def _int(payload: dict[str, Any], flat: FlattenedEvents, name: str) -> int | None:
    v = _metadata(payload, flat, name)
    if v is not None and type(v) is not int:
        raise DecodeError(f"{flat.field_name(name)} is not an integer: {v!r}")
    return v


def _text(payload: dict[str, Any], flat: FlattenedEvents, name: str) -> str | None:
    v = _metadata(payload, flat, name)
    if v is not None and type(v) is not str:
        raise DecodeError(f"{flat.field_name(name)} is not a string: {v!r}")
    return v


def _is_deleted(payload: dict[str, Any], flat: FlattenedEvents) -> bool:
    # `__deleted` is named with add.fields.prefix; "__" is its default.
    marker = payload.pop(f"{flat.add_fields_prefix}deleted", None)
    if marker is None and flat.add_fields_prefix != "__":
        marker = payload.pop("__deleted", None)
    if marker is None:
        return False
    if marker in ("true", True):
        return True
    if marker in ("false", False):
        return False
    raise DecodeError(f"{flat.add_fields_prefix}deleted is neither 'true' nor 'false': {marker!r}")


def decode_flattened(
    topic: str,
    key: bytes | None,
    value: bytes | None,
    hints: Hints | None = None,
    flat: FlattenedEvents | None = None,
    source: str | None = None,
) -> ChangeEvent | Tombstone | Skip:
    """One record of a flattened topic. `source` (schema.table) is the table the topic belongs to
    when the record does not say (no `table`/`schema` add.fields, no router key field)."""
    flat = flat or _DEFAULT
    payload: Any = None
    schema = None
    if value is not None:
        payload, schema = _split(_as_bytes(value, "value"), "value", hints, "row", topic)
    if payload is None:
        # A tombstone: a null value, or `{"schema":null,"payload":null}` from a converter with schemas.
        if key is None:
            raise DecodeError("tombstone without a key")
        row_key, origin = decode_key(key, hints, topic)
        where = origin or source or source_of_topic(topic)
        if flat.deletes != "tombstone":
            # With `rewrite` the delete came as its own record: this is the compaction tombstone.
            return Tombstone(source=where, key=row_key)
        if where is None:
            raise DecodeError(f"tombstone on {topic!r}: its table is unknown (no router key field)")
        return ChangeEvent(where, Op.DELETE, row_key, None, None, None, None, None, False)
    if type(payload) is not dict:
        raise DecodeError("value is not a flattened row: not a JSON object")
    if type(payload.get("source")) is dict and "op" in payload:
        return decode_record(topic, key, value, hints)  # an envelope the transform let through
    skip = _not_a_row(topic, payload, schema)
    if skip is not None:
        return skip
    op_text = _text(payload, flat, "op")
    lsn = _int(payload, flat, "lsn")
    tx_id = _int(payload, flat, "txId")
    ts_ms = _int(payload, flat, "source.ts_ms")
    db_schema = _text(payload, flat, "schema")
    table = _text(payload, flat, "table")
    snapshot_text = _metadata(payload, flat, "snapshot")
    deleted = _is_deleted(payload, flat)
    if not payload:
        raise DecodeError("flattened row has no columns")
    if op_text is None:
        # Without `op`, a create and an update are both "the row is now this".
        op = Op.DELETE if deleted else Op.UPDATE
    else:
        found = _OPS.get(op_text)
        if found is None or found is Op.TRUNCATE:
            raise DecodeError(f"unknown op {op_text!r}")
        op = found
    if deleted and op is not Op.DELETE:
        raise DecodeError(f"op {op_text!r} marked deleted")
    rows = schema.rows if schema is not None and schema.rows is not None else _plain_hints(hints)[1]
    row = rows.decode(payload, "row")
    if key is None:
        raise DecodeError(f"op {op.value!r} record has no key")
    row_key, origin = decode_key(key, hints, topic)
    row.pop(PHYSICAL_TABLE_FIELD, None)
    where = _source(db_schema, table, origin, source, topic)
    snapshot = op is Op.READ or snapshot_text not in (None, False, "false")
    snapshot_last = snapshot_text == "last"
    if op is Op.DELETE:
        # The rewritten old row: under REPLICA IDENTITY DEFAULT its non-key columns are null, and
        # a null there is "not sent", not a value.
        before: Row | None = {k: v for k, v in row.items() if v is not None}
        return ChangeEvent(where, op, row_key, before, None, lsn, tx_id, ts_ms, False)
    return ChangeEvent(
        source=where,
        op=op,
        key=row_key,
        before=None,
        after=row,
        lsn=lsn,
        tx_id=tx_id,
        ts_ms=ts_ms,
        snapshot=snapshot,
        snapshot_last=snapshot_last,
        snapshot_table_last=snapshot_last or snapshot_text == "last_in_data_collection",
    )


def _not_a_row(topic: str, payload: dict[str, Any], schema: Any) -> Skip | None:
    """Heartbeats, transaction metadata and schema changes (on a topic matched by a pattern)."""
    if not payload or (schema is not None and schema.rows is None):
        return not_a_change(topic, payload, schema)
    if (schema is not None and schema.name == HEARTBEAT_SCHEMA) or topic.startswith(HEARTBEAT_TOPIC):
        return Skip("heartbeat")
    if payload.keys() == {"ts_ms"}:
        return Skip("heartbeat")
    if payload.get("status") in ("BEGIN", "END") and "id" in payload and "event_count" in payload:
        return Skip(f"transaction {payload['status']}")
    if "ddl" in payload and "tableChanges" in payload:
        return Skip("schema change")
    return None


def _source(schema: str | None, table: str | None, origin: str | None, source: str | None, topic: str) -> str:
    default_schema = (source or origin or "public.").split(".")[0]
    if table is not None:
        return f"{schema or default_schema}.{table}"
    where = origin or source or source_of_topic(topic)
    if where is None:
        raise DecodeError(f"flattened record on {topic!r}: its table is unknown (add `table` to add.fields)")
    return where


def peek_source(topic: str, key: bytes | None, value: bytes | None, flat: FlattenedEvents | None) -> str | None:
    """The table (schema.table) a record on a shared topic belongs to, read without decoding its
    row: the envelope's `source` block, the flattened `table`/`schema` fields, or the key field a
    ByLogicalTableRouter adds. None when the record does not say; never raises."""
    try:
        if key is not None:
            doc = orjson.loads(key)
            payload = doc.get("payload") if isinstance(doc, dict) and "schema" in doc else doc
            if isinstance(payload, dict) and isinstance(payload.get(PHYSICAL_TABLE_FIELD), str):
                return source_of_topic(payload[PHYSICAL_TABLE_FIELD])
        if value is None:
            return None
        doc = orjson.loads(value)
    except (orjson.JSONDecodeError, TypeError):
        return None
    payload = doc.get("payload") if isinstance(doc, dict) and set(doc) == {"schema", "payload"} else doc
    if not isinstance(payload, dict):
        return None
    src = payload.get("source")
    if isinstance(src, Mapping) and isinstance(src.get("schema"), str) and isinstance(src.get("table"), str):
        return f"{src['schema']}.{src['table']}"
    f = flat or _DEFAULT
    table = payload.get(f.field_name("table") or f"{f.add_fields_prefix}table")
    schema = payload.get(f.field_name("schema") or f"{f.add_fields_prefix}schema")
    if isinstance(table, str):
        return f"{schema}.{table}" if isinstance(schema, str) else table
    return None
