"""A reconcile candidate's grace period runs from when the scan saw it differ (its DynamoDB page),
not from the end of the whole scan: early candidates are rechecked at once, late ones still wait
their full grace, and every round after the first waits its spacing (manual clock, no sleeps)."""

from __future__ import annotations

from typing import Any

import pytest

from parity.reconcilers.grace import WAVE_S, GraceSchedule, recheck_in_waves
from parity.reconcilers.reconcile import DrillDown
from parity.reconcilers.tally import UNMAPPED

pytestmark = pytest.mark.unit


class ManualClock:
    def __init__(self, now: float) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


def run_waves(seen_at: list[float], scan_end: float, differ: dict[int, int], *, grace: float = 5.0,
              rounds: int = 2, spacing: float = 1.0) -> tuple[ManualClock, list[tuple[float, int, int]]]:
    """Recheck candidates seen at `seen_at` from `scan_end` on. `differ[i]`: how many rounds
    candidate i still differs in. Returns the clock and every (time, candidate, round) checked."""
    clock = ManualClock(scan_end)
    schedule = GraceSchedule(seen_at, grace_s=grace, rounds=rounds, spacing_s=spacing)
    checks: list[tuple[float, int, int]] = []

    def check(ready: list[int]) -> set[int]:
        still = set()
        for i in ready:
            r = schedule.round_of(i)
            checks.append((clock.now, i, r))
            if differ.get(i, 0) > r:
                still.add(i)
        return still

    recheck_in_waves(schedule, check, clock=clock, sleep=clock.sleep)
    return clock, checks


def test_a_candidate_seen_early_in_the_scan_is_rechecked_at_once_without_waiting_from_the_scan_end() -> None:
    # A 60 s scan: the key was read 2 s in, so its 5 s of grace were over long before the end.
    clock, checks = run_waves([2.0], scan_end=60.0, differ={})
    assert checks == [(60.0, 0, 0)]
    assert clock.sleeps == []


def test_a_candidate_seen_less_than_the_grace_ago_is_still_waited_for() -> None:
    # Read 58 s in, the scan ended at 60 s: its first round is due at 63 s, not before.
    clock, checks = run_waves([58.0], scan_end=60.0, differ={})
    assert checks == [(63.0, 0, 0)]
    assert sum(clock.sleeps) == pytest.approx(3.0)


def test_early_candidates_go_first_and_late_ones_each_get_their_full_grace() -> None:
    _clock, checks = run_waves([1.0, 10.0, 57.0, 59.5], scan_end=60.0, differ={})
    first_round = {i: t for t, i, r in checks if r == 0}
    assert first_round[0] == first_round[1] == 60.0  # one wave, right after the drill-down
    assert first_round[2] >= 62.0 and first_round[3] >= 64.5  # grace counted from when each was read
    assert all(first_round[i] - seen >= 5.0 for i, seen in enumerate([1.0, 10.0, 57.0, 59.5]))


def test_only_keys_that_still_differ_get_another_round_after_the_spacing() -> None:
    # 0 matches in round 1 (in flight), 1 differs in both rounds (drift), 2 matches in round 2.
    _clock, checks = run_waves([0.0, 0.0, 0.0], scan_end=30.0, differ={1: 2, 2: 1})
    rounds = {(i, r): t for t, i, r in checks}
    assert set(rounds) == {(0, 0), (1, 0), (2, 0), (1, 1), (2, 1)}
    assert rounds[(1, 1)] - rounds[(1, 0)] >= 1.0
    assert rounds[(2, 1)] - rounds[(2, 0)] >= 1.0


def test_a_key_is_never_checked_more_than_the_rounds_even_if_it_keeps_differing() -> None:
    _clock, checks = run_waves([0.0], scan_end=10.0, differ={0: 99}, rounds=2)
    assert [r for _t, _i, r in checks] == [0, 1]


def test_candidates_coming_due_close_together_are_rechecked_in_one_wave() -> None:
    clock, checks = run_waves([55.01, 55.02, 55.03], scan_end=60.0, differ={})
    assert {t for t, _i, _r in checks} == {clock.now}  # one wave
    assert clock.now - 60.03 < WAVE_S + 1e-9  # at most a wave's slack past the last due time


def test_drill_down_candidates_carry_when_their_item_was_read_or_the_scan_end_when_absent() -> None:
    plan = DrillDown(1, absent_seen=42.0)
    k1, k2, k3 = (b'{"PK":{"S":"%d"}}' % i for i in (1, 2, 3))
    plan.expected[0] = {1: (10, k1), 2: (20, k2)}
    plan.actual[0] = {1: (11, k1)}  # key 1 differs; key 2 is missing from DynamoDB
    plan.elsewhere[3] = (UNMAPPED, k3)
    plan.expected[0][3] = (30, k3)  # key 3's row maps, its item routed nowhere
    plan.seen = {1: 7.5, 3: 12.0}
    seen = {c.key: c.seen_at for c in plan.candidates()}
    assert seen == {k1: 7.5, k2: 42.0, k3: 12.0}


def test_schedule_needs_a_round() -> None:
    with pytest.raises(ValueError, match="rounds"):
        GraceSchedule([0.0], grace_s=1, rounds=0, spacing_s=1)


def test_each_dynamodb_record_of_a_mismatched_bucket_gets_the_time_of_the_page_that_read_it(tmp_path: Any) -> None:
    from parity.core.config import ParityConfig
    from parity.reconcilers.checkpoint import Checkpoint
    from parity.reconcilers.reconcile import Reconciler
    from parity.reconcilers.tally import SpillWriter

    cfg = ParityConfig.model_validate({
        "postgres": {"dsn": "postgresql://x@127.0.0.1/db"},
        "kafka": {"bootstrap_servers": "127.0.0.1:1", "topic_prefix": "p"},
        "tables": [{"source": "public.a", "primary_key": ["id"], "target": "A", "keys": {"PK": "A#{id}"},
                    "columns": {"id": {}}}],
    })
    buckets = 4
    cp = Checkpoint.create(tmp_path, "A", {"sources": ["public.a"], "segments": 1, "workers": 1, "buckets": buckets})
    # DynamoDB unit: 2 records from an earlier (resumed) process, then pages of 3 and 2 records.
    fps = [4, 5, 8, 9, 12, 13, 16]  # fp % 4: buckets 0 and 1
    writer = SpillWriter(cp.spill_path("ddb-0"))
    for fp in fps:
        writer.write(0, fp, fp * 10, b'{"PK":{"S":"A#%d"}}' % fp)
    cp.update("ddb-0", offset=writer.close(), done=True)
    SpillWriter(cp.spill_path("pg-0-0")).close()
    cp.update("pg-0-0", offset=0, done=True)
    marks = {"ddb-0": [(2, 100.0), (5, 103.0), (7, 106.0)]}
    reconciler = Reconciler(cfg, dynamo=None, dsn="postgresql://x@127.0.0.1/db")  # type: ignore[arg-type]
    plan = reconciler._collect(cp, ["pg-0-0"], ["ddb-0"], [{0}], buckets, marks, absent_seen=107.0)
    # Only bucket 0 mismatched: fingerprints 4, 8, 12, 16 (records 0, 2, 4, 6).
    assert plan.seen == {4: 100.0, 8: 103.0, 12: 103.0, 16: 106.0}
    assert plan.absent_seen == 107.0
