"""Lease decisions (parity.core.leases) with a manual clock."""

from __future__ import annotations

import pytest

from parity.core.leases import LeaseView, LeaseWatch, fair_share, lease_action, renewal_due, still_held

pytestmark = pytest.mark.unit


def _lease(owner: str | None, version: int) -> LeaseView:
    return LeaseView("shard-1", owner, version, checkpoint=None, finished=False)


def test_a_lease_whose_version_does_not_move_for_the_duration_is_expired() -> None:
    watch = LeaseWatch(10.0)
    assert not watch.expired(_lease("a", 3), now=100.0)  # first seen: the clock starts here
    assert not watch.expired(_lease("a", 3), now=109.9)
    assert watch.expired(_lease("a", 3), now=110.0)


def test_a_renewal_restarts_the_clock() -> None:
    watch = LeaseWatch(10.0)
    watch.expired(_lease("a", 3), now=100.0)
    assert not watch.expired(_lease("a", 4), now=109.0)  # renewed
    assert not watch.expired(_lease("a", 4), now=118.0)
    assert watch.expired(_lease("a", 4), now=119.0)


def test_another_owner_at_the_same_version_is_a_change_too() -> None:
    watch = LeaseWatch(10.0)
    watch.expired(_lease("a", 3), now=100.0)
    assert not watch.expired(_lease("b", 3), now=115.0)


def test_a_released_lease_is_free_at_once() -> None:
    assert LeaseWatch(10.0).expired(_lease(None, 7), now=0.0)


def test_a_forgotten_lease_is_watched_from_scratch() -> None:
    watch = LeaseWatch(10.0)
    watch.expired(_lease("a", 3), now=100.0)
    watch.forget("shard-1")
    assert not watch.expired(_lease("a", 3), now=200.0)


def test_a_lease_duration_must_be_positive() -> None:
    with pytest.raises(ValueError, match="lease duration"):
        LeaseWatch(0)


@pytest.mark.parametrize(("lease", "expired", "action"), [
    (None, False, "create"),
    (_lease("me", 4), False, "take"),  # recorded as ours by an earlier run of this owner id
    (_lease(None, 4), False, "take"),
    (_lease("other", 4), True, "take"),
    (_lease("other", 4), False, "wait"),
])
def test_what_a_replica_does_about_a_lease(lease: LeaseView | None, expired: bool, action: str) -> None:
    assert lease_action(lease, "me", expired) == action


def test_renewal_three_times_per_duration_and_lost_after_a_whole_one() -> None:
    assert not renewal_due(100.0, 106.0, 20.0)
    assert renewal_due(100.0, 106.7, 20.0)
    assert still_held(100.0, 119.9, 20.0)
    assert not still_held(100.0, 120.0, 20.0)


@pytest.mark.parametrize(("shards", "owners", "share"), [(4, 2, 2), (5, 2, 3), (1, 2, 1), (3, 1, 3), (0, 3, 1),
                                                         (2, 0, 2)])
def test_fair_share(shards: int, owners: int, share: int) -> None:
    assert fair_share(shards, owners) == share
