"""DynamoStore.map_parallel: the parallel writes of shadow mode (transactions, then single writes)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from parity.adapters.dynamodb import DynamoStore

pytestmark = pytest.mark.unit


def _store(concurrency: int = 4, write_concurrency: int | None = None) -> DynamoStore:
    return DynamoStore(object(), concurrency=concurrency, write_concurrency=write_concurrency)


def test_results_keep_the_order_of_the_items() -> None:
    store = _store()
    try:
        # Later items finish first: the results still follow the items.
        items = list(range(40))
        assert store.map_parallel(lambda i: (time.sleep(0.001 * ((40 - i) % 5)), i * i)[1], items) == [
            i * i for i in items
        ]
        assert store.map_parallel(lambda i: i, []) == []
        assert store.map_parallel(lambda i: i + 1, [1]) == [2]
    finally:
        store.close()


def _peak(store: DynamoStore, n: int, width: int | None) -> int:
    running = 0
    peak = 0
    lock = threading.Lock()

    def call(_: Any) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.005)
        with lock:
            running -= 1

    store.map_parallel(call, list(range(n)), width=width)
    return peak


def test_width_bounds_the_calls_in_flight_and_is_capped_to_write_concurrency() -> None:
    store = _store(concurrency=2, write_concurrency=6)
    try:
        assert store.write_concurrency == 6
        assert _peak(store, 30, None) == 2  # the store's concurrency by default
        assert _peak(store, 30, 6) == 6
        assert _peak(store, 30, 50) == 6  # never more threads than the write pool has
        assert _peak(store, 3, 6) == 3
    finally:
        store.close()
    # Without a write concurrency the pool is as wide as `concurrency`.
    assert _store(concurrency=3).write_concurrency == 3


def test_an_error_is_raised_only_after_every_started_call_returned() -> None:
    store = _store(concurrency=4)
    finished: list[int] = []
    started: list[int] = []
    lock = threading.Lock()

    def call(i: int) -> int:
        with lock:
            started.append(i)
        if i in (5, 2):
            raise ValueError(f"item {i}")
        time.sleep(0.02)
        with lock:
            finished.append(i)
        return i

    try:
        with pytest.raises(ValueError, match="item 2"):  # the earliest failed item's error
            store.map_parallel(call, list(range(100)))
        # Nothing left running behind the error: every call that started and did not fail is done.
        assert sorted(finished) == sorted(i for i in started if i not in (5, 2))
        assert len(started) < 100  # and no new call started once one failed
    finally:
        store.close()
