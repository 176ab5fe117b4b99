"""One Kafka record -> a change to verify or apply (`Work`), a TRUNCATE barrier, or an outcome
counted at once: dead_letter (undecodable, unknown table, unmappable), skipped (heartbeats,
transaction metadata, tombstones, snapshot rows under policy `skip`) or truncate.

Decoding routes the event to its table's mapping (a topic may carry another table's events, see
`ParityConfig.table_for_topic`; a topic shared by routed tables, or matched by
`kafka.topic_pattern`, is routed by each record's source, see docs/debezium.md), decodes it in
the table's `event_format` (envelope or flattened) and builds its expectation (parity.core.expect); an
envelope is decoded and mapped in one pass by the table's compiled plan (parity.core.plan), whose
result is the general path's. The columns an
expectation reports (schema drift, mapped columns missing from the events) are logged here, once
per new column, and kept for `parity status`.
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog

from parity.adapters.kafka import Record
from parity.core.columns import COLUMN_MISSING
from parity.core.config import ParityConfig, TableMapping
from parity.core.errors import DecodeError
from parity.core.events import ChangeEvent, Decoded, Op, Skip, Tombstone, decode_record
from parity.core.expect import Expectation, Unmappable, expect
from parity.core.flattened import decode_flattened, peek_source
from parity.core.keys import canonical_key
from parity.core.ledger import TopicPartition
from parity.core.mapping import ItemMapper
from parity.core.outcomes import Outcome
from parity.core.plan import Planner
from parity.daemon.batch import Barrier, BatchResult, DeadLetter, Work

log = structlog.get_logger("parity.daemon")


class Decoder:
    def __init__(
        self, config: ParityConfig, mappers: Mapping[str, ItemMapper], progress: dict[TopicPartition, float]
    ) -> None:
        self.config = config
        self.mappers = mappers
        on_topic: dict[str, list[TableMapping]] = {}
        for t in config.tables:
            on_topic.setdefault(config.topic_of(t), []).append(t)
        self.by_topic = {topic: tables[0] for topic, tables in on_topic.items() if len(tables) == 1}
        # Topics carrying several tables (a router): each record is routed by its source.
        self.shared = {topic: tables for topic, tables in on_topic.items() if len(tables) > 1}
        self._unmapped_topics: set[str] = set()
        # Per partition, the source time up to which every event has been consumed (the verifier
        # reads it to know when the stream has passed a check's deciding read).
        self.progress = progress
        self._schema_drift: dict[str, set[str]] = {}  # every unmapped column seen, per table
        self._columns_missing: dict[str, set[str]] = {}  # every mapped column events lacked, per table
        # Envelope tables: decode + expect in one compiled pass (parity.core.plan).
        self._planners = {
            t.source: Planner(mappers[t.source])
            for t in config.tables
            if t.event_format == "envelope" and t.source in mappers
        }

    def schema_drift(self) -> dict[str, list[str]]:
        """Source columns seen in events but absent from the mapping (for status and logs)."""
        return {t: sorted(c) for t, c in self._schema_drift.items()}

    def columns_missing(self) -> dict[str, list[str]]:
        """Mapped columns that events arrived without (for status and logs)."""
        return {t: sorted(c) for t, c in self._columns_missing.items()}

    def _route(self, rec: Record, result: BatchResult) -> TableMapping | None:
        """The table `rec` belongs to; None when its outcome is already counted."""
        mapping = self.by_topic.get(rec.topic)
        if mapping is not None:
            return mapping
        candidates = self.shared.get(rec.topic)
        if candidates is None and not self.config.kafka.matches_pattern(rec.topic):
            result.dead_letters.append(DeadLetter(rec, f"unknown table: topic {rec.topic!r} is not mapped", None))
            result.count("<unknown>", Outcome.DEAD_LETTER)
            return None
        pool = candidates or list(self.config.tables)
        source = peek_source(rec.topic, rec.key, rec.value, pool[0].flattened)
        if source is not None:
            named = [t for t in pool if t.source == source or ("." not in source and t.table == source)]
            if len(named) == 1:
                return named[0]
            if not named and candidates is not None:
                named = [t for t in self.config.tables if t.source == source]
                if named:
                    return named[0]
        if source is None and candidates is not None:
            result.dead_letters.append(DeadLetter(
                rec, f"undecodable: topic {rec.topic!r} carries several tables and this record does not name "
                "its table (envelope source block, flattened `table` add.field, or router key field)",
                None, "decode"))
            result.count("<unknown>", Outcome.DEAD_LETTER)
            return None
        self._unmapped(rec, source, result)
        return None

    def _unmapped(self, rec: Record, source: str | None, result: BatchResult) -> None:
        """A record of no mapped table on a routed or pattern-matched topic: counted, not dead-lettered."""
        if rec.topic not in self._unmapped_topics:
            self._unmapped_topics.add(rec.topic)
            log.warning("records of no mapped table on a consumed topic: counted as unmapped",
                        topic=rec.topic, table=source)
        result.count(source or "<unmapped>", Outcome.UNMAPPED)

    def _decode_as(self, mapping: TableMapping, rec: Record) -> tuple[Decoded, Expectation | Unmappable | None]:
        """The record decoded and, when the table's plan built it, its expectation (None: `expect`
        decides). A snapshot row its table skips is not mapped."""
        if mapping.event_format == "flattened":
            flat = decode_flattened(rec.topic, rec.key, rec.value, mapping.columns, mapping.flattened, mapping.source)
            return flat, None
        planner = self._planners.get(mapping.source)
        if planner is None:
            return decode_record(rec.topic, rec.key, rec.value, mapping.columns), None
        return planner.decode(rec.topic, rec.key, rec.value, skip_snapshot=mapping.skips_snapshot)

    def decode(self, rec: Record, now: float, result: BatchResult) -> Work | Barrier | None:
        """`rec` as a change or a barrier; None when its outcome is already counted in `result`."""
        mapping = self._route(rec, result)
        if mapping is None:
            return None
        try:
            decoded, planned = self._decode_as(mapping, rec)
        except DecodeError as exc:
            result.dead_letters.append(DeadLetter(rec, f"undecodable: {exc}", mapping.source, "decode"))
            result.count(mapping.source, Outcome.DEAD_LETTER)
            return None
        if isinstance(decoded, (Skip, Tombstone)):
            result.count(mapping.source, Outcome.SKIPPED)
            return None
        event = decoded
        if event.source != mapping.source:
            other = self.config.table_for_source(event.source)
            if other is None and (rec.topic in self.shared or self.config.kafka.matches_pattern(rec.topic)):
                self._unmapped(rec, event.source, result)
                return None
            if other is None:
                result.dead_letters.append(DeadLetter(rec, f"unknown table {event.source!r}", event.source))
                result.count(event.source, Outcome.DEAD_LETTER)
                return None
            mapping = other
            planned = None  # a plan builds only its own table's expectation
        ts = event.ts_ms / 1000 if event.ts_ms else (rec.timestamp_ms / 1000 if rec.timestamp_ms else now)
        self.progress[rec.tp] = max(self.progress.get(rec.tp, 0.0), ts)
        if event.op is Op.TRUNCATE:
            result.truncated.add(mapping.source)
            result.count(mapping.source, Outcome.TRUNCATE, op=event.op.value)
            if mapping.mode == "shadow" and mapping.truncate == "apply":
                # A barrier: changes before it are applied first, the truncate, then the rest.
                return Barrier(mapping, event.lsn or 0)
            return None
        if event.snapshot:
            result.snapshot_rows[mapping.source] += 1
            result.snapshot_mode[mapping.source] = mapping.mode
            if event.snapshot_table_last:
                result.snapshot_done.add(mapping.source)
            if mapping.skips_snapshot:
                result.count(mapping.source, Outcome.SKIPPED, op=event.op.value)
                return None
        result.cdc_lag.append((mapping.source, max(0.0, now - ts)))
        expectation = planned if planned is not None else expect(self.mappers[mapping.source], event)
        self._note_columns(mapping, expectation)
        if isinstance(expectation, Unmappable):
            result.dead_letters.append(
                DeadLetter(rec, f"unmappable: {expectation.reason}", mapping.source, "mapping")
            )
            result.count(mapping.source, Outcome.DEAD_LETTER, op=event.op.value)
            return None
        return self._work(rec, event, mapping, expectation, ts, now)

    def _work(
        self, rec: Record, event: ChangeEvent, mapping: TableMapping, expectation: Expectation, ts: float, now: float
    ) -> Work:
        target = mapping.write_table
        return Work(
            record=rec,
            event=event,
            mapping=mapping,
            mapper=self.mappers[mapping.source],
            target=target,
            key_id=(target, canonical_key(expectation.key)),
            expectation=expectation,
            lsn=_position(mapping, event, rec),
            event_ts=ts,
            consumed_at=now,
        )

    def _note_columns(self, mapping: TableMapping, found: Expectation | Unmappable) -> None:
        if found.missing:
            seen_missing = self._columns_missing.setdefault(mapping.source, set())
            for col in found.missing:
                if col not in seen_missing:
                    seen_missing.add(col)
                    log.warning(
                        "mapped column not in the events of its table: they are not compared",
                        table=mapping.source,
                        column=col,
                        reason=COLUMN_MISSING,
                        mode=mapping.mode,
                    )
        if found.unmapped:
            seen = self._schema_drift.setdefault(mapping.source, set())
            if not seen.issuperset(found.unmapped):
                log.warning(
                    "schema drift: columns not in the mapping",
                    table=mapping.source,
                    columns=sorted(set(found.unmapped) - seen),
                    rule=mapping.schema_drift,
                )
            seen.update(found.unmapped)


def _position(mapping: TableMapping, event: ChangeEvent, rec: Record) -> int:
    """What orders a key's events: the LSN, or for flattened events without a usable one the Kafka
    offset (a key's events stay on one partition, in commit order). Shadow mode needs the LSN, so
    config validation refuses shadow without it."""
    if mapping.event_format == "flattened" and (mapping.flattened is None or not mapping.flattened.ordered_by_lsn):
        return rec.offset + 1
    return event.lsn or 0
