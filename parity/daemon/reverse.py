"""The reverse direction (after cutover): DynamoDB Stream records checked against Postgres.

Per stream record (`parity.core.streams.StreamRecord`):
- a position already decided (a re-delivery after a restart) is a `duplicate`;
- an item no reverse mapping routes to (another entity of a shared table) is `skipped`;
- of several records of one key in a batch, only the newest is checked (the others `superseded`),
  and a newer record supersedes a key's pending check;
- the Postgres row is read by the primary key parsed back from the item's key, mapped forward and
  compared with the record's image (`parity.core.reverse`). A match is final. A mismatch is a
  suspicion: the application writes DynamoDB first and Postgres second, so the row may land
  later. It is re-read on the table's recheck schedule up to the grace period (from when the
  record was read, see `_suspect`), each time with the *current* DynamoDB item (consistent GetItem):
  a newer DynamoDB change supersedes the record (its own stream record is checked with its own
  grace). Still different at the grace point: drift, once per record, de-duplicated by position.

The stream's checkpoint of a shard never passes an undecided record (`parity.core.reverse_ledger`),
and the decided positions above it are written with the outcomes, in one transaction: after a
crash, re-read records are recognised and nothing is counted twice.
"""

from __future__ import annotations

import copy
import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from parity.adapters.dynamodb import key_tuple
from parity.adapters.ports import DynamoReads, StreamSource
from parity.adapters.state import DriftRecord, Resolution, StateStore, reread_item
from parity.core.compare import AttributeDiff, Match
from parity.core.config import ParityConfig, TableMapping
from parity.core.errors import MappingError, TransientError
from parity.core.keys import canonical_key, key_fragment
from parity.core.mapping import ItemMapper
from parity.core.outcomes import Outcome
from parity.core.recheck import KeyId, PendingCheck, RecheckStore
from parity.core.reverse import OP_OF_EVENT, ReverseKind, ReverseMismatch, ReverseRouter, Routed, reverse_verdict
from parity.core.reverse_ledger import StreamLedger
from parity.core.streams import StreamRecord
from parity.daemon.batch import BatchResult, Item
from parity.daemon.reverse_rows import RowReads
from parity.daemon.run import REREAD_INTERVAL_S, REREAD_MAX_KEYS, Health, Telemetry

log = structlog.get_logger("parity.reverse")

REVERSE_STREAM_FACT = "reverse_stream"  # the reverse loop's snapshot, for `parity status`
REVERSE_POSITIONS_FACT = "reverse_positions"  # decided positions above the checkpoints
UNMAPPED = "<unmapped>"  # the outcome table of stream records no reverse mapping routes to
HEARTBEAT_S = 5.0


def reverse_tables(config: ParityConfig) -> list[TableMapping]:
    return [t for t in config.tables if t.mode == "reverse"]


def record_lsn(record: StreamRecord) -> int:
    """The drift store's LSN of a stream record: stable per position (a re-delivered record's drift
    is the same row), within SQLite's 63 bits (a sequence number has up to 40 digits)."""
    digest = hashlib.blake2b(f"{record.shard_id}/{int(record.sequence_number)}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big") >> 1


def expected_item(record: StreamRecord) -> Item | None:
    return None if record.event_name == "REMOVE" else record.new_image


@dataclass(slots=True)
class _Work:
    record: StreamRecord
    routed: Routed
    key_id: KeyId

    @property
    def op(self) -> str:
        return OP_OF_EVENT[self.record.event_name]


