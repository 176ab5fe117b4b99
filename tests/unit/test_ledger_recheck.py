"""The offset ledger and the recheck store: what may be committed, when a suspicion is decided."""

from __future__ import annotations

import pytest

from parity.core.ledger import OffsetLedger
from parity.core.ratelimit import TokenBucket
from parity.core.recheck import PendingCheck, RecheckStore

pytestmark = pytest.mark.unit

TP = ("pg.public.t", 0)


def test_commit_point_is_the_next_offset_when_nothing_is_pending() -> None:
    ledger = OffsetLedger()
    for off in range(5):
        ledger.consumed(TP, off)
    assert ledger.committable() == {TP: 5}


def test_a_pending_record_holds_its_partition_back_until_released() -> None:
    ledger = OffsetLedger()
    for off in range(10):
        ledger.consumed(TP, off)
    ledger.hold(TP, 3)
    ledger.hold(TP, 7)
    assert ledger.committable() == {TP: 3}
    ledger.mark_committed({TP: 3})
    assert ledger.committable() == {}  # nothing moved
    ledger.release(TP, 3)
    assert ledger.committable() == {TP: 7}
    ledger.release(TP, 7)
    assert ledger.committable() == {TP: 10}


def test_two_holds_on_one_record_need_two_releases() -> None:
    ledger = OffsetLedger()
    ledger.consumed(TP, 0)
    ledger.hold(TP, 0)
    ledger.hold(TP, 0)
    ledger.release(TP, 0)
    assert ledger.committable() == {TP: 0}
    ledger.release(TP, 0)
    assert ledger.committable() == {TP: 1}


def test_revoked_partitions_are_forgotten() -> None:
    ledger = OffsetLedger()
    ledger.consumed(TP, 0)
    ledger.hold(TP, 0)
    ledger.forget([TP])
    assert ledger.committable() == {}
    assert ledger.pending_count() == 0


def _check(
    key: str, first_seen: float, grace: float = 30.0, sched=(1, 2, 5, 15, 30), event_ts: float | None = None
) -> PendingCheck:
    return PendingCheck(
        source="public.t",
        key_id=("T", key),
        key={"pk": key},
        expected={"pk": key},
        unavailable=(),
        lsn=1,
        event_ts=first_seen if event_ts is None else event_ts,
        first_seen=first_seen,
        grace_s=grace,
        schedule=tuple(sched),
        tp=TP,
        offset=0,
    )


def _dues(store: RecheckStore, start: float, until: float) -> list[float]:
    dues = []
    now = start
    while now < until:
        now += 0.25
        for due in store.due(now):
            dues.append(round(due.due - start, 2))
            if due.grace_over(now):
                store.decide(due, now)
            else:
                store.reschedule(due)
    return dues


def test_rechecks_follow_the_schedule_from_the_first_mismatch_up_to_the_grace_point() -> None:
    store = RecheckStore(10)
    c = _check("a", first_seen=100.0)
    assert store.add(c)
    assert store.due(100.5) == []
    assert _dues(store, 100.0, 200.0) == [1, 2, 5, 15, 30]  # the last one is the grace point
    assert store.decided() == [c]  # after it, nothing is read again: only the stream is awaited


def test_the_grace_point_is_measured_from_the_source_commit() -> None:
    store = RecheckStore(10)
    c = _check("a", first_seen=104.0, event_ts=100.0)  # consumed 4 s after the commit
    store.add(c)
    # +1, +2, +5 s after the first read, then the grace point (commit + 30 s = first read + 26 s);
    # the +15 s point comes before it and stays, +30 s is past it and is dropped.
    assert _dues(store, 104.0, 200.0) == [1, 2, 5, 15, 26]


def test_a_confirmation_is_read_only_at_the_grace_point() -> None:
    store = RecheckStore(10)
    c = _check("a", first_seen=100.0, grace=10.0)
    c.confirm_only = True
    store.add(c)
    assert _dues(store, 100.0, 200.0) == [10]


def test_the_grace_period_starts_no_earlier_than_grace_from() -> None:
    c = _check("a", first_seen=10.0, grace=30.0)
    c.grace_from = 25.0  # e.g. the end of a DynamoDB outage
    assert not c.grace_over(54.9)
    assert c.grace_over(55.0)


def test_a_decided_check_is_forgotten_when_superseded_or_revoked() -> None:
    store = RecheckStore(10)
    a, b = _check("a", 0), _check("b", 0)
    store.add(a)
    store.add(b)
    store.decide(a, 30.0)
    store.decide(b, 30.0)
    store.remove(("T", "a"))
    store.drop_partitions({TP})
    assert store.decided() == []
    assert store.due(1000) == []
    assert len(store) == 0


