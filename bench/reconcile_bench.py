"""Reconcile throughput against the physical floor: a plain boto3 parallel Scan of the same table.

    .venv/bin/python bench/reconcile_bench.py --rows 100000 --segments 8 --workers 8

Starts a private Postgres and DynamoDB Local (or reuses --state DIR), loads the synthetic
`accounts` table of the integration tests on both sides (DynamoDB filled from the Postgres rows
through the mapper), injects drift into a fraction of the keys, then measures in one process:

- plain Scan: boto3 low-level client, `TotalSegments` = segments, one thread per segment,
  `Limit` = page_limit, items counted only (botocore still parses every page);
- raw Scan: the same Scan through parity's DynamoStore, which decodes the wire JSON with orjson
  instead of botocore's parser (the floor parity itself can reach on the DynamoDB side);
- reconcile: the full run (both sides, drill-down, recheck), with `--grace` seconds of in-flight
  grace (default: the shipped `reconcile.grace_period_s`; 0 shows the run without any wait).

Peak RSS is measured per run in a fresh subprocess (`--measure-rss`), so that the numbers for two
table sizes can be compared. Results are printed as one JSON line each.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from parity.adapters.dynamodb import DynamoStore  # noqa: E402
from parity.core.config import ReconcileConfig  # noqa: E402
from parity.core.mapping import ItemMapper  # noqa: E402
from parity.core.values import item_to_wire  # noqa: E402
from parity.reconcilers.postgres import columns_read, partition_query  # noqa: E402
from parity.reconcilers.reconcile import Reconciler  # noqa: E402
from tests.integration.reconcile_harness import ACCOUNTS_SQL, accounts_mapping, config_for, create_table  # noqa: E402


def load(pg: Any, dynamodb: Any, rows: int, drift: float, report_dir: Path, **reconcile: Any) -> Any:
    schema = f"bench_{rows}"
    target = f"Bench_{rows}"
    with pg.connect() as conn:
        exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    cfg, _raw = config_for(pg, dynamodb, [accounts_mapping(schema, target)], report_dir,
                           **{"grace_period_s": 0, **reconcile})
    if exists:
        return cfg
    with pg.connect() as conn:
        conn.execute(ACCOUNTS_SQL.format(schema=schema, rows=rows))
        conn.execute(f"ANALYZE {schema}.accounts")
    create_table(dynamodb, target)
    mapping = cfg.tables[0]
    mapper = ItemMapper(mapping)
    store = DynamoStore(dynamodb.client(), concurrency=8)
    every = max(1, int(1 / drift)) if drift > 0 else 0
    started = time.monotonic()
    with pg.connect(autocommit=False) as conn, conn.cursor(name="fill") as cur, ThreadPoolExecutor(8) as pool:
        names = columns_read(mapping)
        cur.execute(partition_query(mapping, 0, 1))
        futures = []
        while batch := cur.fetchmany(25 * 8):
            items = []
            for values in batch:
                item = mapper.item(dict(zip(names, values, strict=True)))
                if every and int(item["id"]) % every == 0:  # type: ignore[arg-type]
                    item["region"] = "drifted"
                items.append({"PutRequest": {"Item": item_to_wire(item)}})
            for i in range(0, len(items), 25):
                futures.append(pool.submit(_write, store, target, items[i : i + 25]))
            if len(futures) > 64:
                for f in futures:
                    f.result()
                futures = []
        for f in futures:
            f.result()
    store.close()
    print(json.dumps({"loaded": rows, "seconds": round(time.monotonic() - started, 1)}), flush=True)
    return cfg


def _write(store: DynamoStore, table: str, requests: list[dict[str, Any]]) -> None:
    pending: dict[str, Any] = {table: requests}
    while pending:
        pending = store.call("BatchWriteItem", RequestItems=pending).get("UnprocessedItems") or {}


def plain_scan(client: Any, table: str, segments: int, limit: int) -> tuple[int, float]:
    """boto3's own parallel Scan: botocore parses every page."""
    return _parallel_scan(client.scan, table, segments, limit)


def raw_scan(client: Any, table: str, segments: int, limit: int) -> tuple[int, float]:
    """The same Scan through parity's store, which decodes the wire JSON with orjson."""
    store = DynamoStore(client, concurrency=2)
    try:
        return _parallel_scan(lambda **kw: store.call("Scan", **kw), table, segments, limit)
    finally:
        store.close()