@dataclass
class ReverseVerifier:
    config: ParityConfig
    dynamo: DynamoReads
    rows: RowReads
    ledger: StreamLedger
    rechecks: RecheckStore
    records: dict[KeyId, StreamRecord] = field(default_factory=dict)  # each pending check's record
    open_drift: set[KeyId] = field(default_factory=set)  # keys with open reverse drift

    def __post_init__(self) -> None:
        tables = reverse_tables(self.config)
        self.router = ReverseRouter(tables)
        self.mappers = {t.source: ItemMapper(t) for t in tables}

    # -- first look ----------------------------------------------------------------------------

    def process(self, records: Sequence[StreamRecord], now: float, result: BatchResult) -> None:
        latest: dict[KeyId, _Work] = {}
        for r in records:
            op = OP_OF_EVENT[r.event_name]
            if self.ledger.seen(r):
                self.ledger.redelivered(r)
                routed = self.router.route(r)
                result.count(routed.source if routed else UNMAPPED, Outcome.DUPLICATE, op=op)
                continue
            routed = self.router.route(r)
            if routed is None:
                result.count(UNMAPPED, Outcome.SKIPPED, op=op)
                self.ledger.decide(r)
                continue
            key_id = (r.table, canonical_key(routed.key))
            older = latest.pop(key_id, None)
            if older is not None:  # in shard order: this one is newer
                self._decided(older.record, older.routed.source, Outcome.SUPERSEDED, older.op, result)
            self.ledger.hold(r)
            latest[key_id] = _Work(r, routed, key_id)
        # Reads first, decisions after.
        works = list(latest.values())
        rows = [self._row_item(w.routed) for w in works]
        images = [self._image(w) for w in works]
        for w, (row_item, error), image in zip(works, rows, images, strict=True):
            pending = self.records.get(w.key_id)
            if pending is not None:  # the newer record decides the key now
                self.rechecks.remove(w.key_id)
                del self.records[w.key_id]
                self._decided(pending, w.routed.source, Outcome.SUPERSEDED, OP_OF_EVENT[pending.event_name], result)
            verdict = error or reverse_verdict(w.routed.mapper, image, row_item)
            if isinstance(verdict, Match):
                self._match(w.record, w.routed, w.key_id, now, result)
            else:
                self._suspect(w, image, verdict, now, result)

    def _image(self, w: _Work) -> Item | None:
        """DynamoDB's state the record describes: its new image, nothing for a REMOVE, or, for a
        record without one (a KEYS_ONLY or OLD_IMAGE stream), the item as it is now."""
        if w.record.event_name == "REMOVE" or w.record.new_image is not None:
            return expected_item(w.record)
        return self.dynamo.get(w.record.table, w.routed.key, consistent=True)

    def _row_item(self, routed: Routed) -> tuple[Item | None, ReverseMismatch | None]:
        row = self.rows.row(routed.mapper.mapping, routed.primary_key)
        if row is None:
            return None, None
        try:
            return routed.mapper.item(row), None
        except MappingError as exc:
            # The row holds what no item can: it cannot equal DynamoDB's item.
            diff = AttributeDiff("<row>", "a row the mapping can map", f"MappingError: {exc}")
            return None, ReverseMismatch(ReverseKind.VALUE_MISMATCH, (diff,))

    def _suspect(
        self, w: _Work, image: Item | None, verdict: ReverseMismatch, now: float, result: BatchResult
    ) -> None:
        mapping = w.routed.mapper.mapping
        check = PendingCheck(
            source=mapping.source,
            key_id=w.key_id,
            key=w.routed.key,
            expected=image,
            unavailable=(),
            lsn=record_lsn(w.record),
            event_ts=w.record.approximate_creation_s,
            first_seen=now,
            grace_s=mapping.grace_period_s,
            schedule=mapping.recheck_schedule_s,
            tp=(w.record.shard_id, 0),
            offset=0,
            mismatch=verdict,
            op=w.op,
            # From when parity read the record: ApproximateCreationDateTime is coarse (whole seconds
            # on AWS, rounded down to the minute on DynamoDB Local), and a grace period that ran out
            # before the record was even read would turn every late write of a backlog into drift.
            grace_from=now,
        )
        if self.rechecks.add(check):
            self.records[w.key_id] = w.record
        else:
            self._decided(w.record, mapping.source, Outcome.UNVERIFIED, w.op, result)

    # -- rechecks --------------------------------------------------------------------------------

    def recheck_due(self, now: float, result: BatchResult) -> None:
        due = self.rechecks.due(now)
        if not due:
            return
        current: dict[str, dict[tuple[Any, ...], Item]] = {}
        for target in {c.key_id[0] for c in due}:
            checks = [c for c in due if c.key_id[0] == target]
            names = list(self.config.table(checks[0].source).keys)
            current[target] = self.dynamo.batch_get(target, names, [c.key for c in checks], consistent=True)
        reads = []
        for c in due:
            record = self.records[c.key_id]
            routed = self.router.route(record)
            assert routed is not None  # it routed when the check was added
            names = list(routed.mapper.mapping.keys)
            reads.append((c, record, routed, current[c.key_id[0]].get(key_tuple(names, c.key)), self._row_item(routed)))
        for c, record, routed, item, (row_item, error) in reads:
            op = OP_OF_EVENT[record.event_name]
            if not isinstance(reverse_verdict(routed.mapper, c.expected, item), Match):
                # DynamoDB holds a newer change of the key: its own record decides (with its own grace).
                self._forget(c)
                self._decided(record, c.source, Outcome.SUPERSEDED, op, result)
                continue
            verdict = error or reverse_verdict(routed.mapper, item, row_item)
            if isinstance(verdict, Match):
                self._forget(c)
                self._match(record, routed, c.key_id, now, result)
            elif c.grace_over(now):
                self._forget(c)
                self._drift(c, record, verdict, now, result)
            else:
                c.mismatch = verdict
                self.rechecks.reschedule(c)

    def _forget(self, c: PendingCheck) -> None:
        self.rechecks.remove(c.key_id)
        self.records.pop(c.key_id, None)

    # -- verdicts ----------------------------------------------------------------------------------

    def _decided(self, record: StreamRecord, source: str, outcome: Outcome, op: str, result: BatchResult) -> None:
        self.ledger.decide(record)
        result.count(source, outcome, op=op)

    def _match(self, record: StreamRecord, routed: Routed, key_id: KeyId, now: float, result: BatchResult) -> None:
        self._decided(record, routed.source, Outcome.MATCH, OP_OF_EVENT[record.event_name], result)
        result.verdict_latency.append((routed.source, max(0.0, now - record.approximate_creation_s)))
        if key_id in self.open_drift:
            # Postgres now holds DynamoDB's newer state of a drifted key: healed.
            self.open_drift.discard(key_id)
            result.resolved.append(
                Resolution(source=routed.source, target=record.table, key=routed.key, how="newer_event", at=now)
            )

    def _drift(
        self, c: PendingCheck, record: StreamRecord, verdict: ReverseMismatch, now: float, result: BatchResult
    ) -> None:
        self._decided(record, c.source, Outcome.DRIFT, c.op, result)
        result.drift.append(DriftRecord.confirmed(c, verdict.kind.value, verdict.diffs, now))
        self.open_drift.add(c.key_id)
        result.verdict_latency.append((c.source, max(0.0, now - c.event_ts)))

    def save(self) -> tuple[StreamLedger, RecheckStore, dict[KeyId, StreamRecord], set[KeyId]]:
        """The verifier's state before a step; `restore` puts it back when the step fails (nothing
        of a failed step is persisted or checkpointed, and its records are processed again)."""
        return copy.deepcopy((self.ledger, self.rechecks, self.records, self.open_drift))

    def restore(self, saved: tuple[StreamLedger, RecheckStore, dict[KeyId, StreamRecord], set[KeyId]]) -> None:
        self.ledger, self.rechecks, self.records, self.open_drift = saved

    def reread_open(self, entries: Sequence[tuple[str, str, Item]], now: float, result: BatchResult) -> None:
        """Open reverse drift ((source, target, key) each) re-read on both sides: a key whose
        Postgres row now matches DynamoDB's current item is resolved (`reread`): the late write
        landed after all. Keys with a pending check are left to it."""
        for source, target, key in entries:
            mapper = self.mappers.get(source)
            key_id = (target, canonical_key(key))
            if mapper is None or key_id in self.records:
                continue
            pk = mapper.primary_key_from_item(key)
            if pk is None:
                continue
            item = self.dynamo.get(target, key, consistent=True)
            row_item, error = self._row_item(Routed(mapper, pk, key))
            if error is None and isinstance(reverse_verdict(mapper, item, row_item), Match):
                self.open_drift.discard(key_id)
                result.resolved.append(Resolution(source=source, target=target, key=key, how="reread", at=now))

    def pending_by_table(self) -> dict[str, int]:
        return {t.source: 0 for t in reverse_tables(self.config)} | self.rechecks.pending_by_source()


