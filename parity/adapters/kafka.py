"""Kafka consumer: batches of records, explicit commits, rebalance callbacks, lag.

confluent-kafka was chosen over kafka-python by measurement on this stack (≈900k vs ≈17k
messages/s consumed from one process, see BENCHMARKS.md): at 17k/s the client alone would cap
the verifier below DynamoDB's own batch-read rate.

Auto-commit is off: offsets are committed only by `commit()`, after every record before the
offset is resolved (see `parity.core.ledger`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from confluent_kafka import OFFSET_BEGINNING, OFFSET_INVALID, Consumer, KafkaError, KafkaException, TopicPartition

from parity.core.errors import BrokerUnavailable
from parity.core.ledger import TopicPartition as TP
from parity.logging import kafka_client_logger

log = structlog.get_logger("parity.daemon")

# librdkafka waits 30 s to set up a connection and 60 s for any request by default.
KAFKA_TIMEOUTS = {"socket.connection.setup.timeout.ms": 10_000, "socket.timeout.ms": 30_000}


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None

    @property
    def tp(self) -> TP:
        return (self.topic, self.partition)


class KafkaSource:
    """The change-topic consumer (a `parity.adapters.ports.ChangeSource`)."""

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        group_id: str,
        topics: Sequence[str],
        options: dict[str, Any] | None = None,
        session_timeout_ms: int = 10_000,
        on_assign: Callable[[list[TP]], None] | None = None,
        on_revoke: Callable[[list[TP]], None] | None = None,
        consumer_factory: Callable[[dict[str, Any]], Any] = Consumer,
    ) -> None:
        # What the offset guarantees rest on; applied after `options` as well, so that even an
        # option that slipped past config validation (RESERVED_KAFKA_OPTIONS) cannot change it.
        reserved: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers,
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
        }
        conf: dict[str, Any] = {
            **reserved,
            "session.timeout.ms": session_timeout_ms,
            "heartbeat.interval.ms": max(500, session_timeout_ms // 4),
            # A batch may wait out a slow DynamoDB; give it room before the group evicts us.
            "max.poll.interval.ms": 300_000,
            "enable.partition.eof": False,
            "allow.auto.create.topics": False,
            "topic.metadata.refresh.interval.ms": 5000,
            # Bounded waits on a broker that accepts and never answers (a commit, a fetch):
            # overridable through kafka.options.
            **KAFKA_TIMEOUTS,
            # librdkafka's lines go through parity's logging (JSON, rate-limited), served by consume().
            "logger": kafka_client_logger(),
            **(options or {}),
            **reserved,
        }
        self._on_assign = on_assign
        # Public: the daemon loop sets it once it exists (after the source was built).
        self.on_revoke = on_revoke
        self.consumer = consumer_factory(conf)
        self.topics = list(topics)
        self.assigned: set[TP] = set()
        # True once the group gave this member an assignment, even an empty one (more replicas
        # than partitions): readiness means "in the group", not "owns partitions" (docs/deploy.md).
        self.joined = False
        self.positions: dict[TP, int] = {}
        self.watermark_behind: set[TP] = set()  # partitions whose reported end is below our position
        self.high_watermarks: dict[TP, int] = {}  # as last seen by lag()
        # Where consumption starts on a partition nothing has been read from since assignment
        # (its committed offset), so an idle, fully consumed partition has a known lag of 0.
        self._start: dict[TP, int | None] = {}
        self.consumer.subscribe(self.topics, on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._lost)

    def _assigned(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        tps = [(p.topic, p.partition) for p in partitions]
        self.joined = True
        self.assigned.update(tps)
        # When a restarted replica is back at work is read off these lines (bench/recovery.py).
        log.info("partitions assigned", assigned=len(tps), holding=len(self.assigned))
        if self._on_assign:
            self._on_assign(tps)

    def _revoked(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        tps = [(p.topic, p.partition) for p in partitions]
        if tps:
            log.info("partitions revoked", revoked=len(tps), holding=len(self.assigned - set(tps)))
        if self.on_revoke:
            self.on_revoke(tps)
        for tp in tps:
            self.assigned.discard(tp)
            self.positions.pop(tp, None)
            self.high_watermarks.pop(tp, None)
            self._start.pop(tp, None)

    def _lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        # The group evicted us (session timeout, broker gone): out of the group until re-assigned.
        self.joined = False
        self._revoked(consumer, partitions)

    def poll_batch(self, max_records: int, timeout_s: float) -> list[Record]:
        try:
            msgs = self.consumer.consume(num_messages=max_records, timeout=timeout_s)
        except KafkaException as exc:
            raise broker_unavailable(exc) from exc
        out: list[Record] = []
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
                    continue
                if err.retriable() or not err.fatal():
                    continue
                fatal = KafkaException(err)
                raise broker_unavailable(fatal) from fatal
            ts_type, ts = m.timestamp()
            rec = Record(m.topic(), m.partition(), m.offset(), m.key(), m.value(), ts if ts_type else None)
            self.positions[rec.tp] = rec.offset + 1
            out.append(rec)
        return out

    def commit(self, offsets: dict[TP, int]) -> None:
        if not offsets:
            return
        tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items() if (t, p) in self.assigned]
        if tps:
            try:
                self.consumer.commit(offsets=tps, asynchronous=False)
            except KafkaException as exc:  # e.g. UNKNOWN_MEMBER_ID after a broker restart
                raise broker_unavailable(exc) from exc

    def rewind(self, tps: Collection[TP]) -> None:
        """Seek the partitions back to their committed offsets (the earliest offset where nothing
        is committed): their uncommitted records are read again."""
        if not tps:
            return
        try:
            committed = self.consumer.committed([TopicPartition(t, p) for t, p in tps], timeout=10)
            for tp in committed:
                off = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
                self.consumer.seek(TopicPartition(tp.topic, tp.partition, off))
        except KafkaException as exc:
            raise broker_unavailable(exc) from exc

    def lag(self) -> dict[TP, int]:
        """Messages behind per assigned partition, from the high watermark cached from fetch
        responses (ListOffsets is wrong on some brokers, and costs a round trip)."""
        out: dict[TP, int] = {}
        for tp in self.assigned:
            try:
                low, high = self.consumer.get_watermark_offsets(TopicPartition(*tp), cached=True)
            except KafkaException:
                continue
            if high is None or high == OFFSET_INVALID or high < 0:
                continue
            self.high_watermarks[tp] = high
            pos = self.positions.get(tp)
            if pos is None:
                pos = self._start_position(tp, low, high)
            if pos is None:
                continue
            if high < pos:
                # We have consumed records beyond the end the broker reports: its watermark is
                # wrong (seen on tansu after a restart), so the lag is unknown, and a partition
                # with unknown lag is never taken as caught up (that would confirm drift early).
                if tp not in self.watermark_behind:
                    log.warning("broker reports a high watermark below the consumed position; lag unknown",
                                topic=tp[0], partition=tp[1], high_watermark=high, position=pos)
                self.watermark_behind.add(tp)
                continue
            self.watermark_behind.discard(tp)
            out[tp] = high - pos
        return out

    def _start_position(self, tp: TP, low: int | None, high: int) -> int | None:
        if tp not in self._start:
            try:
                [part] = self.consumer.committed([TopicPartition(*tp)], timeout=5)
                self._start[tp] = part.offset if part.offset >= 0 else None
            except (KafkaException, ValueError):
                return None  # asked again on the next call
        start = self._start[tp]
        if start is None:
            # Nothing committed: consumption starts at the earliest offset (auto.offset.reset).
            if low is not None and low >= 0:
                return low
            return 0 if high == 0 else None
        return start

    def close(self) -> None:
        with contextlib.suppress(KafkaException, RuntimeError):
            self.consumer.close()


def broker_unavailable(exc: KafkaException) -> BrokerUnavailable:
    """A Kafka client's failure as the error the daemon redoes its batch for; named as before in
    logs and /readyz ("KafkaException: ..."), with the same text."""
    return BrokerUnavailable(str(exc), kind=type(exc).__name__)
