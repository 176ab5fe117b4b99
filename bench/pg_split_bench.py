"""How to split and stream a Postgres table for the reconciler: measured, not guessed.

    .venv/bin/python bench/pg_split_bench.py --state /tmp/pbench --rows 100000 --parts 4

Uses the `bench_<rows>` schema that bench/reconcile_bench.py loads. For each strategy, reads the
whole table once with `parts` threads inside one exported snapshot and reports wall time:

- fetch only (no mapping): named binary cursor vs COPY ... (FORMAT BINARY) rows;
- split: hash (`mod(hashtext(ROW(pk)::text) + 2^31, n)`) vs primary-key ranges (bounds from
  min/max of a single integer key, the best case for ranges);
- the full per-row work (mapper + comparable + hash) on a single partition, for scale.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from parity.core.config import TableMapping  # noqa: E402
from parity.core.digest import row_hash  # noqa: E402
from parity.core.mapping import ItemMapper  # noqa: E402
from parity.reconcilers.postgres import columns_read, exported_snapshot, partition_query  # noqa: E402
from tests.integration.reconcile_harness import accounts_mapping  # noqa: E402


def range_query(mapping: TableMapping, lo: int, hi: int) -> sql.Composed:
    base = partition_query(mapping, 0, 1)
    return base + sql.SQL(" WHERE {pk} >= {lo} AND {pk} < {hi}").format(
        pk=sql.Identifier(mapping.primary_key[0]), lo=sql.Literal(lo), hi=sql.Literal(hi))


def fetch(dsn: str, snapshot: str, query: sql.Composed, how: str, mapper: ItemMapper | None = None) -> int:
    n = 0
    with psycopg.connect(dsn, autocommit=False) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
        if how == "cursor":
            names = columns_read(mapper.mapping) if mapper else []
            with conn.cursor(name="b", binary=True) as cur:
                cur.execute(query)
                while batch := cur.fetchmany(5000):
                    n += len(batch)
                    if mapper is not None:
                        for values in batch:
                            item = mapper.item(dict(zip(names, values, strict=True)))
                            row_hash(mapper.plan.comparable(item))
        else:
            with conn.cursor(binary=True) as cur:
                copy_sql = sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(query)
                with cur.copy(copy_sql) as copy:
                    copy.set_types(["bigint", "text", "numeric", "text", "jsonb", "timestamptz"])
                    for _row in copy.rows():
                        n += 1
    return n


def timed(fn: Any) -> float:
    started = time.monotonic()
    fn()
    return round(time.monotonic() - started, 3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--parts", type=int, default=4)
    args = parser.parse_args()
    from parity.devstack.postgres import start_postgres

    pg = start_postgres(args.state)
    mapping = TableMapping.model_validate(accounts_mapping(f"bench_{args.rows}", f"Bench_{args.rows}"))
    mapper = ItemMapper(mapping)
    with pg.connect() as conn:
        row = conn.execute(sql.SQL("SELECT min(id), max(id) FROM {}").format(
            sql.Identifier(mapping.schema, mapping.table))).fetchone()
    assert row is not None
    lo, hi = int(row[0]), int(row[1]) + 1
    step = (hi - lo + args.parts - 1) // args.parts
    hashed = [partition_query(mapping, i, args.parts) for i in range(args.parts)]
    ranged = [range_query(mapping, lo + i * step, lo + (i + 1) * step) for i in range(args.parts)]
    results: dict[str, float] = {}
    with exported_snapshot(pg.dsn) as snap, ThreadPoolExecutor(args.parts) as pool:
        def run(queries: list[sql.Composed], how: str, m: ItemMapper | None = None) -> None:
            total = sum(pool.map(lambda q: fetch(pg.dsn, snap, q, how, m), queries))
            assert total == args.rows, total

        results["cursor_1_part"] = timed(lambda: run([partition_query(mapping, 0, 1)], "cursor"))
        results["copy_1_part"] = timed(lambda: run([partition_query(mapping, 0, 1)], "copy"))
        results[f"cursor_hash_{args.parts}"] = timed(lambda: run(hashed, "cursor"))
        results[f"cursor_range_{args.parts}"] = timed(lambda: run(ranged, "cursor"))
        results[f"copy_hash_{args.parts}"] = timed(lambda: run(hashed, "copy"))
        results["cursor_1_part_with_mapping"] = timed(lambda: run([partition_query(mapping, 0, 1)], "cursor", mapper))
        results[f"cursor_hash_{args.parts}_with_mapping"] = timed(lambda: run(hashed, "cursor", mapper))
    print(json.dumps({"rows": args.rows, **results}))


if __name__ == "__main__":
    main()