class ReverseDaemon:
    """The reverse loop: poll the stream -> verify -> re-check -> persist -> checkpoint. It runs
    beside the Kafka loop (`parity.daemon.app.DaemonApp`) on the same state store.

    A failed step (DynamoDB, Postgres or the stream unreachable, the state store unwritable) keeps
    the batch's records and processes them again once the dependency is back, with a fresh recheck
    store: nothing of the failed step was persisted and nothing past it was checkpointed."""

    def __init__(
        self,
        config: ParityConfig,
        *,
        source: StreamSource,
        dynamo: DynamoReads,
        rows: RowReads,
        state: StateStore,
        telemetry: Telemetry | None = None,
        emit: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
        max_records: int | None = None,
        poll_timeout_s: float | None = None,
    ) -> None:
        self.config = config
        self.source = source
        self.rows = rows
        self.state = state
        self.telemetry = telemetry or Telemetry()
        self.emit = emit  # emits the drift outbox; None when the Kafka loop does it
        self.clock = clock
        self.max_records = max_records or config.daemon.batch_max_events
        self.poll_timeout_s = poll_timeout_s if poll_timeout_s is not None else config.daemon.batch_max_wait_ms / 1000
        self.stop_event = threading.Event()
        self.health = Health()
        self._failures = 0
        self._retry: list[StreamRecord] = []  # the records of a failed step, processed first next time
        ledger = StreamLedger()
        facts = state.facts()
        ledger.restore(facts.get(REVERSE_POSITIONS_FACT) or {})
        self.verifier = ReverseVerifier(
            config, dynamo, rows, ledger, RecheckStore(config.daemon.recheck_capacity)
        )
        self._load_open_drift()
        self.started_at = clock()
        previous = facts.get(REVERSE_STREAM_FACT) or {}
        self.last_record_at: float | None = previous.get("last_record_at")
        # The stream's named events add up across restarts (a trimmed shard must stay visible).
        self._events_before: dict[str, int] = dict(previous.get("stream_events") or {})
        self.last_lag: dict[str, float] = {}
        self._written_at = 0.0
        self._next_reread = 0.0

    def _load_open_drift(self) -> None:
        sources = {t.source for t in reverse_tables(self.config)}
        for _rowid, source, _key, text, _lsn in self.state.open_drift():
            if source in sources and text:
                target, key, _expected, _unavailable = reread_item(text)
                self.verifier.open_drift.add((target, canonical_key(key)))

    # -- lifecycle -----------------------------------------------------------------------------

    def run(self) -> None:
        log.info("reverse started", tables=[t.source for t in reverse_tables(self.config)])
        while not self.stop_event.is_set():
            self.step()
        self.shutdown()

    def shutdown(self) -> None:
        try:
            self._commit()
        except Exception as exc:  # the records are re-read and recognised as duplicates
            log.warning("final stream checkpoint failed", error=str(exc))
        try:
            now = self.clock()
            self.state.set_fact(REVERSE_STREAM_FACT, {**self.snapshot(now), "stopped_at": now})
        except Exception as exc:
            log.warning("final reverse snapshot failed", error=str(exc))
        self.source.close()
        self.rows.close()
        log.info("reverse stopped")

    def ready(self) -> bool:
        return self.health.failing_since is None

    # -- one iteration ---------------------------------------------------------------------------

    def step(self) -> BatchResult | None:
        saved = None
        try:
            records = self._retry or self.source.poll(self.max_records, self.poll_timeout_s)
            self._retry = records
            if records or len(self.verifier.rechecks):
                # What a failed step puts back. Its cost grows with the pending checks; an idle
                # loop with none pays nothing (a re-read's in-memory mark is not worth a copy).
                saved = self.verifier.save()
            now = self.clock()
            if records:
                self.last_record_at = now
            result = BatchResult()
            self.verifier.process(records, now, result)
            self.verifier.recheck_due(now, result)
            reread = self._reread_open(now, result)
            pending = self.verifier.pending_by_table()
            result.recheck_backlog = pending
            result.recheck_oldest = self._oldest()
            self.last_lag = self.source.lag_s()
            facts: dict[str, Any] = {REVERSE_POSITIONS_FACT: self.verifier.ledger.decided_above()}
            if result.outcomes or result.drift or now - self._written_at >= HEARTBEAT_S:
                facts[REVERSE_STREAM_FACT] = self.snapshot(now)
                self._written_at = now
            new = self.state.record_batch(dict(result.outcomes), result.drift, facts)
        except TransientError as exc:
            if saved is not None:
                self.verifier.restore(saved)
            self._recover(exc.kind, str(exc))
            return None
        # Persisted: from here a failure must not redo the batch (it would count it twice); the
        # checkpoint simply moves at the next step.
        self._retry = []
        try:
            if reread:
                self.state.touch_reread(reread, now)
            if result.resolved:
                result.resolved = self.state.resolve_drift(result.resolved)
            for d in new:
                log.warning("drift", direction="reverse", table=d.source, kind=d.kind, key=key_fragment(d.key))
            if self.emit is not None and (new or result.resolved):
                self.emit()
            self._commit()
        except TransientError as exc:
            self._recover(exc.kind, str(exc))
            return None
        self.telemetry.batch(result)
        lag = max(self.last_lag.values(), default=0.0)
        self.telemetry.stream_lag({target: lag for target in self.verifier.router.targets})
        if new or result.resolved:
            self.telemetry.drift_open(self.state.open_drift_counts())
        self.health.last_loop_at = now
        self.health.failing_since = None
        self.health.last_error = None
        self._failures = 0
        return result

    def _recover(self, kind: str, message: str) -> None:
        now = self.clock()
        self.health.last_error = f"{kind}: {message}"
        if self.health.failing_since is None:
            self.health.failing_since = now
        self._failures += 1
        self.telemetry.failure(kind)
        log.warning("reverse batch failed; redoing it", error=kind, detail=message, attempt=self._failures)
        self.stop_event.wait(min(30.0, 0.5 * 2 ** min(self._failures, 6)))

    def _reread_open(self, now: float, result: BatchResult) -> list[int]:
        """Every REREAD_INTERVAL_S, a bounded number of open reverse drift keys re-read (least
        recently re-read first); returns the state store rows read."""
        if now < self._next_reread:
            return []
        self._next_reread = now + REREAD_INTERVAL_S
        sources = set(self.verifier.mappers)
        configured = {t.source for t in self.config.tables}
        # Rows of tables no longer configured are touched too (as the Kafka loop does), so they
        # rotate instead of filling every page of least recently re-read rows.
        rows = [
            r for r in self.state.reread_candidates(limit=REREAD_MAX_KEYS, older_than=now - REREAD_INTERVAL_S)
            if r[1] in sources or r[1] not in configured
        ]
        entries = []
        for _rowid, source, _key, text, _lsn in rows:
            if source in sources:
                target, key, _expected, _unavailable = reread_item(text)
                entries.append((source, target, key))
        if entries:
            self.verifier.reread_open(entries, now, result)
        return [r[0] for r in rows]

    def _commit(self) -> None:
        records = self.verifier.ledger.committable()
        if records:
            self.source.commit(records)
            self.verifier.ledger.committed(records)

    def _oldest(self) -> dict[str, float]:
        return self.verifier.rechecks.oldest_by_source()

    def snapshot(self, now: float) -> dict[str, Any]:
        """What `parity status` shows of the reverse direction (see parity.daemon.status)."""
        return {
            "written_at": now,
            "started_at": self.started_at,
            "stopped_at": None,
            "ready": self.ready(),
            "last_error": self.health.last_error,
            "last_record_at": self.last_record_at,
            "pending_rechecks": {k: v for k, v in self.verifier.pending_by_table().items() if v},
            "shard_lag_s": dict(self.last_lag),
            "stream_events": self.stream_events(),
        }

    def stream_events(self) -> dict[str, int]:
        events = dict(self._events_before)
        for name, n in self.source.counts.items():
            events[name] = events.get(name, 0) + n
        return events
