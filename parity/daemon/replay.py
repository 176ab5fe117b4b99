"""`parity replay --dlq`: re-verify dead-lettered records once their cause is fixed.

A dead letter holds where its record is (topic, partition, offset), its key and why it failed,
never its value (batch.DeadLetter). Replay reads the dead letters (the dead-letter topic, or a
JSON-lines file of the same messages), re-reads each original record from Kafka at its position
and runs it through the daemon's own steps (parity.daemon.pipeline: decode, expect, verify or
shadow) under the current configuration. Every dead letter ends in one named outcome:

  the pipeline's outcome   match, drift, applied, stale_skipped, dead_letter (still failing, with
                           the new reason), skipped, unmapped, ...
  source_gone              the original record is no longer in Kafka (retention, compaction)
  already_replayed         replayed before (kept in the state store; `--again` replays it anyway)
  malformed                the dead letter itself does not say where its record is

Replayed outcomes are kept apart from the daemon's counters (the fact `dlq_replayed` of the state
store, shown by `parity status`): the daemon counted each record once, as dead_letter, and a
replay never counts it again there, however often it runs.

An old record is compared with the target as it is now: if the row changed since, the newer event
was verified by the daemon, and this one may read as drift; `parity reconcile` settles a table.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from parity.adapters.kafka import KAFKA_TIMEOUTS, Record
from parity.adapters.ports import DynamoReads
from parity.adapters.state import StateStore
from parity.core.config import ParityConfig
from parity.core.outcomes import Outcome
from parity.daemon.batch import BatchResult, ShadowPort
from parity.daemon.pipeline import Pipeline

log = structlog.get_logger("parity.replay")

REPLAYED_FACT = "dlq_replayed"
SOURCE_GONE = "source_gone"
ALREADY_REPLAYED = "already_replayed"
MALFORMED = "malformed"
# Outcomes that mean the record is now fine: the rest make `parity replay` exit 1.
SETTLED = frozenset({Outcome.MATCH, Outcome.APPLIED, Outcome.STALE_SKIPPED, Outcome.SUPERSEDED,
                     Outcome.DUPLICATE, Outcome.SKIPPED, ALREADY_REPLAYED})


@dataclass(frozen=True, slots=True)
class DeadLetterRef:
    """One dead-letter message: where its record is, and why it was dead-lettered."""

    topic: str | None
    partition: int | None
    offset: int | None
    reason: str
    table: str | None

    @property
    def position(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"

    @classmethod
    def parse(cls, raw: bytes) -> DeadLetterRef:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict):
            return cls(None, None, None, "not a parity dead letter (not a JSON object)", None)

        def _int(name: str) -> int | None:
            v = doc.get(name)
            return v if type(v) is int and v >= 0 else None

        topic = doc.get("topic")
        return cls(topic if isinstance(topic, str) and topic else None, _int("partition"), _int("offset"),
                   str(doc.get("reason", "")), doc.get("table") if isinstance(doc.get("table"), str) else None)


@dataclass
class Replayed:
    letter: DeadLetterRef
    outcome: str
    table: str | None = None
    detail: str = ""
    drift: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"position": self.letter.position, "table": self.table or self.letter.table,
                "was": self.letter.reason, "outcome": self.outcome, "detail": self.detail,
                "drift": self.drift}


def replay_consumer(config: ParityConfig, factory: Callable[[dict[str, Any]], Any] = Consumer) -> Any:
    from parity.kafka_auth import client_options

    k = config.kafka
    return factory({
        **client_options(k),
        **KAFKA_TIMEOUTS,
        "bootstrap.servers": k.bootstrap_servers,
        # Assigned partitions only, never subscribed nor committed: the group is not joined.
        "group.id": f"{k.group_id}-replay",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    })


def dead_letters_from_topic(consumer: Any, topic: str, idle_s: float = 3.0, timeout_s: float = 120.0
                            ) -> Iterator[DeadLetterRef]:
    """Every message of the dead-letter topic, from the start to its end (partition EOF events)."""
    try:
        meta = consumer.list_topics(topic, timeout=10)
    except KafkaException as exc:
        raise RuntimeError(f"dead-letter topic {topic}: {exc}") from None
    parts = meta.topics.get(topic)
    if parts is None or parts.error is not None or not parts.partitions:
        return
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts.partitions])
    open_parts = set(parts.partitions)
    deadline = time.monotonic() + timeout_s
    idle_since = time.monotonic()
    while open_parts and time.monotonic() < deadline and time.monotonic() - idle_since < idle_s:
        for m in consumer.consume(100, 0.5):
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:  # this partition is read to its end
                    open_parts.discard(m.partition())
                continue
            idle_since = time.monotonic()
            yield DeadLetterRef.parse(m.value() or b"")
    consumer.unassign()


def dead_letters_from_file(path: Path) -> Iterator[DeadLetterRef]:
    with path.open("rb") as fh:
        for line in fh:
            if line.strip():
                yield DeadLetterRef.parse(line.strip())


def fetch_record(consumer: Any, topic: str, partition: int, offset: int, timeout_s: float = 10.0) -> Record | None:
    """The record at (topic, partition, offset), or None when Kafka no longer has it."""
    tp = TopicPartition(topic, partition, offset)
    try:
        low, _high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    except KafkaException:
        low = None
    if low is not None and low >= 0 and offset < low:
        return None  # deleted by retention
    consumer.assign([tp])
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for m in consumer.consume(1, 0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        return None  # the partition ends before the offset: nothing there any more
                    continue
                if m.offset() != offset:
                    return None  # compacted away: the next record has a later offset
                ts_type, ts = m.timestamp()
                return Record(m.topic(), m.partition(), m.offset(), m.key(), m.value(), ts if ts_type else None)
        return None
    finally:
        consumer.unassign()


class Replayer:
    """Runs dead letters through the daemon's pipeline, one record at a time, to its outcome."""

    def __init__(self, config: ParityConfig, dynamo: DynamoReads, state: StateStore, *,
                 shadow: ShadowPort | None = None, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, settle_timeout_s: float = 120.0) -> None:
        self.config = config
        self.state = state
        self.pipeline = Pipeline(config, dynamo, shadow=shadow)
        # A replayed record is the newest this process will see of its key: no later event can
        # supersede its check, so the stream counts as passed.
        self.pipeline.caught_up = lambda tp: True
        self.clock = clock
        self.sleep = sleep
        self.settle_timeout_s = settle_timeout_s

    def replayed(self) -> dict[str, Any]:
        value = self.state.facts().get(REPLAYED_FACT)
        return value if isinstance(value, dict) else {}

    def run(self, letters: Iterable[DeadLetterRef], fetch: Callable[[str, int, int], Record | None], *,
            again: bool = False) -> list[Replayed]:
        done = self.replayed()
        out: list[Replayed] = []
        for letter in letters:
            if letter.topic is None or letter.partition is None or letter.offset is None:
                out.append(Replayed(letter, MALFORMED, detail=letter.reason or "no topic/partition/offset"))
                continue
            if letter.position in done and not again:
                out.append(Replayed(letter, ALREADY_REPLAYED, detail=f"was {done[letter.position]['outcome']}"))
                continue
            record = fetch(letter.topic, letter.partition, letter.offset)
            if record is None:
                result = Replayed(letter, SOURCE_GONE, detail="the record is no longer in Kafka (retention)")
            else:
                result = self._one(letter, record)
            out.append(result)
            done[letter.position] = {"outcome": result.outcome, "table": result.table, "at": self.clock()}
            self.state.set_fact(REPLAYED_FACT, done)
        return out

    def _one(self, letter: DeadLetterRef, record: Record) -> Replayed:
        # The daemon waits until its stream has passed a check's deciding read before calling a
        # mismatch drift, so a newer event of the key can supersede it; a replay looks at one old
        # record against the target as it is now (module docstring): its stream has passed.
        self.pipeline.progress[record.tp] = math.inf
        result = self.pipeline.process([record], self.clock())
        deadline = self.clock() + self.settle_timeout_s
        while not result.outcomes and self.clock() < deadline:
            # Pending: its grace period is not over yet (a recent record); re-check as the daemon would.
            self.sleep(0.5)
            self.pipeline.recheck_due(self.clock(), result)
        if not result.outcomes:
            return Replayed(letter, Outcome.UNVERIFIED, detail="still pending when the replay's timeout ended")
        (table, outcome), *_ = result.outcomes  # one record in, one outcome out
        # Which attributes differ, never their values: a column may be redacted.
        drift = [{"kind": d.kind, "attributes": [x["attribute"] for x in d.diffs]} for d in result.drift]
        return Replayed(letter, outcome, table, _detail(result), drift)


def _detail(result: BatchResult) -> str:
    if result.dead_letters:
        return result.dead_letters[0].reason
    return ""


def summary(results: list[Replayed]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    return dict(sorted(counts.items()))
