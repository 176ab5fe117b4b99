"""Rolling drift ratio: confirmed drift / final verdicts over the last `window_s` seconds.

This is each daemon's own view (`parity_drift_ratio{table}`, `/status`); the alert rule computes
the ratio across replicas from the verdict counters. Time is passed in (`now`, seconds on
any monotonic or wall clock, as long as one window uses one clock), so tests drive it with plain
numbers. Verdicts are counted in one-second slots: memory is bounded by the window length, not
by the event rate, which at tens of thousands of verdicts per second matters.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WindowTotals:
    verdicts: int
    drifted: int

    @property
    def ratio(self) -> float:
        # No verdicts means no evidence of drift: 0, not NaN, so the alert stays quiet on idle tables.
        return self.drifted / self.verdicts if self.verdicts else 0.0


class DriftWindow:
    """Verdict and drift counts of one table over a sliding window of whole seconds."""

    def __init__(self, window_s: float, slot_s: float = 1.0) -> None:
        if window_s <= 0 or slot_s <= 0:
            raise ValueError("window_s and slot_s must be positive")
        self._slot_s = slot_s
        self._slots_in_window = max(1, math.ceil(window_s / slot_s))
        # (slot index, verdicts, drifted), oldest first.
        self._slots: deque[list[int]] = deque()
        self._verdicts = 0
        self._drifted = 0

    @property
    def window_s(self) -> float:
        return self._slots_in_window * self._slot_s

    def record(self, now: float, verdicts: int = 1, drifted: int = 0) -> None:
        if verdicts < 0 or drifted < 0 or drifted > verdicts:
            raise ValueError(f"need 0 <= drifted <= verdicts, got {drifted}/{verdicts}")
        slot = self._slot(now)
        self._expire(slot)
        if self._slots and self._slots[-1][0] == slot:
            self._slots[-1][1] += verdicts
            self._slots[-1][2] += drifted
        elif self._slots and self._slots[-1][0] > slot:
            # A clock that stepped back (or an out-of-order caller): count it in the newest slot
            # rather than reordering history.
            self._slots[-1][1] += verdicts
            self._slots[-1][2] += drifted
        else:
            self._slots.append([slot, verdicts, drifted])
        self._verdicts += verdicts
        self._drifted += drifted

    def totals(self, now: float) -> WindowTotals:
        self._expire(self._slot(now))
        return WindowTotals(self._verdicts, self._drifted)

    def ratio(self, now: float) -> float:
        return self.totals(now).ratio

    def _slot(self, now: float) -> int:
        return math.floor(now / self._slot_s)

    def _expire(self, current_slot: int) -> None:
        oldest_kept = current_slot - self._slots_in_window + 1
        while self._slots and self._slots[0][0] < oldest_kept:
            _, verdicts, drifted = self._slots.popleft()
            self._verdicts -= verdicts
            self._drifted -= drifted


class DriftWindows:
    """One `DriftWindow` per table, created on first use."""

    def __init__(self, window_s: float) -> None:
        self._window_s = window_s
        self._tables: dict[str, DriftWindow] = {}

    def window(self, table: str) -> DriftWindow:
        found = self._tables.get(table)
        if found is None:
            found = self._tables[table] = DriftWindow(self._window_s)
        return found

    def record(self, table: str, now: float, verdicts: int = 1, drifted: int = 0) -> float:
        """Counts verdicts and returns the table's ratio after counting them."""
        w = self.window(table)
        w.record(now, verdicts, drifted)
        return w.ratio(now)

    def tables(self) -> list[str]:
        return sorted(self._tables)
