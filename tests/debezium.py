"""Debezium Postgres change events as the Kafka JSON converter writes them, built by hand.

Unit tests feed these bytes to parity. They are written from the wire format (Debezium's
PostgreSQL connector documentation, "Data change events"), never with parity's decoder, so a
decoder bug cannot shape its own test data. The shape:

- key: the primary-key document, `{"id": 1}`, or with `schemas.enable=true`
  `{"schema": <Key struct>, "payload": {"id": 1}}`;
- value: the envelope `{"before", "after", "source", "op", "ts_ms"}`, bare or under
  `{"schema": <Envelope struct>, "payload": ...}`; `op` is c(reate), u(pdate), d(elete),
  r(ead by a snapshot) or t(runcate);
- `source`: where the change is in the WAL (`lsn`, `txId`), its commit time (`ts_ms`) and the
  snapshot marker (`snapshot`: "true", "first", "last", ..., or "false");
- a tombstone: the key with a null value (the record's value is None).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

SOURCE_SCHEMA_NAME = "io.debezium.connector.postgresql.Source"


def source_block(
    table: str,
    *,
    schema: str = "public",
    lsn: int = 100,
    tx_id: int = 1,
    ts_ms: int = 1,
    snapshot: bool | str = False,
) -> dict[str, Any]:
    """`snapshot` is True/False or one of Debezium's markers ("first", "last_in_data_collection", ...)."""
    marker = ("true" if snapshot else "false") if isinstance(snapshot, bool) else snapshot
    return {"schema": schema, "table": table, "lsn": lsn, "txId": tx_id, "ts_ms": ts_ms, "snapshot": marker}


def envelope(
    op: str,
    source: dict[str, Any],
    *,
    before: Any = None,
    after: Any = None,
    ts_ms: int | None = None,
) -> dict[str, Any]:
    """The envelope (the value's payload). Its own `ts_ms` is when the connector saw the change;
    left out, it is the commit time."""
    return {
        "before": before,
        "after": after,
        "source": source,
        "op": op,
        "ts_ms": source.get("ts_ms") if ts_ms is None else ts_ms,
    }


def row_change(op: str, row: dict[str, Any] | None, source: dict[str, Any], **kw: Any) -> dict[str, Any]:
    """The envelope of `row` changed by `op`: a delete carries it as `before`, every other op as `after`."""
    if op == "d":
        return envelope(op, source, before=row, **kw)
    return envelope(op, source, after=row, **kw)


def envelope_schema(fields: list[dict[str, Any]], *, name: str) -> dict[str, Any]:
    """The Connect schema of an envelope whose row has `fields`; `name` is the topic (Debezium
    names the structs `<topic>.Value` and `<topic>.Envelope`)."""
    row = {"type": "struct", "fields": fields, "optional": True, "name": f"{name}.Value"}
    return {
        "type": "struct",
        "fields": [
            {**row, "field": "before"},
            {**row, "field": "after"},
            {"type": "struct", "fields": [], "optional": False, "name": SOURCE_SCHEMA_NAME, "field": "source"},
            {"type": "string", "optional": False, "field": "op"},
            {"type": "int64", "optional": True, "field": "ts_ms"},
        ],
        "optional": False,
        "name": f"{name}.Envelope",
    }


def key_schema(fields: list[dict[str, Any]], *, name: str) -> dict[str, Any]:
    return {"type": "struct", "fields": fields, "optional": False, "name": f"{name}.Key"}


def _with_schema(payload: Any, schema: dict[str, Any] | None) -> Any:
    return payload if schema is None else {"schema": schema, "payload": payload}


def value(payload: Any, schema: dict[str, Any] | None = None) -> bytes:
    """The record value; with `schema`, as the converter writes it with `schemas.enable=true`."""
    doc = _with_schema(payload, schema)
    try:
        return orjson.dumps(doc)
    except orjson.JSONEncodeError:  # an integer past 64 bits (NUMERIC holds them): the stdlib writes it
        return json.dumps(doc).encode()


def key(document: dict[str, Any], schema: dict[str, Any] | None = None) -> bytes:
    """The record key: the primary-key columns of the row."""
    return orjson.dumps(_with_schema(document, schema))
