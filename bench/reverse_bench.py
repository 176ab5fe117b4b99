"""The reverse direction's throughput against reading the stream alone, side by side in one run.

    .venv/bin/python -m bench.reverse_bench [--items N]

Starts a private Postgres and DynamoDB Local in a temporary directory, writes N accounts to both
(DynamoDB with raw boto3, Postgres with one COPY-like batch), then measures, back to back on the
same stream:
- `stream_only`: `DynamoStreamSource.poll` + `commit` until N records (the floor: the reader alone);
- `reverse`: `ReverseDaemon` steps (route, Postgres row by primary key, compare, persist,
  checkpoint) until N records are decided, from a fresh state store (the stream is re-read from
  TRIM_HORIZON).
Prints one JSON object; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=3000)
    args = parser.parse_args()
    n = args.items
    for name, value in {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(name, value)
    from parity.devstack.dynamodb import start_dynamodb
    from parity.devstack.postgres import start_postgres

    base = Path(tempfile.mkdtemp(prefix="parity-reverse-bench-"))
    base.chmod(0o755)
    pg = start_postgres(base)
    dynamodb = start_dynamodb(base)
    try:
        print(json.dumps(_run(base, pg, dynamodb, n), indent=2))
    finally:
        dynamodb.stop()
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


def _run(base: Path, pg: Any, dynamodb: Any, n: int) -> dict[str, Any]:
    from parity.adapters.clients import dynamodb_client
    from parity.adapters.dynamodb import DynamoStore
    from parity.adapters.state import StateStore
    from parity.adapters.streams import stream_source
    from parity.config_loader import load_config
    from parity.daemon.reverse import ReverseDaemon
    from parity.daemon.reverse_rows import PostgresRows

    client: Any = dynamodb.client()
    client.create_table(
        TableName="Accounts", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    with pg.connect() as conn:
        conn.execute("CREATE TABLE public.accounts (id integer PRIMARY KEY, status text, version integer)")
        with conn.cursor().copy("COPY public.accounts (id, status, version) FROM STDIN") as copy:
            for i in range(n):
                copy.write_row((i, "open", 1))
    for start in range(0, n, 25):
        client.batch_write_item(RequestItems={"Accounts": [
            {"PutRequest": {"Item": {"PK": {"S": f"ACC#{i}"}, "id": {"N": str(i)}, "status": {"S": "open"},
                                     "version": {"N": "1"}}}}
            for i in range(start, min(n, start + 25))
        ]})
    config_path = base / "parity.yaml"
    config_path.write_text(yaml.safe_dump({
        "postgres": {"dsn": pg.dsn},
        "kafka": {"bootstrap_servers": "127.0.0.1:1", "topic_prefix": "unused", "drift_topic": None},
        "dynamodb": {"endpoint": dynamodb.endpoint, "region": "us-east-1"},
        "daemon": {"state_dir": str(base / "state")},
        "streams": {"lease_table": None},
        "tables": [{"source": "public.accounts", "primary_key": ["id"], "target": "Accounts", "mode": "reverse",
                    "keys": {"PK": "ACC#{id}"},
                    "columns": {"id": {"type": "number"}, "status": {}, "version": {"type": "number"}}}],
    }))
    config = load_config(config_path)

    state = StateStore(base / "stream-only.sqlite")
    source = stream_source(config, state, ["Accounts"])
    started, read = time.perf_counter(), 0
    while read < n:
        records = source.poll(2000, 1.0)
        source.commit(records)
        read += len(records)
    stream_only = time.perf_counter() - started
    source.close()

    state = StateStore(base / "reverse.sqlite")
    daemon = ReverseDaemon(
        config, source=stream_source(config, state, ["Accounts"]),
        dynamo=DynamoStore(dynamodb_client(config.dynamodb), concurrency=4), rows=PostgresRows(config.postgres),
        state=state,
    )
    started, decided = time.perf_counter(), 0
    while decided < n:
        daemon.step()
        decided = sum(state.outcome_counts().get("public.accounts", {}).values())
    reverse = time.perf_counter() - started
    outcomes = state.outcome_counts()
    daemon.shutdown()
    return {
        "items": n,
        "stream_only_records_per_s": round(n / stream_only),
        "reverse_records_per_s": round(n / reverse),
        "reverse_vs_stream_only": round(stream_only / reverse, 3),
        "outcomes": outcomes,
        "load_average": os.getloadavg(),
        "command": f".venv/bin/python -m bench.reverse_bench --items {n}",
    }


if __name__ == "__main__":
    main()
