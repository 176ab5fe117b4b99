"""parity.core.dedupe.LsnMemory: the newest LSN per key, bounded, forgotten with its partition;
and parity.core.keys.canonical_key, the key identity it is indexed by."""

from __future__ import annotations

from decimal import Decimal

import pytest

from parity.core.dedupe import LsnMemory
from parity.core.keys import canonical_key

pytestmark = pytest.mark.unit

A = ("Accounts", (("PK", "ACC#1"),))
B = ("Accounts", (("PK", "ACC#2"),))
C = ("Accounts", (("PK", "ACC#3"),))
P0 = ("cdc.public.accounts", 0)
P1 = ("cdc.public.accounts", 1)


def test_an_event_not_newer_than_the_remembered_one_is_stale() -> None:
    memory = LsnMemory(10)
    assert memory.last(A) is None
    assert not memory.not_newer(A, 100)  # an unknown key: nothing to compare with
    memory.remember(A, 100, P0)
    assert memory.last(A) == 100
    assert memory.not_newer(A, 100)  # a redelivery
    assert memory.not_newer(A, 99)  # an older event
    assert not memory.not_newer(A, 101)
    assert not memory.not_newer(B, 1)


def test_the_least_recently_seen_key_is_forgotten_first() -> None:
    memory = LsnMemory(2)
    memory.remember(A, 1, P0)
    memory.remember(B, 2, P0)
    memory.remember(A, 3, P0)  # A seen again: B is now the oldest
    memory.remember(C, 4, P0)
    assert len(memory) == 2
    assert memory.last(B) is None
    assert (memory.last(A), memory.last(C)) == (3, 4)


def test_revoked_partitions_forget_the_keys_last_read_from_them() -> None:
    memory = LsnMemory(10)
    memory.remember(A, 1, P0)
    memory.remember(B, 2, P1)
    memory.remember(C, 3, P0)
    memory.remember(C, 5, P1)  # C's newest event came from P1
    memory.forget_partitions([P0])
    assert memory.last(A) is None
    assert (memory.last(B), memory.last(C)) == (2, 5)
    memory.forget_partitions([P1])
    assert len(memory) == 0


def test_a_forgotten_key_can_be_remembered_again_and_evicted_without_error() -> None:
    memory = LsnMemory(1)
    memory.remember(A, 1, P0)
    memory.forget_partitions([P0])
    memory.remember(B, 2, P0)
    memory.remember(C, 3, P1)  # evicts B
    memory.forget_partitions([P0])  # B's partition: nothing left to forget
    assert (memory.last(B), memory.last(C)) == (None, 3)


def test_canonical_key_is_the_same_whatever_the_attribute_order() -> None:
    one = canonical_key({"PK": "C#12", "SK": Decimal(7)})
    assert one == canonical_key({"SK": Decimal(7), "PK": "C#12"})
    assert one == (("PK", "C#12"), ("SK", Decimal(7)))
    assert one != canonical_key({"PK": "C#12", "SK": Decimal(8)})
    assert hash(one) == hash(canonical_key({"SK": Decimal(7), "PK": "C#12"}))
