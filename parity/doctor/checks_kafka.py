"""Kafka probes: the broker answers, Debezium's topics exist, where the consumer group stands, and the
drift and dead-letter topics parity writes to.

The probe receives a confluent-kafka AdminClient and a Consumer of `kafka.group_id` that never
subscribes (so it never joins the group or triggers a rebalance of a running daemon).
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from parity.core.config import ParityConfig
from parity.doctor.report import Check, fail, ok, warn

SYSTEM = "kafka"


def metadata(admin: Any, timeout_s: float) -> tuple[Check, Any]:
    """The reachability check and the cluster metadata (None when the broker does not answer)."""
    try:
        md = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        return fail(SYSTEM, "reachable", f"no answer from the brokers: {exc.args[0]}",
                    "check kafka.bootstrap_servers and kafka.options (security.protocol, sasl.*)"), None
    return ok(SYSTEM, "reachable", f"{len(md.brokers)} broker(s), {len(md.topics)} topics"), md


def _existing(md: Any, topic: str) -> Any:
    t = md.topics.get(topic)
    return t if t is not None and t.error is None else None


def probe_kafka(md: Any, consumer: Any, config: ParityConfig, timeout_s: float = 10.0) -> list[Check]:
    k = config.kafka
    checks: list[Check] = []
    present: dict[str, int] = {}
    for m in config.tables:
        if m.mode == "reverse":
            continue  # read from its DynamoDB Stream, not from a Debezium topic (docs/reverse.md)
        topic = config.topic_of(m)
        if topic in present:
            continue  # a topic shared by routed tables: checked once
        t = _existing(md, topic)
        if t is None:
            checks.append(fail(SYSTEM, "topic", f"Debezium topic for {m.source} does not exist",
                               f"start the connector with topic.prefix={k.topic_prefix} and {m.source} in "
                               f"table.include.list (or create {topic} with the partitions you want); "
                               "check kafka.topic_prefix", subject=topic))
            continue
        present[topic] = len(t.partitions)
        checks.append(ok(SYSTEM, "topic", f"{len(t.partitions)} partition(s)", subject=topic))
    checks.extend(_committed(consumer, k.group_id, present, timeout_s))
    sinks: list[tuple[str, str | None, str]] = [
        ("drift_topic", k.drift_topic, "confirmed drift records"),
        ("dead_letter_topic", k.dead_letter_topic, "records parity cannot decode"),
    ]
    for name, sink, writer in sinks:
        if sink is None:
            checks.append(ok(SYSTEM, name, "disabled (kafka.drift_topic: null)"))
        elif _existing(md, sink) is None:
            checks.append(warn(SYSTEM, name, f"does not exist; parity writes {writer} to it",
                               f"create {sink} (or allow the broker to auto-create topics)", subject=sink))
        else:
            checks.append(ok(SYSTEM, name, f"exists ({len(md.topics[sink].partitions)} partition(s))",
                             subject=sink))
    return checks


def _committed(consumer: Any, group: str, topics: dict[str, int], timeout_s: float) -> list[Check]:
    if not topics:
        return []
    wanted = [TopicPartition(t, p) for t, n in topics.items() for p in range(n)]
    try:
        offsets = consumer.committed(wanted, timeout=timeout_s)
    except KafkaException as exc:
        return [fail(SYSTEM, "consumer_group", f"cannot read the committed offsets of {group}: {exc.args[0]}",
                     f"allow Describe/Read on group {group} and its topics", subject=group)]
    checks = []
    for topic, n in topics.items():
        mine = [o for o in offsets if o.topic == topic and o.offset >= 0]
        if not mine:
            text = f"no committed offsets on {topic}: a first start reads it from the earliest offset"
        else:
            per = ", ".join(f"p{o.partition}@{o.offset}" for o in sorted(mine, key=lambda o: o.partition))
            text = f"{len(mine)}/{n} partitions committed on {topic}: {per}"
        checks.append(ok(SYSTEM, "consumer_group", text, subject=group))
    return checks
