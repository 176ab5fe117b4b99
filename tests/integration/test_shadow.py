"""Shadow mode on the real stack: Postgres -> Debezium -> Kafka -> parity -> DynamoDB Local.

TOAST: an unchanged out-of-line value arrives as a placeholder and must not overwrite the stored
attribute. Billing: the single-table example lands six tables in one DynamoDB table, queryable
through its overloaded GSIs. The helpers here are shared with test_shadow_pgbench.py.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from boto3.dynamodb.types import TypeDeserializer
from confluent_kafka import Consumer, TopicPartition

from parity.config_loader import parse_config
from parity.core.config import ParityConfig
from parity.daemon.status import collect_status
from tests.conftest import unique
from tests.integration.verify_harness import DaemonThread, deploy_example, topic_record_count, wait_for

pytestmark = pytest.mark.integration

_DESER = TypeDeserializer()


# -- helpers shared with test_shadow_pgbench.py ---------------------------------------------------


def shadow_config(
    *, pg: Any, kafka: Any, dynamodb: Any, state_dir: Path, prefix: str, tables: list[dict[str, Any]],
    daemon: dict[str, Any] | None = None,
) -> tuple[ParityConfig, Path]:
    raw: dict[str, Any] = {
        "postgres": {"dsn": pg.dsn},
        "kafka": {"bootstrap_servers": kafka.bootstrap, "topic_prefix": prefix, "group_id": f"parity_{prefix}",
                  "session_timeout_ms": 6000, "dead_letter_topic": f"parity.dlq.{prefix}"},
        "dynamodb": {"endpoint": dynamodb.endpoint, "region": "us-east-1"},
        "daemon": {"state_dir": str(state_dir), "batch_max_wait_ms": 100, "http": {"port": 0}, **(daemon or {})},
        "tables": tables,
    }
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "shadow.yaml"
    path.write_text(yaml.safe_dump(raw))
    return parse_config(raw, source="shadow.yaml", env={}), path


def with_group(config_path: Path, group: str) -> tuple[ParityConfig, Path]:
    """The same config under another consumer group (same state dir: the graveyard is kept)."""
    raw = yaml.safe_load(config_path.read_text())
    raw["kafka"]["group_id"] = group
    path = config_path.with_name(f"{group}.yaml")
    path.write_text(yaml.safe_dump(raw))
    return parse_config(raw, source=path.name, env={}), path


def create_table(dynamodb: Any, name: str, key: str = "PK") -> None:
    dynamodb.client().create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
        KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
    )


def scan_all(client: Any, table: str, segments: int = 4) -> dict[str, dict[str, Any]]:
    """Every item of `table` (plain Python values), by its PK[/SK] text. Paged with Limit: an
    unlimited Scan is pathologically slow on DynamoDB Local."""

    def segment(i: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        kw: dict[str, Any] = {"TableName": table, "Limit": 2000, "Segment": i, "TotalSegments": segments}
        while True:
            resp = client.scan(**kw)
            out += [{k: _DESER.deserialize(v) for k, v in it.items()} for it in resp["Items"]]
            if "LastEvaluatedKey" not in resp:
                return out
            kw["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    with ThreadPoolExecutor(segments) as pool:
        parts = list(pool.map(segment, range(segments)))
    return {f"{it['PK']}|{it.get('SK', '')}": it for part in parts for it in part}


def committed_total(bootstrap: str, group: str, topics: list[str]) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        md = consumer.list_topics(timeout=10)
        tps = [TopicPartition(t, p) for t in topics for p in md.topics[t].partitions]
        return sum(max(tp.offset, 0) for tp in consumer.committed(tps, timeout=10))
    finally:
        consumer.close()


def _count(bootstrap: str, topics: list[str]) -> int:
    try:
        return topic_record_count(bootstrap, topics)
    except (KeyError, TimeoutError):  # a topic Debezium has not created yet
        return 0


def wait_drained(bootstrap: str, group: str, topics: list[str], timeout: float, at_least: int = 1) -> int:
    """Until the topics hold `at_least` records (Debezium publishes asynchronously) and the group
    has committed every record of them (offsets are contiguous here)."""
    wait_for(lambda: _count(bootstrap, topics) >= at_least, timeout, f"{at_least} records in {topics}")
    total = topic_record_count(bootstrap, topics)
    wait_for(lambda: committed_total(bootstrap, group, topics) >= total, timeout, f"{group} to commit {total}")
    return total


def outcomes(config: ParityConfig) -> dict[str, dict[str, int]]:
    return {t: row["outcomes"] for t, row in collect_status(config)["tables"].items()}


def summed(counts: dict[str, dict[str, int]], outcome: str) -> int:
    return sum(c.get(outcome, 0) for c in counts.values())


def last_value(bootstrap: str, topic: str, match: Callable[[bytes], bool]) -> bytes | None:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("peek"), "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "enable.partition.eof": True})
    try:
        md = consumer.list_topics(topic, timeout=10)
        consumer.assign([TopicPartition(topic, p, 0) for p in md.topics[topic].partitions])
        found: bytes | None = None
        open_parts = set(md.topics[topic].partitions)
        deadline = time.time() + 30
        while open_parts and time.time() < deadline:
            for m in consumer.consume(100, 1.0):
                if m.error() is not None:
                    open_parts.discard(m.partition())
                elif m.value() is not None and match(m.value()):
                    found = m.value()
        return found
    finally:
        consumer.close()


# -- TOAST ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("writes", ["transactions", "single"])
def test_an_update_of_another_column_leaves_the_toasted_attribute_intact(
    pg: Any, kafka: Any, dynamodb: Any, bridge_factory: Any, tmp_path: Path, writes: str
) -> None:
    schema = unique("toast")
    target = f"docs_{schema}"
    body = secrets.token_urlsafe(15000)  # ~20 KB of random text: incompressible, stored out of line
    with pg.connect() as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.docs (id int PRIMARY KEY, title text NOT NULL, body text)")
        conn.execute(f"ALTER TABLE {schema}.docs ALTER COLUMN body SET STORAGE EXTERNAL")
    create_table(dynamodb, target)
    cfg, _ = shadow_config(
        pg=pg, kafka=kafka, dynamodb=dynamodb, state_dir=tmp_path / "state", prefix=unique("cdc"),
        tables=[{"source": f"{schema}.docs", "primary_key": ["id"], "target": target, "mode": "shadow",
                 "shadow_writes": writes, "keys": {"PK": "DOC#{id}"}, "columns": {"id": {}, "title": {}, "body": {}}}],
        daemon={"shadow_write_concurrency": 16} if writes == "single" else None,
    )
    bridge = bridge_factory([f"{schema}.docs"], topic_prefix=cfg.kafka.topic_prefix)
    with pg.connect() as conn, DaemonThread(cfg):
        conn.execute(f"INSERT INTO {schema}.docs VALUES (1, 'first', %s), (2, 'small', 'tiny')", (body,))
        conn.execute(f"UPDATE {schema}.docs SET title = 'second' WHERE id = 1")
        conn.execute(f"UPDATE {schema}.docs SET title = 'third' WHERE id = 1")
        wait_drained(kafka.bootstrap, cfg.kafka.group_id, bridge.topics, 120, at_least=4)
    # The stream really carried the TOAST placeholder for the last update.
    last = last_value(kafka.bootstrap, bridge.topics[0], lambda v: b'"third"' in v)
    assert last is not None and b"__debezium_unavailable_value" in last
    items = scan_all(dynamodb.client(), target)
    assert items["DOC#1|"]["title"] == "third"
    assert items["DOC#1|"]["body"] == body
    assert items["DOC#2|"]["body"] == "tiny"
    counts = outcomes(cfg)[f"{schema}.docs"]
    assert counts.get("failed", 0) == 0 and counts.get("dead_letter", 0) == 0


# -- billing single-table design ---------------------------------------------------------------------

BILLING_DATA = """
INSERT INTO billing.customer SELECT i, 'First' || i, 'Last' || i, 'c' || i || '@example.com', 'TAX' || i,
    date '1980-01-01' + i, jsonb_build_object('paper', i % 2 = 0, 'lang', 'en'), now() FROM generate_series(1, 60) i;
