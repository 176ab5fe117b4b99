"""Starting and stopping the Debezium bridge process (see bridge.py for what runs inside it)."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from parity.devstack.bridge import PROGRESS_MARKER, RUN_MARKER
from parity.devstack.connector import SETTINGS_FILE, load_settings, schemas_enabled, topic_name
from parity.devstack.connector import topic_prefix as connector_topic_prefix
from parity.devstack.prereqs import java_bin
from parity.devstack.process import ManagedProcess, ServiceError, _tail
from parity.devstack.startup import ProgressWait, Verdict

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


STALL_S = 90.0  # no progress for this long while starting: the bridge is stuck
# Debezium's own snapshot progress lines (steps, and "Exported N records" every 10 s per table).
_SNAPSHOT_PROGRESS = (b"Snapshot step", b"Exported ")


class BridgeLog:
    """The bridge's log from one run's start, read incrementally: whether streaming began, and its
    progress (events forwarded to Kafka, Debezium snapshot progress lines)."""

    def __init__(self, path: Path, offset: int) -> None:
        self.path = path
        self.offset = offset
        self.streaming = False
        self.forwarded = 0
        self.snapshot_lines = 0
        self._partial = b""

    def read(self) -> None:
        try:
            with self.path.open("rb") as log:
                log.seek(self.offset)
                chunk = log.read()
        except OSError:
            return
        self.offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        marker = PROGRESS_MARKER.encode()
        for line in lines:
            if STREAMING_MARKER.encode() in line:
                self.streaming = True
            if line.startswith(marker):
                with contextlib.suppress(ValueError):
                    self.forwarded = int(line[len(marker):].split()[0])
            elif any(p in line for p in _SNAPSHOT_PROGRESS):
                self.snapshot_lines += 1

    def progress(self) -> tuple[int, int]:
        return self.forwarded, self.snapshot_lines


def _last_run_offset(log_path: Path) -> int:
    """Where the bridge's last run starts in its (appended) log: its `run begins` line."""
    try:
        data = log_path.read_bytes()
    except OSError:
        return 0
    return max(data.rfind(RUN_MARKER.encode()), 0)


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
    tables: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int | None:
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    def alive(self) -> bool:
        return self.process.alive()

    def start(self, wait: bool = True, timeout: float | None = None, stall_s: float = STALL_S) -> None:
        """Start (or resume from committed offsets); with `wait`, return once streaming began."""
        java_bin()
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.started_at = time.monotonic()
        self.process.start()
        if wait:
            self.wait_streaming(timeout, stall_s)

    def wait_streaming(self, timeout: float | None = None, stall_s: float = STALL_S) -> float:
        """Wait until this run logged that streaming began (after the snapshot, if any), for as
        long as it makes progress (events forwarded, snapshot steps logged): fail after `stall_s`
        without any, or at `timeout` (a hard cap, from now) in any case."""
        began = time.monotonic()
        if not self.started_at:  # a bridge started by an earlier command: its run's part of the log
            self.log_offset = _last_run_offset(self.log_path)
        policy = ProgressWait(started_at=began, stall_s=stall_s, timeout_s=timeout)
        log = BridgeLog(self.log_path, self.log_offset)
        while True:
            log.read()
            if log.streaming:
                break
            now = time.monotonic()
            verdict = policy.observe(now, log.progress())
            if not self.process.alive():
                raise ServiceError(f"bridge {self.name}: process exited before streaming began"
                                   f"{_tail(self.log_path)}")
            if verdict is Verdict.STALLED:
                raise ServiceError(
                    f"bridge {self.name}: no progress for {stall_s:.0f}s and not streaming yet "
                    f"({log.forwarded} events forwarded; a long-running transaction in Postgres delays the "
                    f"replication slot); it keeps running (pid {self.pid}){_tail(self.log_path)}")
            if verdict is Verdict.TIMED_OUT:
                raise ServiceError(
                    f"bridge {self.name}: not streaming after the {timeout:.0f}s timeout, still making progress "
                    f"({log.forwarded} events forwarded, last progress {policy.seconds_since_progress(now):.0f}s "
                    f"ago); it keeps running (pid {self.pid}): run the same `parity dev up` again to wait on, "
                    f"without --timeout to wait as long as it progresses, or `parity dev down` to stop it")
            time.sleep(0.2)
        # Seconds from process start to streaming (or the wait, for a bridge started elsewhere).
        self.startup_seconds = time.monotonic() - (self.started_at or began)
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
                         topic_prefix=topic_prefix, tables=list(tables))


def start_bridge(state_dir: Path, dsn: str, bootstrap: str, tables: list[str], *,
                 topic_prefix: str | None = None, slot_name: str = "parity_bridge", partitions: int = 4,
                 schemas_enable: bool | None = None, settings_file: Path | None = None,
                 extra_properties: dict[str, str] | None = None, wait: bool = True,
                 timeout: float | None = None, stall_s: float = STALL_S) -> BridgeProcess:
    bridge = bridge_process(state_dir, dsn, bootstrap, tables, topic_prefix, slot_name, partitions,
                            schemas_enable, settings_file, extra_properties)
    if not bridge.alive():
        bridge.start(wait=wait, timeout=timeout, stall_s=stall_s)
    return bridge
