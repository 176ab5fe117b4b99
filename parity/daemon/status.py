"""`parity status`: per-table counts from the daemon's state store (works with the daemon stopped)."""

from __future__ import annotations

from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from parity.core.config import ParityConfig
from parity.daemon.run import state_path
from parity.daemon.state import StateStore

RESOLVED = ("match", "drift", "dead_letter", "superseded", "duplicate", "unverified", "skipped", "truncate")


def collect_status(config: ParityConfig, state: StateStore | None = None) -> dict[str, Any]:
    path = state_path(config)
    if state is None:
        if not path.exists():
            return {"state": str(path), "tables": {t.source: _empty(t.source, t.mode) for t in config.tables}}
        state = StateStore(path)
    counts = state.outcome_counts()
    drift = state.drift_by_kind()
    lifecycle = state.drift_lifecycle()  # open drift now vs resolved (see state.py)
    facts = state.facts()
    snap_rows = facts.get("snapshot_rows", {})
    snap_done = set(facts.get("snapshot_done", []))
    tables: dict[str, Any] = {}
    for t in config.tables:
        c = counts.get(t.source, {})
        verdicts = c.get("match", 0) + c.get("drift", 0)
        row = _empty(t.source, t.mode)
        row.update(
            {
                "outcomes": c,
                "verified": c.get("match", 0),
                "drift": c.get("drift", 0),
                "dead_letters": c.get("dead_letter", 0),
                "applied": c.get("applied", 0),
                "stale_skipped": c.get("stale_skipped", 0),
                "drift_ratio": (c.get("drift", 0) / verdicts) if verdicts else 0.0,
                "drift_by_kind": drift.get(t.source, {}),
                "snapshot_rows": snap_rows.get(t.source, 0),
                "snapshot_done": t.source in snap_done,
                "truncated_at": facts.get(f"truncated:{t.source}"),
            }
        )
        row.update(lifecycle.get(t.source, {"drift_open": 0, "drift_resolved": 0, "drift_resolved_by": {}}))
        tables[t.source] = row
    return {"state": str(path), "tables": tables, "last_reconcile": facts.get("last_reconcile")}


def _empty(source: str, mode: str) -> dict[str, Any]:
    return {"table": source, "mode": mode, "verified": 0, "drift": 0, "dead_letters": 0, "outcomes": {}}


def print_status(config: ParityConfig, *, as_json: bool) -> None:
    status = collect_status(config)
    if as_json:
        print(orjson.dumps(status, option=orjson.OPT_INDENT_2, default=str).decode())
        return
    table = Table(title=f"parity status ({status['state']})")
    for col in (
        "table",
        "mode",
        "verified",
        "drift",
        "open drift",
        "drift ratio",
        "applied",
        "stale skipped",
        "dead letters",
        "snapshot",
    ):
        table.add_column(col, justify="left" if col in ("table", "mode") else "right")
    for t in status["tables"].values():
        snap = f"{t.get('snapshot_rows', 0)}" + (" done" if t.get("snapshot_done") else "")
        table.add_row(
            t["table"],
            t["mode"],
            str(t["verified"]),
            str(t["drift"]),
            str(t.get("drift_open", 0)),
            f"{t.get('drift_ratio', 0.0):.4%}",
            str(t.get("applied", 0)),
            str(t.get("stale_skipped", 0)),
            str(t["dead_letters"]),
            snap,
        )
    Console().print(table)
