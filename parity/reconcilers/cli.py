"""`parity reconcile` and `parity repair`. Exit codes: 0 clean; 1 drift found or something not
compared (reconcile), a write failed (repair); 2 usage, configuration, or a report repair refuses;
3 a reconcile run could not finish, or repair could not reach Postgres (parity.exit_codes). A Postgres connection
failure is parity's one line (`parity.adapters.clients.PostgresConnectionError`), never the driver's text."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from parity.core.config import ParityConfig
from parity.core.errors import ConfigError, ParityError


def _load(path: Path) -> Any:
    from parity.config_loader import load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


class RichProgress:
    """A progress bar on a terminal (rows read of both sides against the planner's estimate)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            transient=True, console=Console(stderr=True),
        )
        self._task: Any = None

    def begin(self, target: str, units: int, estimated_rows: int) -> None:
        self._progress.start()
        self._task = self._progress.add_task(f"reconcile {target}", total=estimated_rows or None)

    def advance(self, rows: int) -> None:
        self._progress.advance(self._task, rows)

    def unit_done(self) -> None:
        return None

    def end(self) -> None:
        self._progress.stop()


class JsonProgress:
    """Progress as JSON log lines (stderr, like every parity log), for runs without a terminal: a
    CronJob's or cron entry's log shows how far a long run got. At most one line per `every_s`
    while rows are read, plus one when a target begins and one when it ends."""

    def __init__(self, every_s: float = 10.0, clock: Any = time.monotonic) -> None:
        import structlog

        self._log = structlog.get_logger("parity.reconcile")
        self._every_s = every_s
        self._clock = clock
        self._target = ""
        self._units = 0
        self._units_done = 0
        self._rows = 0
        self._estimated = 0
        self._started = 0.0
        self._last = 0.0

    def _emit(self, state: str) -> None:
        self._log.info(
            "reconcile progress", state=state, target=self._target, rows_read=self._rows,
            estimated_rows=self._estimated, units_done=self._units_done, units=self._units,
            elapsed_s=round(self._clock() - self._started, 1),
        )

    def begin(self, target: str, units: int, estimated_rows: int) -> None:
        self._target, self._units, self._estimated = target, units, estimated_rows
        self._units_done = self._rows = 0
        self._started = self._last = self._clock()
        self._emit("begin")

    def advance(self, rows: int) -> None:
        self._rows += rows
        self._tick()

    def unit_done(self) -> None:
        self._units_done += 1
        self._tick()

    def _tick(self) -> None:
        now = self._clock()
        if now - self._last >= self._every_s:
            self._last = now
            self._emit("running")

    def end(self) -> None:
        self._emit("end")


def _progress(as_json: bool) -> Any:
    if not sys.stdout.isatty():
        from parity.logging import configure_logging

        configure_logging("info")
        return JsonProgress()
    return RichProgress() if sys.stderr.isatty() and not as_json else None


def _publish(results: Any, target: Any) -> None:
    if results is None:
        return
    try:
        results.publish(target)
    except Exception as exc:  # the run's own outcome decides the exit code; say what was not published
        where = target.pushgateway or target.textfile
        typer.echo(f"warning: could not publish the reconcile results to {where}: {type(exc).__name__}: {exc}",
                   err=True)


def _stores(cfg: Any, workers: int) -> Any:
    from parity.adapters.clients import dynamodb_client
    from parity.adapters.dynamodb import DynamoStore

    store = DynamoStore(dynamodb_client(cfg.dynamodb), concurrency=max(4, workers))
    store.on_unreachable = _dynamo_wait_notice(cfg)
    return store


def _dynamo_wait_notice(cfg: Any, every_s: float = 10.0) -> Any:
    """While DynamoStore retries an unreachable DynamoDB, say so (at most once per `every_s`):
    the retries of a run can add up to a minute or more (dynamodb.timeout_s per attempt)."""
    import logging
    import threading

    last = [-every_s]
    lock = threading.Lock()
    where = cfg.dynamodb.endpoint or f"AWS {cfg.dynamodb.region}"

    def notice(detail: str) -> None:
        now = time.monotonic()
        with lock:
            if now - last[0] < every_s:
                return
            last[0] = now
        logging.getLogger("parity.wait").warning(
            f"waiting for DynamoDB {where}: {detail}; retrying (each attempt gives up after "
            f"{cfg.dynamodb.timeout_s:g} s, dynamodb.timeout_s)")

    return notice


