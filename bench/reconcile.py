"""Reconciler vs a plain boto3 parallel Scan (same segments, Limit) of the same table, and its
peak RSS at two table sizes. Reuses bench/reconcile_bench.py (the reconciler helper's script):
its loader, its plain Scan and its Reconciler call; RSS is measured in a fresh subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def run(stack: Any, rows: int, *, segments: int = 8, workers: int = 8, page_limit: int = 1000,
        drift: float = 0.0005) -> dict[str, Any]:
    """The headline reconcile runs with the shipped `grace_period_s`; the same run with grace 0,
    measured right after, shows what the in-flight wait still costs."""
    from bench import reconcile_bench as rb
    from parity.core.config import ReconcileConfig

    grace = ReconcileConfig().grace_period_s
    settings = {"segments": segments, "workers": workers, "page_limit": page_limit}
    started = time.monotonic()
    cfg = rb.load(stack.pg, stack.dynamodb, rows, drift, stack.state_dir / "reports", **settings,
                  grace_period_s=grace)
    load_s = time.monotonic() - started
    no_grace = rb.load(stack.pg, stack.dynamodb, rows, drift, stack.state_dir / "reports", **settings,
                       grace_period_s=0)
    client = stack.dynamodb.client()
    table = cfg.tables[0].target
    items, scan_s = rb.plain_scan(client, table, segments, page_limit)
    waits: list[float] = []
    report, rec_s = rb.run_reconcile(cfg, stack.dynamodb, stack.pg, workers, waits=waits)
    _, raw_s = rb.raw_scan(client, table, segments, page_limit)
    _, rec0_s = rb.run_reconcile(no_grace, stack.dynamodb, stack.pg, workers)
    t = report["tables"][cfg.tables[0].source]
    rss = peak_rss(stack.state_dir, rows, segments, workers, page_limit, drift)
    return {
        "rows": rows, "segments": segments, "workers": workers, "page_limit": page_limit,
        "drift_fraction_injected": drift, "load_s": round(load_s, 1),
        "plain_scan": {"items": items, "seconds": round(scan_s, 3), "items_per_s": round(items / scan_s)},
        "reconcile": {"seconds": round(rec_s, 3), "grace_period_s": grace, "slept_s": round(sum(waits), 3),
                      "drift_found": report.get("drift_total"),
                      "rows_postgres": t.get("rows_postgres"), "items_dynamodb": t.get("items_dynamodb"),
                      "rows_per_s": round(rows / rec_s)},
        "raw_scan": {"seconds": round(raw_s, 3), "items_per_s": round(items / raw_s)},
        "ratio_reconcile_over_scan": round(rec_s / scan_s, 3),
        "reconcile_grace_0": {"seconds": round(rec0_s, 3), "ratio_over_scan": round(rec0_s / scan_s, 3)},
        "ratio_reconcile_over_raw_scan": round(rec_s / raw_s, 3),
        "peak_rss": rss,
    }


# The script's own figure is getrusage's ru_maxrss, which a child inherits from its parent at
# fork (this benchmark process holds every event in memory); VmHWM belongs to the exec'd image.
_WRAPPER = """
import json, resource, runpy, sys
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
with open("/proc/self/status") as fh:
    hwm = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"vmhwm_mb": hwm // 1024, "largest_child_mb": child // 1024}))
"""


def peak_rss(state_dir: Path, rows: int, segments: int, workers: int, page_limit: int,
             drift: float) -> dict[str, Any]:
    """Peak RSS of a fresh process that runs only the reconcile (tables already loaded)."""
    proc = subprocess.run(
        [sys.executable, "-c", _WRAPPER, str(ROOT / "bench" / "reconcile_bench.py"), "--rows", str(rows),
         "--state", str(state_dir), "--segments", str(segments), "--workers", str(workers),
         "--page-limit", str(page_limit), "--drift", str(drift), "--measure-rss"],
        capture_output=True, text=True, timeout=1800, cwd=ROOT)
    out: dict[str, Any] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{") and ("peak_rss_mb" in line or "vmhwm_mb" in line):
            out.update(json.loads(line))
    if "vmhwm_mb" not in out:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-400:]}"}
    out["script_ru_maxrss_mb"] = out.pop("peak_rss_mb", None)
    out.pop("rss_before_mb", None)
    out["peak_rss_mb"] = out.pop("vmhwm_mb")  # the figure used; ru_maxrss kept as reported by the script
    # Postgres partitions may run in worker processes (2+ cores): the largest one's peak, reported
    # apart (it is not part of peak_rss_mb; a run has at most `cores` of them at once).
    return out