def test_grace_is_over_only_after_the_grace_period() -> None:
    c = _check("a", first_seen=10.0, grace=30.0)
    assert not c.grace_over(39.9)
    assert c.grace_over(40.0)


def test_a_full_store_refuses_new_keys_but_accepts_updates_of_known_ones() -> None:
    store = RecheckStore(1)
    assert store.add(_check("a", 0))
    assert not store.add(_check("b", 0))
    assert store.add(_check("a", 5))
    assert len(store) == 1


def test_superseded_checks_are_not_returned_as_due() -> None:
    store = RecheckStore(10)
    store.add(_check("a", 0))
    store.remove(("T", "a"))
    assert store.due(1000) == []


def test_token_bucket_paces_to_the_rate() -> None:
    bucket = TokenBucket(rate=10, burst=1)
    now = 0.0
    waited = 0.0
    for _ in range(21):
        w = bucket.reserve(now)
        waited += w
        now += w
    assert waited == pytest.approx(2.0)


def test_a_check_re_added_at_the_same_due_time_is_returned_once() -> None:
    store = RecheckStore(10)
    store.add(_check("a", first_seen=0.0))
    store.drop_partitions({TP})
    store.add(_check("a", first_seen=0.0))  # same due time as the stale heap entry
    assert [c.key_id for c in store.due(1.0)] == [("T", "a")]


def test_decided_checks_are_handed_out_once_the_stream_has_passed_their_deciding_read() -> None:
    store = RecheckStore(10)
    a, b, c = _check("a", 0), _check("b", 0), _check("c", 0)
    for x in (a, b, c):
        store.add(x)
    store.decide(b, 40.0)
    store.decide(a, 30.0)
    store.decide(c, 50.0)
    assert store.decided_partitions() == [TP]
    assert store.decided_through(TP, 29.9) == []
    assert store.decided_through(TP, 40.0) == [a, b]  # oldest deciding read first
    assert store.decided_through(TP, 40.0) == []  # each is handed out once
    assert {x.key_id for x in store.decided_in(TP)} == {a.key_id, b.key_id, c.key_id}  # kept until resolved
    store.remove(("T", "c"))
    assert store.decided_through(TP, 100.0) == []  # a superseded check is not handed out
    store.remove(("T", "a"))
    store.remove(("T", "b"))
    assert store.decided_partitions() == []
    assert store.decided_in(TP) == []


def test_a_re_added_decided_check_is_handed_out_by_its_new_deciding_read() -> None:
    store = RecheckStore(10)
    old = _check("a", 0)
    store.add(old)
    store.decide(old, 30.0)
    new = _check("a", 0)
    new.decided_at = 60.0  # a newer event of the key, decided by its first read (a backlog)
    store.add(new)
    assert store.decided_through(TP, 45.0) == []
    assert store.decided_through(TP, 60.0) == [new]


def test_the_per_table_counts_and_oldest_first_seen_are_those_of_the_checks_held() -> None:
    # The store keeps them as it goes (the daemon asks every step); after any mix of adds,
    # re-adds, removals, decisions and revocations they must equal a walk over the checks.
    import random
    from dataclasses import replace

    rng = random.Random(23)
    store = RecheckStore(capacity=150)
    sources = ["public.a", "public.b", "public.c"]
    tps = [("pg.public.t", 0), ("pg.public.t", 1)]
    for step in range(5_000):
        key = f"k{rng.randrange(200)}"
        roll = rng.random()
        if roll < 0.55:
            check = replace(
                _check(key, first_seen=float(rng.randrange(1_000))), source=rng.choice(sources), tp=rng.choice(tps)
            )
            if store.add(check) and rng.random() < 0.2:
                store.decide(check, check.first_seen + 30)
        elif roll < 0.97:
            store.remove(("T", key))
        else:
            store.drop_partitions({rng.choice(tps)})
        if step % 7 == 0 or step > 4_900:
            pending: dict[str, int] = {}
            oldest: dict[str, float] = {}
            for c in store.checks():
                pending[c.source] = pending.get(c.source, 0) + 1
                oldest[c.source] = min(oldest.get(c.source, c.first_seen), c.first_seen)
            assert store.pending_by_source() == pending
            assert store.oldest_by_source() == oldest
            assert store.oldest_first_seen() == min(oldest.values(), default=None)
    assert sum(store.pending_by_source().values()) == len(store) > 0
