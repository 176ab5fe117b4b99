"""Shadow apply with `shadow_writes: single` against its own floor, per number of writes in flight
(a measurement script on DynamoDB Local, not a test).

For each `--writes` concurrency N, into fresh tables:
  floor   conditional PutItem (`attribute_not_exists(v) OR v < :v`), one item a call, N threads,
          run before and after parity (their mean is the floor)
  single  parity's Pipeline.process (decode -> collapse -> ShadowApplier) of the same number of
          synthetic Debezium events, one key each, `daemon.shadow_write_concurrency: N`
and once, for comparison, the default mode (`transactions`, `daemon.dynamo_concurrency` in flight)
against conditional TransactWriteItems of 100 at the same concurrency.

CPU is this process's CPU time (all its threads; DynamoDB Local and the latency proxy are other
processes) per item written. `--delay-ms` puts DynamoDB behind bench/latency_proxy.py (one way).

Run: python -m bench.shadow_apply_bench --events 4000 --writes 8,16,32,64 [--delay-ms 2.5]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")

from bench import latency_proxy
from bench.shadow import single_write, transact_write
from parity.adapters.clients import dynamodb_client
from parity.adapters.dynamodb import DynamoStore
from parity.adapters.kafka import Record
from parity.adapters.state import StateStore
from parity.config_loader import parse_config
from parity.core.config import ParityConfig
from parity.daemon.pipeline import Pipeline
from parity.daemon.shadow import ShadowApplier
from parity.devstack.dynamodb import start_dynamodb

FILLER = "x" * 360  # items of about 400 bytes
VERSION = "_parity_version"


def _config(endpoint: str, state_dir: Path, writes: str, width: int, target: str) -> ParityConfig:
    raw = {
        "postgres": {"dsn": "postgresql://x@127.0.0.1:1/x"},
        "kafka": {"bootstrap_servers": "127.0.0.1:1", "topic_prefix": "b"},
        "dynamodb": {"endpoint": endpoint, "region": "us-east-1", "max_pool_connections": max(10, width + 2)},
        "daemon": {"state_dir": str(state_dir), "dynamo_concurrency": 8, "shadow_write_concurrency": width},
        "tables": [{"source": "public.acc", "primary_key": ["id"], "target": target, "mode": "shadow",
                    "shadow_writes": writes, "keys": {"PK": "{id}"},
                    "columns": {"id": {}, "bid": {}, "balance": {}, "filler": {}}}],
    }
    return parse_config(raw, source="bench", env={})


def _table(client: Any, name: str) -> None:
    client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "N"}],
                        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}])


def _records(cfg: ParityConfig, n: int, op: str) -> list[Record]:
    topic = cfg.kafka.topic_for("public.acc")
    records = []
    for i in range(n):
        value = {"before": None, "after": {"id": i, "bid": i % 10, "balance": 0, "filler": FILLER},
                 "source": {"schema": "public", "table": "acc", "lsn": 1000 + i, "ts_ms": 1,
                            "snapshot": "true" if op == "r" else "false"}, "op": op}
        records.append(Record(topic, 0, i, orjson.dumps({"id": i}), orjson.dumps(value), None))
    return records


def _items(n: int) -> list[dict[str, Any]]:
    # The final items of `_records`, with the version attribute parity writes (same size).
    return [{"PK": Decimal(i), "id": Decimal(i), "bid": Decimal(i % 10), "balance": Decimal(0), "filler": FILLER,
             VERSION: Decimal(10**12)}
            for i in range(n)]


def _timed(run: Callable[..., object], *args: Any) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of `run(*args)`."""
    wall, cpu = time.perf_counter(), time.process_time()
    run(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def _parity(cfg: ParityConfig, client: Any, records: list[Record], state_dir: Path) -> tuple[float, float, int]:
    state = StateStore(state_dir / f"{cfg.tables[0].target}.sqlite")
    store = DynamoStore(client, concurrency=cfg.daemon.dynamo_concurrency, write_concurrency=cfg.shadow_write_width)
    pipe = Pipeline(cfg, store, shadow=ShadowApplier(cfg, store, state))
    applied = 0

    def run() -> None:
        nonlocal applied
        for i in range(0, len(records), cfg.daemon.batch_max_events):
            res = pipe.process(records[i : i + cfg.daemon.batch_max_events], time.time())
            applied += res.outcomes.get(("public.acc", "applied"), 0)

    try:
        wall, cpu = _timed(run)
    finally:
        store.close()
        state.close()
    return wall, cpu, applied


def _row(label: str, n: int, parity: tuple[float, float, int], floors: list[tuple[float, float]]) -> str:
    wall, cpu, applied = parity
    floor_wall = sum(f[0] for f in floors) / len(floors)
    floor_cpu = sum(f[1] for f in floors) / len(floors)
    return (f"{label:<22} parity {applied / wall:7.0f} ev/s {cpu / n * 1e6:6.0f} us CPU/write | "
            f"floor {n / floor_wall:7.0f} items/s {floor_cpu / n * 1e6:6.0f} us CPU/write | "
            f"parity/floor {(applied / wall) / (n / floor_wall):.2f}"
            + ("" if applied == n else f"  (applied {applied} of {n})"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=4000)
    ap.add_argument("--writes", default="8,16,32,64", help="single writes in flight, comma-separated")
    ap.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay of a latency proxy (0: none)")
    ap.add_argument("--op", choices=["c", "r", "u"], default="c", help="the Debezium op of the events")
    ap.add_argument("--no-transactions", action="store_true", help="skip the transactions comparison")
    args = ap.parse_args()
    n = args.events
    widths = [int(w) for w in args.writes.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="shadow-bench-"))
    svc = start_dynamodb(tmp)
    proxy = latency_proxy.start(svc.endpoint, args.delay_ms) if args.delay_ms > 0 else None
    endpoint = proxy.endpoint if proxy is not None else svc.endpoint
    items = _items(n)
    print(f"events={n} op={args.op} delay_ms_one_way={args.delay_ms}")
    try:
        for k, width in enumerate(widths):
            cfg = _config(endpoint, tmp, "single", width, f"shadow_single_{k}")
            client = dynamodb_client(cfg.dynamodb)
            for name in (f"shadow_single_{k}", f"floor_a_{k}", f"floor_b_{k}"):
                _table(client, name)
            floors = [_timed(single_write, client, f"floor_a_{k}", items, width, VERSION)]
            parity = _parity(cfg, client, _records(cfg, n, args.op), tmp)
            floors.append(_timed(single_write, client, f"floor_b_{k}", items, width, VERSION))
            print(_row(f"single, {width} in flight", n, parity, floors))
        if not args.no_transactions:
            cfg = _config(endpoint, tmp, "transactions", 8, "shadow_tx")
            client = dynamodb_client(cfg.dynamodb)
            for name in ("shadow_tx", "floor_tx_a", "floor_tx_b"):
                _table(client, name)
            conc = cfg.daemon.dynamo_concurrency
            floors = [_timed(transact_write, client, "floor_tx_a", items, conc, VERSION)]
            parity = _parity(cfg, client, _records(cfg, n, args.op), tmp)
            floors.append(_timed(transact_write, client, "floor_tx_b", items, conc, VERSION))
            print(_row(f"transactions, {conc}", n, parity, floors))
    finally:
        if proxy is not None:
            proxy.stop()
        svc.stop()


if __name__ == "__main__":
    main()
