"""KafkaSource.lag(): from the cached high watermark, and unknown (never zero) when the broker's
watermark is below what was already consumed (tansu after a restart, see RELIABILITY.md); its
rewind, and its failures raised as the loop's TransientError."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

from parity.adapters.kafka import KafkaSource
from parity.core.errors import BrokerUnavailable, TransientError

pytestmark = pytest.mark.unit


class _Consumer:
    def __init__(self, conf: dict[str, Any]) -> None:
        self.conf = conf
        self.high: dict[tuple[str, int], int] = {}

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.callbacks = callbacks

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool = False) -> tuple[int, int]:
        assert cached, "lag must use the watermark cached from fetches, not a ListOffsets round trip"
        return 0, self.high[(tp.topic, tp.partition)]


def test_lag_is_the_distance_to_the_watermark_and_unknown_when_the_watermark_is_behind() -> None:
    source = KafkaSource(bootstrap_servers="x:1", group_id="g", topics=["t"], consumer_factory=_Consumer)
    consumer = source.consumer
    source._assigned(consumer, [TopicPartition("t", 0), TopicPartition("t", 1), TopicPartition("t", 2)])
    source.positions.update({("t", 0): 10, ("t", 1): 10, ("t", 2): 10})
    consumer.high.update({("t", 0): 15, ("t", 1): 10, ("t", 2): 4})
    assert source.lag() == {("t", 0): 5, ("t", 1): 0}  # t-2: consumed past the reported end
    assert source.watermark_behind == {("t", 2)}
    consumer.high[("t", 2)] = 12  # the broker's watermark recovered
    assert source.lag()[("t", 2)] == 2
    assert source.watermark_behind == set()


class _CommittedConsumer(_Consumer):
    committed_offsets: ClassVar[dict[tuple[str, int], int]] = {("t", 0): 7, ("t", 1): 3}

    def committed(self, tps: list[TopicPartition], timeout: float = 0) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self.committed_offsets.get((tp.topic, tp.partition), -1001))
                for tp in tps]


def test_a_partition_with_nothing_read_since_assignment_has_its_lag_from_the_committed_offset() -> None:
    # After a restart with everything consumed, no record arrives: without this the lag stayed
    # unknown forever and `parity status` could never say the stream is drained.
    source = KafkaSource(bootstrap_servers="x:1", group_id="g", topics=["t"], consumer_factory=_CommittedConsumer)
    consumer = source.consumer
    source._assigned(consumer, [TopicPartition("t", p) for p in range(4)])
    consumer.high.update({("t", 0): 7, ("t", 1): 5, ("t", 2): 0, ("t", 3): 9})
    # t-2: empty and never committed: nothing to read. t-3: never committed, starts at the low mark 0.
    assert source.lag() == {("t", 0): 0, ("t", 1): 2, ("t", 2): 0, ("t", 3): 9}
    assert source.high_watermarks == {("t", 0): 7, ("t", 1): 5, ("t", 2): 0, ("t", 3): 9}


def test_options_cannot_override_what_the_offset_guarantees_rest_on() -> None:
    # Config validation refuses these (RESERVED_KAFKA_OPTIONS); the consumer does not rely on it alone.
    hostile = {"enable.auto.commit": "true", "enable.auto.offset.store": "true", "group.id": "other",
               "auto.offset.reset": "latest", "bootstrap.servers": "elsewhere:9092", "client.id": "kept"}
    source = KafkaSource(bootstrap_servers="x:1", group_id="g", topics=["t"], options=hostile,
                         consumer_factory=_Consumer)
    conf = source.consumer.conf
    assert conf["enable.auto.commit"] is False and conf["enable.auto.offset.store"] is False
    assert (conf["group.id"], conf["auto.offset.reset"], conf["bootstrap.servers"]) == ("g", "earliest", "x:1")
    assert conf["client.id"] == "kept"


class _SeekingConsumer(_CommittedConsumer):
    def __init__(self, conf: dict[str, Any]) -> None:
        super().__init__(conf)
        self.seeks: list[tuple[str, int, int]] = []
        self.broker_down = False

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append((tp.topic, tp.partition, tp.offset))

    def commit(self, offsets: list[TopicPartition], asynchronous: bool = True) -> None:
        if self.broker_down:
            raise KafkaException(KafkaError(KafkaError.UNKNOWN_MEMBER_ID))


def test_rewind_seeks_each_partition_to_its_committed_offset_or_the_beginning() -> None:
    source = KafkaSource(bootstrap_servers="x:1", group_id="g", topics=["t"], consumer_factory=_SeekingConsumer)
    consumer = source.consumer
    source.rewind([("t", 0), ("t", 2)])  # t-2 has nothing committed
    assert consumer.seeks == [("t", 0, 7), ("t", 2, OFFSET_BEGINNING)]


def test_a_failed_commit_is_a_transient_error_named_as_the_kafka_exception() -> None:
    source = KafkaSource(bootstrap_servers="x:1", group_id="g", topics=["t"], consumer_factory=_SeekingConsumer)
    source._assigned(source.consumer, [TopicPartition("t", 0)])
    source.consumer.broker_down = True
    with pytest.raises(TransientError) as failed:
        source.commit({("t", 0): 3})
    assert isinstance(failed.value, BrokerUnavailable)
    assert failed.value.kind == "KafkaException"
    assert "UNKNOWN_MEMBER_ID" in str(failed.value)
