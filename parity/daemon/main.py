"""`parity run`: the daemon with its HTTP endpoints, metrics and (optionally) periodic reconciles."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from parity.core.config import ParityConfig
from parity.daemon.run import Daemon
from parity.daemon.status import collect_status
from parity.daemon.telemetry import PrometheusTelemetry
from parity.daemon.wiring import build_daemon
from parity.logging import configure_logging
from parity.metrics.catalog import Metrics, register_runtime_collectors
from parity.metrics.server import Check, MetricsServer

log = structlog.get_logger("parity.daemon")


def parity_version() -> str:
    try:
        return version("parity")
    except PackageNotFoundError:
        return "0.0.0"


class ReachabilityProbe:
    """Postgres, DynamoDB and Kafka reachability for /readyz (the same checks as `parity doctor`),
    refreshed in a background thread so a probe request never waits on a slow system."""

    def __init__(
        self,
        config: ParityConfig,
        interval_s: float = 10.0,
        on_result: Callable[[dict[str, bool]], None] | None = None,
        log_every_s: float = 60.0,
    ) -> None:
        self.config = config
        self.interval_s = interval_s
        # Called after every probe with {system: reachable} (parity_dependency_up).
        self.on_result = on_result
        self.log_every_s = log_every_s
        self._down_logged: dict[str, float] = {}  # system -> when "unreachable" was last logged
        self._results: list[tuple[str, bool, str]] = [(s, False, "not checked yet") for s in _SYSTEMS]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="parity-reachability", daemon=True)

    def start(self) -> ReachabilityProbe:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        from parity.doctor import reachability

        while not self._stop.is_set():
            try:
                self._results = reachability(self.config, timeout_s=3.0)
            except Exception as exc:  # a probe must never kill the daemon; report it instead
                self._results = [(s, False, f"probe failed: {type(exc).__name__}") for s in _SYSTEMS]
            try:
                if self.on_result is not None:
                    self.on_result({name: ok for name, ok, _detail in self._results if name in _SYSTEMS})
                self.log_changes(time.monotonic())
            except Exception:  # reporting must not stop the probe that /readyz depends on
                log.exception("reachability report failed")
            self._stop.wait(self.interval_s)

    def log_changes(self, now: float) -> None:
        """`<system> unreachable, retrying` naming where, when a system goes down and then at most
        once per `log_every_s` while it stays down; `<system> reachable again` when it is back.
        (The clients' own lines are rate-limited too, and never name the dependency this plainly.)"""
        for system, ok, detail in self._results:
            last = self._down_logged.get(system)
            if ok:
                if last is not None:
                    del self._down_logged[system]
                    log.info(f"{system} reachable again", **self._where(system))
                continue
            if last is None or now - last >= self.log_every_s:
                self._down_logged[system] = now
                log.warning(f"{system} unreachable, retrying", detail=detail, **self._where(system))

    def _where(self, system: str) -> dict[str, str]:
        if system == "kafka":
            return {"brokers": self.config.kafka.bootstrap_servers}
        if system == "dynamodb":
            return {"endpoint": self.config.dynamodb.endpoint or f"AWS {self.config.dynamodb.region}"}
        from parity.adapters.clients import postgres_target

        try:
            return {"postgres": postgres_target(self.config.postgres).where}
        except Exception:
            return {}

    def checks(self) -> list[Check]:
        return [Check(name, ok, detail) for name, ok, detail in self._results]


_SYSTEMS = ("postgres", "dynamodb", "kafka")


def readiness(daemon: Daemon, probe: ReachabilityProbe) -> Iterable[Check]:
    h = daemon.health
    failing = h.failing_since is not None
    error = h.last_error or ""
    checks = [
        # In the consumer group, with or without partitions: with more replicas than partitions a
        # replica legitimately owns none, and a rolling update must not wait for it forever.
        Check("group_joined", daemon.source.joined, f"{len(daemon.source.assigned)} partitions assigned"),
        Check("pipeline", not failing, error),
        Check("stores_writable", not (failing and "StoreError" in error), ""),
    ]
    for c in probe.checks():
        if c.name == "dynamodb" and failing and "Dynamo" in error:
            c = Check(c.name, False, error)  # the pipeline's own failure is the fresher signal
        checks.append(c)
    return checks


def live_status(daemon: Daemon) -> dict[str, Any]:
    # The daemon's current stream snapshot instead of the stored one: the same document as
    # `parity status --json`, fresher. Read from the HTTP thread, so it never calls the Kafka
    # consumer: the lag is the loop's latest (a CI run saw /status outlast a 5 s client timeout).
    lag = dict(daemon.last_lag)
    now = time.time()
    stream = daemon.stream_snapshot(now, lag, about_to_commit=False)
    status = collect_status(daemon.config, daemon.state, now=now, stream=stream)
    status["consumer_lag"] = {f"{t}[{p}]": n for (t, p), n in lag.items()}
    status["assigned_partitions"] = sorted(f"{t}[{p}]" for t, p in daemon.source.assigned)
    status["ready"] = daemon.ready()
    status["schema_drift"] = daemon.pipeline.schema_drift()
    status["columns_missing"] = daemon.pipeline.columns_missing()
    return status


def run_daemon(config: ParityConfig, *, log_level: str = "info") -> int:
    configure_logging(log_level)
    registry = CollectorRegistry()
    register_runtime_collectors(registry)
    metrics = Metrics(
        registry,
        version=parity_version(),
        tables=[t.source for t in config.tables],
        columns={t.source: list(t.columns) for t in config.tables},
        drift_window_s=config.daemon.drift_window_s,
    )
    telemetry = PrometheusTelemetry(metrics)
    daemon = build_daemon(config, telemetry=telemetry)
    telemetry.snapshot_rows.update(daemon.snapshot_rows)
    for table in daemon.snapshot_done:  # finished by an earlier run of the daemon
        metrics.backfill_progress(table, 0, snapshot_rows=daemon.snapshot_rows.get(table, 0), done=True)
    probe = ReachabilityProbe(config, on_result=telemetry.dependencies).start()
    server = MetricsServer(
        registry,
        config.daemon.http,
        readiness=lambda: readiness(daemon, probe),
        status=lambda: live_status(daemon),
    ).start()
    scheduler = None
    if config.reconcile.interval_s:
        from parity.reconcilers.schedule import ReconcileSchedule

        scheduler = ReconcileSchedule(config, metrics=metrics, state=daemon.state)
        metrics.reconcile_scheduled(config.reconcile.interval_s, [t.source for t in config.tables], time.time())
        scheduler.start()
    daemon.install_signal_handlers()
    try:
        daemon.run()
    finally:
        if scheduler is not None:
            scheduler.stop()
        server.stop()
        probe.stop()
        daemon.state.close()
    return 0
