"""The reverse direction on the real local services: a Postgres table, its DynamoDB table with a
Stream (DynamoDB Local), a parity config with the table in mode reverse, and an application-like
writer that writes DynamoDB first (raw boto3) and Postgres second (psycopg), sometimes late, and
injects drift of each kind on purpose."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import yaml

from parity.adapters.state import StateStore
from parity.config_loader import load_config
from parity.core.config import ParityConfig
from parity.daemon.run import state_path
from tests.conftest import unique

GRACE_S = 4.0


class ReverseStack:
    def __init__(self, pg: Any, dynamodb: Any, tmp_path: Path) -> None:
        self.pg = pg
        self.client: Any = dynamodb.client()
        self.pg_table = unique("acct")
        self.target = unique("Accounts")
        self.client.create_table(
            TableName=self.target,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        with pg.connect() as conn:
            conn.execute(
                f"CREATE TABLE public.{self.pg_table} (id integer PRIMARY KEY, status text NOT NULL, "
                "version integer NOT NULL)"
            )
        self.config_path = tmp_path / "parity.yaml"
        doc = {
            "postgres": {"dsn": pg.dsn},
            # Every table is reverse: no Kafka loop; no drift topic, so nothing connects to Kafka.
            "kafka": {"bootstrap_servers": "127.0.0.1:1", "topic_prefix": "unused", "drift_topic": None},
            "dynamodb": {"endpoint": dynamodb.endpoint, "region": "us-east-1"},
            "daemon": {
                "state_dir": str(tmp_path / "state"),
                "drift_log": str(tmp_path / "drift.jsonl"),
                "batch_max_wait_ms": 200,
                "http": {"port": 0},
            },
            "streams": {"lease_table": unique("leases"), "lease_duration_s": 6, "describe_interval_s": 0.5},
            "tables": [
                {
                    "source": f"public.{self.pg_table}",
                    "primary_key": ["id"],
                    "target": self.target,
                    "mode": "reverse",
                    "keys": {"PK": "ACC#{id}"},
                    "freshness_column": "version",
                    "grace_period_s": GRACE_S,
                    "recheck_schedule_s": [0.5, 1, 2],
                    "columns": {"id": {"type": "number"}, "status": {}, "version": {"type": "number"}},
                }
            ],
        }
        self.config_path.write_text(yaml.safe_dump(doc))
        self.config: ParityConfig = load_config(self.config_path)
        self.source = self.config.tables[0].source
        self.records = 0  # stream records the writer caused (each write changes the item)
        self.injected: dict[str, str] = {}  # PK -> the drift kind injected
        self.late: list[str] = []  # PKs whose Postgres write came late (inside the grace period)
        self._late_threads: list[threading.Thread] = []

    # -- the application ---------------------------------------------------------------------------

    def _put(self, i: int, status: str, version: int) -> None:
        # DynamoDB first, written out as wire JSON (not through parity's mapper).
        self.client.put_item(
            TableName=self.target,
            Item={"PK": {"S": f"ACC#{i}"}, "id": {"N": str(i)}, "status": {"S": status},
                  "version": {"N": str(version)}},
        )
        self.records += 1

    def _pg_upsert(self, i: int, status: str, version: int) -> None:
        with self.pg.connect() as conn:
            conn.execute(
                f"INSERT INTO public.{self.pg_table} (id, status, version) VALUES (%s, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET status = excluded.status, version = excluded.version",
                (i, status, version),
            )

    def _pg_delete(self, i: int) -> None:
        with self.pg.connect() as conn:
            conn.execute(f"DELETE FROM public.{self.pg_table} WHERE id = %s", (i,))

    def write(self, i: int, status: str, version: int) -> None:
        """A well-behaved dual write: DynamoDB, then Postgres."""
        self._put(i, status, version)
        self._pg_upsert(i, status, version)

    def write_late(self, i: int, status: str, version: int, delay_s: float) -> None:
        """DynamoDB now, Postgres `delay_s` later (inside the grace period)."""
        self._put(i, status, version)
        self.late.append(f"ACC#{i}")
        t = threading.Timer(delay_s, self._pg_upsert, args=(i, status, version))
        self._late_threads.append(t)
        t.start()

    def delete(self, i: int) -> None:
        self.client.delete_item(TableName=self.target, Key={"PK": {"S": f"ACC#{i}"}})
        self.records += 1
        self._pg_delete(i)

    # -- drift, on purpose ---------------------------------------------------------------------------

    def drift_missing(self, i: int) -> None:
        self._put(i, "open", 1)  # Postgres never gets the row
        self.injected[f"ACC#{i}"] = "missing_in_source"

    def drift_unexpected(self, i: int) -> None:
        self.write(i, "open", 1)
        self.client.delete_item(TableName=self.target, Key={"PK": {"S": f"ACC#{i}"}})
        self.records += 1  # Postgres keeps the row
        self.injected[f"ACC#{i}"] = "unexpected_in_source"

    def drift_value(self, i: int) -> None:
        self.write(i, "open", 1)
        self._put(i, "closed", 1)
        self._pg_upsert(i, "CLOSED", 1)  # same version, another value
        self.injected[f"ACC#{i}"] = "value_mismatch"

    def drift_stale(self, i: int) -> None:
        self.write(i, "open", 1)
        self._put(i, "closed", 2)  # Postgres keeps version 1
        self.injected[f"ACC#{i}"] = "stale_in_source"

    def workload(self) -> None:
        """40 keys: dual writes, updates, deletes, 6 late Postgres writes, and one drift of each kind."""
        for i in range(1, 25):
            self.write(i, "open", 1)
        for i in range(1, 9):
            self.write(i, "closed", 2)
        for i in range(9, 12):
            self.delete(i)
        for n, i in enumerate(range(25, 31)):
            self.write_late(i, "open", 1, delay_s=0.5 + 0.3 * n)
        self.drift_missing(31)
        self.drift_unexpected(32)
        self.drift_value(33)
        self.drift_stale(34)

    def join_late_writes(self) -> None:
        for t in self._late_threads:
            t.join()

    # -- what parity recorded -----------------------------------------------------------------------

    def store(self) -> StateStore:
        return StateStore(state_path(self.config))

    def outcomes(self) -> dict[str, int]:
        store = self.store()
        try:
            return dict(store.outcome_counts().get(self.source, {}))
        finally:
            store.close()

    def drift(self) -> list[tuple[str, str]]:
        store = self.store()
        try:
            return sorted((r["key"]["PK"], r["kind"]) for r in store.drift_records(self.source))
        finally:
            store.close()

    def decided(self) -> int:
        """Records with a final outcome (duplicates are re-deliveries of decided ones: not counted)."""
        return sum(n for k, n in self.outcomes().items() if k != "duplicate")


def wait_until(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")

