#!/usr/bin/env python3
"""An application that writes loan payments to PostgreSQL and, itself, to DynamoDB (dual writes).

This is what parity watches in the compose demo: every change lands in Postgres (where Debezium
sees it) and the application writes the matching DynamoDB item. With probability
`WORKLOAD_DRIFT_RATE` a DynamoDB write is deliberately wrong, the way a buggy or crashed dual
writer would be: skipped (missing / stale / leftover item) or with a wrong amount. parity should
report exactly those as drift; everything else must match.

The item layout is the application's own code, written independently of parity's mapping
(examples/payments.yaml); a unit test checks that the two agree, so the only drift is the injected
drift. Standard library plus psycopg and boto3 (both in the parity image).

Environment: POSTGRES_HOST/PORT/DB/USER/PASSWORD, PARITY_DYNAMODB_ENDPOINT, AWS_REGION,
WORKLOAD_RATE (changes per second, default 5), WORKLOAD_DRIFT_RATE (0..1, default 0.02),
WORKLOAD_TABLE (default Payments), WORKLOAD_SEED,
WORKLOAD_HEARTBEAT (file touched after each change, for the healthcheck),
WORKLOAD_MAX_CHANGES (stop after this many; default: run until stopped).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

TABLE = "Payments"
METHODS = ("ACH", "CARD", "WIRE", "CHECK")
PENDING_OUTCOMES = ("SETTLED", "FAILED")  # a SETTLED payment can later be REVERSED

COLUMNS = (
    "payment_id, customer_id, loan_id, amount, payment_date, method, status, "
    "transaction_reference, processed_date, created_at, updated_at"
)


def iso(moment: dt.datetime | None, digits: int) -> str | None:
    """UTC ISO-8601 with `Z`, `digits` fractional digits (0 = whole seconds)."""
    if moment is None:
        return None
    utc = moment.astimezone(dt.UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + f"{utc.microsecond:06d}"[:digits]
    return text + "Z"


def payment_key(row: dict[str, Any]) -> dict[str, Any]:
    when = row["payment_date"].astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"CustomerId": Decimal(row["customer_id"]), "PaymentDateId": f"{when}#{row['payment_id']}"}


def payment_item(row: dict[str, Any]) -> dict[str, Any]:
    """The DynamoDB item the application writes for a `payments` row (NULLs are left out)."""
    item: dict[str, Any] = {
        **payment_key(row),
        "PaymentId": Decimal(row["payment_id"]),
        "LoanId": Decimal(row["loan_id"]),
        "Amount": Decimal(row["amount"]),
        "PaymentDate": iso(row["payment_date"], 0),
        "Method": row["method"],
        "Status": row["status"],
        "TransactionReference": row["transaction_reference"],
        "ProcessedDate": iso(row["processed_date"], 3),
        "CreatedAt": iso(row["created_at"], 3),
        "UpdatedAt": iso(row["updated_at"], 3),
    }
    return {k: v for k, v in item.items() if v is not None}


@dataclass
class Tally:
    changes: int = 0
    by_op: dict[str, int] = field(default_factory=dict)
    injected: dict[str, int] = field(default_factory=dict)
    drifted_ids: set[int] = field(default_factory=set)  # payments whose last DynamoDB write was wrong

    def count(self, op: str, drift: str | None, payment_id: int) -> None:
        self.changes += 1
        self.by_op[op] = self.by_op.get(op, 0) + 1
        if drift:
            self.injected[drift] = self.injected.get(drift, 0) + 1
            self.drifted_ids.add(payment_id)
        else:
            self.drifted_ids.discard(payment_id)  # a correct full write repairs the item


class Application:
    def __init__(self, conn: Any, table: Any, rng: random.Random, drift_rate: float) -> None:
        self.conn = conn
        self.table = table
        self.rng = rng
        self.drift_rate = drift_rate
        self.tally = Tally()

    def _fetch(self, sql: str, params: tuple[Any, ...]) -> dict[str, Any] | None:
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            row = cur.fetchone()
            if row is None:
                self.conn.rollback()
                return None
            names = [d.name for d in cur.description]
        self.conn.commit()  # Postgres first: the application's source of truth
        return dict(zip(names, row, strict=True))

    def _corrupt(self) -> str | None:
        if self.rng.random() >= self.drift_rate:
            return None
        return self.rng.choice(("skip_write", "wrong_amount"))

    def _put(self, row: dict[str, Any], drift: str | None) -> None:
        if drift == "skip_write":
            return
        item = payment_item(row)
        if drift == "wrong_amount":
            item["Amount"] = item["Amount"] + Decimal("0.01")
        self.table.put_item(Item=item)

    def insert(self) -> None:
        now = dt.datetime.now(dt.UTC)
        row = self._fetch(
            f"INSERT INTO public.payments (customer_id, loan_id, amount, payment_date, method, status, "
            f"transaction_reference) VALUES (%s, %s, %s, %s, %s, 'PENDING', %s) RETURNING {COLUMNS}",
            (
                self.rng.randint(1, 500),
                self.rng.randint(1, 5000),
                Decimal(self.rng.randint(100, 500_000)) / 100,
                now.replace(microsecond=0) - dt.timedelta(seconds=self.rng.randint(0, 86_400)),
                self.rng.choice(METHODS),
                f"TX-{self.rng.getrandbits(48):012x}",
            ),
        )
        if row is not None:
            drift = self._corrupt()
            self._put(row, drift)
            self.tally.count("insert", drift, row["payment_id"])

    def update(self) -> None:
        row = self._fetch(
            f"UPDATE public.payments SET status = CASE status WHEN 'PENDING' THEN %s ELSE 'REVERSED' END, "
            f"processed_date = now(), updated_at = now() WHERE payment_id = ("
            f"SELECT payment_id FROM public.payments WHERE status IN ('PENDING', 'SETTLED') "
            f"ORDER BY random() LIMIT 1) RETURNING {COLUMNS}",
            (self.rng.choice(PENDING_OUTCOMES),),
        )
        if row is not None:
            drift = self._corrupt()
            self._put(row, drift)
            self.tally.count("update", drift, row["payment_id"])

    def delete(self) -> None:
        row = self._fetch(
            f"DELETE FROM public.payments WHERE payment_id = (SELECT payment_id FROM public.payments "
            f"WHERE status IN ('FAILED', 'REVERSED') ORDER BY random() LIMIT 1) RETURNING {COLUMNS}",
            (),
        )
        if row is not None:
            drift = self._corrupt()
            if drift is None:
                self.table.delete_item(Key=payment_key(row))
            elif "Item" in self.table.get_item(Key=payment_key(row), ConsistentRead=True):
                drift = "skip_delete"  # the item outlives its row: unexpected_in_target
            else:
                drift = None  # its insert was never written (skip_write): nothing is left to outlive it
            self.tally.count("delete", drift, row["payment_id"])

    def step(self) -> None:
        roll = self.rng.random()
        if roll < 0.6:
            self.insert()
        elif roll < 0.9:
            self.update()
        else:
            self.delete()


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


def main() -> int:
    import boto3
    import psycopg

    rate = _env_float("WORKLOAD_RATE", 5.0)
    drift_rate = _env_float("WORKLOAD_DRIFT_RATE", 0.02)
    max_changes = int(_env_float("WORKLOAD_MAX_CHANGES", 0))
    heartbeat = Path(os.environ.get("WORKLOAD_HEARTBEAT", "/tmp/workload.heartbeat"))  # noqa: S108
    seed = os.environ.get("WORKLOAD_SEED")
    rng = random.Random(int(seed) if seed else None)

    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    conn = psycopg.connect(
        host=os.environ.get("POSTGRES_HOST", "postgres"),
        port=int(os.environ.get("POSTGRES_PORT", "5432")),
        dbname=os.environ["POSTGRES_DB"],
        user=os.environ["POSTGRES_USER"],
        password=os.environ["POSTGRES_PASSWORD"],
        connect_timeout=10,
    )
    endpoint = os.environ.get("PARITY_DYNAMODB_ENDPOINT") or None
    table = boto3.resource(
        "dynamodb", endpoint_url=endpoint, region_name=os.environ.get("AWS_REGION", "us-east-1")
    ).Table(os.environ.get("WORKLOAD_TABLE", TABLE))
    app = Application(conn, table, rng, drift_rate)
    interval = 1.0 / rate if rate > 0 else 0.0
    last_report = time.monotonic()
    while not stop and (not max_changes or app.tally.changes < max_changes):
        started = time.monotonic()
        app.step()
        heartbeat.touch()
        if time.monotonic() - last_report >= 10:
            last_report = time.monotonic()
            t = app.tally
            print(json.dumps({"changes": t.changes, "by_op": t.by_op, "injected_drift": t.injected}), flush=True)
        time.sleep(max(0.0, interval - (time.monotonic() - started)))
    conn.close()
    t = app.tally
    print(json.dumps({"final": True, "changes": t.changes, "injected_drift": t.injected}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
