"""CPU per event of `PrometheusTelemetry.batch` on a realistic verify-mode batch (issue 23).

A batch of 500 events over one table (the verifier benchmark's shape: every event a match, one
CDC lag and one verdict latency each), fed to the telemetry of a catalog built like the daemon's.
Prints microseconds of CPU (time.process_time) per event, the best of `--repeats` rounds.

    PYTHONPATH=$PWD .venv/bin/python bench/telemetry_bench.py [--events 500] [--tables 1]

For an A/B, run it alternately against two checkouts (PYTHONPATH), never once each.
"""

from __future__ import annotations

import argparse
import random
import time

from prometheus_client import CollectorRegistry

from parity.daemon.batch import BatchResult
from parity.daemon.telemetry import PrometheusTelemetry
from parity.metrics.catalog import Metrics, register_runtime_collectors


def batch_result(tables: list[str], events: int, rng: random.Random) -> BatchResult:
    result = BatchResult()
    for i in range(events):
        table = tables[i % len(tables)]
        op = "u" if i % 3 else "c"
        result.count(table, "match", op=op)  # type: ignore[arg-type]
        result.cdc_lag.append((table, rng.uniform(0.05, 3.0)))
        result.verdict_latency.append((table, rng.uniform(0.05, 3.0)))
    result.recheck_backlog = {t: 0 for t in tables}
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--tables", type=int, default=1)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    tables = [f"public.t{i}" for i in range(args.tables)]
    registry = CollectorRegistry()
    register_runtime_collectors(registry)
    metrics = Metrics(registry, tables=tables, columns={t: ["id"] for t in tables})
    telemetry = PrometheusTelemetry(metrics)
    rng = random.Random(23)
    results = [batch_result(tables, args.events, rng) for _ in range(10)]
    best = float("inf")
    for _ in range(args.repeats):
        cpu0 = time.process_time()
        for i in range(args.batches):
            telemetry.batch(results[i % len(results)])
        cpu = time.process_time() - cpu0
        best = min(best, cpu / (args.batches * args.events) * 1e6)
    print(f"telemetry.batch: {best:.2f} us/event (best of {args.repeats}, {args.batches} batches of {args.events})")


if __name__ == "__main__":
    main()
