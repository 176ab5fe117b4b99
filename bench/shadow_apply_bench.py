"""Shadow apply vs raw BatchWriteItem on DynamoDB Local (a measurement script, not a test).

Both paths write the same N final items (~400 bytes) at the same concurrency into fresh tables:
  raw     unconditional BatchWriteItem, 25 items per call, `concurrency` threads
  shadow  parity's Pipeline.process (decode -> collapse -> ShadowApplier) on synthetic Debezium
          records, in batches of `batch` events (conditional UpdateItem per event)
Run: .venv/bin/python bench/shadow_apply_bench.py [N] [concurrency] [op: r|c|u]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson

os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")

from parity.adapters.clients import dynamodb_client
from parity.adapters.dynamodb import DynamoStore
from parity.adapters.kafka import Record
from parity.adapters.state import StateStore
from parity.config_loader import parse_config
from parity.daemon.pipeline import Pipeline
from parity.daemon.shadow import ShadowApplier
from parity.devstack.dynamodb import start_dynamodb


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    conc = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    op = sys.argv[3] if len(sys.argv) > 3 else "r"
    tmp = Path(tempfile.mkdtemp(prefix="shadow-bench-"))
    svc = start_dynamodb(tmp)
    try:
        raw_cfg = {
            "postgres": {"dsn": "postgresql://x@127.0.0.1:1/x"},
            "kafka": {"bootstrap_servers": "127.0.0.1:1", "topic_prefix": "b"},
            "dynamodb": {"endpoint": svc.endpoint, "region": "us-east-1", "max_pool_connections": max(10, conc + 2)},
            "daemon": {"state_dir": str(tmp / "state"), "dynamo_concurrency": conc},
            "tables": [{"source": "public.acc", "primary_key": ["id"], "target": "shadow_t", "mode": "shadow",
                        "keys": {"PK": "{id}"}, "columns": {"id": {}, "bid": {}, "balance": {}, "filler": {}}}],
        }
        cfg = parse_config(raw_cfg, source="bench", env={})
        client = dynamodb_client(cfg.dynamodb)
        for name in ("shadow_t", "raw_t"):
            client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                                AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "N"}],
                                KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}])
        filler = "x" * 360
        # raw BatchWriteItem of the same final items (the version attribute included, same size)
        items = [{"PK": {"N": str(i)}, "id": {"N": str(i)}, "bid": {"N": str(i % 10)}, "balance": {"N": "0"},
                  "filler": {"S": filler},
                  "_parity_version": {"N": "1000"}} for i in range(n)]
        chunks = [items[i:i + 25] for i in range(0, n, 25)]

        def write(chunk: list[dict[str, object]]) -> None:
            req = {"raw_t": [{"PutRequest": {"Item": it}} for it in chunk]}
            while req:
                req = client.batch_write_item(RequestItems=req).get("UnprocessedItems") or {}

        t0 = time.perf_counter()
        with ThreadPoolExecutor(conc) as pool:
            list(pool.map(write, chunks))
        raw_s = time.perf_counter() - t0

        state = StateStore(tmp / "state" / "state.sqlite")
        store = DynamoStore(client, concurrency=conc)
        pipe = Pipeline(cfg, store, shadow=ShadowApplier(cfg, store, state))
        topic = cfg.kafka.topic_for("public.acc")
        records = []
        for i in range(n):
            value = {"before": None, "after": {"id": i, "bid": i % 10, "balance": 0, "filler": filler},
                     "source": {"schema": "public", "table": "acc", "lsn": 1000, "ts_ms": 1,
                                "snapshot": "true" if op == "r" else "false"}, "op": op}
            records.append(Record(topic, 0, i, orjson.dumps({"id": i}), orjson.dumps(value), None))
        batch = cfg.daemon.batch_max_events
        t0 = time.perf_counter()
        applied = 0
        for i in range(0, n, batch):
            res = pipe.process(records[i:i + batch], time.time())
            applied += res.outcomes.get(("public.acc", "applied"), 0)
        shadow_s = time.perf_counter() - t0
        print(f"n={n} concurrency={conc} op={op}")
        print(f"raw BatchWriteItem: {n / raw_s:8.0f} items/s ({raw_s:.1f}s)")
        print(f"shadow apply:       {applied / shadow_s:8.0f} events/s ({shadow_s:.1f}s, applied={applied})")
        print(f"ratio: {(applied / shadow_s) / (n / raw_s):.2f}")
        store.close()
    finally:
        svc.stop()


if __name__ == "__main__":
    main()
