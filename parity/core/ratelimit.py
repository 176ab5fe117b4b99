"""Token bucket: a steady rate with a bounded burst. Pure; the caller passes `now` and sleeps."""

from __future__ import annotations


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
