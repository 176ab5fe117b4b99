"""`parity demo`, start to finish: stack up -> schemas and seed -> daemon + Debezium bridge ->
application-like workload with injected drift -> settle -> reconcile -> score -> HTML report ->
stack down (or kept running with --keep until Ctrl-C).

Everything runs under one state directory (default .parity/demo), which a new run wipes first.
The daemon runs in this process (the same wiring as `parity run`), so the demo reads its metrics
registry and state store directly.
"""

from __future__ import annotations

import gc
import os
import shutil
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

import structlog

from parity.demo.billing import ROWS_PER_ACCOUNT, BillingApp
from parity.demo.deploy import TOPIC_PREFIX, DemoSettings, create_schemas, demo_config, write_config
from parity.demo.live import Progress
from parity.demo.sampler import Sampler, read_registry
from parity.demo.score import Detection, score
from parity.workload import PaymentsApp

log = structlog.get_logger("parity.demo")
MARKER = ".parity-demo"
SLOT = "parity_demo"
ROOT = Path(__file__).resolve().parents[2]


class DemoError(Exception):
    """The demo could not run (a service did not start, the state dir is not the demo's)."""


def prepare_state_dir(state: Path) -> None:
    """Stop whatever a previous run left (--keep, a crash) and start from an empty directory. Refuses
    a non-empty directory that is not a demo state dir, so a typo cannot wipe anything else."""
    from parity.devstack.stack import Stack

    if state.exists() and any(state.iterdir()):
        if not (state / MARKER).exists():
            raise DemoError(f"{state} is not empty and not a parity demo state dir; choose another --state-dir")
        Stack(state).down()
        shutil.rmtree(state)
    state.mkdir(parents=True, exist_ok=True)
    (state / MARKER).write_text("created by `parity demo`; wiped by the next run\n")


