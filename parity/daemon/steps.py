"""Turning a batch of Kafka records into verdicts: decode -> map -> collapse -> verify | shadow.

Every record ends in exactly one outcome, counted per source table:
  match          the target held the expected state (at once, or at a re-check within grace)
  drift          still different after the grace period: a drift record is written
  pending        (transient) waiting in the recheck store; its offset is not committed yet
  superseded     a newer event for the same key arrived before this one was decided
  duplicate      same key and an LSN not newer than one already seen (a redelivery)
  unverified     the recheck store was full: reported, never silently dropped
  not_compared   the event lacks a mapped column altogether (reason `column_missing`: dropped from
                 the table, or misspelt in the mapping): neither compared nor applied, counted per
                 column, logged once per (table, column); see parity.core.columns
  dead_letter    could not be decoded or mapped: sent to the dead-letter topic with a reason
  skipped        heartbeats, transaction metadata, tombstones, snapshot rows under policy `skip`
  truncate       a TRUNCATE: counted and the table is marked for reconciliation
  applied / stale_skipped / failed   shadow mode (see shadow.py)

Reads overlap decoding: while a batch is being decoded and mapped, every 100 new keys of verify
tables go to DynamoDB in the background (`ReadAhead`), so the reads of the first keys are in
flight while the rest of the batch is still CPU work. A read is per key, not per event: the newest
event of the key (after collapse) is compared with it, and a read issued during decoding is
still later than the event it checks. Keys whose event will be a duplicate are not read ahead.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from parity.adapters.dynamodb import BATCH_GET_LIMIT, key_tuple
from parity.adapters.kafka import Record
from parity.adapters.ports import DynamoReads
from parity.adapters.state import DriftRecord, Resolution
from parity.core.columns import COLUMN_MISSING
from parity.core.compare import AttributeDiff, Match, Mismatch, MismatchKind, compare, display, display_pair, same
from parity.core.config import ColumnRule, ParityConfig, TableMapping
from parity.core.errors import DecodeError, MappingError
from parity.core.events import UNAVAILABLE, ChangeEvent, Op, Row, Skip, Tombstone, decode_record
from parity.core.ledger import OffsetLedger, TopicPartition
from parity.core.mapping import ItemMapper, converter
from parity.core.recheck import KeyId, PendingCheck, RecheckStore

Item = dict[str, Any]
log = structlog.get_logger("parity.daemon")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: Record
    reason: str
    source: str | None
    reason_class: str = "other"  # decode | mapping | schema | other: a bounded metric label

    def to_json(self, *, redact_key: bool = False) -> bytes:
        """Where the record is and why it could not be processed, never its value: the value holds
        columns the mapping excludes or redacts (the dead-letter topic is read more widely than
        the source topics). Replay re-reads the record at (topic, partition, offset), see
        docs/runbook.md. The Kafka key holds the row's primary-key columns; with `redact_key` (a
        key column is redacted) it is left out too, and the position alone finds the record."""
        return orjson.dumps(
            {
                "reason": self.reason,
                "reason_class": self.reason_class,
                "table": self.source,
                "topic": self.record.topic,
                "partition": self.record.partition,
                "offset": self.record.offset,
                "timestamp_ms": self.record.timestamp_ms,
                "key": None if redact_key else _text(self.record.key, 4096),
                "key_redacted": redact_key,
            }
        )


def dead_letter_message(dead: DeadLetter, config: ParityConfig) -> bytes:
    """The dead-letter topic's message for `dead`, its key left out when its table redacts a key column."""
    mapping = next((t for t in config.tables if t.source == dead.source), None)
    redact_key = mapping is not None and any(mapping.rule(c).redact for c in mapping.primary_key)
    return dead.to_json(redact_key=redact_key)


def _text(raw: bytes | None, limit: int) -> str | None:
    if raw is None:
        return None
    text = raw[:limit].decode("utf-8", errors="replace")
    return text + ("…" if len(raw) > limit else "")


