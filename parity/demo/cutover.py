"""`parity demo --phase cutover`: after cutover, DynamoDB is the source of truth and Postgres the
rollback copy. An application-like writer writes DynamoDB first and Postgres second (some Postgres
writes land late, inside the grace period), drift of each kind is injected on purpose, parity runs
its reverse direction on the table's DynamoDB Stream, and the result is scored: exactly the
injected drift, each with its kind, and every stream record with an outcome.

Only Postgres and DynamoDB Local run here (no Kafka, no Debezium: every table is in mode reverse).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REVERSE_KINDS = ("missing_in_source", "unexpected_in_source", "value_mismatch", "stale_in_source")
STATUSES = ("open", "suspended", "closed")


@dataclass
class CutoverSettings:
    duration_s: float = 15.0
    rate: float = 20.0  # application operations per second
    accounts: int = 200
    drift_rate: float = 0.03
    late_share: float = 0.2  # share of Postgres writes that land late
    grace_s: float = 3.0
    seed: int = 20261201
    state_dir: Path = Path(".parity/demo-cutover")


@dataclass
class CutoverApp:
    """The application after cutover: DynamoDB first (raw boto3), Postgres second (psycopg)."""

    pg: Any  # a psycopg connection (autocommit)
    dynamo: Any  # a boto3 DynamoDB client
    pg_table: str
    target: str
    settings: CutoverSettings
    rng: random.Random = field(default_factory=random.Random)
    records: int = 0  # stream records caused (every write here changes the item)
    injected: dict[str, str] = field(default_factory=dict)  # PK -> kind
    late: set[str] = field(default_factory=set)
    versions: dict[int, int] = field(default_factory=dict)  # live accounts -> version
    _timers: list[threading.Timer] = field(default_factory=list)
    _pg_lock: threading.Lock = field(default_factory=threading.Lock)

    def _put(self, i: int, status: str, version: int) -> None:
        self.dynamo.put_item(
            TableName=self.target,
            Item={"PK": {"S": f"ACC#{i}"}, "id": {"N": str(i)}, "status": {"S": status},
                  "version": {"N": str(version)}},
        )
        self.records += 1

    def _pg_upsert(self, i: int, status: str, version: int) -> None:
        with self._pg_lock:
            self.pg.execute(
                f'INSERT INTO public."{self.pg_table}" (id, status, version) VALUES (%s, %s, %s) '
                "ON CONFLICT (id) DO UPDATE SET status = excluded.status, version = excluded.version",
                (i, status, version),
            )

    def _pg_delete(self, i: int) -> None:
        with self._pg_lock:
            self.pg.execute(f'DELETE FROM public."{self.pg_table}" WHERE id = %s', (i,))

    def _upsert(self, i: int, status: str, version: int) -> None:
        self._put(i, status, version)
        if self.rng.random() < self.settings.late_share:
            # The application's Postgres write lands late, well inside the grace period.
            self.late.add(f"ACC#{i}")
            timer = threading.Timer(self.rng.uniform(0.2, self.settings.grace_s / 2), self._pg_upsert,
                                    args=(i, status, version))
            self._timers.append(timer)
            timer.start()
        else:
            self._pg_upsert(i, status, version)

    def operation(self) -> None:
        free = [i for i in range(1, self.settings.accounts + 1)
                if i not in self.versions and f"ACC#{i}" not in self.injected]
        live = [i for i in self.versions if f"ACC#{i}" not in self.injected and f"ACC#{i}" not in self.late]
        if self.rng.random() < self.settings.drift_rate:
            kind = REVERSE_KINDS[len(self.injected) % len(REVERSE_KINDS)]
            self.inject(kind, free, live)
            return
        roll = self.rng.random()
        if (roll < 0.5 or not live) and free:
            i = self.rng.choice(free)
            self.versions[i] = 1
            self._upsert(i, "open", 1)
        elif roll < 0.9 and live:
            i = self.rng.choice(live)
            self.versions[i] += 1
            self._upsert(i, self.rng.choice(STATUSES), self.versions[i])
        elif live:
            i = self.rng.choice(live)
            del self.versions[i]
            self.dynamo.delete_item(TableName=self.target, Key={"PK": {"S": f"ACC#{i}"}})
            self.records += 1
            self._pg_delete(i)

    def inject(self, kind: str, free: list[int], live: list[int]) -> None:
        """Drift on a key the rest of the workload leaves alone from now on."""
        if kind == "missing_in_source" and free:
            i = self.rng.choice(free)
            self._put(i, "open", 1)  # the Postgres write never happens
        elif kind == "unexpected_in_source" and live:
            i = self.rng.choice(live)
            self.dynamo.delete_item(TableName=self.target, Key={"PK": {"S": f"ACC#{i}"}})
            self.records += 1  # the Postgres delete never happens
        elif kind in ("value_mismatch", "stale_in_source") and live:
            i = self.rng.choice(live)
            version = self.versions[i]
            if kind == "value_mismatch":
                # A status no other write uses: DynamoDB emits no stream record for a put that
                # changes nothing, so the item must change.
                self._put(i, "frozen", version)
                self._pg_upsert(i, "FROZEN", version)  # same version, another value
            else:
                self._put(i, "closed", version + 1)  # Postgres keeps the older version
        else:
            return
        self.versions.pop(i, None)
        self.injected[f"ACC#{i}"] = kind

    def run(self, duration_s: float, rate: float) -> None:
        end = time.monotonic() + duration_s
        while time.monotonic() < end:
            self.operation()
            time.sleep(1 / rate)
        for kind in REVERSE_KINDS:  # every kind at least once, however short the run
            if kind not in self.injected.values():
                free = [i for i in range(1, self.settings.accounts + 1)
                        if i not in self.versions and f"ACC#{i}" not in self.injected]
                live = [i for i in self.versions if f"ACC#{i}" not in self.injected and f"ACC#{i}" not in self.late]
                self.inject(kind, free, live)

    def finish(self) -> None:
        for timer in self._timers:
            timer.join()


def score_cutover(injected: Mapping[str, str], detections: Iterable[tuple[str, str]],
                  late: Iterable[str] = ()) -> dict[str, Any]:
    """Injected vs reported drift per kind (pure). A detection of a key never injected, or with
    another kind, is a false positive; `late_reported` counts late-written keys reported (each is
    also a false positive)."""
    kinds: dict[str, dict[str, int]] = {
        k: {"injected": 0, "detected": 0, "missed": 0, "false_positives": 0} for k in REVERSE_KINDS
    }
    found = set(detections)
    for key, kind in injected.items():
        kinds[kind]["injected"] += 1
        if (key, kind) in found:
            kinds[kind]["detected"] += 1
        else:
            kinds[kind]["missed"] += 1
    false = sorted((key, kind) for key, kind in found if injected.get(key) != kind)
    for _key, kind in false:
        kinds.setdefault(kind, {"injected": 0, "detected": 0, "missed": 0, "false_positives": 0})
        kinds[kind]["false_positives"] += 1
    late_keys = set(late)
    totals = {name: sum(c[name] for c in kinds.values()) for name in ("injected", "detected", "missed",
                                                                      "false_positives")}
    return {
        "kinds": kinds,
        **totals,
        "false_positive_keys": [{"key": k, "kind": kind} for k, kind in false],
        "late_reported": sum(1 for key, _ in found if key in late_keys),
        "exact": totals["missed"] == 0 and totals["false_positives"] == 0,
    }


def run_cutover(settings: CutoverSettings, *, on_phase: Any = None) -> dict[str, Any]:
    """Start Postgres and DynamoDB Local, run the application and parity's reverse direction, score."""
    from parity.aws_credentials import LOCAL_CREDENTIALS
    from parity.devstack.dynamodb import start_dynamodb
    from parity.devstack.postgres import start_postgres

    started = time.monotonic()

    def phase(name: str, detail: str = "") -> None:
        if on_phase is not None:
            on_phase(name, detail, time.monotonic() - started)

    state_dir = settings.state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    for name, value in LOCAL_CREDENTIALS.items():  # DynamoDB Local takes any; boto3 needs some
        os.environ.setdefault(name, value)
    phase("services", "Postgres and DynamoDB Local")
    pg = start_postgres(state_dir / "services")
    try:
        dynamodb = start_dynamodb(state_dir / "services")
        try:
            app, drift, counts, source, target, run_dir = _scenario(settings, state_dir, pg, dynamodb, phase)
        finally:
            dynamodb.stop()
    finally:
        pg.stop()  # the demo leaves nothing running
    phase("scoring")
    result = score_cutover(app.injected, drift, app.late)
    decided = sum(n for k, n in counts.items() if k != "duplicate")
    result.update({
        "phase": "cutover",
        "table": source,
        "dynamodb_table": target,
        "stream_records": app.records,
        "outcomes": counts,
        "late_postgres_writes": len(app.late),
        "accounted": decided == app.records,
        "drift_log": str(run_dir / "drift.jsonl"),
        "duration_s": round(time.monotonic() - started, 1),
    })
    return result


