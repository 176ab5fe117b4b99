"""Private by default, on the real stack (issue 17).

1. HTTP: a real `parity run` process with a bearer token: /metrics, /readyz and /status answer 401
   without it and 200/503 with it, /healthz stays open; with Postgres unreachable, /readyz names
   `postgres` as down without the driver's error text; it listens on loopback only.
2. Dead letters and files: a real payments table (customer_id `exclude: true`,
   transaction_reference `redact: true`) streamed by Debezium; a row whose key column is NULL is
   dead-lettered. The dead letter read back from the topic holds neither column's value, but its
   (topic, partition, offset) re-reads the original record, which does. The same run's state
   directory, state database, drift log, reconcile report and checkpoint have private modes,
   under a umask of 022.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from parity.devstack.process import free_port
from tests.conftest import unique
from tests.e2e.daemon_http import http_get
from tests.integration.verify_harness import (
    DaemonThread,
    create_topics,
    deploy_example,
    resolved_total,
    start_daemon_process,
    topic_record_count,
    wait_for,
)

pytestmark = pytest.mark.e2e

TOKEN = "HttpTok-8Jk2Lm4Np6"
CUSTOMER_ID = 918273645501  # excluded column: must never reach the dead-letter topic
TX_REF = "TXREF-Priv-5c1e9b"  # redacted column


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_real_daemon_guards_its_endpoints_with_the_token_and_names_what_is_down(
    pg: Any, kafka: Any, dynamodb: Any, tmp_path: Path
) -> None:
    port = free_port()
    dead_pg = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"  # nothing listens there
    dep = deploy_example(
        "payments", pg=pg, dynamodb=dynamodb, kafka=kafka, suffix=unique("h"), state_dir=tmp_path / "state",
        overrides={
            "daemon": {"state_dir": str(tmp_path / "state"), "http": {"port": port, "bearer_token": TOKEN}},
            "postgres": {"dsn": dead_pg},
        },
    )
    k = dep.config.kafka
    create_topics(kafka, [*dep.config.topics(), k.dead_letter_topic, k.drift_topic or ""])
    log = tmp_path / "daemon.log"
    proc = start_daemon_process(dep.config_path, log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_get(f"{base}/healthz")[0] == 200, 60, "/healthz without a token")

        def only_postgres_down() -> bool:
            code, body = http_get(f"{base}/readyz", TOKEN)
            return code == 503 and json.loads(body)["down"] == ["postgres"]

        wait_for(only_postgres_down, 90, "/readyz naming postgres as the one dependency down")
        code, body = http_get(f"{base}/readyz", TOKEN)
        doc = json.loads(body)
        assert code == 503 and doc["ready"] is False
        assert {c["name"]: c["ok"] for c in doc["checks"]}["postgres"] is False
        text = body.decode()
        for driver_text in ("connection", "refused", "OperationalError", "127.0.0.1", dead_pg):
            assert driver_text not in text, driver_text
        for path in ("/metrics", "/readyz", "/status"):
            assert http_get(f"{base}{path}")[0] == 401, path
            assert http_get(f"{base}{path}", "wrong")[0] == 401, path
        assert http_get(f"{base}/metrics", TOKEN)[0] == 200
        assert b"parity_" in http_get(f"{base}/metrics", TOKEN)[1]
        assert http_get(f"{base}/status", TOKEN)[0] == 200
        from tests.e2e.test_security import listening_addresses

        assert listening_addresses(port) == {"127.0.0.1"}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    # The reason is in the log, for the operator.
    assert "not_ready" in log.read_text()


def _read_at(bootstrap: str, topic: str, partition: int, offset: int) -> Any:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("replay"), "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        for _ in range(30):
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                return msg
    finally:
        consumer.close()
    raise AssertionError(f"no record at {topic}[{partition}]@{offset}")


def _dead_letters(bootstrap: str, topic: str, want: int) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("dlq"), "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    found: list[bytes] = []
    try:
        for _ in range(60):
            for m in consumer.consume(10, 1.0):
                if m.error() is None:
                    found.append(m.value())
            if len(found) >= want:
                break
    finally:
        consumer.close()
    return found


def test_a_real_dead_letter_carries_no_excluded_or_redacted_value_and_the_run_s_files_are_private(
    pg: Any, kafka: Any, dynamodb: Any, bridge_factory: Any, tmp_path: Path, permissive_umask: None
) -> None:
    state = tmp_path / "state"
    reports = tmp_path / "reports"
    dep = deploy_example(
        "payments", pg=pg, dynamodb=dynamodb, kafka=kafka, suffix=unique("p"), state_dir=state,
        overrides={"reconcile": {"report_dir": str(reports), "segments": 1, "workers": 1}},
        table_overrides={"grace_period_s": 2, "recheck_schedule_s": [1, 2]},
    )
    mapping = dep.config.tables[0]
    assert mapping.rule("customer_id").exclude and mapping.rule("transaction_reference").redact
    k = dep.config.kafka
    create_topics(kafka, [k.dead_letter_topic, k.drift_topic or ""], partitions=1)
    bridge = bridge_factory([mapping.source], topic_prefix=k.topic_prefix)
    table = f'"{mapping.schema}"."{mapping.table}"'
    with pg.connect() as conn:
        # A NULL key-template column (payment_date): the row cannot become an item -> dead letter.
        conn.execute(f"ALTER TABLE {table} ALTER COLUMN payment_date DROP NOT NULL")
        conn.execute(
            f"INSERT INTO {table} (customer_id, loan_id, amount, payment_date, method, status, transaction_reference)"
            " VALUES (%s, 1, 10.00, NULL, 'ACH', 'PENDING', %s)", (CUSTOMER_ID, TX_REF))
        # A row missing from DynamoDB: confirmed drift, so the drift log is written.
        conn.execute(
            f"INSERT INTO {table} (customer_id, loan_id, amount, payment_date, method, status, transaction_reference)"
            " VALUES (5, 2, 20.00, now(), 'CARD', 'SETTLED', 'TX-other')")
    with DaemonThread(dep.config) as runner:
        wait_for(lambda: topic_record_count(kafka.bootstrap, bridge.topics) >= 2, 120, "2 change events")
        wait_for(lambda: resolved_total(dep.config) >= 2 and not len(runner.daemon.pipeline.rechecks), 120,
                 "both events resolved")
        [raw] = _dead_letters(kafka.bootstrap, k.dead_letter_topic, 1)
        # Files of the live run, while the daemon holds them open (asserted below).
        live_modes = {name: mode(state / name) for name in
                      (".", "state.sqlite", "state.sqlite-wal", "state.sqlite-shm", "drift.jsonl")}
    assert str(CUSTOMER_ID) not in raw.decode() and TX_REF not in raw.decode(), raw
    body = json.loads(raw)
    assert "value" not in body and body["table"] == mapping.source
    assert body["reason_class"] == "mapping" and "payment_date" in body["reason"]
    assert body["key_redacted"] is False and "payment_id" in body["key"]  # the Kafka key, as it was
    # Replay: the position finds the original record, which still holds the values.
    original = _read_at(kafka.bootstrap, body["topic"], body["partition"], body["offset"])
    assert original.key() == body["key"].encode()
    assert str(CUSTOMER_ID) in original.value().decode() and TX_REF in original.value().decode()
    assert live_modes == {".": 0o700, "state.sqlite": 0o600, "state.sqlite-wal": 0o600,
                          "state.sqlite-shm": 0o600, "drift.jsonl": 0o600}, {n: oct(m) for n, m in live_modes.items()}

    result = subprocess.run(
        [sys.executable, "-m", "parity.cli", "reconcile", "--config", str(dep.config_path), "--once"],
        capture_output=True, timeout=300, check=False,
    )
    assert result.returncode in (0, 1), result.stderr.decode()[-2000:]
    written = sorted(reports.rglob("*"))
    assert any(p.name.startswith("reconcile-") for p in written), written
    assert any(p.name == "checkpoint.json" for p in written), written
    assert mode(reports) == 0o700
    for p in written:
        assert mode(p) == (0o700 if p.is_dir() else 0o600), (p, oct(mode(p)))
