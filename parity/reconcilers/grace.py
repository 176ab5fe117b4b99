"""When each reconcile candidate may be rechecked: its grace period runs from when the scan saw it
differ, not from the end of the whole scan.

A candidate's DynamoDB item was read at some point of the Scan (its page's arrival; for a key
absent from DynamoDB, the end of the DynamoDB scan), against Postgres rows of a snapshot taken
before any page was read. Its first recheck round may run once `grace_s` has passed since then,
each further round `spacing_s` after the previous one ended, and only keys that still differ go
on to the next round. So a candidate read early in a long scan is rechecked as soon as the
drill-down has found it, while the scan's last pages still wait out their grace; the rechecks
run in waves as candidates come due, instead of all of them after one wait from the scan's end.

Time is passed in (a clock and a sleep), so the rules are tested with a manual clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

# Candidates coming due close together are rechecked together: one round trip per side for a
# wave. Waiting this much longer than a due time only ever lengthens a grace period.
WAVE_S = 0.25


class GraceSchedule:
    """Per candidate, the round it is at and when that round is due."""

    def __init__(self, seen_at: Sequence[float], *, grace_s: float, rounds: int, spacing_s: float) -> None:
        if rounds < 1:
            raise ValueError("rounds must be at least 1")
        self.rounds = rounds
        self.spacing_s = spacing_s
        self._due = {i: t + grace_s for i, t in enumerate(seen_at)}
        self._round = dict.fromkeys(self._due, 0)

    def done(self) -> bool:
        return not self._due

    def due(self, now: float) -> list[int]:
        """Candidates whose next round may run now, in index order."""
        return sorted(i for i, t in self._due.items() if t <= now)

    def next_due(self) -> float | None:
        return min(self._due.values(), default=None)

    def round_of(self, i: int) -> int:
        return self._round[i]

    def checked(self, indices: Sequence[int], still: set[int], now: float) -> None:
        """A round of `indices` ended at `now`; those in `still` differ again and go on to the next
        round, unless that was their last; every other one is settled."""
        for i in indices:
            self._round[i] += 1
            if i in still and self._round[i] < self.rounds:
                self._due[i] = now + self.spacing_s
            else:
                del self._due[i]


def recheck_in_waves(
    schedule: GraceSchedule,
    check: Callable[[list[int]], set[int]],
    *,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> None:
    """Run `check` on every wave of candidates as they come due until each is settled. `check`
    rechecks the given candidates once (recording their outcome) and returns those that still differ."""
    while not schedule.done():
        now = clock()
        ready = schedule.due(now)
        if not ready:
            upcoming = schedule.next_due()
            assert upcoming is not None
            sleep(max(upcoming - now, WAVE_S))
            continue
        still = check(ready)
        schedule.checked(ready, still, clock())