def _scenario(settings: CutoverSettings, state_dir: Path, pg: Any, dynamodb: Any, phase: Any) -> tuple[
    CutoverApp, list[tuple[str, str]], dict[str, int], str, str, Path
]:
    from parity.adapters.state import StateStore
    from parity.config_loader import load_config
    from parity.daemon.app import DaemonApp
    from parity.daemon.run import state_path

    run_id = time.strftime("%Y%m%d%H%M%S")
    pg_table, target = f"accounts_{run_id}", f"Accounts-{run_id}"
    client: Any = dynamodb.client()
    client.create_table(
        TableName=target,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    run_dir = state_dir / f"run-{run_id}"
    config_path = run_dir / "parity.yaml"
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path.write_text(yaml.safe_dump({
        "postgres": {"dsn": pg.dsn},
        "kafka": {"bootstrap_servers": "127.0.0.1:1", "topic_prefix": "unused", "drift_topic": None},
        "dynamodb": {"endpoint": dynamodb.endpoint, "region": "us-east-1"},
        "daemon": {"state_dir": str(run_dir / "state"), "drift_log": str(run_dir / "drift.jsonl"),
                   "http": {"port": 0}},
        "streams": {"lease_table": f"parity-leases-{run_id}", "describe_interval_s": 1},
        "tables": [{
            "source": f"public.{pg_table}", "primary_key": ["id"], "target": target, "mode": "reverse",
            "keys": {"PK": "ACC#{id}"}, "freshness_column": "version", "grace_period_s": settings.grace_s,
            "recheck_schedule_s": [0.5, 1, 2],
            "columns": {"id": {"type": "number"}, "status": {}, "version": {"type": "number"}},
        }],
    }))
    config = load_config(config_path)
    source = config.tables[0].source
    with pg.connect() as conn:
        conn.execute(f'CREATE TABLE public."{pg_table}" (id integer PRIMARY KEY, status text NOT NULL, '
                     "version integer NOT NULL)")
        phase("cutover workload", f"{settings.duration_s:g}s of DynamoDB-first writes, drift injected")
        app = CutoverApp(conn, client, pg_table, target, settings, rng=random.Random(settings.seed))
        with DaemonApp(config, probe_interval_s=None, reconcile_schedule=False, http=False):
            app.run(settings.duration_s, settings.rate)
            app.finish()
            phase("settling", "every stream record decided, drift past its grace period")
            deadline = time.monotonic() + 60 + 3 * settings.grace_s
            counts: dict[str, int] = {}
            drift: list[tuple[str, str]] = []
            while time.monotonic() < deadline:
                store = StateStore(state_path(config))
                try:
                    counts = store.outcome_counts().get(source, {})
                    drift = [(r["key"]["PK"], r["kind"]) for r in store.drift_records(source)]
                finally:
                    store.close()
                decided = sum(n for k, n in counts.items() if k != "duplicate")
                if decided >= app.records and len(drift) >= len(app.injected):
                    break
                time.sleep(0.5)
    return app, drift, counts, source, target, run_dir


def print_cutover(result: dict[str, Any], out: Any) -> None:
    from rich.table import Table

    table = Table(title="After cutover: DynamoDB's changes checked against Postgres (reverse)")
    for col in ("kind", "injected", "detected", "missed", "false positives"):
        table.add_column(col, justify="left" if col == "kind" else "right")
    for kind, c in result["kinds"].items():
        table.add_row(kind, str(c["injected"]), str(c["detected"]), str(c["missed"]), str(c["false_positives"]))
    table.add_section()
    table.add_row("all", *(str(result[k]) for k in ("injected", "detected", "missed", "false_positives")))
    out.print(table)
    out.print(
        f"{result['stream_records']} stream records, outcomes {result['outcomes']}; "
        f"{result['late_postgres_writes']} late Postgres writes, {result['late_reported']} reported as drift"
    )
    verdict = "exact" if result["exact"] else "NOT exact"
    accounted = "every record accounted for" if result["accounted"] else "records NOT all accounted for"
    out.print(f"{verdict}; {accounted}; drift log {result['drift_log']} ({result['duration_s']}s)")
