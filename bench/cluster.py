"""The reconcile on a Dask cluster (`distributed.LocalCluster`, worker processes) with 1, 2 and 4
workers against the in-process reconcile, side by side on the same tables.

    .venv/bin/python -m bench.cluster --rows 200000 [--workers 1,2,4] [--state DIR]

On this machine (2 shared cores) more workers than cores cannot be faster: every worker, the
client, Postgres and DynamoDB Local share the same two cores. What the runs measure here is the
cluster's overhead (task shipping, one scheduler round trip per Scan page for the read budget,
the second read of the drill-down) against the in-process run; docs/reconciler.md models what
more machines buy. Each run also records the table's size, to check the RCU model against it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _drift(report: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for source, table in report["tables"].items():
        out[source] = sorted(f"{d['kind']}:{json.dumps(d['key'], sort_keys=True)}" for d in table["drift"])
    return out


def _local_credentials() -> None:
    """DynamoDB Local accepts any key; worker processes take theirs from the environment."""
    for name, value in (("AWS_ACCESS_KEY_ID", "local"), ("AWS_SECRET_ACCESS_KEY", "local"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        os.environ.setdefault(name, value)


def run(pg: Any, dynamodb: Any, state_dir: Path, rows: int, *, workers: tuple[int, ...] = (1, 2, 4),
        segments: int = 8, parts: int = 8, page_limit: int = 1000, drift: float = 0.0005,
        read_rate_limit: float | None = None) -> dict[str, Any]:
    import distributed

    _local_credentials()
    from bench import reconcile_bench as rb
    from parity.adapters.dynamodb import DynamoStore
    from parity.reconcilers.cluster import ClusterReconciler

    settings: dict[str, Any] = {"segments": segments, "workers": parts, "page_limit": page_limit}
    if read_rate_limit:
        settings["read_rate_limit"] = read_rate_limit
    cfg = rb.load(pg, dynamodb, rows, drift, state_dir / "reports", **settings)
    table = cfg.tables[0].target
    described = dynamodb.client().describe_table(TableName=table)["Table"]
    size = {"items": described.get("ItemCount"), "bytes": described.get("TableSizeBytes")}
    local, local_s = rb.run_reconcile(cfg, dynamodb, pg, parts)
    out: dict[str, Any] = {
        "rows": rows, "segments": segments, "partitions": parts, "page_limit": page_limit,
        "drift_fraction_injected": drift, "read_rate_limit": read_rate_limit, "table": size,
        "in_process": {"seconds": round(local_s, 2), "drift_found": local["drift_total"],
                       "rows_per_s": round(2 * rows / local_s)},
        "cluster": [],
    }
    for n in workers:
        started = time.monotonic()
        with (
            distributed.LocalCluster(n_workers=n, threads_per_worker=2, processes=True, dashboard_address=None,
                                     silence_logs=logging.ERROR) as cluster,
            distributed.Client(cluster) as client,
        ):
            up_s = time.monotonic() - started
            store = DynamoStore(dynamodb.client(), concurrency=4)
            try:
                reconciler = ClusterReconciler(cfg, client=client, dynamo=store, dsn=pg.dsn)
                t0 = time.monotonic()
                report = reconciler.run()
                seconds = time.monotonic() - t0
            finally:
                store.close()
        out["cluster"].append({
            "workers": n, "threads_per_worker": 2, "cluster_start_s": round(up_s, 1), "seconds": round(seconds, 2),
            "phases_s": reconciler.phase_s, "rows_per_s": round(2 * rows / seconds),
            "ratio_over_in_process": round(seconds / local_s, 3),
            "same_drift_as_in_process": _drift(report) == _drift(local),
            "drift_found": report["drift_total"], "budget": reconciler.budget_stats,
        })
        print(json.dumps(out["cluster"][-1]), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--workers", default="1,2,4", help="cluster sizes to run, comma-separated")
    parser.add_argument("--segments", type=int, default=8)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--read-rate-limit", type=float, default=None, help="global read budget, RCU/s")
    parser.add_argument("--state", type=Path, default=None, help="reuse services under this dir")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()

    from parity.devstack.dynamodb import start_dynamodb
    from parity.devstack.postgres import start_postgres

    state = args.state or Path(tempfile.mkdtemp(prefix="parity-bench-cluster-"))
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o755)
    pg, dynamodb = start_postgres(state), start_dynamodb(state)
    try:
        result = run(pg, dynamodb, state, args.rows, workers=tuple(int(w) for w in args.workers.split(",")),
                     segments=args.segments, parts=args.partitions, read_rate_limit=args.read_rate_limit)
        result["command"] = "python -m bench.cluster " + " ".join(sys.argv[1:])
        text = json.dumps(result, indent=2)
        print(text)
        if args.out:
            args.out.write_text(text + "\n")
    finally:
        if args.state is None:
            pg.stop()
            dynamodb.stop()


if __name__ == "__main__":
    main()
