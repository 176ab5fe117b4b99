"""`parity demo`: the whole story on the local stack in a couple of minutes (see run.py)."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        rows: Annotated[int, typer.Option(min=10, help="Rows seeded per example (payments; billing).")] = 1000,
        phase: Annotated[str, typer.Option(
            help="migration: Postgres is the source of truth (Debezium, Kafka, verify and shadow); cutover: "
                 "DynamoDB is, its Stream checked against Postgres (reverse mode, docs/reverse.md).")] = "migration",
        duration: Annotated[float | None, typer.Option(
            min=1, help="Seconds of application workload (default 30; cutover 15).")] = None,
        drift_rate: Annotated[float, typer.Option(min=0, max=1, help="Share of operations that inject drift.")] = 0.02,
        lag_ms: Annotated[float, typer.Option(min=0, help="DynamoDB dual writes land up to this late.")] = 1000.0,
        grace: Annotated[float | None, typer.Option(
            min=0.5, help="Recheck grace period (seconds); keep > lag (default 8; cutover 3).")] = None,
        keep: Annotated[bool, typer.Option("--keep", help="Leave everything running at the end until Ctrl-C.")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (the result).")] = False,
        prometheus: Annotated[bool, typer.Option(help="Start a Prometheus scraping the daemon.")] = True,
        state_dir: Annotated[Path, typer.Option(help="Where services keep data, logs and the report.")] = Path(
            ".parity/demo"),
    ) -> None:
        """Start the local stack, run an application with injected drift, verify it live, reconcile,
        and score what parity found. Exit 0 only when exactly the injected drift was reported and
        every event and row is accounted for (1: not exact or not accounted for, 2: usage, 3: the
        stack could not run, 130: interrupted)."""
        from parity.demo.deploy import DemoSettings

        if phase not in ("migration", "cutover"):
            typer.echo(f"error: --phase must be migration or cutover, got {phase!r}", err=True)
            raise typer.Exit(2)
        if phase == "cutover":
            from parity.demo.cutover import CutoverSettings

            cutover = CutoverSettings(duration_s=duration or 15.0, drift_rate=drift_rate, grace_s=grace or 3.0,
                                      state_dir=state_dir.parent / (state_dir.name + "-cutover"))
            raise typer.Exit(run_cutover_cli(cutover, as_json=as_json))
        duration = 30.0 if duration is None else duration
        grace = 8.0 if grace is None else grace
        if lag_ms / 1000 >= grace:
            typer.echo(f"error: --lag-ms ({lag_ms:g}) must be below the grace period ({grace:g}s)", err=True)
            raise typer.Exit(2)
        settings = DemoSettings(rows=rows, duration_s=duration, drift_rate=drift_rate, lag_ms=lag_ms,
                                grace_s=grace, prometheus=prometheus, state_dir=state_dir)
        raise typer.Exit(run_cli(settings, keep=keep, as_json=as_json))


def run_cutover_cli(settings: Any, *, as_json: bool) -> int:
    """The cutover scenario (parity.demo.cutover): exit 0 only when exactly the injected drift was
    reported and every stream record has an outcome."""
    from rich.console import Console

    from parity.demo import summary
    from parity.demo.cutover import print_cutover, run_cutover

    out = Console(stderr=as_json, width=120)

    def announce(name: str, detail: str, elapsed: float) -> None:
        out.print(f"[{elapsed:6.1f}s] {name}" + (f": {detail}" if detail else ""), highlight=False)

    try:
        result = run_cutover(settings, on_phase=announce)
    except KeyboardInterrupt:
        out.print("[yellow]interrupted[/yellow]")
        return 130
    except Exception as exc:
        from parity.core.errors import LocalEnvironmentError, UnreachableError
        from parity.devstack.prereqs import MissingPrerequisite

        if isinstance(exc, LocalEnvironmentError | UnreachableError | MissingPrerequisite):
            out.print(f"[red]error:[/red] {exc}")
            return 3
        raise
    if as_json:
        sys.stdout.write(summary.to_json(result))
    else:
        print_cutover(result, out)
    return 0 if result["exact"] and result["accounted"] else 1


def run_cli(settings: Any, *, keep: bool, as_json: bool) -> int:
    from rich.console import Console
    from rich.live import Live

    from parity.demo import summary
    from parity.demo.live import renderer
    from parity.demo.run import DemoError, DemoRun

    out = Console(stderr=as_json)  # with --json, stdout carries the JSON object only
    interactive = out.is_terminal
    if not interactive:
        out = Console(stderr=as_json, width=120)  # a log or CI: not squeezed to 80 columns

    def announce(name: str, detail: str, elapsed: float) -> None:
        out.print(f"[{elapsed:6.1f}s] {name}" + (f": {detail}" if detail else ""), highlight=False)

    run = DemoRun(settings, on_phase=None if interactive else announce)
    live: Live | None = None
    if interactive:
        live = Live(console=out, refresh_per_second=2, transient=True,
                    get_renderable=renderer(lambda: run.sampler.latest if run.sampler else None, run.progress,
                                            run.modes, run.backfill_total))

    def on_result(result: dict[str, Any]) -> None:
        if live is not None:
            live.stop()
        if as_json:
            sys.stdout.write(summary.to_json(result))
            sys.stdout.flush()
        else:
            summary.print_summary(result, out)
        if keep:
            summary.print_endpoints(result, out)
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                out.print("stopping…")

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        if live is not None:
            live.start()
        result = run.run(on_result=on_result)
    except KeyboardInterrupt:
        out.print("[yellow]interrupted: everything was stopped[/yellow]")
        return 130
    except DemoError as exc:
        out.print(f"[red]error:[/red] {exc}")
        return 3
    except Exception as exc:
        from parity.devstack.prereqs import MissingPrerequisite

        if isinstance(exc, MissingPrerequisite):
            out.print(f"[red]missing prerequisite:[/red] {exc} (run `make prereqs`)")
            return 3
        raise
    finally:
        if live is not None:
            live.stop()
        signal.signal(signal.SIGTERM, previous)
    return 0 if result["exact"] and result["accounted"] else 1

