"""What the daemon's steps pass along: a change to verify or apply (`Work`), a TRUNCATE barrier, a
dead letter, and the `BatchResult` every step counts into and the loop persists and reports.

The shadow applier is one of the steps (`ShadowPort`); it and the pipeline share these types.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from parity.adapters.kafka import Record
from parity.adapters.state import DriftRecord, Resolution
from parity.core.config import ParityConfig, TableMapping
from parity.core.events import ChangeEvent
from parity.core.expect import Expectation
from parity.core.mapping import ItemMapper
from parity.core.outcomes import Outcome
from parity.core.recheck import KeyId

Item = dict[str, Any]
# An open drift record to re-read: (source, target, key, expected item, unavailable columns, LSN).
OpenDrift = tuple[str, str, Item, Item | None, tuple[str, ...], int]


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
    key_id: KeyId
    expectation: Expectation  # replaced when an older event of the batch carries a TOASTed value
    lsn: int
    event_ts: float
    consumed_at: float

    @property
    def key(self) -> Item:
        return self.expectation.key

    @property
    def expected(self) -> Item | None:
        """None: the row is gone, absence is expected."""
        return self.expectation.expected

    @property
    def unavailable(self) -> tuple[str, ...]:
        return self.expectation.unavailable

    @property
    def missing(self) -> tuple[str, ...]:
        """Mapped columns the event does not carry at all: not_compared."""
        return self.expectation.missing


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
    snapshot_mode: dict[str, str] = field(default_factory=dict)  # table with snapshot rows -> its mode
    shadow_writes: int = 0
    truncate_deleted: dict[str, int] = field(default_factory=dict)  # table -> items deleted by a TRUNCATE
    not_compared: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (table, column, reason)
    resolved: list[Resolution] = field(default_factory=list)  # open drift found healed in this batch
    # After the batch: pending checks per configured table (0 included), and the oldest check's
    # first_seen per table that has one.
    recheck_backlog: dict[str, int] = field(default_factory=dict)
    recheck_oldest: dict[str, float] = field(default_factory=dict)

    def count(self, source: str, outcome: Outcome, n: int = 1, op: str = "unknown") -> None:
        # Plain strings as keys: the counts are written as JSON and SQL text, like they always were.
        name = str(outcome)
        self.outcomes[(source, name)] += n
        self.events[(source, op, name)] += n


class ShadowPort(Protocol):
    """The shadow applier as the pipeline uses it (parity.daemon.shadow.ShadowApplier)."""

    def apply(self, works: list[Work], now: float, result: BatchResult) -> None: ...

    def truncate(self, mapping: TableMapping, lsn: int, result: BatchResult) -> int: ...
