"""Render bench/results.json as the Markdown table of BENCHMARKS.md: `python -m bench.table`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results.json"


def _get(node: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(node, dict) or p not in node:
            return "n/a"
        node = node[p]
    return node


def render(results: dict[str, Any]) -> str:
    s = results["sections"]
    m = results["machine"]
    rows: list[tuple[str, Any, str, str]] = [
        ("Verifier (daemon) vs raw BatchGetItem floor", _get(s, "verifier", "ratio_parity_over_floor"), ">= 0.8",
         f"{_get(s, 'verifier', 'parity', 'events_per_s')} vs "
         f"{_get(s, 'verifier', 'floor_batch_get_before', 'events_per_s')}/"
         f"{_get(s, 'verifier', 'floor_batch_get_after', 'events_per_s')} events/s (floor before/after)"),
        ("Verifier (daemon) vs naive GetItem per event", _get(s, "verifier", "ratio_parity_over_naive"), ">= 5",
         f"naive {_get(s, 'verifier', 'naive_get_item', 'events_per_s')} events/s"),
        ("Pure path (decode+map+compare), one core", _get(s, "pure_path", "events_per_s_cpu"), ">= 50k/s",
         f"events/s of CPU time; wall {_get(s, 'pure_path', 'events_per_s_wall')}/s; calibration "
         f"sum(range(1e6)) = {_get(s, 'pure_path', 'calibration', 'sum_range_1e6_cpu_ms')} ms CPU"),
        ("confluent-kafka vs kafka-python consume", _get(s, "kafka_clients", "ratio_confluent_over_kafka_python"),
         "-", f"{_get(s, 'kafka_clients', 'confluent_kafka', 'messages_per_s')} vs "
              f"{_get(s, 'kafka_clients', 'kafka_python', 'messages_per_s')} msg/s"),
        ("Shadow apply vs raw BatchWriteItem (rate)", _get(s, "shadow", "ratio_rate"), ">= 0.7",
         f"{_get(s, 'shadow', 'shadow_apply', 'events_per_s')} events/s vs "
         f"{_get(s, 'shadow', 'raw_batch_write', 'items_per_s')} items/s; same final state, wall: "
         f"{_get(s, 'shadow', 'ratio_wall_same_final_state')}"),
        ("Scaling: 2 daemons / 1 daemon (4 partitions)", _get(s, "scaling", "ratio_two_over_one"), "-",
         f"{_get(s, 'scaling', 'one', 'events_per_s')} vs {_get(s, 'scaling', 'two', 'events_per_s')} events/s"),
    ]
    runs = _get(s, "reconcile", "runs")
    for r in runs if isinstance(runs, list) else []:
        rows.append((f"Reconcile {r['rows']:,} rows vs plain parallel Scan (wall)", r["ratio_reconcile_over_scan"],
                     "<= 1.3", f"{r['reconcile']['seconds']} s vs {r['plain_scan']['seconds']} s; "
                               f"{r['reconcile']['rows_per_s']} rows/s; peak RSS "
                               f"{r['peak_rss'].get('peak_rss_mb', 'n/a')} MB (+ Postgres worker "
                               f"{r['peak_rss'].get('largest_child_mb', 'n/a')} MB)"))
        if "ratio_reconcile_over_raw_scan" in r:
            rows.append((f"Reconcile {r['rows']:,} rows vs parity's raw-decoded Scan (the wire floor)",
                         r["ratio_reconcile_over_raw_scan"], "-", f"raw Scan {r['raw_scan']['seconds']} s"))
    rows.append(("Reconcile peak RSS growth", _get(s, "reconcile", "rss_growth_mb"), "< 100 MB", ""))
    out = [f"Run: `{results['command']}` on {results['date']} ({results['mode']}); nproc {m['nproc']}, "
           f"{m['memory_gb']} GB RAM, load average {m['load_average_start']} at start, "
           f"{m.get('load_average_end', 'n/a')} at end; Python {m['versions']['python']}.", "",
           "| Benchmark | Ratio / figure | Target | Detail |", "|---|---|---|---|"]
    out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS
    print(render(json.loads(path.read_text())))
