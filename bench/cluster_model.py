"""Time and read-capacity model of a cluster reconcile (docs/reconciler.md, BENCHMARKS.md).

    .venv/bin/python -m bench.cluster_model [--per-core ROWS_PER_S] [--item-bytes B]

A phase reads every row of both sides once; its time is the largest of
- parity's CPU: 2 N / (cores x r), r = rows of one side a worker core maps, hashes and digests
  per second (measured: bench/reconcile_bench.py and bench/cluster.py);
- DynamoDB: RCU / min(budget, partitions x 3,000 RCU/s), RCU = N x item bytes / 4 KB x (1 strongly
  consistent, 0.5 eventually consistent); a Scan is billed on the bytes it reads, not per item;
- Postgres: left out (its side runs in parallel with DynamoDB's; docs/reconciler.md says where it
  starts to count).
The drill-down reads the records the digest tasks left on their workers' disks (a local read, small
next to a Scan); a run without them (`worker_spill: false`, or workers lost) reads both sides twice:
twice the time and the RCU (the "re-read" column).
DynamoDB keeps at most 10 GB per partition, so a table of S bytes has at least S / 10 GB of them.
"""

from __future__ import annotations

import argparse
import math

RCU_PER_PARTITION = 3000.0
RCU_BYTES = 4096
PARTITION_BYTES = 10 * 1000**3


def rcu(rows: float, item_bytes: float, consistent: bool = False) -> float:
    return rows * item_bytes / RCU_BYTES * (1.0 if consistent else 0.5)


def min_partitions(rows: float, item_bytes: float) -> int:
    return max(1, math.ceil(rows * item_bytes / PARTITION_BYTES))


def phase_s(rows: float, item_bytes: float, cores: int, partitions: int, per_core: float,
            consistent: bool = False, budget: float | None = None) -> tuple[float, str]:
    """Seconds of one read of both sides, and what limits it ("parity" or "dynamodb")."""
    cpu = 2 * rows / (cores * per_core)
    ceiling = partitions * RCU_PER_PARTITION
    if budget is not None:
        ceiling = min(ceiling, budget)
    ddb = rcu(rows, item_bytes, consistent) / ceiling
    return (cpu, "parity") if cpu >= ddb else (ddb, "dynamodb")


def cores_to_saturate(item_bytes: float, partitions: int, per_core: float, consistent: bool = False) -> float:
    """Worker cores at which DynamoDB, not parity, becomes the limit."""
    items_per_s = partitions * RCU_PER_PARTITION * RCU_BYTES / item_bytes / (1.0 if consistent else 0.5)
    return 2 * items_per_s / per_core


def table(per_core: float, item_bytes: float) -> str:
    lines = [f"item size {item_bytes:g} B, r = {per_core:,.0f} rows/s per worker core, eventually consistent Scan",
             "| rows | RCU per read | min partitions | cores | partitions | one read | limit | re-read drill-down |",
             "|---|---|---|---|---|---|---|---|"]
    for rows in (100e6, 1e9):
        need = min_partitions(rows, item_bytes)
        for partitions in sorted({need, 4 * need}):
            for cores in (1, 8, 32, 128, 512):
                seconds, limit = phase_s(rows, item_bytes, cores, partitions, per_core)
                lines.append(f"| {rows:,.0f} | {rcu(rows, item_bytes) / 1e6:,.1f} M | {need} | {cores} | {partitions} "
                             f"| {_hms(seconds)} | {limit} | {_hms(2 * seconds)} |")
    return "\n".join(lines)


def _hms(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster_model", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-core", type=float, default=20_000, help="rows of one side per second per core")
    parser.add_argument("--item-bytes", type=float, default=1024)
    args = parser.parse_args()
    print(table(args.per_core, args.item_bytes))
    for partitions in (1, 10, 100):
        print(f"cores at which {partitions} partition(s) become the limit: "
              f"{cores_to_saturate(args.item_bytes, partitions, args.per_core):,.1f}")


if __name__ == "__main__":
    main()
