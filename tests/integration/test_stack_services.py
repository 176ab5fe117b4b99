"""The local services themselves: DynamoDB Local's AWS behaviour, broker persistence, Prometheus
scraping, missing-prerequisite errors, and `parity dev up/status/down` leaving nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from confluent_kafka import Consumer, Producer, TopicPartition

from parity.devstack.process import pid_alive
from tests.conftest import unique

pytestmark = pytest.mark.integration


def test_dynamodb_local_round_trip_with_gsi_and_aws_batch_limit(dynamodb: Any) -> None:
    client: Any = dynamodb.client()
    table = unique("orders")
    client.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "status")],
        GlobalSecondaryIndexes=[{"IndexName": "by_status",
                                 "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "ALL"}}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.put_item(TableName=table, Item={"pk": {"S": "c#1"}, "sk": {"S": "o#1"}, "status": {"S": "paid"},
                                           "amount": {"N": "10.50"}})
    got = client.get_item(TableName=table, Key={"pk": {"S": "c#1"}, "sk": {"S": "o#1"}}, ConsistentRead=True)
    assert got["Item"]["amount"] == {"N": "10.5"}
    by_status = client.query(TableName=table, IndexName="by_status", KeyConditionExpression="#s = :s",
                             ExpressionAttributeNames={"#s": "status"},
                             ExpressionAttributeValues={":s": {"S": "paid"}})
    assert [i["sk"]["S"] for i in by_status["Items"]] == ["o#1"]

    puts = [{"PutRequest": {"Item": {"pk": {"S": f"c#{i}"}, "sk": {"S": "x"}}}} for i in range(26)]
    with pytest.raises(ClientError) as rejected:
        client.batch_write_item(RequestItems={table: puts})
    assert rejected.value.response["Error"]["Code"] == "ValidationException"
    client.batch_write_item(RequestItems={table: puts[:25]})  # the limit itself is accepted
    count = client.scan(TableName=table, Select="COUNT", Limit=1000)["Count"]
    assert count == 26


def test_persistent_broker_keeps_records_across_kill9(persistent_kafka: Any) -> None:
    topic = unique("durable")
    persistent_kafka.create_topics([topic], partitions=2)
    producer = Producer({"bootstrap.servers": persistent_kafka.bootstrap, "partitioner": "murmur2_random"})
    for i in range(20):
        producer.produce(topic, key=str(i).encode(), value=f"v{i}".encode())
    assert producer.flush(10) == 0
    persistent_kafka.kill9()
    persistent_kafka.start()
    consumer = Consumer({"bootstrap.servers": persistent_kafka.bootstrap, "group.id": unique("g"),
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(2)])
    values: set[bytes] = set()
    deadline = time.monotonic() + 30
    while len(values) < 20 and time.monotonic() < deadline:
        values.update(m.value() for m in consumer.consume(100, 0.5) if m.error() is None)
    consumer.close()
    assert values == {f"v{i}".encode() for i in range(20)}


def test_prometheus_scrapes_the_given_metrics_endpoint(stack_dir: Path) -> None:
    from prometheus_client import CollectorRegistry, Counter, start_http_server

    from parity.devstack.process import free_port
    from parity.devstack.prometheus import start_prometheus

    registry = CollectorRegistry()
    Counter("parity_probe", "a probe counter", registry=registry).inc(7)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    prom = start_prometheus(stack_dir / "prom-test", [f"127.0.0.1:{port}"])
    try:
        deadline = time.monotonic() + 30
        result: list[dict[str, Any]] = []
        while not result and time.monotonic() < deadline:
            result = prom.query("parity_probe_total")
            time.sleep(0.5)
        assert result and result[0]["value"][1] == "7"
    finally:
        prom.stop()
        server.shutdown()
        thread.join(5)
    assert not prom.process.alive()


def test_missing_prerequisite_names_it_and_how_to_install(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    from parity.devstack.prereqs import MissingPrerequisite, dynamodb_local_dir, postgres_bindir

    monkeypatch.setenv("PARITY_PG_BINDIR", str(tmp_path / "nowhere"))
    with pytest.raises(MissingPrerequisite, match=r"PostgreSQL.*apt-get install .*postgresql"):
        postgres_bindir()
    monkeypatch.setenv("PARITY_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm
    with pytest.raises(MissingPrerequisite, match=r"npm.*apt-get install .*npm"):
        dynamodb_local_dir()


def _dev(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "parity.devstack.cli", *args, "--state-dir", str(state)],
                          capture_output=True, text=True, timeout=180, check=False,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})


def test_dev_up_status_down_leaves_no_process_and_no_slot(stack_dir: Path) -> None:
    state = stack_dir / "dev"
    up = _dev(state, "up", "--json", "--with", "bridge", "--with", "prometheus")
    assert up.returncode == 0, up.stderr
    endpoints = json.loads(up.stdout)
    assert endpoints["postgres"]["dsn"].startswith("postgresql://postgres@127.0.0.1:")
    assert endpoints["postgres"]["port"] != 5432
    assert endpoints["kafka"]["bootstrap"].startswith("127.0.0.1:")
    assert endpoints["dynamodb"]["endpoint"].startswith("http://127.0.0.1:")
    assert endpoints["prometheus"]["url"].startswith("http://127.0.0.1:")
    print("startup seconds:", endpoints["startup_seconds"])

    again = _dev(state, "up", "--json")  # idempotent: adopts what runs
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["postgres"]["dsn"] == endpoints["postgres"]["dsn"]

    status = _dev(state, "status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    procs = json.loads(status.stdout)["processes"]
    assert {"postgres", "kafka", "dynamodb", "prometheus", "bridge-parity_bridge"} <= set(procs)
    assert all(p["running"] for p in procs.values())

    from parity.devstack.postgres import start_postgres

    slots_before = start_postgres(state).replication_slots()
    assert slots_before == ["parity_bridge"]

    down = _dev(state, "down")
    assert down.returncode == 0, down.stderr
    assert not any(pid_alive(p["pid"]) for p in procs.values())
    assert _dev(state, "status").stdout.strip() == "nothing running"
    assert _dev(state, "down").returncode == 0  # idempotent

    pg = start_postgres(state)  # the cluster's data survives; no slot may
    try:
        assert pg.replication_slots() == []
    finally:
        pg.stop()
