"""How long to wait for a service that reports progress (the Debezium bridge's snapshot): as long
as it keeps making progress, up to an optional hard cap. Pure: time and progress are passed in.

A fixed deadline fails a healthy snapshot of a large table and waits the full time for a stuck
one; a stall window does neither. `timeout_s` is for scripts and CI that want an upper bound.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable
from dataclasses import dataclass, field

_UNSET = object()  # the first observation is the baseline, not progress


class Verdict(enum.Enum):
    WAIT = "wait"
    STALLED = "stalled"  # no progress for stall_s
    TIMED_OUT = "timed_out"  # the hard cap passed, progress or not


@dataclass
class ProgressWait:
    started_at: float
    stall_s: float = 90.0
    timeout_s: float | None = None
    _progress: Hashable = field(default=_UNSET, init=False)
    _progress_at: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if self.stall_s <= 0:
            raise ValueError("stall_s must be positive")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self._progress_at = self.started_at

    def observe(self, now: float, progress: Hashable) -> Verdict:
        """`progress`: any value that changes when the service got further (events forwarded, log
        lines of snapshot steps); equal values mean no progress since the last observation."""
        if self._progress is _UNSET:
            self._progress = progress
        elif progress != self._progress:
            self._progress = progress
            self._progress_at = now
        if self.timeout_s is not None and now - self.started_at >= self.timeout_s:
            return Verdict.TIMED_OUT
        if now - self._progress_at >= self.stall_s:
            return Verdict.STALLED
        return Verdict.WAIT

    def seconds_since_progress(self, now: float) -> float:
        return now - self._progress_at
