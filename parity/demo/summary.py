"""The demo's result for people (a rich table) and for machines (one JSON object)."""

from __future__ import annotations

from typing import Any

import orjson
from rich.console import Console
from rich.table import Table


def to_json(result: dict[str, Any]) -> str:
    return orjson.dumps(result, default=str).decode() + "\n"


def print_summary(result: dict[str, Any], out: Console) -> None:
    table = Table(title="Injected vs detected drift")
    for col in ("table", "kind", "injected", "detected", "missed", "false positives"):
        table.add_column(col, justify="left" if col in ("table", "kind") else "right")
    quiet = [name for name, kinds in result["tables"].items() if not kinds]
    for name, kinds in result["tables"].items():
        for kind, c in kinds.items():
            table.add_row(name, kind, str(c["injected"]), str(c["detected"]), _red(c["missed"]),
                          _red(c["false_positives"]))
    if quiet:
        table.add_row(", ".join(quiet), "(none)", "0", "0", "0", "0")
    table.add_section()
    table.add_row("all", "", *(str(sum(result[k].values())) for k in ("injected", "detected", "missed",
                                                                      "false_positives")))
    out.print(table)
    lat = result.get("detection_latency", {})
    for name, v in lat.items():
        label = {"first": "first detection", "stream": "streaming verifier", "reconcile": "reconcile"}.get(name, name)
        out.print(f"time to detection ({label}): p50 {v['p50_s']}s  p99 {v['p99_s']}s  over {v['count']} drifts")
    rec = result.get("reconcile", {})
    if rec.get("status") == "ok":
        out.print(f"reconcile: {rec['drift_total']} drifted key(s) in {rec['duration_s']}s; report {rec['report']}")
    else:
        out.print(f"[yellow]reconcile: {rec.get('status')}[/yellow]")
    for note in result.get("notes", []):
        out.print(f"[yellow]note:[/yellow] {note}")
    out.print(f"stream: {result['stream']['events']} events decided, {result['stream']['drift']} confirmed drift")
    acc = result.get("accounting", {})
    out.print(f"accounting: {acc.get('records_on_topics')} records on the topics, {acc.get('consumed')} consumed, "
              + ("every one with an outcome" if acc.get("adds_up") else "[red]the counts do not add up[/red]"))
    cov = rec.get("coverage")
    if cov is not None:
        rows = sum(t["rows_in_postgres"] or 0 for t in cov["tables"].values())
        compared = sum(t["rows_compared"] for t in cov["tables"].values())
        out.print(f"coverage: {compared} of {rows} Postgres rows compared, {cov['not_compared_total']} rows or "
                  "items not compared" + ("" if cov["adds_up"] else " [red](the counts do not add up)[/red]"))
    out.print(f"HTML report: {result['report_html']}   ({result['duration_s']}s in all)")
    if result["exact"]:
        out.print("[bold green]exact: every injected drift was detected with the right kind, and nothing else[/]")
    else:
        out.print("[bold red]not exact[/]: missed "
                  f"{sum(result['missed'].values())}, false positives {sum(result['false_positives'].values())}")


def print_endpoints(result: dict[str, Any], out: Console) -> None:
    ep = result.get("endpoints", {})
    out.print("[bold]Still running (Ctrl-C stops everything):[/bold]")
    for name in ("metrics", "status", "prometheus", "config"):
        if name in ep:
            out.print(f"  {name:<10} {ep[name]}")
    if "config" in ep:
        out.print(f"  try: parity status --config {ep['config']}")


def _red(n: int) -> str:
    return f"[red]{n}[/red]" if n else "0"
