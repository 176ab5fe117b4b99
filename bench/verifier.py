"""Verifier throughput: parity's daemon vs the raw BatchGetItem floor vs one GetItem per event,
plus the Kafka client choice (confluent-kafka vs kafka-python on the same topic)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from parity.adapters.clients import dynamodb_client
from parity.adapters.kafka import Record
from parity.core.compare import Match, compare
from parity.core.config import ParityConfig
from parity.core.events import ChangeEvent, decode_record
from parity.core.mapping import ItemMapper
from parity.core.values import item_from_wire, item_to_wire


def run_daemon(cfg: ParityConfig, total: int, timeout: float) -> dict[str, Any]:
    """parity's daemon (build_daemon: KafkaSource, Pipeline, DynamoStore, state store) stepped
    until every record of the topic has an outcome and nothing is pending."""
    from parity.daemon.run import loop_gc
    from parity.daemon.wiring import build_daemon

    daemon = build_daemon(cfg)
    started = time.monotonic()
    first: float | None = None
    first_batch = 0
    resolved = 0
    outcomes: dict[str, int] = {}
    cpu0 = time.process_time()
    try:
        with loop_gc():  # the collector setting `parity run` uses (parity.daemon.app)
            while resolved < total or len(daemon.pipeline.rechecks):
                if time.monotonic() - started > timeout:
                    raise TimeoutError(f"daemon resolved {resolved} of {total} in {timeout:.0f}s")
                result = daemon.step()
                if result is None:
                    continue
                n = sum(result.outcomes.values())
                if n and first is None:
                    first = time.monotonic()
                    first_batch = n
                resolved += n
                for (_t, outcome), k in result.outcomes.items():
                    outcomes[outcome] = outcomes.get(outcome, 0) + k
        done = time.monotonic()
        cpu = time.process_time() - cpu0
    finally:
        daemon.shutdown()
        daemon.state.close()
    assert first is not None
    # The group join (half the session timeout on tansu) is excluded and reported separately.
    # `first` is taken when the first batch is resolved: the rate counts the events after it over
    # the time after it (steady state; schema caches, connection pools and fetches are warm).
    seconds = done - first
    steady = (total - first_batch) / seconds if seconds > 0 else 0.0
    return {"events": total, "seconds": round(seconds, 3), "events_per_s": round(steady),
            "first_batch_events": first_batch,
            "group_join_s": round(first - started, 2), "cpu_s": round(cpu, 2), "outcomes": outcomes}


def _chunks(keys: list[dict[str, Any]], size: int = 100) -> list[list[dict[str, Any]]]:
    """Consecutive chunks of at most `size` keys, none repeating a key (BatchGetItem refuses that)."""
    out: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    seen: set[Any] = set()
    for key in keys:
        pk = key["PK"]["S"]
        if len(current) == size or pk in seen:
            out.append(current)
            current, seen = [], set()
        current.append(key)
        seen.add(pk)
    if current:
        out.append(current)
    return out


def event_keys(cfg: ParityConfig, records: list[Record]) -> list[dict[str, Any]]:
    mapper = ItemMapper(cfg.tables[0])
    hints = cfg.tables[0].columns
    keys = []
    for r in records:
        event = decode_record(r.topic, r.key, r.value, hints)
        if isinstance(event, ChangeEvent) and event.row is not None:
            keys.append(item_to_wire(mapper.key(event.row)))
    return keys


def raw_batch_get(cfg: ParityConfig, keys: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    """The floor: BatchGetItem (consistent, 100 keys a call) of every event's key, `concurrency`
    threads, from one process, with the same boto3 client configuration as the daemon. Items are
    only counted (botocore still parses each response)."""
    client = dynamodb_client(cfg.dynamodb)
    table = cfg.tables[0].target
    chunks = _chunks(keys)

    def get(chunk: list[dict[str, Any]]) -> int:
        request: dict[str, Any] = {table: {"Keys": chunk, "ConsistentRead": True}}
        n = 0
        while request:
            resp = client.batch_get_item(RequestItems=request)
            n += len(resp["Responses"].get(table, []))
            request = resp.get("UnprocessedKeys") or {}
        return n

    started = time.perf_counter()
    cpu0 = time.process_time()
    with ThreadPoolExecutor(concurrency) as pool:
        found = sum(pool.map(get, chunks))
    seconds = time.perf_counter() - started
    return {"keys": len(keys), "found": found, "seconds": round(seconds, 3),
            "events_per_s": round(len(keys) / seconds), "cpu_s": round(time.process_time() - cpu0, 2)}


def naive_get_item(cfg: ParityConfig, records: list[Record], concurrency: int) -> dict[str, Any]:
    """What a team would otherwise write: per event, decode + map, one consistent GetItem,
    compare. Same decode/map/compare code and the same threads as parity: only the batching differs."""
    client = dynamodb_client(cfg.dynamodb)
    mapping = cfg.tables[0]
    mapper = ItemMapper(mapping)
    table = mapping.target

    def verify(part: list[Record]) -> int:
        matches = 0
        for r in part:
            event = decode_record(r.topic, r.key, r.value, mapping.columns)
            if not isinstance(event, ChangeEvent) or event.row is None:
                continue
            expected = mapper.item(event.row)
            resp = client.get_item(TableName=table, Key=item_to_wire(mapper.key(event.row)), ConsistentRead=True)
            actual = item_from_wire(resp["Item"]) if "Item" in resp else None
            matches += isinstance(compare(mapper, expected, actual), Match)
        return matches

    parts = [records[i::concurrency] for i in range(concurrency)]
    started = time.perf_counter()
    cpu0 = time.process_time()
    with ThreadPoolExecutor(concurrency) as pool:
        matches = sum(pool.map(verify, parts))
    seconds = time.perf_counter() - started
    return {"events": len(records), "matches": matches, "seconds": round(seconds, 3),
            "events_per_s": round(len(records) / seconds), "cpu_s": round(time.process_time() - cpu0, 2)}


def kafka_clients(bootstrap: str, topic: str, total: int) -> dict[str, Any]:
    """Consume the whole topic from offset 0 with each client, one after the other."""
    from confluent_kafka import Consumer, TopicPartition
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP

    out: dict[str, Any] = {}
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-ck-{time.time_ns()}",
                         "enable.auto.commit": False})
    md = consumer.list_topics(topic, timeout=10)
    partitions = sorted(md.topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    n = 0
    started = time.perf_counter()
    while n < total and time.perf_counter() - started < 120:
        n += sum(1 for m in consumer.consume(10_000, 1.0) if m.error() is None)
    out["confluent_kafka"] = {"messages": n, "seconds": round(time.perf_counter() - started, 3),
                              "messages_per_s": round(n / (time.perf_counter() - started))}
    consumer.close()
    kc = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    kc.assign([KTP(topic, p) for p in partitions])
    for p in partitions:
        kc.seek(KTP(topic, p), 0)
    n = 0
    started = time.perf_counter()
    while n < total and time.perf_counter() - started < 120:
        for batch in kc.poll(timeout_ms=1000, max_records=10_000).values():
            n += len(batch)
    seconds = time.perf_counter() - started
    out["kafka_python"] = {"messages": n, "seconds": round(seconds, 3), "messages_per_s": round(n / seconds)}
    kc.close()
    out["ratio_confluent_over_kafka_python"] = round(
        out["confluent_kafka"]["messages_per_s"] / max(1, out["kafka_python"]["messages_per_s"]), 1)
    return out


def state_dir(base: Path, name: str) -> Path:
    path = base / name
    path.mkdir(parents=True, exist_ok=True)
    return path
