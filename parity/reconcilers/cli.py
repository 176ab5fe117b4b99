"""`parity reconcile` and `parity repair`. Exit codes: 0 clean; 1 drift found or something not
compared (reconcile), a write failed (repair); 2 usage, configuration, or a report repair refuses;
3 a reconcile run could not finish, or repair could not reach Postgres (parity.exit_codes). A Postgres connection
failure is parity's one line (`parity.clients.PostgresConnectionError`), never the driver's text."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

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


def _stores(cfg: Any, workers: int) -> Any:
    from parity.clients import dynamodb_client
    from parity.daemon.dynamo import DynamoStore

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
    ) -> None:
        """Compare whole tables: Postgres (one snapshot) against DynamoDB (parallel Scan)."""
        from parity.reconcilers.reconcile import Reconciler, write_report
        from parity.reconcilers.report import exit_code, summary_lines

        cfg = _load(config)
        store = _stores(cfg, workers or cfg.reconcile.workers)
        interval = None if once else cfg.reconcile.interval_s
        try:
            while True:
                progress = RichProgress() if sys.stderr.isatty() and not as_json else None
                reconciler = Reconciler(cfg, dynamo=store, dsn=cfg.postgres, progress=progress)
                try:
                    report = reconciler.run(tables=table, segments=segments, workers=workers, resume=resume)
                except ParityError as exc:
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
        from parity.clients import PostgresConnectionError

        store = _stores(cfg, cfg.reconcile.workers)
        try:
            repairer = Repairer(cfg, dynamo=store, dsn=cfg.postgres, rate=rate)
            try:
                outcome = repairer.run(data, execute=execute, delete_unexpected=delete_unexpected,
                                       echo=typer.echo)
            except ParityError as exc:
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
    from parity.core.errors import StoreError
    from parity.daemon.run import state_path
    from parity.daemon.state import StateStore, key_json

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
