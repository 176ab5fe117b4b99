"""The one pacer of shadow writes, repair writes and the reconcile's Scan pages (core.ratelimit.Pacer)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from parity.core.ratelimit import Pacer

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_of_one_second_passes_then_each_token_waits_its_share() -> None:
    clock, sleeps = Clock(), list[float]()
    pacer = Pacer(10, clock=clock, sleep=sleeps.append)
    for _ in range(10):
        pacer.acquire()
    assert sleeps == []
    pacer.acquire()
    pacer.acquire()
    assert sleeps == pytest.approx([0.1, 0.2])  # the caller did not sleep: the debt grows


def test_tokens_come_back_with_time_up_to_the_burst() -> None:
    clock, sleeps = Clock(), list[float]()
    pacer = Pacer(4, clock=clock, sleep=sleeps.append)
    for _ in range(4):
        pacer.acquire()
    clock.now += 60.0  # a long pause refills 4 tokens, not 240
    for _ in range(4):
        pacer.acquire()
    assert sleeps == []
    pacer.acquire()
    assert sleeps == pytest.approx([0.25])


def test_a_slow_rate_still_allows_one_token_at_once() -> None:
    sleeps: list[float] = []
    pacer = Pacer(0.5, clock=Clock(), sleep=sleeps.append)
    pacer.acquire()
    pacer.acquire()
    assert sleeps == pytest.approx([2.0])


def test_consumed_capacity_spent_after_the_read_paces_the_next_one() -> None:
    # The reconcile spends what a Scan page reports it consumed: 25 units at 10/s is 1.5 s of debt.
    sleeps: list[float] = []
    pacer = Pacer(10, clock=Clock(), sleep=sleeps.append)
    pacer.acquire(25)
    assert sleeps == pytest.approx([1.5])


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Pacer(0, clock=Clock(), sleep=lambda s: None)


class RecordingLock:
    def __init__(self) -> None:
        self.held = False
        self.entered = 0

    def __enter__(self) -> None:
        assert not self.held
        self.held = True
        self.entered += 1

    def __exit__(self, *exc: Any) -> None:
        self.held = False


def test_the_wait_happens_outside_the_lock() -> None:
    lock = RecordingLock()
    held_while_sleeping: list[bool] = []
    pacer = Pacer(1, clock=Clock(), sleep=lambda s: held_while_sleeping.append(lock.held), lock=lock)
    pacer.acquire()
    pacer.acquire()
    assert lock.entered == 2
    assert held_while_sleeping == [False]


def test_threads_sharing_a_pacer_each_get_their_own_reservation() -> None:
    # With the clock standing still, N tokens beyond the burst owe 1/rate, 2/rate, ... N/rate: every
    # reservation sees the one before it, whatever thread made it.
    sleeps: list[float] = []
    sleeps_lock = threading.Lock()

    def sleep(seconds: float) -> None:
        with sleeps_lock:
            sleeps.append(seconds)

    pacer = Pacer(10, clock=Clock(), sleep=sleep, lock=threading.Lock())

    def work() -> None:
        for _ in range(50):
            pacer.acquire()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(round(s * 10) for s in sleeps) == list(range(1, 191))
