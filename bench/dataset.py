"""The benchmark data: real Debezium events in Kafka and the matching items in DynamoDB.

A Postgres table gets `keys` rows (read by Debezium's initial snapshot), then `events - keys`
updates (one per row, in key order, streamed); the Debezium bridge turns each into a Kafka record
(4 partitions). The updates change a
column the mapping excludes (`touches`), so every event's expected item equals the final item
DynamoDB holds: every verdict is a match and the verifier does one read per event, which is the
steady state being measured (mismatches and their re-checks are another, rarer path).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from parity.adapters.kafka import Record
from parity.config_loader import parse_config
from parity.core.config import ParityConfig
from parity.core.events import ChangeEvent, decode_record
from parity.core.mapping import ItemMapper
from parity.core.values import item_to_wire

TABLE = "public.bench_acc"

CREATE_SQL = """
CREATE TABLE IF NOT EXISTS public.bench_acc (
    id          bigint PRIMARY KEY,
    customer_id bigint        NOT NULL,
    status      text          NOT NULL,
    amount      numeric(12,2) NOT NULL,
    currency    text          NOT NULL,
    note        text,
    created_at  timestamptz   NOT NULL,
    updated_at  timestamptz   NOT NULL,
    touches     integer       NOT NULL DEFAULT 0
)"""

INSERT_SQL = """
INSERT INTO public.bench_acc (id, customer_id, status, amount, currency, note, created_at, updated_at)
SELECT i, i %% 5000, (ARRAY['PENDING','SETTLED','FAILED'])[1 + i %% 3], (i %% 100000) / 100.0 + 1,
       'EUR', repeat(md5(i::text), 5), timestamptz '2026-01-01' + i * interval '1 second',
       timestamptz '2026-01-01' + i * interval '1 second'
FROM generate_series(%s::bigint, %s::bigint) AS i"""

UPDATE_SQL = "UPDATE public.bench_acc SET touches = touches + 1 WHERE id BETWEEN %s::bigint AND %s::bigint"

COLUMNS = {
    "id": {"name": "Id"},
    "customer_id": {"name": "CustomerId"},
    "status": {"name": "Status"},
    "amount": {"name": "Amount", "type": "number"},
    "currency": {"name": "Currency"},
    "note": {"name": "Note"},
    "created_at": {"name": "CreatedAt", "type": "timestamp_iso", "precision": "ms"},
    "updated_at": {"name": "UpdatedAt", "type": "timestamp_iso", "precision": "ms"},
    "touches": {"exclude": True},
}


def raw_config(stack: Any, *, prefix: str, target: str, group: str, state_dir: Path, mode: str = "verify",
               concurrency: int = 8) -> dict[str, Any]:
    return {
        "postgres": {"dsn": stack.pg.dsn},
        "kafka": {"bootstrap_servers": stack.kafka.bootstrap, "topic_prefix": prefix, "group_id": group,
                  "session_timeout_ms": 6000, "drift_topic": None, "dead_letter_topic": f"{prefix}.dlq"},
        "dynamodb": {"endpoint": stack.dynamodb.endpoint, "region": "us-east-1",
                     "max_pool_connections": max(32, concurrency + 2)},
        "daemon": {"state_dir": str(state_dir), "batch_max_wait_ms": 100, "dynamo_concurrency": concurrency,
                   "http": {"port": 0}},
        "tables": [{"source": TABLE, "primary_key": ["id"], "target": target, "mode": mode,
                    "keys": {"PK": "ACC#{id}"}, "columns": COLUMNS, "grace_period_s": 5,
                    "recheck_schedule_s": [1, 2, 4]}],
    }


def config(raw: dict[str, Any]) -> ParityConfig:
    return parse_config(raw, source="bench", env={})


def create_dynamo_table(client: Any, name: str) -> None:
    client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
                        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}])


@dataclass
class Dataset:
    topic: str
    prefix: str
    records: list[Record]  # every record of the topic, in partition order
    end_offsets: dict[int, int]  # partition -> offset after its last record
    produce_s: float  # Postgres writes -> every event readable in Kafka (the bridge's rate)
    keys: int


def produce(stack: Any, *, keys: int, events: int, prefix: str = "bench") -> Dataset:
    """Write the rows and updates in Postgres and read back every event the bridge produced."""
    updates = events - keys
    started = time.monotonic()
    with stack.pg.connect() as conn:
        conn.execute(CREATE_SQL)
        # The rows exist before Debezium starts: they arrive as its initial snapshot (op "r",
        # verified like inserts), much faster than streamed inserts on this machine.
        for lo in range(1, keys + 1, 10_000):
            conn.execute(INSERT_SQL, (lo, min(keys, lo + 9_999)))
    bridge = stack.bridge([TABLE], prefix, slot=f"{prefix}_slot")
    topic = bridge.topics[0]
    with stack.pg.connect() as conn:
        for lo in range(1, updates + 1, 10_000):  # streamed: several transactions, as an application
            conn.execute(UPDATE_SQL, (lo, min(updates, lo + 9_999)))
    records = read_topic(stack.kafka.bootstrap, topic, events, timeout=60 + events / 1000)
    produce_s = time.monotonic() - started
    ends: dict[int, int] = {}
    for r in records:
        ends[r.partition] = max(ends.get(r.partition, 0), r.offset + 1)
    return Dataset(topic, prefix, records, ends, produce_s, keys)


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float) -> list[Record]:
    """Every record of `topic` from offset 0 until `expected` are read (no group commits)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-read-{time.time_ns()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        md = consumer.list_topics(topic, timeout=10)
        consumer.assign([TopicPartition(topic, p, 0) for p in md.topics[topic].partitions])
        out: list[Record] = []
        deadline = time.monotonic() + timeout
        while len(out) < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: read {len(out)} of {expected} records in {timeout:.0f}s")
            for m in consumer.consume(10_000, 0.5):
                if m.error() is None:
                    ts_type, ts = m.timestamp()
                    out.append(Record(m.topic(), m.partition(), m.offset(), m.key(), m.value(),
                                      ts if ts_type else None))
        return out
    finally:
        consumer.close()


def final_items(cfg: ParityConfig, records: list[Record]) -> list[dict[str, Any]]:
    """The newest item per key, as parity's mapper builds it (what DynamoDB should hold)."""
    mapping = cfg.tables[0]
    mapper = ItemMapper(mapping)
    newest: dict[Any, tuple[int, dict[str, Any]]] = {}
    for r in records:
        event = decode_record(r.topic, r.key, r.value, mapping.columns)
        if not isinstance(event, ChangeEvent) or event.row is None:
            continue
        item = mapper.item(event.row)
        pk = item["PK"]
        lsn = event.lsn or 0
        if pk not in newest or newest[pk][0] <= lsn:
            newest[pk] = (lsn, item)
    return [item for _lsn, item in newest.values()]


def batch_write(client: Any, table: str, items: list[dict[str, Any]], concurrency: int) -> float:
    """Unconditional BatchWriteItem of `items` (25 per call, `concurrency` threads): seconds."""
    wire = [item_to_wire(i) for i in items]
    chunks = [wire[i : i + 25] for i in range(0, len(wire), 25)]

    def write(chunk: list[dict[str, Any]]) -> None:
        request: dict[str, Any] = {table: [{"PutRequest": {"Item": it}} for it in chunk]}
        while request:
            request = client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(write, chunks))
    return time.perf_counter() - started
