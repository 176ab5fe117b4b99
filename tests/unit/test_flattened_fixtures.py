"""Real flattened Debezium records (ExtractNewRecordState on the embedded engine, captured by
tests/fixtures/capture_debezium.py) decode to the rows psycopg 3 read back from Postgres, and each
variant loses exactly what docs/debezium.md says it loses."""

from __future__ import annotations

from typing import Any

import pytest

from parity.core.config import FlattenedEvents
from parity.core.events import ChangeEvent, Op, Skip, Tombstone
from parity.core.flattened import decode_flattened
from tests.unit.test_events_fixtures import expected, expected_row, hints_for, records

pytestmark = pytest.mark.unit

FLATTENED = sorted(n for n, c in expected()["configs"].items() if c.get("flattened"))
TABLE_TOPIC = "cap.public.all_types"


def settings(name: str) -> FlattenedEvents:
    """The parity settings of the connector's transforms.unwrap.* (what an operator writes)."""
    unwrap = expected()["configs"][name]["flattened"]
    return FlattenedEvents(
        add_fields=tuple(f for f in unwrap.get("add.fields", "").split(",") if f),
        delete_handling=unwrap.get("delete.tombstone.handling.mode", "tombstone"),
    )


def decoded(name: str) -> list[tuple[str, Any]]:
    config = expected()["configs"][name]
    flat = settings(name)
    return [(t, decode_flattened(t, k, v, hints_for(config), flat, "public.all_types")) for t, k, v in records(name)]


def test_every_flattened_variant_was_captured() -> None:
    assert FLATTENED == ["flat_drop_plain", "flat_rewrite_lsn", "flat_tombstone"]
    assert not expected()["configs"]["flat_drop_plain"]["schemas"]  # flattened and schemas off


@pytest.mark.parametrize("name", FLATTENED)
def test_every_flattened_row_decodes_to_the_row_postgres_holds(name: str) -> None:
    config = expected()["configs"][name]
    flat = settings(name)
    events = [d for t, d in decoded(name) if isinstance(d, ChangeEvent)]
    want = [w for w in expected()["events"] if w["op"] != "t"]  # the transform passes no TRUNCATE on
    if flat.deletes == "none":
        want = [w for w in want if w["op"] != "d"]  # `drop`: deletes are lost
    ops = [e.op.value for e in events]
    if flat.field_name("op") is None:
        # Without `op`: snapshot rows, creates and updates are all "the row is now this".
        assert ops == [("d" if w["op"] == "d" else "u") for w in want]
    else:
        assert ops == [w["op"] for w in want]
    for event, w in zip(events, want, strict=True):
        assert event.source == "public.all_types"
        assert event.key == w["key"]
        assert event.before is None or event.op is Op.DELETE  # no `before` image, ever
        if w["after"] is None:
            assert event.after is None
            continue
        exp = expected_row(w["after"], config, w.get("toast_unchanged", False))
        got = event.after
        assert got is not None
        assert set(got) == set(exp)  # the added `__` fields are not columns
        diffs = {c: (got.get(c), exp[c]) for c in exp if got.get(c) != exp[c] or type(got.get(c)) is not type(exp[c])}
        assert diffs == {}, f"{name} {w['op']} {w['key']}"


def test_with_lsn_added_events_carry_their_wal_position_and_deletes_are_rewritten() -> None:
    events = [d for _, d in decoded("flat_rewrite_lsn") if isinstance(d, ChangeEvent)]
    assert all(isinstance(e.lsn, int) and isinstance(e.ts_ms, int) for e in events)
    live = [e.lsn or 0 for e in events if not e.snapshot]
    assert live == sorted(live)
    assert [e.snapshot for e in events if e.op is Op.READ] == [True, True]
    deletes = [e for e in events if e.op is Op.DELETE]
    # REPLICA IDENTITY DEFAULT: the rewritten old row carries only the key.
    assert [(e.key, e.before) for e in deletes] == [({"id": 2}, {"id": 2}), ({"id": 1}, {"id": 1})]


def test_without_added_fields_there_is_no_lsn_no_commit_time_and_no_snapshot_marker() -> None:
    events = [d for _, d in decoded("flat_drop_plain") if isinstance(d, ChangeEvent)]
    assert events and all(e.lsn is None and e.ts_ms is None and not e.snapshot for e in events)
    assert not any(e.op is Op.DELETE for e in events)


def test_deletes_as_tombstones_still_identify_the_row_by_its_key() -> None:
    events = [d for _, d in decoded("flat_tombstone") if isinstance(d, ChangeEvent)]
    deletes = [e for e in events if e.op is Op.DELETE]
    assert [(e.key, e.before, e.after, e.lsn) for e in deletes] == [({"id": 2}, None, None, None),
                                                                   ({"id": 1}, None, None, None)]
    assert all(isinstance(e.ts_ms, int) for e in events if e.op is not Op.DELETE)


@pytest.mark.parametrize("name", FLATTENED)
def test_heartbeats_and_transaction_metadata_are_skipped(name: str) -> None:
    results = decoded(name)
    others = [d for t, d in results if t != TABLE_TOPIC]
    assert others and all(isinstance(d, Skip) for d in others)
    assert {d.reason for d in others} >= {"heartbeat", "transaction BEGIN", "transaction END"}
    assert not any(isinstance(d, Tombstone) for _, d in results)  # no variant keeps a second tombstone
