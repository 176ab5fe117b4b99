"""The daemon process, composed once: the metrics registry and catalog, Prometheus telemetry, the
Daemon (`wiring.build_daemon`, the Kafka loop of the forward tables), the reverse loop (the
DynamoDB Stream of the tables in mode reverse, `reverse_wiring.build_reverse`, in a second thread
on the same state store; a configuration of reverse tables only runs no Kafka loop), the
reachability probe, the HTTP endpoints, the optional periodic reconciles, and one ordered shutdown.

`parity run` runs it in the foreground; the demo and the test harnesses run it in a thread. They
used to repeat this composition and drifted apart (a catalog without columns, a probe that never
fed parity_dependency_up, another shutdown order); one class keeps them the same process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import CollectorRegistry

from parity.adapters.sinks import JsonLinesFile
from parity.adapters.state import StateStore
from parity.core.config import ParityConfig
from parity.daemon.reverse import ReverseDaemon
from parity.daemon.run import Daemon, Telemetry, emit_outbox, loop_gc, state_path
from parity.daemon.status import collect_status
from parity.daemon.telemetry import PrometheusTelemetry
from parity.daemon.wiring import build_daemon
from parity.metrics.catalog import Metrics, register_runtime_collectors
from parity.metrics.server import Check, MetricsServer

if TYPE_CHECKING:  # imported when scheduled: the reconciler is not needed otherwise
    from parity.reconcilers.schedule import ReconcileSchedule

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


def readiness(
    daemon: Daemon | None, probe: ReachabilityProbe | None, reverse: ReverseDaemon | None = None
) -> Iterable[Check]:
    """What /readyz answers; without a probe, the loops' own checks only. Without a Kafka loop (all
    tables reverse), Kafka is not a dependency and its probe result is left out."""
    checks: list[Check] = []
    errors: list[str] = []
    if daemon is not None:
        h = daemon.health
        failing = h.failing_since is not None
        error = h.last_error or ""
        checks += [
            # In the consumer group, with or without partitions: with more replicas than partitions a
            # replica legitimately owns none, and a rolling update must not wait for it forever.
            Check("group_joined", daemon.source.joined, f"{len(daemon.source.assigned)} partitions assigned"),
            Check("pipeline", not failing, error),
        ]
        if failing:
            errors.append(error)
    if reverse is not None:
        r = reverse.health
        checks.append(Check("reverse_stream", r.failing_since is None, r.last_error or ""))
        if r.failing_since is not None:
            errors.append(r.last_error or "")
    checks.append(Check("stores_writable", not any("StoreError" in e for e in errors), ""))
    for c in probe.checks() if probe is not None else ():
        if c.name == "kafka" and daemon is None:
            continue
        dynamo_error = next((e for e in errors if "Dynamo" in e), None)
        if c.name == "dynamodb" and dynamo_error is not None:
            c = Check(c.name, False, dynamo_error)  # the loop's own failure is the fresher signal
        checks.append(c)
    return checks


def live_status_of(app: DaemonApp) -> dict[str, Any]:
    """/status of the app: both directions, each loop's live snapshot instead of the stored one."""
    now = time.time()
    reverse = app.reverse.snapshot(now) if app.reverse is not None else None
    if app.daemon is not None:
        return live_status(app.daemon, config=app.config, reverse=reverse)
    status = collect_status(app.config, app.state, now=now, reverse=reverse)
    status["ready"] = app.ready()
    return status


def live_status(
    daemon: Daemon, *, config: ParityConfig | None = None, reverse: dict[str, Any] | None = None
) -> dict[str, Any]:
    # The daemon's current stream snapshot instead of the stored one: the same document as
    # `parity status --json`, fresher. Read from the HTTP thread, so it never calls the Kafka
    # consumer: the lag is the loop's latest (a CI run saw /status outlast a 5 s client timeout).
    lag = dict(daemon.last_lag)
    now = time.time()
    stream = daemon.stream_snapshot(now, lag, about_to_commit=False)
    status = collect_status(config or daemon.config, daemon.state, now=now, stream=stream, reverse=reverse)
    status["consumer_lag"] = {f"{t}[{p}]": n for (t, p), n in lag.items()}
    status["assigned_partitions"] = sorted(f"{t}[{p}]" for t, p in daemon.source.assigned)
    status["ready"] = daemon.ready()
    status["schema_drift"] = daemon.pipeline.schema_drift()
    status["columns_missing"] = daemon.pipeline.columns_missing()
    return status