@dataclass(slots=True)
class Work:
    """One change to verify or apply: a decoded event with its target key and expected item."""

    record: Record
    event: ChangeEvent
    mapping: TableMapping
    mapper: ItemMapper
    target: str
    key: Item
    key_id: KeyId
    expected: Item | None  # None: the row is gone, absence is expected
    unavailable: tuple[str, ...]
    lsn: int
    event_ts: float
    consumed_at: float
    missing: tuple[str, ...] = ()  # mapped columns the event does not carry at all: not_compared


@dataclass(frozen=True, slots=True)
class Barrier:
    """A TRUNCATE to apply in shadow mode, in stream order with the changes around it."""

    mapping: TableMapping
    lsn: int


@dataclass
class BatchResult:
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    events: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (table, op, outcome)
    drift: list[DriftRecord] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    verdict_latency: list[tuple[str, float]] = field(default_factory=list)  # (table, seconds)
    cdc_lag: list[tuple[str, float]] = field(default_factory=list)
    truncated: set[str] = field(default_factory=set)
    schema_drift: dict[str, set[str]] = field(default_factory=dict)  # table -> columns not in the mapping
    snapshot_rows: Counter[str] = field(default_factory=Counter)
    snapshot_done: set[str] = field(default_factory=set)
    shadow_writes: int = 0
    truncate_deleted: dict[str, int] = field(default_factory=dict)  # table -> items deleted by a TRUNCATE
    not_compared: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (table, column, reason)
    resolved: list[Resolution] = field(default_factory=list)  # open drift found healed in this batch

    def count(self, source: str, outcome: str, n: int = 1, op: str = "unknown") -> None:
        self.outcomes[(source, outcome)] += n
        self.events[(source, op, outcome)] += n


def canonical_key(key: Item) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(key.items()))


class ReadAhead:
    """Consistent reads of verify keys, issued in chunks as keys are offered (module docstring)."""

    def __init__(self, dynamo: DynamoReads) -> None:
        self.dynamo = dynamo
        self.issued: set[KeyId] = set()
        self._pending: dict[str, tuple[list[str], list[Item]]] = {}
        self._futures: list[tuple[str, Future[dict[tuple[Any, ...], Item]]]] = []
        self._found: dict[str, dict[tuple[Any, ...], Item]] = {}

    def offer(self, target: str, mapping: TableMapping, key: Item, key_id: KeyId) -> None:
        if key_id in self.issued:
            return
        self.issued.add(key_id)
        _names, keys = self._pending.setdefault(target, (list(mapping.keys), []))
        keys.append(key)
        if len(keys) >= BATCH_GET_LIMIT:
            self._submit(target)

    def _submit(self, target: str) -> None:
        names, keys = self._pending.pop(target)
        self._futures.append((target, self.dynamo.batch_get_async(target, names, keys, consistent=True)))

    def found(self) -> dict[str, dict[tuple[Any, ...], Item]]:
        """Every item read so far, by target and key tuple (waits for the reads in flight)."""
        for target in list(self._pending):
            self._submit(target)
        futures, self._futures = self._futures, []
        for target, future in futures:
            self._found.setdefault(target, {}).update(future.result())
        return self._found


