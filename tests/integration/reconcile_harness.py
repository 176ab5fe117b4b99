"""Set-up for reconciler tests: a synthetic `accounts` table (or the billing example) on the real
Postgres and DynamoDB Local under unique names, DynamoDB filled from the Postgres rows through the
mapper, and helpers to corrupt the target on purpose."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from psycopg import sql

from parity.adapters.dynamodb import DynamoStore
from parity.config_loader import parse_config
from parity.core.config import ParityConfig, TableMapping
from parity.core.mapping import ItemMapper
from parity.core.values import Item, item_to_wire
from parity.reconcilers.postgres import columns_read

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

ACCOUNTS_SQL = """
CREATE SCHEMA {schema};
CREATE TABLE {schema}.accounts (
    id         bigint PRIMARY KEY,
    region     text NOT NULL,
    balance    numeric(12,2) NOT NULL,
    note       text,
    payload    jsonb NOT NULL,
    updated_at timestamptz NOT NULL
);
INSERT INTO {schema}.accounts
SELECT i,
       (ARRAY['eu','us','ap'])[1 + i % 3],
       round((i % 10000)::numeric / 7, 2),
       CASE WHEN i % 5 = 0 THEN NULL WHEN i % 7 = 0 THEN '' ELSE 'note ' || i END,
       jsonb_build_object('tier', i % 4, 'tags', jsonb_build_array('a', i % 3), 'score', (i % 100)::numeric / 10),
       timestamptz '2024-01-01 00:00:00+00' + i * interval '1.234567 second'
FROM generate_series(1, {rows}) AS i;
"""


def accounts_mapping(schema: str, target: str) -> dict[str, Any]:
    return {
        "source": f"{schema}.accounts",
        "primary_key": ["id"],
        "target": target,
        "keys": {"PK": "ACC#{id}"},
        "constants": {"EntityType": "ACCOUNT"},
        "columns": {
            "id": {},
            "region": {},
            "balance": {"type": "number"},
            "note": {"empty_string_as_null": True},
            "payload": {"type": "json_string"},
            "updated_at": {"type": "timestamp_iso", "precision": "ms"},
        },
    }


def config_for(pg: Any, dynamodb: Any, tables: list[dict[str, Any]], report_dir: Path,
               **reconcile: Any) -> tuple[ParityConfig, dict[str, Any]]:
    raw = {
        "postgres": {"dsn": pg.dsn},
        "kafka": {"bootstrap_servers": "127.0.0.1:1", "topic_prefix": "unused"},
        "dynamodb": {"endpoint": dynamodb.endpoint, "region": "us-east-1"},
        "reconcile": {"report_dir": str(report_dir), "grace_period_s": 1, **reconcile},
        "tables": tables,
    }
    return parse_config(raw), raw


def write_config(raw: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


def create_table(dynamodb: Any, name: str, keys: Sequence[str] = ("PK",)) -> None:
    client = dynamodb.client()
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in keys],
        KeySchema=[{"AttributeName": k, "KeyType": kt} for k, kt in zip(keys, ("HASH", "RANGE"), strict=False)],
    )


def rows_of(pg: Any, mapping: TableMapping, where: str | None = None) -> list[dict[str, Any]]:
    names = columns_read(mapping)
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in names), sql.Identifier(mapping.schema, mapping.table)
    )
    with pg.connect() as conn:
        return [dict(zip(names, r, strict=True)) for r in conn.execute(query)]


def put_items(store: DynamoStore, table: str, items: Iterable[Item], threads: int = 4) -> int:
    wires = [item_to_wire(i) for i in items]
    chunks = [wires[i : i + 25] for i in range(0, len(wires), 25)]

    def write(chunk: list[dict[str, Any]]) -> None:
        request = {table: [{"PutRequest": {"Item": w}} for w in chunk]}
        while request:
            resp = store.call("BatchWriteItem", RequestItems=request)
            request = resp.get("UnprocessedItems") or {}

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(write, chunks))
    return len(wires)


def fill_target(pg: Any, store: DynamoStore, mapping: TableMapping) -> int:
    mapper = ItemMapper(mapping)
    return put_items(store, mapping.write_table, (mapper.item(r) for r in rows_of(pg, mapping)))


def representation_only(item: Item) -> Item:
    """The same data spelled differently: JSON key order and spacing, a timestamp with an offset
    instead of Z and sub-millisecond digits beyond the rule's precision."""
    out = dict(item)
    if "payload" in out and isinstance(out["payload"], str):
        doc = json.loads(out["payload"])
        out["payload"] = json.dumps(dict(reversed(list(doc.items()))), indent=1)
    if "updated_at" in out and isinstance(out["updated_at"], str):
        text = out["updated_at"].rstrip("Z")
        out["updated_at"] = text + ("" if "." in text else ".000") + "9+00:00"
    return out


class Writer:
    """Keeps changing rows on both sides while a reconcile runs, with a lag between the Postgres
    commit and the DynamoDB write, like a CDC pipeline: in-flight rows the recheck must resolve."""

    def __init__(self, pg: Any, store: DynamoStore, mapping: TableMapping, ids: Sequence[int],
                 lag_s: float = 0.05) -> None:
        self.pg, self.store, self.mapping, self.ids, self.lag_s = pg, store, mapping, list(ids), lag_s
        self.mapper = ItemMapper(mapping)
        self.changes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        rng = random.Random(7)
        table = sql.Identifier(self.mapping.schema, self.mapping.table)
        names = columns_read(self.mapping)
        with self.pg.connect() as conn:
            while not self._stop.is_set():
                i = rng.choice(self.ids)
                row = conn.execute(
                    sql.SQL("UPDATE {} SET balance = balance + 1, updated_at = now() WHERE id = %s RETURNING {}")
                    .format(table, sql.SQL(", ").join(sql.Identifier(c) for c in names)), (i,),
                ).fetchone()
                assert row is not None
                time.sleep(self.lag_s)
                item = self.mapper.item(dict(zip(names, row, strict=True)))
                self.store.call("PutItem", TableName=self.mapping.write_table, Item=item_to_wire(item))
                self.changes += 1
