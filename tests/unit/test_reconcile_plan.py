"""Pure parts of the reconciler: digest comparison, drill-down planning, report building,
repair conditions and the schedule's waits."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from parity.core.compare import AttributeDiff, Mismatch, MismatchKind
from parity.core.config import ParityConfig, TableMapping
from parity.core.digest import key_bucket
from parity.core.mapping import ItemMapper
from parity.core.update import OwnedAttributes, item_update
from parity.reconcilers.coverage import NotCompared, reason_of
from parity.reconcilers.reconcile import DrillDown, ReconcileError, bucket_count, drift_candidates, target_groups
from parity.reconcilers.repair import condition
from parity.reconcilers.report import (
    DriftEntry,
    drift_entry,
    exit_code,
    not_compared_total,
    summary_lines,
    table_report,
    target_report,
    wire_from_json,
    wire_json,
)
from parity.reconcilers.schedule import ReconcileSchedule
from parity.reconcilers.tally import (
    UNMAPPED,
    SideTally,
    key_fingerprint,
    key_from_json,
    key_to_json,
    mismatched_buckets,
)

pytestmark = pytest.mark.unit


def mapping(source: str = "public.accounts", target: str = "Accounts", **extra: Any) -> TableMapping:
    return TableMapping.model_validate({
        "source": source,
        "primary_key": ["id"],
        "target": target,
        "keys": {"PK": "ACC#{id}"},
        "columns": {"id": {}, "name": {}, "secret": {"redact": True}, "balance": {"type": "number"}},
        **extra,
    })


def config(*tables: TableMapping) -> ParityConfig:
    return ParityConfig.model_validate({
        "postgres": {"dsn": "postgresql://x@127.0.0.1/db"},
        "kafka": {"bootstrap_servers": "127.0.0.1:1", "topic_prefix": "p"},
        "tables": [t.model_dump() for t in tables],
    })


# --- digests -----------------------------------------------------------------------------------


def test_fingerprint_modulo_buckets_is_the_cores_key_bucket() -> None:
    key = {"PK": "ACC#42", "SK": Decimal(7)}
    assert key_fingerprint(key) % 1024 == key_bucket(key, 1024)
    assert key_fingerprint(key) % 3 == key_bucket(key, 3)


def test_digests_are_equal_in_any_order_and_differ_on_one_changed_row() -> None:
    rows = [(key_fingerprint({"PK": f"k{i}"}), i * 7919) for i in range(500)]
    a, b = SideTally(1, 64), SideTally(1, 64)
    for fp, h in rows:
        a.add(0, fp, h)
    for fp, h in reversed(rows):
        b.add(0, fp, h)
    assert mismatched_buckets(a, b, 0) == set()
    c = SideTally(1, 64)
    for fp, h in rows[:-1]:
        c.add(0, fp, h)
    c.add(0, rows[-1][0], rows[-1][1] + 1)
    assert mismatched_buckets(a, c, 0) == {rows[-1][0] % 64}


def test_partial_tallies_merge_to_the_whole() -> None:
    rows = [(key_fingerprint({"PK": f"k{i}"}), (i << 60) + i) for i in range(300)]
    whole, left, right = SideTally(2, 16), SideTally(2, 16), SideTally(2, 16)
    for i, (fp, h) in enumerate(rows):
        whole.add(i % 2, fp, h)
        (left if i < 100 else right).add(i % 2, fp, h)
    left.add_unmapped(b"u1")
    right.add_unmapped(b"u2")
    left.merge(right)
    assert left.counts == whole.counts and left.totals == whole.totals
    assert left.unmapped == 2 and left.unmapped_sample == [b"u1", b"u2"]
    assert left.rows(0) + left.rows(1) == 300


def test_a_missing_row_shows_in_its_bucket_only_for_its_mapping() -> None:
    a, b = SideTally(2, 8), SideTally(2, 8)
    fp = key_fingerprint({"PK": "x"})
    a.add(1, fp, 5)
    assert mismatched_buckets(a, b, 0) == set()
    assert mismatched_buckets(a, b, 1) == {fp % 8}


# --- drill-down planning -------------------------------------------------------------------------


def test_drift_candidates_are_one_sided_or_different_keys_only() -> None:
    expected = {1: (10, b"a"), 2: (20, b"b"), 3: (30, b"c")}
    actual = {1: (10, b"a"), 2: (21, b"b"), 4: (40, b"d")}
    assert drift_candidates(expected, actual) == [(2, b"b"), (3, b"c"), (4, b"d")]
    assert drift_candidates(expected, dict(expected)) == []


def test_bucket_count_grows_with_the_table_as_a_power_of_two() -> None:
    assert bucket_count(1024, 0) == 1024
    assert bucket_count(1024, 10_000) == 1024
    assert bucket_count(1024, 1_000_000) == 32768
    assert bucket_count(1000, 100) == 1000  # the configured minimum wins
    assert bucket_count(1, 10**12) == 1 << 20


def test_target_groups_route_by_dynamodb_table_and_keep_all_mappings_for_routing() -> None:
    a = mapping("s.a", "Shared", keys={"PK": "A#{id}"})
    b = mapping("s.b", "Shared", keys={"PK": "B#{id}"})
    c = mapping("s.c", "Other")
    groups = target_groups(config(a, b, c), ["s.b"])
    assert [(g.table, [m.source for m in g.mappings], [m.source for m in g.selected]) for g in groups] == [
        ("Shared", ["s.a", "s.b"], ["s.b"])
    ]
    assert {g.table for g in target_groups(config(a, b, c))} == {"Shared", "Other"}
    with pytest.raises(ReconcileError, match="not a mapped table"):
        target_groups(config(a), ["s.nope"])


# --- report --------------------------------------------------------------------------------------


def test_keys_round_trip_through_report_json_including_binary() -> None:
    key = {"PK": "ACC#1", "SK": Decimal("1.5"), "B": b"\x00\xff"}
    as_json = key_to_json(key)
    assert as_json == {"PK": {"S": "ACC#1"}, "SK": {"N": "1.5"}, "B": {"B": "AP8="}}
    assert key_from_json(as_json) == key
    nested = {"M": {"x": {"B": b"\x01"}, "l": {"L": [{"BS": [b"\x02"]}]}}}
    assert wire_from_json(wire_json(nested)) == nested


def test_drift_entry_keeps_seen_values_but_never_redacted_ones() -> None:
    mapper = ItemMapper(mapping())
    mismatch = Mismatch(MismatchKind.VALUE_MISMATCH, (
        AttributeDiff("name", '"a"', '"b"'), AttributeDiff("secret", "<redacted>", "<redacted>"),
        AttributeDiff("balance", "1", "<absent>"),
    ))
    actual = {"PK": "ACC#7", "name": "b", "secret": "s3cr3t"}
    entry = drift_entry(mapper, {"PK": {"S": "ACC#7"}}, mismatch, actual)
    assert entry.primary_key == {"id": "7"}
    assert entry.seen == {"name": {"S": "b"}, "balance": None}
    assert "s3cr3t" not in repr(entry.to_json())
    unexpected = drift_entry(mapper, {"PK": {"S": "ACC#8"}}, Mismatch(MismatchKind.UNEXPECTED_IN_TARGET),
                             {"PK": "ACC#8", "name": "n", "secret": "x"})
    assert unexpected.seen == {"name": {"S": "n"}}


def test_table_report_counts_kinds_and_in_flight_and_sorts_keys() -> None:
    entries = [
        DriftEntry("s.t", "value_mismatch", {"PK": {"S": "b"}}, {"id": "b"}),
        DriftEntry("s.t", "missing_in_target", {"PK": {"S": "c"}}, {"id": "c"}),
        DriftEntry("s.t", "value_mismatch", {"PK": {"S": "a"}}, {"id": "a"}),
    ]
    t = table_report(target="T", rows_compared=100, rows_not_compared=NotCompared(), items_scanned=99,
                     items_not_compared=NotCompared(), duration_s=2.0, candidates=5, resolved_in_flight=2,
                     drift=entries)
    assert t["drift_counts"] == {"missing_in_target": 1, "value_mismatch": 2}
    assert t["resolved_in_flight"] == 2
    assert t["rows_per_s"] == 99.5
    assert [d["key"]["PK"]["S"] for d in t["drift"]] == ["c", "a", "b"]
    unroutable = NotCompared()
    unroutable.add("fits no mapping", {"PK": {"S": "X#1"}})
    target = target_report(items_scanned=100, tables={"s.t": t}, unroutable=unroutable, items_other_tables=0,
                           run_dir="d")
    report = {"run_id": "r", "duration_s": 2.0, "targets": {"T": target}, "tables": {"s.t": t}}
    assert exit_code(report) == 1
    text = "\n".join(summary_lines(report))
    assert "1 missing_in_target, 2 value_mismatch" in text and "1 not compared: fits no mapping (e.g. PK=X#1)" in text
    clean = table_report(target="T", rows_compared=1, rows_not_compared=NotCompared(), items_scanned=1,
                         items_not_compared=NotCompared(), duration_s=1, candidates=0, resolved_in_flight=0,
                         drift=[])
    assert exit_code({"tables": {"s.t": clean}}) == 0


def test_the_summary_reads_from_dynamodb_when_it_is_the_source_of_truth() -> None:
    def entry(kind: str, pk: str, diffs: tuple[dict[str, str], ...] = ()) -> DriftEntry:
        return DriftEntry(source="s.t", kind=kind, key={"PK": {"S": pk}}, primary_key=None, diffs=diffs)

    entries = [
        entry("unexpected_in_target", "a"),  # an item without its row
        entry("missing_in_target", "b"),  # a row without its item
        entry("value_mismatch", "c", ({"attribute": "status", "expected": '"old"', "actual": '"new"'},)),
    ]
    t = table_report(target="T", rows_compared=2, rows_not_compared=NotCompared(), items_scanned=2,
                     items_not_compared=NotCompared(), duration_s=1.0, candidates=3, resolved_in_flight=0,
                     drift=entries, source_of_truth="dynamodb")
    report = {"tables": {"s.t": t}}
    text = "\n".join(summary_lines(report))
    assert "1 unexpected in Postgres (no DynamoDB item), 1 missing in Postgres, 1 value mismatch" in text
    assert "DynamoDB is the source of truth" in text
    assert "missing in Postgres PK=a" in text
    assert 'status: DynamoDB "new" != Postgres "old"' in text
    assert "missing_in_target" not in text and "unexpected_in_target" not in text
    assert t["drift_counts"] == {"missing_in_target": 1, "unexpected_in_target": 1, "value_mismatch": 1}


def test_anything_not_compared_fails_the_run_and_the_figures_add_up() -> None:
    rows = NotCompared()
    for i in (11, 12, 13):
        rows.add("column 'amount' (attribute 'amount'): number <value> does not fit DynamoDB", {"id": i})
    rows.add("key attribute 'SK' is an empty string", {"id": 31})
    items = NotCompared()
    items.add("its Postgres row does not map", {"key": {"PK": {"S": "T#11"}}, "primary_key": {"id": 11}})
    t = table_report(target="T", rows_compared=196, rows_not_compared=rows, items_scanned=197,
                     items_not_compared=items, duration_s=1.0, candidates=1, resolved_in_flight=0, drift=[])
    assert (t["rows_postgres"], t["rows_compared"], t["rows_not_compared"]) == (200, 196, 4)
    assert (t["items_scanned"], t["items_compared"], t["items_not_compared"]) == (197, 196, 1)
    assert [(g["count"], g["sample"]) for g in t["rows_not_compared_by_reason"]] == [
        (3, [{"id": 11}, {"id": 12}, {"id": 13}]), (1, [{"id": 31}])]
    target = target_report(items_scanned=199, tables={"s.t": t}, unroutable=NotCompared(),
                           items_other_tables=2, run_dir="d")
    assert target["items_compared"] + target["items_not_compared"] + target["items_other_tables"] == 199
    report = {"targets": {"T": target}, "tables": {"s.t": t}}
    assert not_compared_total(report) == 5 and exit_code(report) == 1
    text = "\n".join(summary_lines(report))
    assert "4 of 200 rows not compared" in text and "(e.g. id=11; id=12; id=13)" in text
    assert "1 of 197 items not compared" in text and "PK=T#11" in text


def test_a_reason_drops_the_row_specific_part() -> None:
    big = "1" * 41
    assert reason_of(f"column 'secret' (attribute 'secret'): number {big} does not fit DynamoDB (38 significant "
                     "digits, magnitude 1E-130..9.99E+125)") == (
        "column 'secret' (attribute 'secret'): number <value> does not fit DynamoDB (38 significant digits, "
        "magnitude 1E-130..9.99E+125)")
    assert reason_of("item is 512000 bytes, over DynamoDB's 409600 byte limit") == (
        "item is <n> bytes, over DynamoDB's 409600 byte limit")
    assert reason_of("column 'n' (attribute 'n'): ValueError: invalid literal for int(): 'x9'") == (
        "column 'n' (attribute 'n'): ValueError")
    assert reason_of("SK: cannot format column 'd' with '%Y': bad value 77") == "SK: cannot format column 'd' with '%Y'"
    assert reason_of("key attribute 'SK' is an empty string") == "key attribute 'SK' is an empty string"


def test_drill_down_gives_one_candidate_per_key_owned_by_the_table_whose_row_maps_to_it() -> None:
    plan = DrillDown(2)
    k1, k2, k3, k4 = (b'{"PK":{"S":"%d"}}' % i for i in (1, 2, 3, 4))
    plan.expected[0] = {1: (10, k1), 3: (30, k3), 4: (40, k4)}  # rows of mapping 0
    plan.actual[1] = {1: (11, k1), 2: (20, k2)}  # key 1's item routed (by its discriminator) to mapping 1
    plan.elsewhere[3] = (UNMAPPED, k3)  # key 3's item routed nowhere
    plan.failed[5] = (1, b'{"PK":{"S":"5"}}')  # a row of mapping 1 that failed to map
    plan.actual[0] = {5: (50, b'{"PK":{"S":"5"}}')}  # ... whose item routed to mapping 0
    got = {c.key: (c.owner, c.pg_side, c.item_at) for c in plan.candidates()}
    assert got == {
        k1: (0, True, 1),  # one candidate, not one per mapping
        k2: (1, False, 1),  # no row: the item's own routing decides
        k3: (0, True, UNMAPPED),
        k4: (0, True, None),  # missing
        b'{"PK":{"S":"5"}}': (1, True, 0),
    }


# --- repair --------------------------------------------------------------------------------------


def test_repair_conditions_on_what_the_report_saw() -> None:
    mapper = ItemMapper(mapping())
    assert condition(mapper, "missing_in_target", {}) == ("attribute_not_exists(#k0)", {"#k0": "PK"}, {})
    expr, names, values = condition(mapper, "value_mismatch", {"name": {"S": "b"}, "balance": None})
    assert expr == "attribute_exists(#k0) AND attribute_not_exists(#a0) AND #a1 = :v1"
    assert names == {"#k0": "PK", "#a0": "balance", "#a1": "name"}
    assert values == {":v1": {"S": "b"}}


def test_repair_updates_mapped_attributes_and_leaves_target_only_ones() -> None:
    table = mapping(ignore_attributes=["expires_at"])
    item = ItemMapper(table).item({"id": 7, "name": "n", "secret": "s", "balance": None})  # balance NULL: no attribute
    changes = item_update(OwnedAttributes.of(table), item)
    assert changes is not None
    expr, names, values = changes.expression, changes.names, changes.values
    # SET what the row maps to, REMOVE what the mapping produces but the row has no value for;
    # the key is never in the expression, and target-only or ignored attributes are not named.
    assert expr == "SET #u0 = :u0, #u1 = :u1, #u2 = :u2 REMOVE #r0"
    assert names == {"#u0": "id", "#u1": "name", "#u2": "secret", "#r0": "balance"}
    assert values == {":u0": {"N": "7"}, ":u1": {"S": "n"}, ":u2": {"S": "s"}}
    assert "expires_at" not in names.values() and "PK" not in names.values()


# --- schedule ------------------------------------------------------------------------------------


def test_schedule_waits_interval_plus_jitter_and_runs_single_flight() -> None:
    cfg = config(mapping()).model_copy(update={"reconcile": config(mapping()).reconcile.model_copy(
        update={"interval_s": 60.0, "jitter_s": 10.0})})
    schedule = ReconcileSchedule(cfg, rand=lambda: 0.5)
    assert schedule.next_wait() == 65.0
    assert schedule._flight.acquire(blocking=False)
    try:
        assert schedule.run_once() is None  # a run is in flight: no second one
    finally:
        schedule._flight.release()


def test_timestamps_are_mapped_at_the_rule_precision() -> None:
    import datetime as dt

    from parity.core.config import ColumnRule
    from parity.core.mapping import converter

    utc = dt.UTC
    micro = dt.datetime(2024, 1, 1, 0, 0, 1, 234567, tzinfo=utc)
    whole = dt.datetime(2024, 1, 1, 0, 0, 2, tzinfo=utc)
    iso_ms = converter(ColumnRule(type="timestamp_iso", precision="ms"))
    assert (iso_ms(micro), iso_ms(whole)) == ("2024-01-01T00:00:01.234Z", "2024-01-01T00:00:02.000Z")
    assert converter(ColumnRule(type="timestamp_iso", precision="s"))(micro) == "2024-01-01T00:00:01Z"
    assert converter(ColumnRule(type="timestamp_epoch_ms", precision="ms"))(micro) == Decimal(1704067201234)
    assert converter(ColumnRule(type="timestamp_epoch_s", precision="ms"))(micro) == Decimal("1704067201.234")
    assert converter(ColumnRule(precision="ms"))(micro) == "2024-01-01T00:00:01.234Z"  # auto, timestamp hinted
    assert converter(ColumnRule(type="timestamp_iso"))(micro) == "2024-01-01T00:00:01.234567Z"  # no precision


def test_report_keys_are_typed_and_redacted_key_columns_masked() -> None:
    from parity.reconcilers.coverage import json_value, primary_key_json, typed_primary_key

    m = mapping(primary_key=["id", "name"], keys={"PK": "ACC#{id}#{name}"},
                columns={"id": {}, "name": {"redact": True}, "balance": {"type": "number"}})
    assert primary_key_json(m, {"id": 7, "name": "Ada"}) == {"id": 7, "name": "<redacted>"}
    assert typed_primary_key(m, {"id": "7", "name": "Ada"}, {"id"}) == {"id": 7, "name": "<redacted>"}
    assert typed_primary_key(m, None, {"id"}) is None
    assert json_value(Decimal("10")) == 10 and json_value(Decimal("1.5")) == 1.5
    assert json_value(Decimal("0.1000000000000000000000001")) == "0.1000000000000000000000001"  # no double holds it
    assert json_value(dt.date(2024, 1, 2)) == "2024-01-02"