INSERT INTO billing.billing_account SELECT 1000 + i, i, 'I', 'O', 1 + i % 4, date '2020-01-01' + i, 500.50, now()
    FROM generate_series(1, 60) i;
INSERT INTO billing.subscriber SELECT 1000 + i, '555' || lpad((i * 10 + k)::text, 7, '0'), 'A', 'PLAN' || k,
    date '2021-01-01' + i, NULL, CASE WHEN k = 1 THEN ARRAY['VM', 'DATA'] ELSE NULL END, now()
    FROM generate_series(1, 60) i, generate_series(1, 2) k;
INSERT INTO billing.service_agreement SELECT ban, subscriber_no, 'SOC1', date '2022-01-01', NULL, 9.99,
    '{"speed": 100, "roaming": false}', now() FROM billing.subscriber;
INSERT INTO billing.bill SELECT 1000 + i, k, 1 + i % 4, date '2024-01-01' + k * 30, date '2024-01-15' + k * 30,
    12.30 * k, 'CLOSED', now() FROM generate_series(1, 60) i, generate_series(1, 2) k;
INSERT INTO billing.charge SELECT 1000 + i, k, 1, k,
    CASE WHEN k = 3 THEN NULL ELSE '555' || lpad((i * 10 + 1)::text, 7, '0') END,
    'MRC', 10.00 + k, 1.10, CASE WHEN k = 2 THEN '' ELSE 'monthly' END, date '2024-02-01'
    FROM generate_series(1, 60) i, generate_series(1, 3) k;
