"""The rolling drift window behind parity_drift_ratio: time is passed in, so no sleeping."""

from __future__ import annotations

import pytest

from parity.core.window import DriftWindow, DriftWindows

pytestmark = pytest.mark.unit


def test_ratio_is_drift_over_verdicts_inside_the_window() -> None:
    w = DriftWindow(window_s=60)
    w.record(now=1000.0, verdicts=98, drifted=0)
    w.record(now=1010.0, verdicts=2, drifted=2)
    totals = w.totals(now=1010.0)
    assert (totals.verdicts, totals.drifted) == (100, 2)
    assert totals.ratio == pytest.approx(0.02)


def test_verdicts_older_than_the_window_stop_counting() -> None:
    w = DriftWindow(window_s=60)
    w.record(now=1000.0, verdicts=10, drifted=10)
    w.record(now=1030.0, verdicts=10, drifted=0)
    assert w.ratio(now=1059.0) == pytest.approx(0.5)
    # 1000 has left the 60 s window at 1060; only the clean verdicts of 1030 remain.
    assert w.ratio(now=1060.0) == 0.0
    assert w.totals(now=1060.0).verdicts == 10
    assert w.totals(now=1100.0).verdicts == 0


def test_an_idle_table_has_ratio_zero_not_nan() -> None:
    w = DriftWindow(window_s=300)
    assert w.ratio(now=5.0) == 0.0
    w.record(now=5.0, verdicts=1, drifted=1)
    assert w.ratio(now=5.0) == 1.0
    assert w.ratio(now=400.0) == 0.0


def test_memory_is_bounded_by_the_window_not_the_event_count() -> None:
    w = DriftWindow(window_s=10)
    for i in range(10_000):
        w.record(now=i / 100, verdicts=1, drifted=i % 2)
    # 100 s of verdicts at 100/s; only the last 10 one-second slots are kept.
    assert len(w._slots) <= 10
    assert w.totals(now=99.99).verdicts == 1000


def test_a_clock_step_backwards_counts_in_the_newest_slot() -> None:
    w = DriftWindow(window_s=60)
    w.record(now=100.0, verdicts=1)
    w.record(now=90.0, verdicts=1, drifted=1)
    assert w.totals(now=100.0) == w.totals(now=100.5)
    assert w.totals(now=100.0).drifted == 1
    assert w.totals(now=100.0).verdicts == 2


@pytest.mark.parametrize(("verdicts", "drifted"), [(-1, 0), (1, 2), (0, -1)])
def test_impossible_counts_are_refused(verdicts: int, drifted: int) -> None:
    with pytest.raises(ValueError):
        DriftWindow(60).record(now=0.0, verdicts=verdicts, drifted=drifted)


def test_windows_are_kept_per_table() -> None:
    windows = DriftWindows(window_s=60)
    assert windows.record("public.a", now=0.0, verdicts=4, drifted=1) == pytest.approx(0.25)
    assert windows.record("public.b", now=0.0, verdicts=4, drifted=0) == 0.0
    assert windows.tables() == ["public.a", "public.b"]