class DaemonApp:
    """One daemon process: `run()` in the foreground (`parity run`), or `start()` / `stop()` (or
    `with`) with the loop in a background thread (the demo, the test harnesses).

    Options, all on as `parity run` has them:
    - `telemetry`: True feeds the app's own catalog (`metrics`, on `registry`); False leaves the
      loop unobserved; a `Telemetry` instance is used as given (a test's own registry).
    - `http`: serve /metrics, /readyz and /status on `config.daemon.http`.
    - `probe_interval_s`: how often the reachability probe refreshes; None for no probe (then
      readiness is the loop's own checks only and parity_dependency_up stays unset).
    - `reconcile_schedule`: run periodic reconciles when `reconcile.interval_s` is set.
    """

    def __init__(
        self,
        config: ParityConfig,
        *,
        telemetry: bool | Telemetry = True,
        http: bool = True,
        probe_interval_s: float | None = 10.0,
        reconcile_schedule: bool = True,
        join_timeout_s: float = 60.0,
    ) -> None:
        self.config = config
        self.join_timeout_s = join_timeout_s
        self.registry = CollectorRegistry()
        register_runtime_collectors(self.registry)
        forward = tuple(t for t in config.tables if t.mode != "reverse")
        reverse = [t for t in config.tables if t.mode == "reverse"]
        self.metrics = Metrics(
            self.registry,
            version=parity_version(),
            tables=[t.source for t in config.tables],
            columns={t.source: list(t.columns) for t in config.tables},
            drift_window_s=config.daemon.drift_window_s,
            directions={t.source: "reverse" for t in reverse},
        )
        self.telemetry: PrometheusTelemetry | None = None
        loop_telemetry: Telemetry | None
        if isinstance(telemetry, Telemetry):
            loop_telemetry = telemetry
        elif telemetry:
            loop_telemetry = self.telemetry = PrometheusTelemetry(self.metrics)
        else:
            loop_telemetry = None
        # The Kafka loop sees only the forward tables (their topics, rechecks, open drift re-reads).
        self.daemon: Daemon | None = (
            build_daemon(config.model_copy(update={"tables": forward}), telemetry=loop_telemetry) if forward else None
        )
        self.state: StateStore = self.daemon.state if self.daemon is not None else StateStore(state_path(config))
        self.reverse: ReverseDaemon | None = None
        if self.daemon is not None:
            self.daemon.reverse_sources = {t.source for t in reverse}
        if reverse:
            from parity.daemon.reverse_wiring import build_reverse

            reverse_telemetry: Telemetry | None
            if isinstance(telemetry, Telemetry):
                reverse_telemetry = telemetry
            elif telemetry:
                reverse_telemetry = PrometheusTelemetry(self.metrics, direction="reverse")
            else:
                reverse_telemetry = None
            self.reverse = build_reverse(
                config, state=self.state, telemetry=reverse_telemetry, emit=self._reverse_emitter(reverse_telemetry)
            )
        if self.telemetry is not None and self.daemon is not None:
            self.telemetry.snapshot_rows.update(self.daemon.snapshot_rows)
            for table in self.daemon.snapshot_done:  # finished by an earlier run of the daemon
                self.metrics.backfill_progress(
                    table, 0, snapshot_rows=self.daemon.snapshot_rows.get(table, 0), done=True
                )
        self.probe: ReachabilityProbe | None = None
        self.threads: list[threading.Thread] = []
        if probe_interval_s is not None:
            on_result = self.telemetry.dependencies if self.telemetry is not None else None
            self.probe = ReachabilityProbe(config, interval_s=probe_interval_s, on_result=on_result)
        self._http = http
        self._schedule = reconcile_schedule and bool(config.reconcile.interval_s)
        self.server: MetricsServer | None = None
        self.scheduler: ReconcileSchedule | None = None
        self.thread: threading.Thread | None = None
        self._stopped = False

    # ----- what the harnesses and the demo read ----------------------------------------------------

    @property
    def forward(self) -> Daemon:
        """The Kafka loop; only for configurations with a table in verify or shadow mode."""
        if self.daemon is None:
            raise RuntimeError("every table is in mode reverse: there is no Kafka loop")
        return self.daemon

    def ready(self) -> bool:
        """What /readyz answers (every check must pass)."""
        return all(c.ok for c in readiness(self.daemon, self.probe, self.reverse))

    def failed_checks(self) -> list[str]:
        return [c.name for c in readiness(self.daemon, self.probe, self.reverse) if not c.ok]

    def _reverse_emitter(self, telemetry: Telemetry | None) -> Callable[[], None] | None:
        """Without a Kafka loop, the reverse loop emits the drift outbox (to the drift log; the
        drift topic only when one is configured)."""
        if self.daemon is not None:
            return None  # the Kafka loop emits every direction's drift, each step
        config = self.config
        drift_file = JsonLinesFile(Path(config.daemon.drift_log)) if config.daemon.drift_log else None
        drift_topic = None
        if config.kafka.drift_topic:
            from parity.adapters.clients import kafka_producer
            from parity.adapters.sinks import KafkaTopicSink

            drift_topic = KafkaTopicSink(kafka_producer(config.kafka), config.kafka.drift_topic)
        quiet = telemetry or Telemetry()
        return lambda: emit_outbox(self.state, drift_file, drift_topic, quiet)

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the registry's samples called `name` whose labels include `labels`."""
        total = 0.0
        for family in self.registry.collect():
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total

    # ----- lifecycle -------------------------------------------------------------------------------

    def _start_services(self) -> None:
        if self.probe is not None:
            self.probe.start()
        if self._http:
            self.server = MetricsServer(
                self.registry,
                self.config.daemon.http,
                readiness=lambda: readiness(self.daemon, self.probe, self.reverse),
                status=lambda: live_status_of(self),
            ).start()
        if self._schedule:
            from parity.reconcilers.schedule import ReconcileSchedule

            interval_s = self.config.reconcile.interval_s or 0.0
            self.scheduler = ReconcileSchedule(self.config, metrics=self.metrics, state=self.state)
            self.metrics.reconcile_scheduled(interval_s, [t.source for t in self.config.tables], time.time())
            self.scheduler.start()

    def start(self) -> DaemonApp:
        """The services, then the loop in a background thread."""
        try:
            self._start_services()
            if self.reverse is not None:
                self._start_reverse()
            if self.daemon is not None:
                self.thread = threading.Thread(target=self.daemon.run, name="parity-daemon", daemon=True)
                self.thread.start()
        except BaseException:
            self.stop()
            raise
        return self

    def run(self) -> None:
        """The loop in this (main) thread until SIGTERM or SIGINT, then the ordered shutdown."""
        with loop_gc():
            self._run()

    def _run(self) -> None:
        try:
            self._start_services()
            if self.reverse is not None:
                self._start_reverse()
            if self.daemon is not None:
                self.daemon.install_signal_handlers()
                self.daemon.run()
            else:
                self._install_reverse_signal_handlers()
                while self.reverse is not None and not self.reverse.stop_event.wait(0.5):
                    pass
        finally:
            self.stop()

    def _start_reverse(self) -> None:
        assert self.reverse is not None
        thread = threading.Thread(target=self.reverse.run, name="parity-reverse", daemon=True)
        self.threads.append(thread)
        thread.start()

    def _install_reverse_signal_handlers(self) -> None:
        import signal

        reverse = self.reverse
        assert reverse is not None

        def stop(signum: int, frame: Any) -> None:
            log.info("stopping", signal=signal.Signals(signum).name)
            reverse.stop_event.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def stop(self) -> None:
        """Once: the loop finishes its batch and leaves the group, then the periodic reconciles
        (they write to the state store), the endpoints, the probe, and last the state store."""
        if self._stopped:
            return
        self._stopped = True
        if self.daemon is not None:
            self.daemon.stop_event.set()
        if self.reverse is not None:
            self.reverse.stop_event.set()
        if self.thread is not None:
            self.thread.join(self.join_timeout_s)
        for thread in self.threads:
            thread.join(self.join_timeout_s)
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.server is not None:
            self.server.stop()
        if self.probe is not None:
            self.probe.stop()
        self.state.close()

    def __enter__(self) -> DaemonApp:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
