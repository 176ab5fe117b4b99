"""Real Debezium records (tests/fixtures/debezium, captured by capture_debezium.py) decode to the
rows psycopg 3 read back from Postgres, in every converter/decimal/time configuration."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Iterator, Mapping
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from parity.core.events import UNAVAILABLE, ChangeEvent, Op, Skip, Tombstone, decode_record
from parity.core.types import ColumnHint, TimeUnit

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "debezium"
TOASTED = ("big_text", "big_bytea", "big_jsonb", "big_ints", "big_texts")
MS_TRUNCATED = ("t", "t3", "ts", "ts3")  # connect mode carries milliseconds only


def untag(value: Any) -> Any:
    """The inverse of capture_debezium.tag."""
    if isinstance(value, list):
        return [untag(v) for v in value]
    if not isinstance(value, dict):
        return value
    ((tag, raw),) = value.items()
    match tag:
        case "$float":
            return float(raw)
        case "$decimal":
            return Decimal(raw)
        case "$bytes":
            return base64.b64decode(raw)
        case "$uuid":
            return uuid.UUID(raw)
        case "$datetime":
            return dt.datetime.fromisoformat(raw)
        case "$date":
            return dt.date.fromisoformat(raw)
        case "$time":
            return dt.time.fromisoformat(raw)
        case "$timedelta":
            return dt.timedelta(days=raw[0], seconds=raw[1], microseconds=raw[2])
        case "$json":
            return raw
    raise AssertionError(f"unknown tag {tag}")


@cache
def expected() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "expected.json").read_text())
    return data


def records(name: str) -> Iterator[tuple[str, bytes | None, bytes | None]]:
    with (FIXTURES / f"{name}.jsonl").open() as f:
        for line in f:
            r = json.loads(line)
            key = None if r["key"] is None else r["key"].encode()
            value = None if r["value"] is None else r["value"].encode()
            yield r["topic"], key, value


def hints_for(config: Mapping[str, Any]) -> dict[str, ColumnHint] | None:
    """What an operator configures for this converter setup (see ColumnHint)."""
    if config["schemas"]:
        # The schema says everything except that a plain double/string field is NUMERIC.
        return {c: ColumnHint("numeric") for c in ("amount", "free_num", "cash")}
    precise = config["decimal_mode"] == "precise"
    mode = config["time_mode"]
    time_us: TimeUnit = "ms" if mode == "connect" else "us"
    time3: TimeUnit = "us" if mode == "adaptive_time_microseconds" else "ms"
    ts_us: TimeUnit = "ms" if mode == "connect" else "us"
    return {
        "amount": ColumnHint("numeric", 2 if precise else None),
        "free_num": ColumnHint("numeric"),
        "cash": ColumnHint("numeric", 2 if precise else None),
        "blob": ColumnHint("bytea"),
        "big_bytea": ColumnHint("bytea"),
        "uid": ColumnHint("uuid"),
        "js": ColumnHint("json"),
        "jsb": ColumnHint("json"),
        "big_jsonb": ColumnHint("json"),
        "d": ColumnHint("date"),
        "t": ColumnHint("time", time_unit=time_us),
        "t3": ColumnHint("time", time_unit=time3),
        "ttz": ColumnHint("time"),
        "ts": ColumnHint("timestamp", time_unit=ts_us),
        "ts3": ColumnHint("timestamp", time_unit="ms"),
        "tstz": ColumnHint("timestamptz"),
        "iv": ColumnHint("interval"),
        "iv_months": ColumnHint("interval"),
        "ints": ColumnHint("array"),
        "texts": ColumnHint("array"),
        "big_ints": ColumnHint("array"),
        "big_texts": ColumnHint("array"),
        "txt": ColumnHint("text"),
    }


def expected_row(row: Mapping[str, Any], config: Mapping[str, Any], toast_unchanged: bool) -> dict[str, Any]:
    out = {k: untag(v) for k, v in row.items()}
    # psycopg returns money as locale text ('$12.34', '-$5.00'); Debezium sends the number.
    if out["cash"] is not None:
        out["cash"] = Decimal(out["cash"].replace("$", "").replace(",", ""))
    if config["time_mode"] == "connect":
        for c in MS_TRUNCATED:
            if out[c] is not None:
                out[c] = out[c].replace(microsecond=out[c].microsecond // 1000 * 1000)
    if config["interval_mode"] == "numeric" and out["iv_months"] is not None:
        out["iv_months"] = MICRODURATION[out["iv_months"]]
    if out["ttz"] is not None:
        out["ttz"] = utc_time(out["ttz"])
    if toast_unchanged:
        for c in TOASTED:
            out[c] = UNAVAILABLE
    return out


# interval.handling.mode=numeric (MicroDuration) counts a month as 30.4375 days and a year as
# 365.25; psycopg counts 30 and 365. psycopg's value of each iv_months literal -> Debezium's.
MICRODURATION = {
    dt.timedelta(days=428, seconds=14706.5): dt.timedelta(days=365.25 + 2 * 30.4375 + 3, seconds=14706.5),
    dt.timedelta(days=-30): dt.timedelta(days=-30.4375),  # '-1 mons'
    dt.timedelta(days=730): dt.timedelta(days=730.5),  # '2 years'
}


def utc_time(t: dt.time) -> dt.time:
    """timetz arrives converted to UTC with the offset lost, and aware `time`s compare without
    wrapping at midnight (23:59-05 != 04:59Z): compare the UTC time of day."""
    offset = t.utcoffset() or dt.timedelta()
    moved = dt.datetime.combine(dt.date(2000, 1, 1), t.replace(tzinfo=None)) - offset
    return moved.time().replace(tzinfo=dt.UTC)


# The default envelope (flattened configurations: test_flattened_fixtures.py).
CONFIGS = sorted(n for n, c in expected()["configs"].items() if not c.get("flattened"))


@pytest.mark.parametrize("name", CONFIGS)
def test_every_change_event_decodes_to_the_row_postgres_holds(name: str) -> None:
    config = expected()["configs"][name]
    hints = None if name == "schemas_double_connect" else hints_for(config)  # propagated source types
    events = [d for d in (decode_record(t, k, v, hints) for t, k, v in records(name)) if isinstance(d, ChangeEvent)]
    want = expected()["events"]
    assert [e.op.value for e in events] == [w["op"] for w in want]
    for event, w in zip(events, want, strict=True):
        assert event.source == "public.all_types"  # a routed topic's too (from the envelope's source)
        assert event.key == w["key"]
        if w["after"] is None:
            assert event.after is None
        else:
            exp = expected_row(w["after"], config, w.get("toast_unchanged", False))
            got = event.after
            assert got is not None
            diffs = {
                c: (got.get(c), exp[c]) for c in exp if got.get(c) != exp[c] or type(got.get(c)) is not type(exp[c])
            }
            assert diffs == {}, f"{name} {w['op']} {w['key']}"


@pytest.mark.parametrize("name", CONFIGS)
def test_source_positions_snapshot_flags_tombstones_and_skips(name: str) -> None:
    config = expected()["configs"][name]
    decoded = [decode_record(t, k, v, hints_for(config)) for t, k, v in records(name)]
    events = [d for d in decoded if isinstance(d, ChangeEvent)]
    reads = [e for e in events if e.op is Op.READ]
    assert [(e.snapshot, e.snapshot_last) for e in reads] == [(True, False), (True, True)]
    live = [e for e in events if e.op is not Op.READ]
    assert all(not e.snapshot and not e.snapshot_last for e in live)
    assert all(isinstance(e.lsn, int) and isinstance(e.tx_id, int) and isinstance(e.ts_ms, int) for e in events)
    # The primary-key change is one transaction: a delete of the old key and a create of the new.
    pk_delete = next(e for e in live if e.op is Op.DELETE and e.key == {"id": 2})
    pk_create = next(e for e in live if e.op is Op.CREATE and e.key == {"id": 20})
    assert pk_delete.tx_id == pk_create.tx_id
    # REPLICA IDENTITY DEFAULT: the delete's before carries the key, every other column null.
    assert pk_delete.before is not None and pk_delete.before["id"] == 2
    assert {v for c, v in pk_delete.before.items() if c != "id"} == {None}
    truncate = [e for e in events if e.op is Op.TRUNCATE]
    assert len(truncate) == 1 and truncate[0].key == {} and truncate[0].row is None
    # Each delete is followed by its tombstone, keyed like it.
    for i, d in enumerate(decoded):
        if isinstance(d, ChangeEvent) and d.op is Op.DELETE:
            assert decoded[i + 1] == Tombstone(source="public.all_types", key=d.key)
    skips = [d.reason for d in decoded if isinstance(d, Skip)]
    assert "heartbeat" in skips
    assert skips.count("transaction BEGIN") == skips.count("transaction END") == 6  # the live transactions
