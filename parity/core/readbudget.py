"""A read budget shared by every reader of a table: a token bucket whose rate adapts (AIMD).

A cluster reconcile scans one DynamoDB table from many workers at once. The budget caps their sum
at `ceiling` read units per second; a throttling response (ProvisionedThroughputExceededException)
from any reader cuts the shared rate multiplicatively, so everyone slows down at once, and the rate
then climbs back linearly to the ceiling over `recover_s` seconds. Several readers that are throttled
by the same burst report it at about the same time: cuts closer together than `cooldown_s` count as
one (TCP's "one cut per window"), else one burst would drive the rate straight to the floor.

Readers spend what a page consumed after reading it (DynamoDB reports it), so the bucket may go
into debt: a reader waits until the debt is paid at the current rate. Pure: the caller passes `now`.
"""

from __future__ import annotations

from typing import Protocol


class ReadLimiter(Protocol):
    """What a reader acquires read units from (a local `ratelimit.Pacer`, or a cluster's budget)."""

    def acquire(self, tokens: float = 1.0) -> None: ...


class AdaptiveReadBudget:
    def __init__(
        self,
        ceiling: float,
        *,
        floor: float | None = None,
        decrease: float = 0.5,
        recover_s: float = 30.0,
        cooldown_s: float = 1.0,
        burst_s: float = 1.0,
    ) -> None:
        if ceiling <= 0:
            raise ValueError("the read budget's ceiling must be positive")
        if not 0 < decrease < 1:
            raise ValueError("decrease must be between 0 and 1")
        if recover_s <= 0 or cooldown_s < 0 or burst_s <= 0:
            raise ValueError("recover_s and burst_s must be positive, cooldown_s not negative")
        self.ceiling = ceiling
        self.floor = min(ceiling, floor if floor is not None else ceiling / 100)
        if self.floor <= 0:
            raise ValueError("the read budget's floor must be positive")
        self.decrease = decrease
        self.recover_s = recover_s
        self.cooldown_s = cooldown_s
        self.burst_s = burst_s
        self._cut_rate = ceiling  # the rate right after the last cut
        self._cut_at: float | None = None
        self._tokens = ceiling * burst_s
        self._at: float | None = None
        self.throttles = 0  # throttling reports received
        self.cuts = 0  # of which cut the rate
        self.spent = 0.0  # units reserved in all

    def rate(self, now: float) -> float:
        """The current rate: the ceiling, or on its way back to it since the last cut."""
        if self._cut_at is None:
            return self.ceiling
        climbed = (now - self._cut_at) * self.ceiling / self.recover_s
        return min(self.ceiling, self._cut_rate + max(0.0, climbed))

    def _refill(self, now: float) -> float:
        if self._at is None:
            self._at = now
        rate = self.rate(now)
        # The rate at the end of the interval: while it climbs, this refills slightly faster
        # than the exact integral, never more than one interval's climb.
        self._tokens = min(rate * self.burst_s, self._tokens + max(0.0, now - self._at) * rate)
        self._at = now
        return rate

    def reserve(self, now: float, units: float) -> float:
        """Spend `units`; return how long the caller should wait (0 when they were available)."""
        rate = self._refill(now)
        self._tokens -= units
        self.spent += units
        return 0.0 if self._tokens >= 0 else -self._tokens / rate

    def throttled(self, now: float) -> bool:
        """A reader was throttled: cut the rate (once per cool-down). True when it was cut."""
        self.throttles += 1
        self._refill(now)
        if self._cut_at is not None and now - self._cut_at < self.cooldown_s:
            return False
        self._cut_rate = max(self.floor, self.rate(now) * self.decrease)
        self._cut_at = now
        self._tokens = min(self._tokens, 0.0)  # no saved-up burst right after a throttle
        self.cuts += 1
        return True
