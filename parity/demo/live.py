"""The live terminal view while the demo runs (rich), drawn from the latest metrics sample."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from parity.demo.sampler import Sample


@dataclass
class Progress:
    """What the run knows besides the metrics: its phase and how much it injected so far."""

    phase: str = "starting"
    detail: str = ""
    injected: int = 0
    elapsed_s: float = 0.0


def view(sample: Sample | None, progress: Progress, modes: dict[str, str],
         backfill_total: dict[str, int]) -> RenderableType:
    head = Text.assemble(
        ("parity demo  ", "bold"), (f"{progress.phase}", "bold cyan"),
        (f"  {progress.detail}" if progress.detail else "", "dim"),
        (f"   {progress.elapsed_s:5.0f}s", ""),
    )
    if sample is None:
        return Panel(head)
    lag = "-" if sample.cdc_lag_s is None else f"{sample.cdc_lag_s * 1000:.0f} ms"
    stats = Text(
        f"events/s {sample.events_per_s:7.0f}   events {sample.events_total:8.0f}   CDC lag {lag:>8}   "
        f"consumer lag {sample.consumer_lag:6.0f} msgs   injected drift {progress.injected}"
    )
    table = Table(expand=False, box=None, padding=(0, 2))
    for col in ("table", "mode", "drift ratio", "drift", "pending rechecks", "backfill"):
        table.add_column(col, justify="left" if col in ("table", "mode") else "right")
    for name, mode in modes.items():
        if mode == "verify":
            ratio = f"{sample.drift_ratio.get(name, 0.0):.2%}"
            drift = f"{sample.drift_total.get(name, 0.0):.0f}"
            backfill = "-"
        else:
            ratio, drift = "(reconcile)", "-"
            total = backfill_total.get(name, 0)
            done = sample.backfill_rows.get(name, 0.0)
            mark = " done" if sample.backfill_done.get(name) or (total and done >= total) else ""
            backfill = f"{done:.0f}/{total}{mark}" if total else f"{done:.0f}{mark}"
        pending = f"{sample.pending_rechecks.get(name, 0.0):.0f}" if mode == "verify" else "-"
        table.add_row(name, mode, ratio, drift, pending, backfill)
    return Panel(Group(head, stats, table), title="parity", border_style="cyan")


def renderer(latest: Callable[[], Sample | None], progress: Progress, modes: dict[str, str],
             backfill_total: dict[str, int]) -> Callable[[], RenderableType]:
    return lambda: view(latest(), progress, modes, backfill_total)
