"""Pending mismatches waiting out their grace period.

A DynamoDB write may land after the CDC event that describes it (dual writes are not atomic),
so a mismatch is only a suspicion. The grace period runs from the *source commit* (the event's
`ts_ms`, what an SRE sets the grace against), or from the end of a DynamoDB outage the daemon saw
if that is later (`grace_from`). The suspicion is re-read on a schedule measured from the first
mismatch (default +1 s, +2 s, +5 s, +15 s, +30 s), keeping only the points before the grace
point, and once more exactly at the grace point. That read decides: if it still differs, the
check stops reading (`decided_at`) and waits only for the stream to pass the read (a newer event
for the key would supersede it; the verifier says when, see `Verifier._stream_passed`); it is
drift as soon as that holds, and since nothing is read again the verdict does not depend on
when the consumer catches up. A verified delete
(`confirm_only`) is never final before its grace-point read: a late write of the old row could
otherwise resurrect it unseen.

Pure: time is passed in. Durability comes from the offset ledger (a pending check holds its
Kafka offset back), so this store itself lives in memory and is bounded: when it is full, new
suspicions are reported as `unverified` instead of being dropped silently.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from parity.core.ledger import TopicPartition

KeyId = tuple[str, Hashable]  # (DynamoDB table, canonical key)


@dataclass(slots=True)
class PendingCheck:
    source: str
    key_id: KeyId
    key: dict[str, Any]
    expected: dict[str, Any] | None  # None: the row is deleted, absence is expected
    unavailable: tuple[str, ...]
    lsn: int | None
    event_ts: float  # when the change happened at the source (seconds)
    first_seen: float  # when parity first saw the mismatch
    grace_s: float
    schedule: tuple[float, ...]
    tp: TopicPartition
    offset: int
    mismatch: Any = None  # the latest compare.Mismatch
    op: str = ""  # the Debezium op of the event, for the drift record
    seq: int = 0  # the store's sequence number of this check's live heap entry
    attempts: int = 0
    due: float = field(default=0.0)
    grace_from: float | None = None  # None: the source commit (event_ts)
    confirm_only: bool = False  # a delete seen absent: only the grace-point read remains
    decided_at: float | None = None  # time of the grace-point read that still differed

    def grace_point(self) -> float:
        start = self.event_ts if self.grace_from is None else max(self.event_ts, self.grace_from)
        return start + self.grace_s

    def next_due(self) -> float:
        """Due time of the next read: the schedule's points (from first_seen) that come before the
        grace point, then the grace point itself. Nothing is read after it (see module doc)."""
        point = self.grace_point()
        if self.confirm_only:
            return point
        early = [self.first_seen + s for s in self.schedule if self.first_seen + s < point]
        return early[self.attempts] if self.attempts < len(early) else point

    def grace_over(self, now: float) -> bool:
        return now >= self.grace_point()


class RecheckStore:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._checks: dict[KeyId, PendingCheck] = {}
        self._heap: list[tuple[float, int, KeyId]] = []
        self._seq = itertools.count()
        # Checks whose grace-point read still differed: no more reads, only the stream to wait for.
        self._decided: dict[KeyId, PendingCheck] = {}
        # The same, per partition, with a heap by the time of the deciding read: the daemon asks
        # every step which ones its consumer has passed, without walking all of them each time.
        self._decided_by_tp: dict[TopicPartition, dict[KeyId, PendingCheck]] = {}
        self._decided_heaps: dict[TopicPartition, list[tuple[float, int, KeyId]]] = {}
        # The checks per source table, and per table a heap by first_seen: the backlog telemetry and
        # the stream snapshot ask every step how many checks each table has and since when, which
        # must not walk the store (it holds up to `capacity` checks in a drift storm). Heap entries
        # of checks no longer held are dropped when they reach the top, or all at once when stale
        # entries outnumber the live ones.
        self._by_source: dict[str, dict[KeyId, PendingCheck]] = {}
        self._first_seen: dict[str, list[tuple[float, int, KeyId]]] = {}
        self._first_seen_seq = itertools.count()

    def __len__(self) -> int:
        return len(self._checks)

    def __contains__(self, key_id: KeyId) -> bool:
        return key_id in self._checks

    def get(self, key_id: KeyId) -> PendingCheck | None:
        return self._checks.get(key_id)

    def add(self, check: PendingCheck) -> bool:
        """Schedule `check`. False when the store is full (the caller reports it as unverified)."""
        if check.key_id not in self._checks and len(self._checks) >= self.capacity:
            return False
        self._undecide(check.key_id)
        check.seq = next(self._seq)
        replaced = self._checks.get(check.key_id)
        if replaced is not None:
            self._unindex(replaced)
        self._checks[check.key_id] = check
        self._index(check)
        if check.decided_at is not None:
            self._mark_decided(check, check.decided_at)
            return True
        check.due = check.next_due()
        heapq.heappush(self._heap, (check.due, check.seq, check.key_id))
        return True

    def reschedule(self, check: PendingCheck) -> None:
        check.attempts += 1
        check.due = check.next_due()
        if self._checks.get(check.key_id) is check:
            check.seq = next(self._seq)
            heapq.heappush(self._heap, (check.due, check.seq, check.key_id))

    def decide(self, check: PendingCheck, read_at: float) -> None:
        """The grace-point read at `read_at` still differed: stop reading, wait for the stream."""
        check.decided_at = read_at
        check.seq = next(self._seq)  # its heap entry, if any, is stale from now on
        if self._checks.get(check.key_id) is check:
            self._mark_decided(check, read_at)

    def _mark_decided(self, check: PendingCheck, read_at: float) -> None:
        self._decided[check.key_id] = check
        self._decided_by_tp.setdefault(check.tp, {})[check.key_id] = check
        heapq.heappush(self._decided_heaps.setdefault(check.tp, []), (read_at, check.seq, check.key_id))

    def _undecide(self, key_id: KeyId) -> None:
        check = self._decided.pop(key_id, None)
        if check is None:
            return
        of_tp = self._decided_by_tp.get(check.tp)
        if of_tp is not None:
            of_tp.pop(key_id, None)
            if not of_tp:  # the partition's heap holds only stale entries now
                del self._decided_by_tp[check.tp]
                self._decided_heaps.pop(check.tp, None)

    def decided(self) -> list[PendingCheck]:
        return list(self._decided.values())

    def decided_partitions(self) -> list[TopicPartition]:
        """Partitions with decided checks waiting for the stream."""
        return list(self._decided_by_tp)

    def decided_through(self, tp: TopicPartition, until: float) -> list[PendingCheck]:
        """The decided checks of `tp` whose deciding read was at or before `until` (the time the
        partition has been consumed up to), oldest read first; they stay in the store."""
        heap = self._decided_heaps.get(tp)
        of_tp = self._decided_by_tp.get(tp, {})
        out: list[PendingCheck] = []
        while heap and heap[0][0] <= until:
            _at, seq, key_id = heapq.heappop(heap)
            check = of_tp.get(key_id)
            if check is not None and check.seq == seq:
                out.append(check)
        return out

    def decided_in(self, tp: TopicPartition) -> list[PendingCheck]:
        """Every decided check of `tp` (for a partition the consumer has caught up with)."""
        return list(self._decided_by_tp.get(tp, {}).values())

    def remove(self, key_id: KeyId) -> PendingCheck | None:
        self._undecide(key_id)
        check = self._checks.pop(key_id, None)
        if check is not None:
            self._unindex(check)
        return check

    def due(self, now: float, limit: int = 10_000) -> list[PendingCheck]:
        out: list[PendingCheck] = []
        while self._heap and self._heap[0][0] <= now and len(out) < limit:
            _due, seq, key_id = heapq.heappop(self._heap)
            check = self._checks.get(key_id)
            # Entries of superseded, re-added or rescheduled checks stay in the heap; only the
            # entry with the check's current sequence number is live.
            if check is None or check.seq != seq:
                continue
            out.append(check)
        return out

    def drop_partitions(self, tps: set[TopicPartition]) -> list[PendingCheck]:
        """Forget the checks of revoked partitions: their new owner re-reads those records."""
        gone = [c for c in self._checks.values() if c.tp in tps]
        for c in gone:
            del self._checks[c.key_id]
            self._unindex(c)
            self._undecide(c.key_id)
        return gone

    def oldest_first_seen(self) -> float | None:
        return min(self.oldest_by_source().values(), default=None)

    def pending_by_source(self) -> dict[str, int]:
        """Checks held per source table (tables with none are absent). O(tables)."""
        # The daemon's HTTP thread asks too (the stream snapshot of /status) while the loop adds
        # and removes checks: list() copies the items in one step, a comprehension over the live
        # view could see the dict change size.
        return {source: len(of_source) for source, of_source in list(self._by_source.items())}

    def oldest_by_source(self) -> dict[str, float]:
        """The earliest first_seen of the checks held, per source table that has one. O(tables),
        plus the stale heap entries it drops."""
        out: dict[str, float] = {}
        for source, of_source in self._by_source.items():
            heap = self._first_seen[source]
            while True:
                first_seen, _seq, key_id = heap[0]  # never empty: every held check has an entry
                check = of_source.get(key_id)
                if check is not None and check.first_seen == first_seen:
                    out[source] = first_seen
                    break
                heapq.heappop(heap)
        return out

    def _index(self, check: PendingCheck) -> None:
        of_source = self._by_source.setdefault(check.source, {})
        of_source[check.key_id] = check
        heap = self._first_seen.setdefault(check.source, [])
        heapq.heappush(heap, (check.first_seen, next(self._first_seen_seq), check.key_id))
        if len(heap) > 2 * len(of_source) + 64:  # mostly stale: rebuild from the live checks
            heap[:] = [(c.first_seen, next(self._first_seen_seq), c.key_id) for c in of_source.values()]
            heapq.heapify(heap)

    def _unindex(self, check: PendingCheck) -> None:
        of_source = self._by_source.get(check.source)
        if of_source is None or of_source.pop(check.key_id, None) is None:
            return
        if not of_source:
            del self._by_source[check.source]
            del self._first_seen[check.source]

    def checks(self) -> list[PendingCheck]:
        return list(self._checks.values())
