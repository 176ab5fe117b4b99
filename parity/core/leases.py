"""Shard leases: which replica reads a shard of a DynamoDB Stream (decisions only, no I/O).

A lease is an item of the lease table (parity.adapters.leases) with an owner and a version that
the owner bumps on every renewal. A lease is *expired* when its version has not changed for the
lease duration as measured by the observer's own clock (the scheme of Kinesis' client library):
no clock is compared across machines, so a skewed clock cannot make a replica steal a live
lease. A released lease (no owner) is free at once.

The holder counts a lease as lost once it has not renewed it for the lease duration (another
replica may have taken it by then) and stops reading that shard; a failed conditional renewal
says the same at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

LeaseAction = Literal["create", "take", "wait"]


@dataclass(frozen=True, slots=True)
class LeaseView:
    """A lease as last read from the lease table."""

    shard_id: str
    owner: str | None  # None: released, free to take
    version: int
    checkpoint: str | None  # highest committed sequence number, by whichever owner
    finished: bool  # read to its end and fully committed: children may be read


class LeaseWatch:
    """Per lease, since when (by this replica's clock) its owner and version have not changed."""

    def __init__(self, duration_s: float) -> None:
        if duration_s <= 0:
            raise ValueError(f"lease duration must be positive, got {duration_s}")
        self.duration_s = duration_s
        self._seen: dict[str, tuple[str | None, int, float]] = {}

    def expired(self, lease: LeaseView, now: float) -> bool:
        if lease.owner is None:
            return True
        seen = self._seen.get(lease.shard_id)
        if seen is None or (seen[0], seen[1]) != (lease.owner, lease.version):
            self._seen[lease.shard_id] = (lease.owner, lease.version, now)
            return False
        return now - seen[2] >= self.duration_s

    def forget(self, shard_id: str) -> None:
        self._seen.pop(shard_id, None)


def lease_action(lease: LeaseView | None, me: str, expired: bool) -> LeaseAction:
    """What a replica wanting to read a shard does about its lease: create it (none exists yet),
    take it (released, expired, or recorded as ours by an earlier run of this owner id: taken
    with a condition on the version it was read at, so of two takers one wins), or wait."""
    if lease is None:
        return "create"
    if lease.owner == me or lease.owner is None or expired:
        return "take"
    return "wait"


def renewal_due(last_renewed: float, now: float, duration_s: float) -> bool:
    """Renew three times per lease duration: two renewals may fail before the lease is at risk."""
    return now - last_renewed >= duration_s / 3


def still_held(last_renewed: float, now: float, duration_s: float) -> bool:
    """A lease not renewed for its duration may belong to another replica already: stop reading."""
    return now - last_renewed < duration_s


def fair_share(unfinished_shards: int, live_owners: int) -> int:
    """How many readable shards one of `live_owners` replicas (itself included) takes at most, so
    that a replica starting next to a busy one still finds shards to read as new ones appear."""
    owners = max(1, live_owners)
    return max(1, -(-unfinished_shards // owners))
