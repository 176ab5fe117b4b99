"""The whole local stack under one state directory: up (idempotent), status, down (leaves nothing)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parity.aws_credentials import LOCAL_CREDENTIALS
from parity.devstack.debezium import BridgeProcess, bridge_process
from parity.devstack.dynamodb import dynamodb_service
from parity.devstack.kafka import start_kafka
from parity.devstack.postgres import postgres_service, start_postgres
from parity.devstack.process import ManagedProcess, pid_alive
from parity.devstack.prometheus import start_alertmanager, start_prometheus

DEFAULT_STATE_DIR = Path(".parity/dev")
OPTIONAL = ("prometheus", "alertmanager", "bridge")
# Stop order: the bridge first (it reads Postgres, writes Kafka), storage last.
_STOP_ORDER = ("prometheus", "alertmanager", "dynamodb", "kafka", "s3rver", "postgres")


# What a running bridge was started with that a new `up` may change (the connection settings
# follow the stack's own services, which are adopted, so they only change after a `down`).
_BRIDGE_SETTINGS = ("tables", "topic_prefix", "partitions", "schemas_enable", "settings_file",
                    "extra_properties", "bootstrap", "pg_host", "pg_port", "pg_user", "pg_dbname")


def running_bridge_settings(state_dir: Path, slot_name: str = "parity_bridge") -> dict[str, Any] | None:
    """The settings the running bridge was started with, or None when it does not run."""
    if not ManagedProcess(name=f"bridge-{slot_name}", state_dir=state_dir, argv=[]).alive():
        return None
    try:
        settings: dict[str, Any] = json.loads((state_dir / "bridge" / slot_name / "bridge.json").read_text())
        return settings
    except (OSError, ValueError):
        return None


def default_state_dir() -> Path:
    return Path(os.environ.get("PARITY_DEV_STATE", DEFAULT_STATE_DIR))


@dataclass
class Stack:
    state_dir: Path

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir).resolve()

    @property
    def _record(self) -> Path:
        return self.state_dir / "stack.json"

    def endpoints(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self._record.read_text())
            return data
        except (OSError, ValueError):
            return {}

    def env(self, endpoints: dict[str, Any] | None = None) -> dict[str, str]:
        """The environment parity and the examples read (`${PARITY_PG_DSN}`, ...) for this stack, with
        the dummy credentials DynamoDB Local needs (it checks none, but boto3 signs every request).
        Empty when no stack is recorded."""
        ep = self.endpoints() if endpoints is None else endpoints
        if not all(name in ep for name in ("postgres", "kafka", "dynamodb")):
            return {}
        env = {
            **LOCAL_CREDENTIALS,
            "PARITY_PG_DSN": ep["postgres"]["dsn"],
            "PARITY_KAFKA_BOOTSTRAP": ep["kafka"]["bootstrap"],
            "PARITY_DYNAMODB_ENDPOINT": ep["dynamodb"]["endpoint"],
        }
        if "bridge" in ep:
            env["PARITY_TOPIC_PREFIX"] = ep["bridge"]["topic_prefix"]
        return env

    def _save(self, endpoints: dict[str, Any]) -> None:
        self._record.write_text(json.dumps(endpoints, indent=2) + "\n")

    def up(self, with_: set[str] | frozenset[str] = frozenset(), persistent_kafka: bool = False,
           metrics_targets: list[str] | None = None, rule_files: list[Path] | None = None,
           bridge_tables: list[str] | None = None, topic_prefix: str | None = None,
           partitions: int = 4, bridge_timeout: float | None = None) -> dict[str, Any]:
        """Start what is not running yet; return the endpoints. Running services are adopted, except
        a bridge whose settings (`bridge_tables`, `topic_prefix`) were changed: it is restarted.
        `bridge_timeout` caps the wait for the bridge to stream (by default it is waited for as long
        as it makes progress)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self.state_dir.chmod(0o755)  # the `postgres` OS user must reach its data dir
        ep = self.endpoints()
        timings: dict[str, float] = {}
        dynamo = dynamodb_service(self.state_dir)
        if not dynamo.process.alive():
            dynamo.start(wait=False)  # its JVM boots while Postgres and Kafka start
        pg = start_postgres(self.state_dir)
        ep["postgres"] = {"dsn": pg.dsn, "port": pg.port}
        timings["postgres"] = pg.startup_seconds
        kafka = start_kafka(self.state_dir, persistent=persistent_kafka)
        ep["kafka"] = {"bootstrap": kafka.bootstrap, "persistent": kafka.persistent}
        timings["kafka"] = kafka.startup_seconds
        bridge = None
        restarted: list[str] = []
        added: list[str] = []
        if "bridge" in with_:
            running = running_bridge_settings(self.state_dir)
            # Its JVM boots (and snapshots) while DynamoDB Local's does.
            bridge, restarted = self._bridge(running, pg.dsn, kafka.bootstrap, bridge_tables, topic_prefix,
                                             partitions)
            if restarted and running is not None and running["topic_prefix"] == bridge.topic_prefix:
                # Same prefix, same offsets: Debezium's snapshot is done and is not redone for them.
                added = [t for t in bridge.tables if t not in running["tables"]] if running["tables"] else []
        if dynamo.process.alive():
            dynamo.wait_ready()
        else:
            dynamo.start()
        ep["dynamodb"] = {"endpoint": dynamo.endpoint}
        timings["dynamodb"] = dynamo.startup_seconds
        if "alertmanager" in with_ and not self._alive("alertmanager"):
            am = start_alertmanager(self.state_dir)
            ep["alertmanager"] = {"url": am.url}
            timings["alertmanager"] = am.startup_seconds
        if "prometheus" in with_ and not self._alive("prometheus"):
            am_url = ep.get("alertmanager", {}).get("url") if self._alive("alertmanager") else None
            prom = start_prometheus(self.state_dir, metrics_targets or [], rule_files, am_url)
            ep["prometheus"] = {"url": prom.url, "scrape_targets": metrics_targets or []}
            timings["prometheus"] = prom.startup_seconds
        ep["state_dir"] = str(self.state_dir)
        if bridge is not None:
            ep["bridge"] = {"pid": bridge.pid, "topic_prefix": bridge.topic_prefix, "tables": bridge.tables,
                            "log": str(bridge.log_path), "restarted_because": restarted,
                            "tables_added": added}
            # Recorded before the wait: should the bridge not stream in time, what runs is still
            # known to `parity dev env`, `status` and `down`.
            self._save(ep)
            bridge.wait_streaming(timeout=bridge_timeout)
            timings["bridge"] = bridge.startup_seconds
        self._save(ep)
        return {**ep, "env": self.env(ep), "startup_seconds": {k: round(v, 2) for k, v in timings.items()}}

    def _bridge(self, running: dict[str, Any] | None, dsn: str, bootstrap: str, tables: list[str] | None,
                topic_prefix: str | None, partitions: int) -> tuple[BridgeProcess, list[str]]:
        """The bridge, started without waiting. A running one is adopted when nothing given differs
        (an option not given keeps its running value); otherwise it is stopped gracefully, which
        commits its offsets, and started with the new settings: it resumes where it stopped, and a
        new topic prefix, having no offsets of its own, starts with a snapshot into its topics."""
        if running is not None:
            tables = running["tables"] if tables is None else tables
            topic_prefix = topic_prefix or running["topic_prefix"]
        bridge = bridge_process(self.state_dir, dsn, bootstrap, tables or [], topic_prefix=topic_prefix,
                                partitions=partitions)
        changes: list[str] = []
        if running is not None:
            wanted = json.loads(bridge.config_path.read_text())
            changes = [f"{key} {running.get(key)!r} -> {wanted.get(key)!r}" for key in _BRIDGE_SETTINGS
                       if running.get(key) != wanted.get(key)]
            if changes:
                bridge.stop()
        if not bridge.alive():
            bridge.start(wait=False)
        return bridge, changes

    def _alive(self, name: str) -> bool:
        return ManagedProcess(name=name, state_dir=self.state_dir, argv=[]).alive()

    def status(self) -> dict[str, dict[str, Any]]:
        """Every process with a PID file: its PID and whether it runs."""
        out: dict[str, dict[str, Any]] = {}
        for pid_file in sorted(self.state_dir.glob("*.pid")):
            name = pid_file.stem
            try:
                pid = int(pid_file.read_text().strip())
            except (OSError, ValueError):
                continue
            out[name] = {"pid": pid, "running": pid_alive(pid)}
        return out

    def down(self) -> list[str]:
        """Stop everything (bridges first), dropping every replication slot; returns what stopped."""
        stopped: list[str] = []
        for pid_file in sorted(self.state_dir.glob("bridge-*.pid")):
            ManagedProcess(name=pid_file.stem, state_dir=self.state_dir, argv=[]).stop(timeout=30)
            stopped.append(pid_file.stem)
        if (self.state_dir / "postgres.pid").exists():
            pg = postgres_service(self.state_dir)
            if pg.process.alive():
                pg.drop_replication_slots()
        # The slots are gone, so the bridges' offsets point nowhere: a later `up` snapshots afresh.
        shutil.rmtree(self.state_dir / "bridge", ignore_errors=True)
        for name in _STOP_ORDER:
            process = ManagedProcess(name=name, state_dir=self.state_dir, argv=[],
                                     stop_signal=2 if name == "postgres" else 15)
            if process.pid_path.exists():
                process.stop(timeout=30)
                stopped.append(name)
        self._record.unlink(missing_ok=True)
        return stopped