"""


def _query(client: Any, table: str, index: str, pk_attr: str, value: str) -> list[dict[str, Any]]:
    resp = client.query(TableName=table, IndexName=index, KeyConditionExpression="#k = :v",
                        ExpressionAttributeNames={"#k": pk_attr}, ExpressionAttributeValues={":v": {"S": value}})
    assert "LastEvaluatedKey" not in resp
    return [{k: _DESER.deserialize(v) for k, v in it.items()} for it in resp["Items"]]


def test_billing_lands_six_tables_in_one_dynamodb_table_queryable_by_its_gsis(
    pg: Any, kafka: Any, dynamodb: Any, bridge_factory: Any, tmp_path: Path
) -> None:
    suffix = unique("sh")
    dep = deploy_example("billing-single-table", pg=pg, dynamodb=dynamodb, kafka=kafka, suffix=suffix,
                         state_dir=tmp_path / "state")
    target = dep.names["BillingSystem"]
    bridge = bridge_factory([t.source for t in dep.config.tables], topic_prefix=dep.config.kafka.topic_prefix)
    data = re.sub(r"\bbilling\.(\w+)", lambda m: f"billing.{m.group(1)}_{suffix}", BILLING_DATA)
    with pg.connect() as conn, DaemonThread(dep.config):
        conn.execute(data)
        # A change and a delete after the inserts: the item follows, the deleted one is gone.
        conn.execute(f"UPDATE billing.subscriber_{suffix} SET price_plan = 'GOLD' WHERE subscriber_no = '5550000011'")
        conn.execute(f"DELETE FROM billing.charge_{suffix} WHERE ban = 1060 AND charge_seq = 3")
        # 660 inserts, an update, a delete and its tombstone.
        wait_drained(kafka.bootstrap, dep.config.kafka.group_id, bridge.topics, 180, at_least=663)
    client = dynamodb.client()
    items = scan_all(client, target)
    by_type: dict[str, int] = {}
    for it in items.values():
        by_type[it["EntityType"]] = by_type.get(it["EntityType"], 0) + 1
    assert by_type == {"CUSTOMER": 60, "BILLING_ACCOUNT": 60, "SUBSCRIBER": 120, "SERVICE_AGREEMENT": 120,
                       "BILL": 120, "CHARGE": 179}
    customer = items["CUST#1|PROFILE#1"]
    assert customer["EntityType"] == "CUSTOMER" and "tax_id" not in customer
    assert customer["preferences"] == {"paper": False, "lang": "en"}
    account = items["BAN#1001|ACCOUNT#1001"]
    assert (account["GSI1PK"], account["GSI1SK"], account["GSI2PK"], account["GSI2SK"]) == (
        "CUST#1", "BAN#1001", "CYCLE#2", "BAN#1001")
    sub = items["BAN#1001|SUB#5550000011"]
    assert sub["price_plan"] == "GOLD" and sub["features"] == {"VM", "DATA"}
    assert "BAN#1060|CHARGE#3#1" not in items
    # An account-level charge (subscriber_no NULL) has no GSI1 entry: the index is sparse.
    assert "GSI1PK" not in items["BAN#1001|CHARGE#3#1"]
    # GSI1 by subscriber: the subscriber, its agreement and its two subscriber-level charges.
    by_sub = _query(client, target, "GSI1", "GSI1PK", "SUB#5550000011")
    assert sorted(it["EntityType"] for it in by_sub) == ["CHARGE", "CHARGE", "SERVICE_AGREEMENT", "SUBSCRIBER"]
    assert {it["SK"] for it in by_sub} == {"SUB#5550000011", "SA#5550000011#SOC1#2022-01-01",
                                           "CHARGE#1#1", "CHARGE#2#1"}
    assert [it["ban"] for it in _query(client, target, "GSI1", "GSI1PK", "CUST#7")] == [1007]
    # GSI2 by cycle: cycle 2 is every account with i % 4 == 1, and their bills.
    cycle_accounts = _query(client, target, "GSI2", "GSI2PK", "CYCLE#2")
    assert sorted(it["ban"] for it in cycle_accounts) == [1000 + i for i in range(1, 61) if i % 4 == 1]
    cycle_bills = _query(client, target, "GSI2", "GSI2PK", "BILL#2")
    assert len(cycle_bills) == 30 and {it["EntityType"] for it in cycle_bills} == {"BILL"}
    assert {it["GSI2SK"] for it in cycle_bills} == {"2024-01-31", "2024-03-01"}
    # Every event has an outcome and none failed; the snapshot was empty, so no backfill rows.
    counts = outcomes(dep.config)
    assert summed(counts, "applied") >= 660
    assert summed(counts, "failed") == 0 and summed(counts, "dead_letter") == 0
