"""The bridge start-up wait: patient while progress is made, fails after a stall, and `--timeout`
is a hard cap. Time and progress are passed in."""

from __future__ import annotations

import pytest

from parity.devstack.startup import ProgressWait, Verdict

pytestmark = pytest.mark.unit


def _run(wait: ProgressWait, observations: list[tuple[float, object]]) -> list[Verdict]:
    return [wait.observe(now, progress) for now, progress in observations]


def test_a_long_snapshot_that_keeps_progressing_is_waited_for_well_past_the_stall_window() -> None:
    wait = ProgressWait(started_at=0.0, stall_s=90.0)
    # A 30-minute snapshot: events forwarded every 5 s.
    verdicts = _run(wait, [(t, t // 5) for t in range(0, 1800, 5)])
    assert set(verdicts) == {Verdict.WAIT}


def test_no_progress_for_the_stall_window_fails_however_long_it_progressed_before() -> None:
    wait = ProgressWait(started_at=0.0, stall_s=90.0)
    assert _run(wait, [(t, t) for t in range(0, 600, 10)]) == [Verdict.WAIT] * 60
    assert wait.observe(600.0, 590) is Verdict.WAIT
    assert wait.observe(679.0, 590) is Verdict.WAIT  # 89 s since the last progress (at 590)
    assert wait.observe(680.0, 590) is Verdict.STALLED


def test_nothing_at_all_since_the_start_is_a_stall_after_the_window() -> None:
    wait = ProgressWait(started_at=100.0, stall_s=90.0)
    assert wait.observe(150.0, 0) is Verdict.WAIT
    assert wait.observe(189.0, 0) is Verdict.WAIT
    assert wait.observe(190.0, 0) is Verdict.STALLED


def test_the_hard_cap_ends_the_wait_even_while_progress_is_made() -> None:
    wait = ProgressWait(started_at=0.0, stall_s=90.0, timeout_s=120.0)
    assert _run(wait, [(t, t) for t in range(0, 120, 1)]) == [Verdict.WAIT] * 120
    assert wait.observe(120.0, 120) is Verdict.TIMED_OUT


def test_a_hard_cap_shorter_than_the_stall_window_wins() -> None:
    wait = ProgressWait(started_at=0.0, stall_s=90.0, timeout_s=5.0)
    assert wait.observe(4.9, 0) is Verdict.WAIT
    assert wait.observe(5.0, 0) is Verdict.TIMED_OUT


def test_progress_is_any_change_of_the_observed_value() -> None:
    wait = ProgressWait(started_at=0.0, stall_s=10.0)
    assert wait.observe(0.0, (0, 0)) is Verdict.WAIT  # the baseline
    assert wait.observe(9.0, (0, 1)) is Verdict.WAIT  # a snapshot step logged: progress
    assert wait.observe(18.0, (0, 1)) is Verdict.WAIT
    assert wait.observe(19.0, (0, 1)) is Verdict.STALLED
    assert wait.seconds_since_progress(19.0) == 10.0


@pytest.mark.parametrize("bad", [{"stall_s": 0.0}, {"timeout_s": 0.0}, {"timeout_s": -1.0}])
def test_windows_must_be_positive(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ProgressWait(started_at=0.0, **bad)
