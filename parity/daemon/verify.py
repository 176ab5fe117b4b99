"""Verify-mode verdicts: compare each change with a consistent read of its key, and follow a
mismatch through the recheck store (parity.core.recheck) until it matches or is drift.

- `verify`: the first read of a batch's changes. A match is final (a delete only at its grace
  point, when the table confirms deletes); a mismatch is a suspicion (`suspect`).
- `recheck_due`: re-reads the checks that are due; the read at the grace point decides, and a
  decided check is confirmed as drift once the stream has passed that read (`confirm`).
- `reread_open`: re-reads keys with open drift; one that now holds the expected state is resolved.
- A newer event of a key with open drift that verifies as a match heals the key (`healed`).

The offsets of pending checks are held back in the offset ledger until their verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from parity.adapters.dynamodb import key_tuple
from parity.adapters.ports import DynamoReads
from parity.adapters.state import DriftRecord, Resolution
from parity.core.compare import Match, Mismatch, compare, known_attributes
from parity.core.config import ParityConfig
from parity.core.keys import canonical_key
from parity.core.ledger import OffsetLedger, TopicPartition
from parity.core.mapping import ItemMapper
from parity.core.outcomes import Outcome
from parity.core.recheck import KeyId, PendingCheck, RecheckStore
from parity.daemon.batch import BatchResult, Item, OpenDrift, Work
from parity.daemon.readahead import ReadAhead


class Verifier:
    def __init__(
        self,
        config: ParityConfig,
        dynamo: DynamoReads,
        mappers: Mapping[str, ItemMapper],
        *,
        ledger: OffsetLedger,
        rechecks: RecheckStore,
        progress: Mapping[TopicPartition, float],
    ) -> None:
        self.config = config
        self.dynamo = dynamo
        self.mappers = mappers
        self.ledger = ledger
        self.rechecks = rechecks
        self.progress = progress  # per partition, the source time consumed up to (the decoder's)
        self.caught_up: Callable[[TopicPartition], bool] = lambda tp: False
        # The daemon sets this when DynamoDB comes back from an outage: the application's writes
        # queued behind the same outage land after it, so no grace period starts before it.
        self.grace_floor = 0.0
        # Keys with open (confirmed, not yet resolved) drift, loaded from the state store at start:
        # a newer event that verifies as a match resolves the key's drift.
        self.open_drift: dict[KeyId, tuple[str, int]] = {}  # -> (source, LSN of the open record)
        self._known = {source: known_attributes(mapper) for source, mapper in mappers.items()}

    def verdict(
        self, mapper: ItemMapper, expected: Item | None, actual: Item | None, unavailable: tuple[str, ...]
    ) -> Match | Mismatch:
        return compare(mapper, expected, actual, unavailable=unavailable, known=self._known[mapper.mapping.source])

    def verify(self, works: list[Work], now: float, result: BatchResult, ahead: ReadAhead) -> None:
        for w in works:
            ahead.offer(w.target, w.mapping, w.key, w.key_id)  # no-op for keys already read ahead
        found = ahead.found()
        for w in works:
            actual = found.get(w.target, {}).get(key_tuple(list(w.mapping.keys), w.key))
            verdict = self.verdict(w.mapper, w.expected, actual, w.unavailable)
            if isinstance(verdict, Mismatch):
                self._suspect(w, verdict, now, result)
            elif w.expected is None and w.mapping.confirm_deletes and now < self._grace_point(w):
                self._suspect(w, None, now, result, confirm_only=True)
            else:
                result.count(w.mapping.source, Outcome.MATCH, op=w.event.op.value)
                result.verdict_latency.append((w.mapping.source, max(0.0, now - w.event_ts)))
                self._healed(w.key_id, w.key, w.lsn, now, result)

    @staticmethod
    def _grace_s(w: Work) -> float:
        if w.event.snapshot and w.mapping.snapshot_policy == "recheck":
            return w.mapping.snapshot_grace_period_s
        return w.mapping.grace_period_s

    def _grace_point(self, w: Work) -> float:
        """Grace runs from the source commit, or from the end of a DynamoDB outage (grace_floor)."""
        return max(w.event_ts, self.grace_floor) + self._grace_s(w)

    def _suspect(
        self, w: Work, mismatch: Mismatch | None, now: float, result: BatchResult, *, confirm_only: bool = False
    ) -> None:
        grace = self._grace_s(w)
        # A confirmation is one read at the grace point; a suspicion follows the schedule up to it.
        schedule = w.mapping.recheck_schedule_s
        check = PendingCheck(
            source=w.mapping.source,
            key_id=w.key_id,
            key=w.key,
            expected=w.expected,
            unavailable=w.unavailable,
            lsn=w.lsn,
            event_ts=w.event_ts,
            first_seen=now,
            grace_s=grace,
            schedule=schedule,
            tp=w.record.tp,
            offset=w.record.offset,
            mismatch=mismatch,
            op=w.event.op.value,
            grace_from=max(w.event_ts, self.grace_floor),
            confirm_only=confirm_only,
        )
        if mismatch is not None and check.grace_over(now):
            # Consumed after its grace point (a backlog): this first read is the deciding one.
            check.decided_at = now
        if self.rechecks.add(check):
            self.ledger.hold(w.record.tp, w.record.offset)
        else:
            result.count(w.mapping.source, Outcome.UNVERIFIED, op=w.event.op.value)

    def recheck_due(self, now: float, result: BatchResult) -> None:
        due = self.rechecks.due(now)
        if due:
            self._reread(due, now, result)
        # Decided checks wait only for the stream: confirmed in the first step in which it holds,
        # not at a later schedule point (by then a late write may have landed: a verdict that
        # would depend on the consumer's timing).
        # Only the checks the stream has passed are visited (a heap per partition), and all of a
        # partition's only once it is caught up: not every decided check at every step.
        for tp in self.rechecks.decided_partitions():
            for c in self.rechecks.decided_through(tp, self.progress.get(tp, 0.0)):
                self._confirm(c, now, result)
            if self.caught_up(tp):
                for c in self.rechecks.decided_in(tp):
                    if c.decided_at is not None and self._stream_passed(
                        c, c.decided_at, now, c.mismatch.target_ahead
                    ):
                        self._confirm(c, now, result)

    def _reread(self, due: list[PendingCheck], now: float, result: BatchResult) -> None:
        mappings = {c.source: self.config.table(c.source) for c in due}
        ahead = ReadAhead(self.dynamo)  # the same chunked reads as a batch's, for the due checks
        for c in due:
            ahead.offer(c.key_id[0], mappings[c.source], c.key, c.key_id)
        found = ahead.found()
        for c in due:
            mapping = mappings[c.source]
            mapper = self.mappers[c.source]
            actual = found.get(c.key_id[0], {}).get(key_tuple(list(mapping.keys), c.key))
            verdict = self.verdict(mapper, c.expected, actual, c.unavailable)
            at_grace_point = c.grace_over(now)
            if not isinstance(verdict, Mismatch):
                if c.expected is None and mapping.confirm_deletes and not at_grace_point:
                    # A delete seen absent is final only at the grace point, whichever way it got
                    # here: a late write of the old row may still resurrect the item.
                    c.confirm_only = True
                    self.rechecks.reschedule(c)
                    continue
                self._resolve(c, Outcome.MATCH, result)
                result.verdict_latency.append((c.source, max(0.0, now - c.event_ts)))
                self._healed(c.key_id, c.key, c.lsn or 0, now, result)
                continue
            c.mismatch = verdict
            if at_grace_point:
                self.rechecks.decide(c, now)
            else:
                self.rechecks.reschedule(c)

    def _confirm(self, c: PendingCheck, now: float, result: BatchResult) -> None:
        verdict = c.mismatch
        self._resolve(c, Outcome.DRIFT, result)
        record = DriftRecord.confirmed(c, verdict.kind.value, verdict.diffs, now)
        result.drift.append(record)
        self.open_drift[c.key_id] = (c.source, c.lsn or 0)
        result.verdict_latency.append((c.source, max(0.0, now - c.event_ts)))

    def _stream_passed(self, c: PendingCheck, until: float, now: float, target_ahead: bool = False) -> bool:
        """True once every event of the key's partition up to `until` (the deciding read) has been
        consumed, so a newer change to the key committed before the read would already have
        superseded this check. Without it, a lagging consumer would report the target as drifted
        for being *ahead*.

        "Caught up" (nothing more in the partition) also counts, except that a target whose
        freshness column is *newer* than the event waits one more grace period from when the
        check began: its newer change may still be on its way through Debezium and the broker
        (seen under throttling: the daemon reached an old event after its grace had run out,
        with the next change already in DynamoDB but not yet in Kafka)."""
        if self.progress.get(c.tp, 0.0) >= until:
            return True
        if not self.caught_up(c.tp):
            return False
        # "Caught up" covers only what Debezium has delivered so far: a newer change committed
        # before the deciding read may still be on its way (seen under kill -9: a replayed create
        # read long after its grace point, with the row's later delete already in DynamoDB but not
        # yet in Kafka). It gets one grace period from when parity first saw the event, two when
        # the target is ahead. Waiting does not change the verdict (nothing is read again), only
        # leaves time for a newer event to supersede it.
        return now >= c.first_seen + (2 if target_ahead else 1) * c.grace_s

    def reread_open(
        self,
        entries: Sequence[OpenDrift], now: float, result: BatchResult
    ) -> None:
        """Re-read keys with open drift ((source, target, key, expected, unavailable, lsn) each):
        those that now hold the drifted event's expected state are resolved (`reread`, that
        record only). A key with a check pending, or with drift confirmed in this batch, is left
        to its newer event."""
        todo = []
        ahead = ReadAhead(self.dynamo)
        fresh = {(d.target, canonical_key(d.key)) for d in result.drift}
        for source, target, key, expected, unavailable, lsn in entries:
            try:
                mapping = self.config.table(source)
            except KeyError:  # the table left the configuration
                continue
            key_id = (target, canonical_key(key))
            if key_id in self.rechecks or key_id in fresh:
                continue
            ahead.offer(target, mapping, key, key_id)
            todo.append((source, target, key, key_id, expected, unavailable, lsn, mapping))
        if not todo:
            return
        found = ahead.found()
        for source, target, key, key_id, expected, unavailable, lsn, mapping in todo:
            actual = found.get(target, {}).get(key_tuple(list(mapping.keys), key))
            if not isinstance(self.verdict(self.mappers[source], expected, actual, unavailable), Mismatch):
                self.open_drift.pop(key_id, None)
                result.resolved.append(
                    Resolution(source=source, target=target, key=key, how="reread", at=now, lsn=lsn)
                )

    def _healed(self, key_id: KeyId, key: Item, lsn: int, now: float, result: BatchResult) -> None:
        """A newer event of a key with open drift verified as a match: the key is healed. (An older
        event replayed after a rewind is not newer than the drift: it closes nothing.)"""
        entry = self.open_drift.get(key_id)
        if entry is None or lsn < entry[1]:
            return
        del self.open_drift[key_id]
        result.resolved.append(
            Resolution(source=entry[0], target=key_id[0], key=key, how="newer_event", at=now, lsn=lsn)
        )

    def _resolve(self, c: PendingCheck, outcome: Outcome, result: BatchResult) -> None:
        self.rechecks.remove(c.key_id)
        self.ledger.release(c.tp, c.offset)
        result.count(c.source, outcome, op=c.op)
