"""Starting and stopping the Debezium bridge process (see bridge.py for what runs inside it)."""

from __future__ import annotations

import json
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from parity.devstack.connector import SETTINGS_FILE, load_settings, schemas_enabled, topic_name
from parity.devstack.connector import topic_prefix as connector_topic_prefix
from parity.devstack.prereqs import java_bin
from parity.devstack.process import ManagedProcess, ServiceError, wait_until

# Debezium logs this once the snapshot (if any) is done and logical decoding has begun.
STREAMING_MARKER = "Starting streaming"

_LOG4J = """\
rootLogger.level=INFO
appender.console.type=Console
appender.console.name=console
appender.console.layout.type=PatternLayout
appender.console.layout.pattern=%d{HH:mm:ss.SSS} %-5level [%t] %c{1} - %m%n
rootLogger.appenderRef.console.ref=console
"""


@dataclass
class BridgeProcess:
    """A bridge process. Its offsets (in the state dir) survive stop/kill9, so start() resumes."""

    name: str
    config_path: Path
    process: ManagedProcess
    topics: list[str]
    startup_seconds: float = 0.0
    log_offset: int = 0  # where this run's output starts in the (appended) log
    started_at: float = 0.0
    topic_prefix: str = ""

    @property
    def pid(self) -> int | None:
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    def alive(self) -> bool:
        return self.process.alive()

    def start(self, wait: bool = True, timeout: float = 90.0) -> None:
        """Start (or resume from committed offsets); with `wait`, return once streaming began."""
        java_bin()
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.started_at = time.monotonic()
        self.process.start()
        if wait:
            self.wait_streaming(timeout)

    def wait_streaming(self, timeout: float = 90.0) -> float:
        """Wait until this run logged that streaming began (after the snapshot, if any)."""
        def streaming() -> bool:
            with self.log_path.open("rb") as log:
                log.seek(self.log_offset)
                return STREAMING_MARKER.encode() in log.read()

        waited = wait_until(streaming, timeout, f"bridge {self.name}", self.process.alive, self.log_path)
        # Seconds from process start to streaming (or the wait, for a bridge started elsewhere).
        self.startup_seconds = time.monotonic() - self.started_at if self.started_at else waited
        return self.startup_seconds

    def stop(self) -> None:
        """Graceful: the engine commits the offsets of everything already delivered."""
        self.process.stop(timeout=30.0)

    def kill9(self) -> None:
        self.process.kill9()

    def pause(self) -> None:
        self.process.pause()

    def resume(self) -> None:
        self.process.resume()


def bridge_process(
    state_dir: Path,
    dsn: str,
    bootstrap: str,
    tables: list[str],
    topic_prefix: str | None = None,
    slot_name: str = "parity_bridge",
    partitions: int = 4,
    schemas_enable: bool | None = None,
    settings_file: Path | None = None,
    extra_properties: dict[str, str] | None = None,
) -> BridgeProcess:
    """The bridge for `tables` (`schema.table` or `table` in public), configured but not started.
    `topic_prefix` and `schemas_enable` default to the shared connector settings file."""
    state_dir = Path(state_dir).resolve()  # services run with another cwd
    settings = load_settings(settings_file)
    topic_prefix = topic_prefix or connector_topic_prefix(settings)
    schemas_enable = schemas_enabled(settings) if schemas_enable is None else schemas_enable
    url = urlsplit(dsn)
    if url.scheme not in ("postgresql", "postgres") or not url.port:
        raise ServiceError(f"bridge: need a postgresql://user@host:port/db DSN, got {dsn!r}")
    base = state_dir / "bridge" / slot_name
    base.mkdir(parents=True, exist_ok=True)
    log4j = base / "log4j2.properties"
    log4j.write_text(_LOG4J)
    cfg = {
        "settings_file": str(settings_file or SETTINGS_FILE),
        "bootstrap": bootstrap,
        "partitions": partitions,
        "tables": tables,
        "topic_prefix": topic_prefix,
        "slot_name": slot_name,
        "schemas_enable": schemas_enable,
        "offsets_file": str(base / "offsets.dat"),
        "pg_host": url.hostname,
        "pg_port": url.port,
        "pg_user": url.username or "postgres",
        "pg_password": url.password or "",
        "pg_dbname": (url.path or "/postgres").lstrip("/") or "postgres",
        "extra_properties": extra_properties or {},
        # -Xrs: the JVM leaves SIGTERM to Python, whose handler closes the engine cleanly.
        "jvm_opts": ["-Xms128m", "-Xmx512m", "-Xrs", f"-Dlog4j2.configurationFile={log4j}"],
    }
    config_path = base / "bridge.json"
    config_path.write_text(json.dumps(cfg, indent=2))
    process = ManagedProcess(
        name=f"bridge-{slot_name}", state_dir=state_dir, cwd=base, stop_signal=signal.SIGTERM,
        argv=[sys.executable, "-m", "parity.devstack.bridge", "--config", str(config_path)],
    )
    topics = [topic_name(topic_prefix, t if "." in t else f"public.{t}") for t in tables]
    return BridgeProcess(name=slot_name, config_path=config_path, process=process, topics=topics,
                         topic_prefix=topic_prefix)


def start_bridge(state_dir: Path, dsn: str, bootstrap: str, tables: list[str], *,
                 topic_prefix: str | None = None, slot_name: str = "parity_bridge", partitions: int = 4,
                 schemas_enable: bool | None = None, settings_file: Path | None = None,
                 extra_properties: dict[str, str] | None = None, wait: bool = True) -> BridgeProcess:
    bridge = bridge_process(state_dir, dsn, bootstrap, tables, topic_prefix, slot_name, partitions,
                            schemas_enable, settings_file, extra_properties)
    if not bridge.alive():
        bridge.start(wait=wait)
    return bridge
