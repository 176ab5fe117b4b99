"""Token bucket: a steady rate with a bounded burst. Pure; the caller passes `now` and sleeps
(`Pacer` does both through the clock and sleep it is given)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any


class TokenBucket:
    def __init__(self, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate)
        self._tokens = self.capacity
        self._at: float | None = None

    def reserve(self, now: float, n: float = 1.0) -> float:
        """Take `n` tokens; return how long to wait before using them (0 when available now)."""
        if self._at is None:
            self._at = now
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now
        self._tokens -= n
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class Pacer:
    """A `TokenBucket` that waits: `acquire(n)` returns once `n` tokens are spent, sleeping first
    when they are not due yet. Shadow writes, repair writes and the reconcile's Scan pages are
    paced by it (the reconcile spends what each page reports as consumed, after the read).

    The clock and sleep are the caller's (the core imports neither `time` nor `threading`), and
    so is the lock: threads that share one pacer pass a `threading.Lock()`; the wait happens
    outside it, so a sleeping thread does not hold up another thread's reservation."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        self._bucket = TokenBucket(rate)
        self._clock = clock
        self._sleep = sleep
        self._lock: AbstractContextManager[Any] = lock if lock is not None else nullcontext()

    @property
    def rate(self) -> float:
        return self._bucket.rate

    def acquire(self, tokens: float = 1.0) -> None:
        with self._lock:
            wait = self._bucket.reserve(self._clock(), tokens)
        if wait > 0:
            self._sleep(wait)
