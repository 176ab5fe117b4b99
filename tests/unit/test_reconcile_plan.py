"""Pure parts of the reconciler: digest comparison, drill-down planning, report building,
repair conditions and the schedule's waits."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from parity.core.compare import AttributeDiff, Mismatch, MismatchKind
from parity.core.config import ParityConfig, TableMapping
from parity.core.digest import key_bucket
from parity.core.mapping import ItemMapper
from parity.reconcilers.reconcile import ReconcileError, bucket_count, drift_candidates, target_groups
from parity.reconcilers.repair import condition, update
from parity.reconcilers.report import (
    DriftEntry,
    drift_entry,
    exit_code,
    summary_lines,
    table_report,
    wire_from_json,
    wire_json,
)
from parity.reconcilers.schedule import ReconcileSchedule
from parity.reconcilers.tally import SideTally, key_fingerprint, key_from_json, key_to_json, mismatched_buckets

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
    t = table_report(target="T", rows_postgres=100, items_dynamodb=99, duration_s=2.0, candidates=5, drift=entries)
    assert t["drift_counts"] == {"missing_in_target": 1, "value_mismatch": 2}
    assert t["resolved_in_flight"] == 2
    assert t["rows_per_s"] == 99.5
    assert [d["key"]["PK"]["S"] for d in t["drift"]] == ["c", "a", "b"]
    report = {"run_id": "r", "duration_s": 2.0, "targets": {"T": {"items_scanned": 99,
              "unmapped": {"count": 1, "sample": [{"PK": {"S": "X#1"}}]}}}, "tables": {"s.t": t}}
    assert exit_code(report) == 1
    text = "\n".join(summary_lines(report))
    assert "1 missing_in_target, 2 value_mismatch" in text and "1 unmapped (e.g. PK=X#1)" in text
    clean = table_report(target="T", rows_postgres=1, items_dynamodb=1, duration_s=1, candidates=0, drift=[])
    assert exit_code({"tables": {"s.t": clean}}) == 0


# --- repair --------------------------------------------------------------------------------------


def test_repair_conditions_on_what_the_report_saw() -> None:
    mapper = ItemMapper(mapping())
    assert condition(mapper, "missing_in_target", {}) == ("attribute_not_exists(#k0)", {"#k0": "PK"}, {})
    expr, names, values = condition(mapper, "value_mismatch", {"name": {"S": "b"}, "balance": None})
    assert expr == "attribute_exists(#k0) AND attribute_not_exists(#a0) AND #a1 = :v1"
    assert names == {"#k0": "PK", "#a0": "balance", "#a1": "name"}
    assert values == {":v1": {"S": "b"}}


def test_repair_updates_mapped_attributes_and_leaves_target_only_ones() -> None:
    mapper = ItemMapper(mapping(ignore_attributes=["expires_at"]))
    item = mapper.item({"id": 7, "name": "n", "secret": "s", "balance": None})  # balance NULL: no attribute
    changes = update(mapper, item)
    assert changes is not None
    expr, names, values = changes
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
