"""Postgres -> Debezium bridge -> Kafka, read back by a consumer: the exact Kafka Connect records."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.conftest import unique

pytestmark = pytest.mark.integration


def murmur2_partition(key: bytes, partitions: int) -> int:
    """Java Kafka's default partitioner for keyed records (Utils.murmur2 & 0x7fffffff % n)."""
    m, r, mask = 0x5BD1E995, 24, 0xFFFFFFFF
    length = len(key)
    h = (0x9747B28C ^ length) & mask
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(key[i:i + 4], "little")
        k = (k * m) & mask
        k ^= k >> r
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    tail = length % 4
    base = length - tail
    if tail == 3:
        h ^= key[base + 2] << 16
    if tail >= 2:
        h ^= key[base + 1] << 8
    if tail >= 1:
        h ^= key[base]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions


class TopicReader:
    """Reads a topic from the start of every partition (assign, no group: no join delay)."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("reader"),
                                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        self.consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        self.records: list[Any] = []
        self.ids: set[int] = set()  # primary keys seen, for the bulk test (keys without schema)

    def read_until(self, done: Any, timeout: float = 60.0, track_ids: bool = False) -> list[Any]:
        deadline = time.monotonic() + timeout
        while not done(self.records):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out with {len(self.records)} records")
            self._consume_into(track_ids)
        return self.records

    def drain(self, quiet: float = 2.0, track_ids: bool = False) -> None:
        """Read until nothing new arrives for `quiet` seconds."""
        last = time.monotonic()
        while time.monotonic() - last < quiet:
            if any(msg.error() is None for msg in self._consume_into(track_ids)):
                last = time.monotonic()

    def _consume_into(self, track_ids: bool) -> list[Any]:
        msgs = [m for m in self.consumer.consume(10_000, 0.5) if m.error() is None]
        self.records.extend(msgs)
        if track_ids:
            self.ids.update(json.loads(m.key())["id"] for m in msgs)
        return msgs

    def close(self) -> None:
        self.consumer.close()


def payload(raw: bytes | None) -> Any:
    return None if raw is None else json.loads(raw)["payload"]


def test_insert_update_delete_and_key_update_arrive_as_connect_envelopes(pg: Any, kafka: Any,
                                                                          bridge_factory: Any) -> None:
    table = unique("orders")
    with pg.connect() as conn:
        conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, status text, amount numeric(10,2))")
    bridge = bridge_factory([table], partitions=4)
    topic = bridge.topics[0]
    assert topic == f"{bridge.topics[0].split('.')[0]}.public.{table}"
    with pg.connect() as conn:
        conn.execute(f"INSERT INTO {table} VALUES (1, 'new', 10.50), (2, 'new', 20.00), (3, 'new', 1.25)")
        conn.execute(f"UPDATE {table} SET status = 'paid' WHERE id = 2")
        conn.execute(f"DELETE FROM {table} WHERE id = 1")
        conn.execute(f"UPDATE {table} SET id = 30 WHERE id = 3")  # key change: delete + tombstone + create
    reader = TopicReader(kafka.bootstrap, topic, 4)
    try:
        # 3 creates, 1 update, delete+tombstone, delete+tombstone+create for the key update.
        records = reader.read_until(lambda rs: len(rs) >= 9)
        time.sleep(1.0)
        records = reader.read_until(lambda rs: True)
    finally:
        reader.close()
    assert len(records) == 9

    for msg in records:  # placement as Java's murmur2 partitioner would choose
        assert msg.partition() == murmur2_partition(msg.key(), 4)
    by_key: dict[int, list[Any]] = {}
    for msg in records:
        key = json.loads(msg.key())
        assert set(key) == {"schema", "payload"}  # schemas.enable=true: the Connect JSON shape
        by_key.setdefault(key["payload"]["id"], []).append(payload(msg.value()))

    def ops(key_id: int) -> list[str | None]:
        return [None if v is None else v["op"] for v in by_key[key_id]]

    assert ops(1) == ["c", "d", None]  # the tombstone follows the delete
    assert ops(2) == ["c", "u"]
    assert ops(3) == ["c", "d", None]
    assert ops(30) == ["c"]
    assert by_key[2][1]["after"] == {"id": 2, "status": "paid", "amount": by_key[2][1]["after"]["amount"]}
    assert by_key[1][1]["before"]["id"] == 1 and by_key[1][1]["after"] is None
    assert {v["source"]["table"] for vs in by_key.values() for v in vs if v} == {table}

    # LSNs increase in commit order (per partition, which is the order a consumer sees them).
    for partition in range(4):
        lsns = [payload(m.value())["source"]["lsn"] for m in records
                if m.partition() == partition and m.value() is not None]
        assert lsns == sorted(lsns)
    all_lsns = [payload(m.value())["source"]["lsn"] for m in records if m.value() is not None]
    assert max(all_lsns) > min(all_lsns)


def test_snapshot_rows_arrive_as_reads_then_streaming_continues(pg: Any, kafka: Any,
                                                               bridge_factory: Any) -> None:
    table = unique("items")
    with pg.connect() as conn:
        conn.execute(f"CREATE TABLE {table} (sku text PRIMARY KEY, qty int)")
        conn.execute(f"INSERT INTO {table} SELECT 'sku-' || g, g FROM generate_series(1, 50) g")
    bridge = bridge_factory([table], partitions=2, schemas_enable=False)
    with pg.connect() as conn:
        conn.execute(f"INSERT INTO {table} VALUES ('late', 1)")
    reader = TopicReader(kafka.bootstrap, bridge.topics[0], 2)
    try:
        records = reader.read_until(lambda rs: len(rs) >= 51)
    finally:
        reader.close()
    values = [json.loads(m.value()) for m in records]
    assert "schema" not in values[0]  # schemas.enable=false: the bare envelope
    reads = [v for v in values if v["op"] == "r"]
    assert len(reads) == 50
    assert {v["after"]["sku"] for v in reads} == {f"sku-{i}" for i in range(1, 51)}
    assert [v["after"]["sku"] for v in values if v["op"] == "c"] == ["late"]
    late = next(m for m in records if json.loads(m.value())["op"] == "c")
    assert json.loads(late.key()) == {"sku": "late"}


def test_kill9_of_bridge_mid_bulk_insert_loses_no_row(pg: Any, kafka: Any, bridge_factory: Any) -> None:
    table = unique("bulk")
    rows = 50_000
    with pg.connect() as conn:
        conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, payload text)")
    bridge = bridge_factory([table], partitions=4, schemas_enable=False)
    with pg.connect() as conn:
        for start in range(1, rows + 1, 5_000):  # several transactions, so offsets commit in between
            conn.execute(f"INSERT INTO {table} SELECT g, md5(g::text) "
                         "FROM generate_series(%s::int, %s::int) g", (start, start + 4_999))
    reader = TopicReader(kafka.bootstrap, bridge.topics[0], 4)
    t0 = time.monotonic()
    try:
        reader.read_until(lambda rs: len(rs) >= 15_000, timeout=120, track_ids=True)
        print(f"15k events read after {time.monotonic() - t0:.1f}s")
        seen_at_kill = len(reader.records)
        bridge.kill9()
        assert not bridge.alive()
        reader.drain(track_ids=True)  # everything the killed bridge got into Kafka
        delivered_before_restart = len(reader.ids)
        assert delivered_before_restart < rows, "the bridge finished before it was killed: inconclusive"
        t0 = time.monotonic()
        bridge.start()
        print(f"bridge restart took {time.monotonic() - t0:.1f}s")
        records = reader.read_until(lambda rs: len(reader.ids) >= rows, timeout=180, track_ids=True)
    finally:
        reader.close()
    print(f"all rows read after {time.monotonic() - t0:.1f}s")
    ids = [json.loads(m.key())["id"] for m in records]
    assert set(ids) == set(range(1, rows + 1))  # every row at least once: no gap
    print(f"kill -9 after {seen_at_kill} events read ({delivered_before_restart} rows in Kafka); "
          f"{len(ids) - rows} duplicates re-sent on resume")
