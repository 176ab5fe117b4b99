"""Shared set-up for verifier tests: an example schema under unique names on the real stack,
a daemon running in a thread or a subprocess, and helpers to wait for it to settle."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Consumer, TopicPartition

from parity.adapters.state import StateStore
from parity.config_loader import parse_config
from parity.core.config import ParityConfig
from parity.daemon.app import DaemonApp
from parity.daemon.run import Daemon, Telemetry, state_path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@dataclass
class Deployed:
    config: ParityConfig
    config_path: Path
    raw: dict[str, Any]
    names: dict[str, str]  # example name -> unique name (tables and DynamoDB tables)


def deploy_example(
    example: str,
    *,
    pg: Any,
    dynamodb: Any,
    kafka: Any,
    suffix: str,
    state_dir: Path,
    overrides: dict[str, Any] | None = None,
    table_overrides: dict[str, Any] | None = None,
) -> Deployed:
    """Create the example's Postgres tables and DynamoDB tables under names ending in `suffix`,
    and a parity config pointing at them (topic prefix unique too)."""
    raw = yaml.safe_load((EXAMPLES / f"{example}.yaml").read_text())
    names: dict[str, str] = {}
    for t in raw["tables"]:
        schema, table = t["source"].split(".")
        names[table] = f"{table}_{suffix}"
        t["source"] = f"{schema}.{table}_{suffix}"
        target = t.get("target") or raw.get("defaults", {})["target"]
        names[target] = f"{target}_{suffix}"
        t["target"] = names[target]
        t.update(table_overrides or {})
    sql_text = (EXAMPLES / f"{example}.sql").read_text()
    for old in sorted(names, key=len, reverse=True):
        if old[0].islower():
            sql_text = _replace_word(sql_text, old, names[old])
    with pg.connect() as conn:
        conn.execute(sql_text)
    client = dynamodb.client()
    for req in json.loads((EXAMPLES / f"{example}.dynamodb.json").read_text()):
        req = dict(req)
        req["TableName"] = names[req["TableName"]]
        client.create_table(**req)
    prefix = f"cdc_{suffix}"
    raw["postgres"] = {"dsn": pg.dsn}
    raw["kafka"] = {
        "bootstrap_servers": kafka.bootstrap,
        "topic_prefix": prefix,
        "group_id": f"parity_{suffix}",
        "session_timeout_ms": 6000,
        "drift_topic": f"parity.drift.{suffix}",
        "dead_letter_topic": f"parity.dlq.{suffix}",
    }
    raw["dynamodb"] = {"endpoint": dynamodb.endpoint, "region": "us-east-1"}
    raw["daemon"] = {
        "state_dir": str(state_dir),
        "drift_log": str(state_dir / "drift.jsonl"),
        "batch_max_wait_ms": 100,
        "http": {"port": 0},
    }
    for key, value in (overrides or {}).items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    cfg = parse_config(raw, source=f"{example}.yaml", env={})
    path = state_dir / f"{example}.yaml"
    state_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw))
    return Deployed(cfg, path, raw, names)


def _replace_word(text: str, old: str, new: str) -> str:
    import re

    return re.sub(rf"\b{re.escape(old)}\b", new, text)


def create_topics(kafka: Any, topics: list[str], partitions: int = 4) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    futures = admin.create_topics([NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics])
    for f in futures.values():
        try:
            f.result(30)
        except Exception as exc:  # already exists is fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc) and "already exists" not in str(exc):
                raise


class DaemonThread(DaemonApp):
    """The daemon loop in a thread, with no HTTP server, probe or periodic reconcile; `telemetry` is a
    test's own (None: unobserved)."""

    def __init__(self, config: ParityConfig, telemetry: Telemetry | None = None) -> None:
        super().__init__(
            config,
            telemetry=telemetry if telemetry is not None else False,
            http=False,
            probe_interval_s=None,
            reconcile_schedule=False,
            join_timeout_s=30.0,
        )


def start_daemon_process(config_path: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "parity.cli", "run", "--config", str(config_path)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
        )


def partition_ends(bootstrap: str, topics: list[str], timeout: float = 30.0) -> dict[tuple[str, int], int]:
    """The next offset of every partition, found by reading to the end (the broker's ListOffsets
    is unreliable on tansu, see STACK.md)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"ends-{time.time_ns()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
        }
    )
    try:
        md = consumer.list_topics(timeout=10)
        tps = [TopicPartition(t, p, 0) for t in topics for p in md.topics[t].partitions]
        consumer.assign(tps)
        ends = {(tp.topic, tp.partition): 0 for tp in tps}
        remaining = set(ends)
        errors: list[str] = []
        deadline = time.time() + timeout
        quiet_since = time.time()
        while remaining and time.time() < deadline:
            msgs = consumer.consume(500, 1.0)
            if msgs:
                quiet_since = time.time()
            elif time.time() - quiet_since > 5:
                # tansu after a restart can report a high watermark *below* records it serves, and
                # then never signals end-of-partition: nothing new for 5 s and at or past the
                # watermark is the end.
                for tp in list(remaining):
                    _low, high = consumer.get_watermark_offsets(TopicPartition(*tp), cached=True)
                    if high is not None and high >= 0 and ends[tp] >= high:
                        remaining.discard(tp)
            for m in msgs:
                tp = (m.topic(), m.partition())
                if m.error() is not None:
                    if m.error().code() == -191:  # _PARTITION_EOF
                        remaining.discard(tp)
                    else:
                        errors.append(str(m.error()))
                    continue
                ends[tp] = max(ends[tp], m.offset() + 1)
        if remaining:
            marks = {tp: consumer.get_watermark_offsets(TopicPartition(*tp), cached=True) for tp in remaining}
            raise TimeoutError(
                f"could not read to the end of {sorted(remaining)}: read up to {ends}, "
                f"cached watermarks {marks}, errors {errors[:3]}"
            )
        return ends
    finally:
        consumer.close()


def topic_record_count(bootstrap: str, topics: list[str], timeout: float = 30.0) -> int:
    """Every record in `topics` (offsets start at 0 and nothing is compacted in these tests)."""
    return sum(partition_ends(bootstrap, topics, timeout).values())


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.5) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def resolved_total(config: ParityConfig) -> int:
    store = StateStore(state_path(config))
    try:
        return sum(n for outcomes in store.outcome_counts().values() for n in outcomes.values())
    finally:
        store.close()


def drift_set(config: ParityConfig) -> list[tuple[str, str, str]]:
    store = StateStore(state_path(config))
    try:
        return sorted((r["table"], json.dumps(r["key"], sort_keys=True), r["kind"]) for r in store.drift_records())
    finally:
        store.close()


def settle(
    config: ParityConfig,
    bootstrap: str,
    topics: list[str],
    daemon: Daemon | None = None,
    *,
    at_least: int = 0,
    timeout: float = 120,
) -> int:
    """Wait until the bridge has published at least `at_least` records (one per Postgres change),
    then until every record in `topics` has an outcome and `daemon` holds no pending check.
    Returns the number of records."""
    wait_for(lambda: topic_record_count(bootstrap, topics) >= at_least, timeout, f"{at_least} records")
    total = topic_record_count(bootstrap, topics)

    def done() -> bool:
        if daemon is not None and len(daemon.pipeline.rechecks):
            return False
        return resolved_total(config) >= total

    wait_for(done, timeout, f"all {total} events resolved")
    return total


def terminate(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Stop a daemon process as an operator would (SIGTERM), and SIGKILL it if it has not exited
    within `timeout`: a test never leaves one running."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