def _parallel_scan(scan: Any, table: str, segments: int, limit: int) -> tuple[int, float]:
    count = [0]
    lock = threading.Lock()

    def segment(s: int) -> None:
        kwargs: dict[str, Any] = {"TableName": table, "Segment": s, "TotalSegments": segments, "Limit": limit}
        n = 0
        while True:
            resp = scan(**kwargs)
            n += len(resp["Items"])
            if not resp.get("LastEvaluatedKey"):
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        with lock:
            count[0] += n

    started = time.monotonic()
    with ThreadPoolExecutor(segments) as pool:
        list(pool.map(segment, range(segments)))
    return count[0], time.monotonic() - started


def cpu_s() -> float:
    """CPU seconds of this process and its reaped children (fair on a shared, loaded machine)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run_reconcile(cfg: Any, dynamodb: Any, pg: Any, workers: int,
                  processes: bool | None = None, waits: list[float] | None = None) -> tuple[dict[str, Any], float]:
    """The full run; `waits` collects the seconds it slept (grace and recheck spacing)."""
    store = DynamoStore(dynamodb.client(), concurrency=max(4, workers))

    def sleep(seconds: float) -> None:
        if waits is not None:
            waits.append(seconds)
        time.sleep(seconds)

    started = time.monotonic()
    try:
        report = Reconciler(cfg, dynamo=store, dsn=pg.dsn, pg_processes=processes, sleep=sleep).run()
    finally:
        store.close()
    return report, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--segments", type=int, default=8)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--page-limit", type=int, default=1000)
    parser.add_argument("--drift", type=float, default=0.0005, help="fraction of keys drifted")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--grace", type=float, default=ReconcileConfig().grace_period_s,
                        help="reconcile.grace_period_s (default: the shipped default)")
    parser.add_argument("--state", type=Path, default=None, help="reuse services under this dir")
    parser.add_argument("--pg-processes", choices=["auto", "on", "off"], default="auto")
    parser.add_argument("--measure-rss", action="store_true", help="reconcile only, then print peak RSS")
    args = parser.parse_args()

    from parity.devstack.dynamodb import start_dynamodb
    from parity.devstack.postgres import start_postgres

    state = args.state or Path(tempfile.mkdtemp(prefix="parity-bench-"))
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o755)
    pg, dynamodb = start_postgres(state), start_dynamodb(state)
    settings = {"segments": args.segments, "workers": args.workers, "page_limit": args.page_limit,
                "grace_period_s": args.grace}
    cfg = load(pg, dynamodb, args.rows, args.drift, state / "reports", **settings)
    processes = {"auto": None, "on": True, "off": False}[args.pg_processes]
    if args.measure_rss:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        report, seconds = run_reconcile(cfg, dynamodb, pg, args.workers, processes)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"rows": args.rows, "reconcile_s": round(seconds, 2), "rss_before_mb": before // 1024,
                          "peak_rss_mb": peak // 1024, "drift": report["drift_total"]}), flush=True)
        return
    client = dynamodb.client()
    table = cfg.tables[0].target
    for _ in range(args.repeat):
        cpu0 = cpu_s()
        items, scan_s = plain_scan(client, table, args.segments, args.page_limit)
        cpu1 = cpu_s()
        waits: list[float] = []
        report, rec_s = run_reconcile(cfg, dynamodb, pg, args.workers, processes, waits)
        cpu2 = cpu_s()
        _, raw_s = raw_scan(client, table, args.segments, args.page_limit)
        cpu3 = cpu_s()
        t = report["tables"][cfg.tables[0].source]
        print(json.dumps({
            "rows": args.rows, "segments": args.segments, "workers": args.workers, "grace_period_s": args.grace,
            "plain_scan_s": round(scan_s, 2), "plain_scan_items_per_s": round(items / scan_s),
            "reconcile_s": round(rec_s, 2), "ratio": round(rec_s / scan_s, 2),
            "slept_s": round(sum(waits), 2),
            "raw_scan_s": round(raw_s, 2), "raw_scan_cpu_s": round(cpu3 - cpu2, 1),
            "ratio_to_raw_scan": round(rec_s / raw_s, 2),
            "plain_scan_cpu_s": round(cpu1 - cpu0, 1), "reconcile_cpu_s": round(cpu2 - cpu1, 1),
            "pg_processes": args.pg_processes,
            "reconcile_rows_per_s": round((t["rows_postgres"] + t["items_dynamodb"]) / rec_s),
            "drift": report["drift_total"], "candidates": t["candidates"],
        }), flush=True)
    if args.state is None:
        pg.stop()
        dynamodb.stop()


if __name__ == "__main__":
    main()