class DemoRun:
    def __init__(self, settings: DemoSettings, *,
                 on_phase: Callable[[str, str, float], None] | None = None) -> None:
        self.s = settings
        self.state = settings.state_dir.resolve()
        self.on_phase = on_phase
        self.progress = Progress()
        self.phases: dict[str, float] = {}
        self._phase_started = time.monotonic()
        self._t0 = time.monotonic()
        self.sampler: Sampler | None = None
        self.modes: dict[str, str] = {}
        self.backfill_total: dict[str, int] = {}
        self.endpoints: dict[str, str] = {}
        self.notes: list[str] = []

    # -- bookkeeping ----------------------------------------------------------------------------

    def phase(self, name: str, detail: str = "") -> None:
        now = time.monotonic()
        if self.progress.phase != name:
            if self.on_phase is not None:
                self.on_phase(name, detail, now - self._t0)
            self.phases[self.progress.phase] = round(self.phases.get(self.progress.phase, 0.0)
                                                     + now - self._phase_started, 2)
            self._phase_started = now
        self.progress.phase = name
        self.progress.detail = detail
        self.progress.elapsed_s = now - self._t0
        log.info("phase", phase=name, detail=detail)

    def tick(self) -> None:
        self.progress.elapsed_s = time.monotonic() - self._t0

    # -- the run --------------------------------------------------------------------------------

    def run(self, on_result: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """The whole demo; `on_result` sees the result while everything still runs (--keep waits
        there), and the stack stops when it returns or raises."""
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "parity")  # DynamoDB Local wants some credentials
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "parity")
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        prepare_state_dir(self.state)
        from parity.logging import configure_logging

        log_file = (self.state / "demo.log").open("a")
        configure_logging("info", stream=log_file)
        with ExitStack() as cleanup:
            cleanup.callback(log_file.close)
            cleanup.callback(self._stack_down)
            result = self._run(cleanup)
            if on_result is not None:
                on_result(result)
            return result
        raise AssertionError("unreachable")

    def _stack_down(self) -> None:
        from parity.devstack.stack import Stack

        self.phase("stopping")
        Stack(self.state).down()

    def _run(self, cleanup: ExitStack) -> dict[str, Any]:
        import boto3
        import psycopg

        from parity.daemon.app import DaemonApp, live_status
        from parity.devstack.debezium import start_bridge
        from parity.devstack.dynamodb import CREDENTIALS
        from parity.devstack.process import free_port
        from parity.devstack.stack import Stack

        s = self.s
        self.phase("starting", "Postgres, Kafka (tansu), DynamoDB Local")
        ep = Stack(self.state).up()
        log.info("stack up", startup_seconds=ep.get("startup_seconds"))
        dsn, bootstrap, endpoint = ep["postgres"]["dsn"], ep["kafka"]["bootstrap"], ep["dynamodb"]["endpoint"]
        dynamo = boto3.client("dynamodb", endpoint_url=endpoint, **CREDENTIALS)

        self.phase("seeding", f"{s.rows} payments, {s.rows} billing rows")
        started = time.monotonic()
        create_schemas(dsn, dynamo)
        log.info("schemas created", seconds=round(time.monotonic() - started, 2))
        http_port = free_port()
        config_path = self.state / "parity.yaml"
        cfg = write_config(demo_config(s, dsn=dsn, bootstrap=bootstrap, dynamodb=endpoint, http_port=http_port),
                           config_path)
        self.modes.update({t.source: t.mode for t in cfg.tables})  # the live view holds this dict
        payments_conn = cleanup.enter_context(psycopg.connect(dsn, autocommit=True))
        billing_conn = cleanup.enter_context(psycopg.connect(dsn, autocommit=True))
        payments = PaymentsApp(payments_conn, dynamo, cfg.table("public.payments"), lag_ms=s.lag_ms, seed=7)
        started = time.monotonic()
        payments.seed(s.rows)
        log.info("seeded", table="public.payments", rows=s.rows, seconds=round(time.monotonic() - started, 2))
        operations = max(1, round(s.payments_rate * s.duration_s))
        drift_every = round(1 / s.drift_rate) if s.drift_rate > 0 else 0
        billing_ops = s.billing_rate * s.duration_s
        billing_drifts = round(s.drift_rate * billing_ops) if s.drift_rate > 0 else 0
        accounts = max(2, s.rows // ROWS_PER_ACCOUNT)
        billing = BillingApp(billing_conn, dynamo, cfg, accounts=accounts, reserved=billing_drifts)
        started = time.monotonic()
        billing.seed()
        log.info("seeded", table="billing", rows=billing.rows, seconds=round(time.monotonic() - started, 2))
        with payments_conn.cursor() as cur:
            for t in cfg.tables:
                if t.mode == "shadow":
                    cur.execute(f"SELECT count(*) FROM {t.source}")  # our own table names
                    row = cur.fetchone()
                    self.backfill_total[t.source] = int(row[0]) if row else 0

        self.phase("starting", "parity daemon, Debezium bridge" + (", Prometheus" if s.prometheus else ""))
        from confluent_kafka.admin import AdminClient

        from parity.devstack.kafka import create_topics

        # Topics exist with 4 partitions before anyone subscribes or produces (tansu would make 1).
        create_topics(AdminClient({"bootstrap.servers": bootstrap}), cfg.topics(), 4)
        # The process `parity run` is, in a thread; the demo reconciles as a phase of its own.
        app = DaemonApp(cfg, reconcile_schedule=False)
        daemon, registry, metrics = app.forward, app.registry, app.metrics
        app.start()

        def stop_daemon() -> None:
            app.stop()
            # Drop the last references to the daemon's Kafka producer while the broker still runs:
            # destroyed later, librdkafka would log reconnect failures all through the teardown.
            del daemon.dead_letters
            del daemon.drift_topic
            gc.collect()

        cleanup.callback(stop_daemon)
        assert app.server is not None
        server = app.server
        self.sampler = Sampler(registry, phase=lambda: self.progress.phase).start()
        cleanup.callback(self.sampler.stop)
        self.endpoints = {"metrics": f"{server.url}/metrics", "status": f"{server.url}/status",
                          "config": str(config_path)}
        bridge = start_bridge(self.state, dsn, bootstrap, [t.source for t in cfg.tables],
                              topic_prefix=TOPIC_PREFIX, slot_name=SLOT, wait=False)
        if s.prometheus:
            # Prometheus takes seconds to answer; nothing in the demo waits for it.
            prom = threading.Thread(target=self._start_prometheus, args=(http_port,), daemon=True)
            prom.start()
            cleanup.callback(prom.join, 90)
        log.info("bridge streaming", seconds=round(bridge.wait_streaming(), 2))
        self._wait_backfill(daemon)

        self.phase("workload", f"{operations} payments operations, billing at {s.billing_rate:g}/s")
        stop = threading.Event()
        spread = [s.duration_s * (i + 0.5) / billing_drifts for i in range(billing_drifts)] if billing_drifts else []
        errors: list[BaseException] = []

        def guarded(fn: Callable[[], None]) -> Callable[[], None]:
            def run() -> None:
                try:
                    fn()
                except BaseException as exc:
                    errors.append(exc)
                    stop.set()
            return run

        workers = [
            threading.Thread(target=guarded(lambda: payments.run(operations, drift_every=drift_every,
                                                                 rate=s.payments_rate)), daemon=True),
            threading.Thread(target=guarded(lambda: billing.run(s.duration_s, s.billing_rate, stop.is_set,
                                                                drift_at=spread)), daemon=True),
        ]
        for w in workers:
            w.start()
        try:
            while any(w.is_alive() for w in workers):
                self.progress.injected = len(payments.injected) + len(billing.injected)
                self.tick()
                time.sleep(0.2)
        finally:
            stop.set()
        payments.finish()
        if errors:
            raise DemoError(f"workload failed: {errors[0]!r}") from errors[0]
        self.progress.injected = len(payments.injected) + len(billing.injected)

        self.phase("settling", f"grace period {s.grace_s:g}s, waiting for every event to be verified")
        self._settle(daemon)

        from parity.demo.accounting import stream_accounting

        # The same document as `parity status --json`, from the running daemon (the partitions'
        # high watermarks are the broker's count of the records on each topic).
        accounting = stream_accounting(live_status(daemon),
                                       {cfg.kafka.topic_for(t.source): t.source for t in cfg.tables})

        self.phase("reconcile", "Postgres vs DynamoDB, whole tables")
        reconcile = self._reconcile(cfg, dsn, metrics)

        self.phase("scoring")
        detections = [
            Detection("stream", r["table"], r["key"], r["kind"], float(r["confirmed_at"]))
            for r in daemon.state.drift_records()
        ]
        detections.extend(reconcile.pop("_detections", []))
        result_score = score([*payments.injected, *billing.injected], detections,
                             tables=[t.source for t in cfg.tables])
        counts = daemon.state.outcome_counts()
        result: dict[str, Any] = result_score.to_json()
        result.update({
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(s).items()},
            "verify_tables": [t.source for t in cfg.tables if t.mode == "verify"],
            "shadow_tables": [t.source for t in cfg.tables if t.mode == "shadow"],
            "stream": {
                "events": sum(sum(c.values()) for c in counts.values()),
                "outcomes": counts,
                "drift": sum(1 for d in detections if d.detector == "stream"),
            },
            "reconcile": reconcile,
            "accounting": accounting,
            "workload": {"payments_operations": operations, "billing_operations": billing.operations,
                         "injected_payments": len(payments.injected), "injected_billing": len(billing.injected),
                         "dual_write_max_landed_s": round(payments.writer.max_landed_s, 3)},
            "endpoints": dict(self.endpoints),
            "notes": self.notes,
        })
        coverage = reconcile.get("coverage")
        # Nothing passed unverified: both sums hold against counts parity did not make.
        result["accounted"] = bool(accounting["adds_up"] and coverage is not None and coverage["adds_up"])
        late = payments.writer.max_landed_s
        if late >= s.grace_s:
            # Not a verifier error: a write that lands after the grace period is drift by definition.
            self.notes.append(
                f"some dual writes landed up to {late:.1f}s after their Postgres commit, beyond the "
                f"{s.grace_s:g}s grace period (the machine could not keep up with the workload); the "
                "verifier rightly reports those as drift. Try a longer --grace or a lighter load.")
        self.sampler.take()
        self.phase("report")
        from parity.demo.html import render

        html_path = self.state / "report.html"
        result["report_html"] = str(html_path)
        result["phases_s"] = dict(self.phases)
        result["duration_s"] = round(time.monotonic() - self._t0, 1)
        html_path.write_text(render(result, self.sampler.samples))
        (self.state / "result.json").write_text(_json(result))
        self.phase("done")
        return result

    # -- steps ----------------------------------------------------------------------------------

    def _start_prometheus(self, http_port: int) -> None:
        from parity.devstack.prereqs import MissingPrerequisite
        from parity.devstack.process import ServiceError
        from parity.devstack.prometheus import start_prometheus

        rules = [p for p in (ROOT / "prometheus" / "alerts.yml",) if p.exists()]
        try:
            prom = start_prometheus(self.state, [f"127.0.0.1:{http_port}"], rule_files=rules)
        except (MissingPrerequisite, ServiceError) as exc:
            self.notes.append(f"Prometheus not started: {exc}")
            return
        self.endpoints["prometheus"] = prom.url

    def _metric(self, registry_values: dict[Any, float], name: str) -> float:
        return sum(v for (n, _), v in registry_values.items() if n == name)

    def _wait_backfill(self, daemon: Any, timeout: float = 120.0) -> None:
        """The bridge has sent the initial snapshot; wait until the daemon consumed all of it (and so
        the shadow tables are backfilled) before the application starts writing."""
        self.phase("backfill", "Debezium snapshot -> verify payments, apply billing")
        assert self.sampler is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.tick()
            values = read_registry(self.sampler.registry)
            applied = {dict(labels).get("table"): v for (n, labels), v in values.items()
                       if n == "parity_backfill_rows_applied_total"}
            verified = sum(v for (n, labels), v in values.items()
                           if n == "parity_events_total" and dict(labels).get("table") == "public.payments")
            # Debezium flags only the last record of the whole snapshot, so count rows per table.
            if (verified >= self.s.rows and all(applied.get(t, 0) >= n for t, n in self.backfill_total.items())
                    and self._metric(values, "parity_kafka_consumer_lag_messages") == 0):
                return
            time.sleep(0.5)
        self.notes.append(f"backfill not finished after {timeout:.0f}s; continuing")

    def _settle(self, daemon: Any) -> None:
        """Every event consumed and decided: no consumer lag, no pending recheck, and no new event
        for a few seconds (the bridge forwards within about a second)."""
        assert self.sampler is not None
        s = self.s
        time.sleep(min(s.lag_ms / 1000 + 1.0, 10.0))
        deadline = time.monotonic() + max(60.0, 6 * s.grace_s)
        quiet_since: float | None = None
        last_events = -1.0
        while time.monotonic() < deadline:
            self.tick()
            values = read_registry(self.sampler.registry)
            events = self._metric(values, "parity_events_total")
            idle = (self._metric(values, "parity_kafka_consumer_lag_messages") == 0
                    and self._metric(values, "parity_recheck_pending_keys") == 0
                    and len(daemon.pipeline.rechecks) == 0 and events == last_events)
            last_events = events
            if not idle:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= 3.0:
                return
            time.sleep(0.5)
        self.notes.append("the daemon did not settle before the timeout; counts may be incomplete")

    def _reconcile(self, cfg: Any, dsn: str, metrics: Any) -> dict[str, Any]:
        try:
            from parity.reconcilers.reconcile import Reconciler, write_report
            from parity.reconcilers.tally import key_from_json
        except ImportError as exc:  # the reconciler is optional for the demo's streaming half
            self.notes.append(f"reconcile skipped: {exc}")
            return {"status": f"skipped: {exc}"}
        from parity.adapters.clients import dynamodb_client
        from parity.adapters.dynamodb import DynamoStore

        store = DynamoStore(dynamodb_client(cfg.dynamodb), concurrency=4)
        try:
            report = Reconciler(cfg, dynamo=store, dsn=dsn, metrics=metrics).run()
        finally:
            store.close()
        at = time.time()
        path = write_report(report, Path(cfg.reconcile.report_dir))
        detections = [
            Detection("reconcile", source, key_from_json(d["key"]), d["kind"], at)
            for source, t in report["tables"].items()
            for d in t["drift"]
        ]
        import psycopg

        from parity.demo.accounting import reconcile_coverage

        with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
            rows: dict[str, int] = {}
            for source in report["tables"]:
                cur.execute(f"SELECT count(*) FROM {source}")  # our own table names
                row = cur.fetchone()
                rows[source] = int(row[0]) if row else 0
        return {
            "status": "ok",
            "report": str(path),
            "coverage": reconcile_coverage(report, rows),
            "duration_s": report.get("duration_s"),
            "drift_total": report.get("drift_total"),
            "rows_compared": {s: t["rows_postgres"] for s, t in report["tables"].items()},
            "unmapped_items": {t: v.get("unmapped", {}).get("count", 0) for t, v in report["targets"].items()},
            "_detections": detections,
        }


def _json(value: Any) -> str:
    import orjson

    return orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode() + "\n"