def _exit_if_no_credentials(exc: BaseException, cfg: ParityConfig) -> None:
    """Missing AWS credentials: the one line that names the fix, exit 2 (the environment's setup)."""
    from parity.aws_credentials import find_no_credentials, missing_credentials_message

    if find_no_credentials(exc):
        typer.echo(f"error: {missing_credentials_message(cfg.dynamodb.endpoint, cfg.dynamodb.region)}", err=True)
        raise typer.Exit(2) from None


def register(app: typer.Typer) -> None:
    @app.command()
    def reconcile(
        config: Annotated[Path, typer.Option("--config", "-c", help="parity YAML configuration file.")],
        table: Annotated[
            list[str] | None, typer.Option("--table", help="Only this source table (schema.table).")
        ] = None,
        segments: Annotated[int | None, typer.Option(min=1, help="DynamoDB Scan segments.")] = None,
        workers: Annotated[int | None, typer.Option(min=1, help="Parallel readers per side.")] = None,
        once: Annotated[bool, typer.Option("--once", help="One run, even if an interval is configured.")] = False,
        resume: Annotated[bool, typer.Option("--resume", help="Continue the last interrupted run.")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print the JSON report.")] = False,
        pushgateway: Annotated[
            str | None,
            typer.Option("--pushgateway", envvar="PARITY_PUSHGATEWAY", metavar="URL",
                         help="Push the run's reconcile metrics to this Prometheus Pushgateway."),
        ] = None,
        push_job: Annotated[
            str, typer.Option("--push-job", help="Pushgateway job (grouping key): one per schedule.")
        ] = "parity-reconcile",
        metrics_textfile: Annotated[
            Path | None,
            typer.Option("--metrics-textfile", envvar="PARITY_METRICS_TEXTFILE", metavar="PATH",
                         help="Write the run's reconcile metrics to this file (node_exporter's textfile "
                              "collector directory, a name ending in .prom)."),
        ] = None,
        expected_interval: Annotated[
            float | None,
            typer.Option("--expected-interval", min=0, metavar="SECONDS",
                         help="How often this job is scheduled (published as parity_reconcile_interval_seconds: "
                              "ParityReconcileStale fires after twice that without a success). Default: "
                              "reconcile.interval_s."),
        ] = None,
        cluster: Annotated[
            str | None,
            typer.Option("--cluster", envvar="PARITY_CLUSTER", metavar="ADDRESS",
                         help="Run the reads as tasks on this Dask scheduler (tcp://host:8786; needs the "
                              "`cluster` extra). Default: reconcile.cluster.scheduler, else in this process."),
        ] = None,
    ) -> None:
        """Compare whole tables: Postgres (one snapshot) against DynamoDB (parallel Scan)."""
        from parity.reconcilers.publish import ReconcileResults, Target
        from parity.reconcilers.reconcile import Reconciler, write_report
        from parity.reconcilers.report import exit_code, summary_lines

        cfg = _load(config)
        target = Target(pushgateway=pushgateway, job=push_job, textfile=metrics_textfile)
        publishing = bool(pushgateway or metrics_textfile)
        period = expected_interval if expected_interval is not None else float(cfg.reconcile.interval_s or 0)
        store = _stores(cfg, workers or cfg.reconcile.workers)
        interval = None if once else cfg.reconcile.interval_s
        scheduler = cluster or cfg.reconcile.cluster.scheduler
        dask = None
        try:
            if scheduler:
                from parity.reconcilers.cluster import connect

                try:
                    dask = connect(scheduler)
                except ParityError as exc:
                    typer.echo(f"error: {exc}", err=True)
                    raise typer.Exit(3) from None
            while True:
                progress = _progress(as_json)
                results = ReconcileResults(expected_interval_s=period) if publishing else None
                metrics = results.metrics if results is not None else None
                if dask is not None:
                    from parity.reconcilers.cluster import ClusterReconciler

                    reconciler: Reconciler = ClusterReconciler(cfg, client=dask, dynamo=store, dsn=cfg.postgres,
                                                               progress=progress, metrics=metrics)
                else:
                    reconciler = Reconciler(cfg, dynamo=store, dsn=cfg.postgres, progress=progress, metrics=metrics)
                try:
                    report = reconciler.run(tables=table, segments=segments, workers=workers, resume=resume)
                except ParityError as exc:
                    _exit_if_no_credentials(exc, cfg)
                    _publish(results, target)
                    from parity.exit_codes import USAGE, classify

                    config_error = isinstance(exc, ConfigError) or "not a mapped table" in str(exc)
                    # A run that failed on missing credentials is a configuration error (2), like
                    # everywhere else, and says what to do; every other failure of a run is 3.
                    line, cause = str(exc), exc.__cause__
                    while cause is not None and not config_error:
                        code, why = classify(cause)
                        if code == USAGE:
                            config_error, line = True, f"{exc}: {why}"
                        cause = cause.__cause__
                    typer.echo(f"error: {line}", err=True)
                    raise typer.Exit(2 if config_error else 3) from None
                _publish(results, target)
                path = write_report(report, Path(cfg.reconcile.report_dir))
                if as_json:
                    typer.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
                else:
                    for line in summary_lines(report):
                        typer.echo(line)
                    typer.echo(f"report: {path}")
                if interval is None:
                    raise typer.Exit(exit_code(report))
                resume = False
                time.sleep(interval)
        finally:
            if dask is not None:
                dask.close()
            store.close()

    @app.command()
    def repair(
        config: Annotated[Path, typer.Option("--config", "-c", help="parity YAML configuration file.")],
        report: Annotated[Path, typer.Option("--report", help="A reconcile JSON report.")],
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the writes, change nothing.")] = False,
        execute: Annotated[bool, typer.Option("--execute", help="Perform the writes.")] = False,
        delete_unexpected: Annotated[
            bool, typer.Option("--delete-unexpected", help="Also delete items that have no Postgres row.")
        ] = False,
        rate: Annotated[float | None, typer.Option(min=0.001, help="Writes per second (default: table's "
                                                   "write_rate_limit, else 100).")] = None,
    ) -> None:
        """Rewrite drifted items from Postgres (the source of truth), each write conditional."""
        from parity.reconcilers.repair import Repairer

        if dry_run == execute:
            typer.echo("error: give exactly one of --dry-run or --execute", err=True)
            raise typer.Exit(2)
        cfg = _load(config)
        try:
            data = orjson.loads(report.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            typer.echo(f"error: cannot read report {report}: {exc}", err=True)
            raise typer.Exit(2) from None
        from parity.adapters.clients import PostgresConnectionError

        store = _stores(cfg, cfg.reconcile.workers)
        try:
            repairer = Repairer(cfg, dynamo=store, dsn=cfg.postgres, rate=rate)
            try:
                outcome = repairer.run(data, execute=execute, delete_unexpected=delete_unexpected,
                                       echo=typer.echo)
            except ParityError as exc:
                _exit_if_no_credentials(exc, cfg)
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(2) from None
            except PostgresConnectionError as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(3) from None
        finally:
            store.close()
        if repairer.written:
            _resolve_repaired(cfg, repairer.written)
        typer.echo(" ".join(f"{k}={v}" for k, v in sorted(outcome.items())))
        raise typer.Exit(1 if outcome.get("failed") else 0)


def _resolve_repaired(cfg: Any, written: list[tuple[str, Any]]) -> None:
    """Close the daemon's open drift of the keys a repair wrote, when its state store is here
    (else the daemon's next re-read or reconcile does)."""
    from parity.adapters.state import StateStore, key_json
    from parity.core.errors import StoreError
    from parity.daemon.run import state_path

    path = state_path(cfg)
    if not path.exists():
        return
    try:
        state = StateStore(path)
        try:
            by_table: dict[str, list[str]] = {}
            for source, key in written:
                by_table.setdefault(source, []).append(key_json(key))
            for source, keys in by_table.items():
                n = state.resolve_keys(source, keys, "repair", time.time())
                if n:
                    typer.echo(f"{source}: {n} open drift records resolved by the repair")
        finally:
            state.close()
    except StoreError as exc:
        typer.echo(f"warning: could not mark repaired drift resolved in {path}: {exc}", err=True)