class Pipeline:
    """Decodes and resolves batches; the daemon loop owns I/O ordering (sinks, then commit)."""

    def __init__(
        self,
        config: ParityConfig,
        dynamo: DynamoReads,
        *,
        shadow: Any | None = None,
        dedupe_capacity: int = 1_000_000,
    ) -> None:
        self.config = config
        self.dynamo = dynamo
        self.mappers = {t.source: ItemMapper(t) for t in config.tables}
        self.by_topic = {config.kafka.topic_for(t.source): t for t in config.tables}
        self.ledger = OffsetLedger()
        self.rechecks = RecheckStore(config.daemon.recheck_capacity)
        self.shadow = shadow
        # Newest LSN seen per key: a redelivered or older event is a duplicate, not a new check.
        self._last_lsn: OrderedDict[KeyId, int] = OrderedDict()
        self._last_tp: dict[KeyId, TopicPartition] = {}  # where each key's newest event was read
        self._dedupe_capacity = dedupe_capacity
        # Per partition, the source time up to which every event has been consumed.
        self.progress: dict[TopicPartition, float] = {}
        self.caught_up: Callable[[TopicPartition], bool] = lambda tp: False
        # The daemon sets this when DynamoDB comes back from an outage: the application's writes
        # queued behind the same outage land after it, so no grace period starts before it.
        self.grace_floor = 0.0
        # Keys with open (confirmed, not yet resolved) drift, loaded from the state store at start:
        # a newer event that verifies as a match resolves the key's drift.
        self.open_drift: dict[KeyId, tuple[str, int]] = {}  # -> (source, LSN of the open record)
        self._columns_seen: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = {}
        self._schema_drift: dict[str, set[str]] = {}  # every unmapped column seen, per table
        self._columns_missing: dict[str, set[str]] = {}  # every mapped column events lacked, per table
        self._known_attrs = {
            t.source: frozenset(self.mappers[t.source].plan.rules)
            | frozenset(t.ignore_attributes)
            | {t.version_attribute}
            for t in config.tables
        }

    def _unmapped_columns(self, mapping: TableMapping, row: Row) -> tuple[str, ...]:
        # Rows of one table almost always carry the same columns: cache by the column tuple.
        cols = tuple(row)
        cache_key = (mapping.source, cols)
        extra = self._columns_seen.get(cache_key)
        if extra is None:
            extra = tuple(c for c in cols if c not in mapping.columns)
            if len(self._columns_seen) < 10_000:
                self._columns_seen[cache_key] = extra
        return extra

    def schema_drift(self) -> dict[str, list[str]]:
        """Source columns seen in events but absent from the mapping (for status and logs)."""
        return {t: sorted(c) for t, c in self._schema_drift.items()}

    def columns_missing(self) -> dict[str, list[str]]:
        """Mapped columns that events arrived without (for status and logs)."""
        return {t: sorted(c) for t, c in self._columns_missing.items()}

    def verdict(
        self, mapper: ItemMapper, expected: Item | None, actual: Item | None, unavailable: tuple[str, ...]
    ) -> Match | Mismatch:
        verdict = compare(mapper, expected, actual, unavailable=unavailable)
        if expected is None or actual is None or not isinstance(verdict, Match):
            return verdict
        known = self._known_attrs[mapper.mapping.source]
        if len(expected) <= len(known) and all(a in known for a in expected):
            return verdict
        # Columns added by schema drift under the `compare` rule: compared as plain values.
        diffs = tuple(
            AttributeDiff(a, *display_pair(v, actual[a])) if a in actual else AttributeDiff(a, display(v), "<absent>")
            for a, v in expected.items()
            if a not in known and (a not in actual or not same(v, actual[a]))
        )
        return Mismatch(MismatchKind.VALUE_MISMATCH, diffs) if diffs else verdict

    # -- decode and map ------------------------------------------------------------------------

    def prepare(
        self, records: Sequence[Record], now: float, result: BatchResult, ahead: ReadAhead | None = None
    ) -> list[Work | Barrier]:
        works: list[Work | Barrier] = []
        for rec in records:
            self.ledger.consumed(rec.tp, rec.offset)
            mapping = self.by_topic.get(rec.topic)
            if mapping is None:
                result.dead_letters.append(DeadLetter(rec, f"unknown table: topic {rec.topic!r} is not mapped", None))
                result.count("<unknown>", "dead_letter")
                continue
            try:
                decoded = decode_record(rec.topic, rec.key, rec.value, mapping.columns)
            except DecodeError as exc:
                result.dead_letters.append(DeadLetter(rec, f"undecodable: {exc}", mapping.source, "decode"))
                result.count(mapping.source, "dead_letter")
                continue
            if isinstance(decoded, (Skip, Tombstone)):
                result.count(mapping.source, "skipped")
                continue
            event = decoded
            if event.source != mapping.source:
                other = self.config.table_for_topic(self.config.kafka.topic_for(event.source))
                if other is None:
                    result.dead_letters.append(DeadLetter(rec, f"unknown table {event.source!r}", event.source))
                    result.count(event.source, "dead_letter")
                    continue
                mapping = other
            ts = event.ts_ms / 1000 if event.ts_ms else (rec.timestamp_ms / 1000 if rec.timestamp_ms else now)
            self.progress[rec.tp] = max(self.progress.get(rec.tp, 0.0), ts)
            if event.op is Op.TRUNCATE:
                result.truncated.add(mapping.source)
                result.count(mapping.source, "truncate", op=event.op.value)
                if mapping.mode == "shadow" and mapping.truncate == "apply":
                    # A barrier: changes before it are applied first, the truncate, then the rest.
                    works.append(Barrier(mapping, event.lsn or 0))
                continue
            if event.snapshot:
                result.snapshot_rows[mapping.source] += 1
                if event.snapshot_table_last:
                    result.snapshot_done.add(mapping.source)
                if mapping.mode == "verify" and mapping.snapshot_policy == "skip":
                    result.count(mapping.source, "skipped", op=event.op.value)
                    continue
            result.cdc_lag.append((mapping.source, max(0.0, now - ts)))
            try:
                work = self._work(rec, event, mapping, ts, now)
                if work.expected is not None and _too_deep(work.expected):
                    raise MappingError(f"a value is nested deeper than DynamoDB's {MAX_NESTING} levels")
            except RecursionError:
                # A JSON value nested hundreds deep (Python's recursion limit): a poison pill that
                # would otherwise crash the daemon on every restart. DynamoDB allows 32 levels.
                reason = f"unmappable: a value is nested deeper than DynamoDB's {MAX_NESTING} levels"
                result.dead_letters.append(DeadLetter(rec, reason, mapping.source, "mapping"))
                result.count(mapping.source, "dead_letter", op=event.op.value)
                continue
            except MappingError as exc:
                result.dead_letters.append(DeadLetter(rec, f"unmappable: {exc}", mapping.source, "mapping"))
                result.count(mapping.source, "dead_letter", op=event.op.value)
                continue
            works.append(work)
            if ahead is not None and mapping.mode == "verify" and not work.missing:
                last = self._last_lsn.get(work.key_id)
                if last is None or work.lsn > last or event.snapshot:  # else a duplicate: no read
                    ahead.offer(work.target, mapping, work.key, work.key_id)
        return works

    def _work(self, rec: Record, event: ChangeEvent, mapping: TableMapping, ts: float, now: float) -> Work:
        mapper = self.mappers[mapping.source]
        row = event.row
        if row is not None:
            expected, key = mapper.item_and_key(row)
            unavailable = tuple(mapper.unavailable(row))
            absent = mapper.missing(row)
            if absent:
                seen_missing = self._columns_missing.setdefault(mapping.source, set())
                for col in absent:
                    if col not in seen_missing:
                        seen_missing.add(col)
                        log.warning(
                            "mapped column not in the events of its table: they are not compared",
                            table=mapping.source,
                            column=col,
                            reason=COLUMN_MISSING,
                            mode=mapping.mode,
                        )
            extra = self._unmapped_columns(mapping, row)
            if extra:
                seen = self._schema_drift.setdefault(mapping.source, set())
                if not seen.issuperset(extra):
                    log.warning(
                        "schema drift: columns not in the mapping",
                        table=mapping.source,
                        columns=sorted(set(extra) - seen),
                        rule=mapping.schema_drift,
                    )
                seen.update(extra)
                if mapping.schema_drift == "compare":
                    # A new source column: expected in the target under its own name, typed by value.
                    for col in extra:
                        value = row[col]
                        if value is not None and value is not UNAVAILABLE:
                            expected[col] = _AUTO(value)
        else:
            if event.op is Op.CREATE or event.op is Op.UPDATE or event.op is Op.READ:
                raise MappingError(f"{event.op.value} event without 'after'")
            source_row = event.before if event.before else event.key
            missing = [c for c in mapper.key_columns if c not in source_row]
            if missing:
                raise MappingError(
                    f"delete of {mapping.source} carries only {sorted(source_row)}; the DynamoDB key needs "
                    f"{sorted(missing)}: set REPLICA IDENTITY FULL on the table"
                )
            key = mapper.key(source_row)
            expected = None
            unavailable = ()
            absent = ()
        target = mapping.write_table
        return Work(
            record=rec,
            event=event,
            mapping=mapping,
            mapper=mapper,
            target=target,
            key=key,
            key_id=(target, canonical_key(key)),
            expected=expected,
            unavailable=unavailable,
            lsn=event.lsn or 0,
            event_ts=ts,
            consumed_at=now,
            missing=absent,
        )

    def collapse(self, works: list[Work], result: BatchResult) -> list[Work]:
        """Keep the newest event per key; older ones in the batch are superseded or duplicates."""
        newest: dict[KeyId, Work] = {}
        for w in works:
            last = self._last_lsn.get(w.key_id)
            op = w.event.op.value
            if last is not None and w.lsn <= last and not w.event.snapshot:
                result.count(w.mapping.source, "duplicate", op=op)
                continue
            prev = newest.get(w.key_id)
            if prev is not None:
                if w.lsn < prev.lsn:
                    result.count(w.mapping.source, "duplicate", op=op)
                    continue
                if w.lsn == prev.lsn and w.event.op == prev.event.op:
                    result.count(w.mapping.source, "duplicate", op=op)
                    continue
                _carry_toast(prev, w)
                result.count(prev.mapping.source, "superseded", op=prev.event.op.value)
            newest[w.key_id] = w
        for key_id, w in newest.items():
            self._remember(key_id, w.lsn, w.record.tp)
            pending = self.rechecks.remove(key_id)
            if pending is not None:
                self.ledger.release(pending.tp, pending.offset)
                result.count(pending.source, "superseded", op=pending.op)
        return list(newest.values())

    def _remember(self, key_id: KeyId, lsn: int, tp: TopicPartition) -> None:
        self._last_lsn[key_id] = lsn
        self._last_tp[key_id] = tp
        self._last_lsn.move_to_end(key_id)
        if len(self._last_lsn) > self._dedupe_capacity:
            old, _ = self._last_lsn.popitem(last=False)
            self._last_tp.pop(old, None)

    # -- verify --------------------------------------------------------------------------------

    def process(self, records: Sequence[Record], now: float) -> BatchResult:
        result = BatchResult()
        segment: list[Work] = []
        ahead = ReadAhead(self.dynamo)
        for item in self.prepare(records, now, result, ahead):
            if isinstance(item, Barrier):
                self._dispatch(self.collapse(segment, result), now, result, ahead)
                segment = []
                if self.shadow is None:
                    raise RuntimeError("shadow-mode table configured but no shadow applier wired")
                self.shadow.truncate(item.mapping, item.lsn, result)
            else:
                segment.append(item)
        self._dispatch(self.collapse(segment, result), now, result, ahead)
        return result

    def _dispatch(self, works: list[Work], now: float, result: BatchResult, ahead: ReadAhead) -> None:
        for w in works:
            if w.missing:
                # Comparing the rest would call the event a match with an attribute unchecked;
                # applying it (shadow) would leave that attribute silently stale. Neither: counted.
                result.count(w.mapping.source, "not_compared", op=w.event.op.value)
                for col in w.missing:
                    result.not_compared[(w.mapping.source, col, COLUMN_MISSING)] += 1
        works = [w for w in works if not w.missing]
        verify = [w for w in works if w.mapping.mode == "verify"]
        shadow = [w for w in works if w.mapping.mode == "shadow"]
        if verify:
            self._verify(verify, now, result, ahead)
        if shadow:
            if self.shadow is None:
                raise RuntimeError("shadow-mode table configured but no shadow applier wired")
            self.shadow.apply(shadow, now, result)

    def _verify(self, works: list[Work], now: float, result: BatchResult, ahead: ReadAhead) -> None:
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
                result.count(w.mapping.source, "match", op=w.event.op.value)
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
            result.count(w.mapping.source, "unverified", op=w.event.op.value)

    def recheck_due(self, now: float, result: BatchResult | None = None) -> BatchResult:
        result = result or BatchResult()
        due = self.rechecks.due(now)
        if due:
            self._reread(due, now, result)
        # Decided checks wait only for the stream: confirmed in the first step in which it holds,
        # not at a later schedule point (by then a late write may have landed: a verdict that
        # would depend on the consumer's timing).
        for c in self.rechecks.decided():
            if c.decided_at is not None and self._stream_passed(c, c.decided_at, now, c.mismatch.target_ahead):
                self._confirm(c, now, result)
        return result

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
                self._resolve(c, "match", result)
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
        self._resolve(c, "drift", result)
        record = DriftRecord(
            source=c.source,
            target=c.key_id[0],
            key=c.key,
            kind=verdict.kind.value,
            diffs=[{"attribute": d.attribute, "expected": d.expected, "actual": d.actual} for d in verdict.diffs],
            lsn=c.lsn or 0,
            first_seen=c.first_seen,
            confirmed_at=now,
            op=c.op,
            expected=c.expected,
            unavailable=c.unavailable,
        )
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
        entries: Sequence[tuple[str, str, Item, Item | None, tuple[str, ...], int]],
        now: float,
        result: BatchResult,
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

    def _resolve(self, c: PendingCheck, outcome: str, result: BatchResult) -> None:
        self.rechecks.remove(c.key_id)
        self.ledger.release(c.tp, c.offset)
        result.count(c.source, outcome, op=c.op)

    def revoke(self, tps: list[TopicPartition]) -> None:
        self.rechecks.drop_partitions(set(tps))
        self.ledger.forget(tps)
        # The partitions' uncommitted records will be read again (after a rewind, or by their next
        # owner): their keys' newest LSNs must be forgotten too, or the re-read events would be
        # taken for duplicates and resolved without a check, losing pending drift.
        gone = set(tps)
        for key_id in [k for k, tp in self._last_tp.items() if tp in gone]:
            del self._last_tp[key_id]
            self._last_lsn.pop(key_id, None)
        for tp in tps:
            self.progress.pop(tp, None)


_AUTO = converter(ColumnRule())
MAX_NESTING = 32  # DynamoDB's limit on nested maps and lists


def _too_deep(item: Item) -> bool:
    """True when a map or list nests deeper than DynamoDB allows (iterative: no recursion limit)."""
    stack: list[tuple[Any, int]] = [(v, 1) for v in item.values() if isinstance(v, dict | list)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_NESTING:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def _carry_toast(older: Work, newer: Work) -> None:
    """An unchanged TOASTed column is absent from the newer event; an older event of the same
    batch may still carry its value, which is then the current one."""
    if not newer.unavailable or older.expected is None or newer.expected is None:
        return
    still: list[str] = []
    for attr in newer.unavailable:
        if attr in older.expected and attr not in older.unavailable:
            newer.expected[attr] = older.expected[attr]
        else:
            still.append(attr)
    newer.unavailable = tuple(still)
