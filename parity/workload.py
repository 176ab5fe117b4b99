"""An application-like workload: writes Postgres, then dual-writes DynamoDB, sometimes late and
sometimes wrong on purpose. Used by the demo, the integration tests and the benchmarks.

Each DynamoDB write lands up to `lag_ms` after its Postgres commit (a dual write is not atomic),
but writes of one key stay in order, as they would from a real application. Injected drift is
recorded with its expected kind so a run can be scored: injected vs detected.

The application builds its DynamoDB items by hand (`payment_item`), as examples/payments.yaml
documents them, not through parity's mapper: a run then checks the mapper against an independent
writer, and a mapper bug shows up as drift instead of being written to both sides alike.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row

from parity.core.config import TableMapping

DRIFT_KINDS = ("value_mismatch", "subtle_value", "missing_in_target", "unexpected_in_target", "stale_in_target")
# What parity reports for each injected kind (a subtle value is still a value mismatch).
REPORTED_KIND = {
    "value_mismatch": "value_mismatch",
    "subtle_value": "value_mismatch",
    "missing_in_target": "missing_in_target",
    "unexpected_in_target": "unexpected_in_target",
    "stale_in_target": "stale_in_target",
}


# The payments mapping of examples/payments.yaml that `payment_item` writes out by hand:
# key templates, and the attribute of each mapped column (customer_id is the partition key only).
PAYMENTS_KEYS = {"CustomerId": "{customer_id}", "PaymentDateId": "{payment_date:%Y-%m-%dT%H:%M:%SZ}#{payment_id}"}
PAYMENTS_ATTRIBUTES = {
    "payment_id": "PaymentId",
    "loan_id": "LoanId",
    "amount": "Amount",
    "payment_date": "PaymentDate",
    "method": "Method",
    "status": "Status",
    "transaction_reference": "TransactionReference",
    "processed_date": "ProcessedDate",
    "created_at": "CreatedAt",
    "updated_at": "UpdatedAt",
}


def _utc_text(moment: datetime, timespec: str) -> str:
    # timestamptz as ISO text in UTC with a `Z`, truncated to `timespec` (the mapping's precision).
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec=timespec) + "Z"


def payment_key(row: dict[str, Any]) -> dict[str, Any]:
    """The DynamoDB key of a payments row: CustomerId (N) and PaymentDateId (S)."""
    moment = row["payment_date"].astimezone(UTC)
    return {
        "CustomerId": Decimal(row["customer_id"]),
        "PaymentDateId": f"{moment:%Y-%m-%dT%H:%M:%SZ}#{row['payment_id']}",
    }


def payment_item(row: dict[str, Any]) -> dict[str, Any]:
    """The DynamoDB item of a payments row as the application writes it: numbers as Decimal,
    timestamps as UTC ISO text (PaymentDate to the second, the others to the millisecond), and a
    NULL column left out."""
    item: dict[str, Any] = {
        **payment_key(row),
        "PaymentId": Decimal(row["payment_id"]),
        "LoanId": Decimal(row["loan_id"]),
        "Amount": Decimal(row["amount"]),
        "PaymentDate": _utc_text(row["payment_date"], "seconds"),
        "Method": row["method"],
        "Status": row["status"],
        "CreatedAt": _utc_text(row["created_at"], "milliseconds"),
        "UpdatedAt": _utc_text(row["updated_at"], "milliseconds"),
    }
    if row.get("transaction_reference") is not None:
        item["TransactionReference"] = row["transaction_reference"]
    if row.get("processed_date") is not None:
        item["ProcessedDate"] = _utc_text(row["processed_date"], "milliseconds")
    return item


def wire_item(item: dict[str, Any]) -> dict[str, dict[str, str]]:
    """A payments item (strings and numbers only) in DynamoDB's wire format."""
    wire: dict[str, dict[str, str]] = {}
    for name, value in item.items():
        if isinstance(value, str):
            wire[name] = {"S": value}
        elif isinstance(value, Decimal):
            wire[name] = {"N": str(value)}
        else:
            raise TypeError(f"{name}: a payments item holds strings and numbers, not {type(value).__name__}")
    return wire


def _check_payments_mapping(mapping: TableMapping) -> None:
    """Refuse a mapping whose items `payment_item` does not build: the workload would write items
    parity is not configured to expect, and every one of them would be reported as drift."""
    attributes = {c: r.attribute(c) for c, r in mapping.columns.items() if not r.exclude}
    if mapping.keys != PAYMENTS_KEYS or attributes != PAYMENTS_ATTRIBUTES or mapping.indexes or mapping.constants:
        raise ValueError(f"{mapping.source} is not the payments mapping of examples/payments.yaml")


@dataclass(frozen=True)
class InjectedDrift:
    source: str
    key: dict[str, Any]
    kind: str  # one of DRIFT_KINDS
    at: float  # wall-clock time of injection

    @property
    def reported_kind(self) -> str:
        return REPORTED_KIND[self.kind]


class DelayedWriter:
    """Runs DynamoDB writes after a random delay of up to `max_delay_s`, keeping the order of writes
    per key (a key always goes to the same worker thread, as one application instance would)."""

    def __init__(self, max_delay_s: float, rng: random.Random, workers: int = 8) -> None:
        self.max_delay_s = max_delay_s
        self.rng = rng
        self._lanes = [_Lane() for _ in range(workers)]
        self._last_due: dict[Any, float] = {}
        self.started = time.monotonic()
        self._max_landed_s = 0.0
        self._landed_lock = threading.Lock()

    def submit(self, key: Any, fn: Callable[[], None]) -> None:
        now = time.monotonic()
        due = now + self.rng.uniform(0, self.max_delay_s) if self.max_delay_s > 0 else now
        due = max(due, self._last_due.get(key, 0.0) + 1e-6)
        self._last_due[key] = due

        def timed() -> None:
            fn()
            landed = time.monotonic() - now
            with self._landed_lock:
                self._max_landed_s = max(self._max_landed_s, landed)

        self._lanes[hash(key) % len(self._lanes)].push(due, timed)

    @property
    def max_landed_s(self) -> float:
        """The longest time from submit (the Postgres commit) until a write had completed: what the
        verifier's grace period must cover."""
        with self._landed_lock:
            return self._max_landed_s

    @property
    def max_behind_s(self) -> float:
        """How far behind schedule the slowest write ran: the real lateness is delay + this."""
        return max(lane.max_behind_s for lane in self._lanes)

    @property
    def last_write_at(self) -> float:
        return max(lane.last_write_at for lane in self._lanes)

    def drain(self, timeout: float = 60.0) -> None:
        for lane in self._lanes:
            lane.close(timeout)
        errors = [e for lane in self._lanes for e in lane.errors]
        if errors:
            raise RuntimeError(f"{len(errors)} DynamoDB writes failed: {errors[0]!r}")


class _Lane:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._stop = False
        self.errors: list[BaseException] = []
        self.max_behind_s = 0.0
        self.last_write_at = 0.0
        self._thread = threading.Thread(target=self._run, name="dual-writer", daemon=True)
        self._thread.start()

    def push(self, due: float, fn: Callable[[], None]) -> None:
        with self._cv:
            heapq.heappush(self._heap, (due, next(self._seq), fn))
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._heap and not self._stop:
                    self._cv.wait()
                if self._stop and not self._heap:
                    return
                due, _, fn = self._heap[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._cv.wait(wait)
                    continue
                heapq.heappop(self._heap)
            self.max_behind_s = max(self.max_behind_s, -wait)
            try:
                fn()
                self.last_write_at = time.monotonic()
            except BaseException as exc:  # surfaced by drain(); a workload must not hide failures
                self.errors.append(exc)

    def close(self, timeout: float) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._thread.join(timeout)


class PaymentsApp:
    """The payments service of examples/payments.yaml, dual-writing like an application."""

    def __init__(self, conn: Any, dynamo: Any, mapping: TableMapping, *, lag_ms: float = 0, seed: int = 7) -> None:
        self.conn = conn
        self.dynamo = dynamo
        _check_payments_mapping(mapping)
        self.mapping = mapping
        self.rng = random.Random(seed)
        self.writer = DelayedWriter(lag_ms / 1000, self.rng)
        self.injected: list[InjectedDrift] = []
        self.ids: list[int] = []
        self.frozen: set[int] = set()
        self._table = sql.Identifier(mapping.schema, mapping.table)

    # -- DynamoDB half -------------------------------------------------------------------------

    def _put(self, item: dict[str, Any]) -> None:
        wire = wire_item(item)
        self.writer.submit(
            _kid(item, self.mapping), lambda: self.dynamo.put_item(TableName=self.mapping.target, Item=wire)
        )

    def _delete(self, key: dict[str, Any]) -> None:
        wire = wire_item(key)
        self.writer.submit(
            _kid(key, self.mapping), lambda: self.dynamo.delete_item(TableName=self.mapping.target, Key=wire)
        )

    def _record(self, row: dict[str, Any], kind: str) -> None:
        self.injected.append(InjectedDrift(self.mapping.source, payment_key(row), kind, time.time()))

    # -- operations ----------------------------------------------------------------------------

    def seed(self, rows: int, batch: int = 500) -> None:
        """`rows` payments written to both sides at once, correctly: the state before the story
        begins (the migration's backfill already done). Bulk writes, not the application's pace."""
        for start in range(0, rows, batch):
            params = [self._new_row() for _ in range(min(batch, rows - start))]
            one = sql.SQL("({})").format(sql.SQL(",").join([sql.Placeholder()] * len(params[0])))
            query = sql.SQL(
                "INSERT INTO {} (customer_id, loan_id, amount, payment_date, method, status, "
                "transaction_reference, created_at, updated_at) VALUES {} RETURNING *"
            ).format(self._table, sql.SQL(",").join([one] * len(params)))
            with self.conn.cursor(row_factory=dict_row) as cur:
                cur.execute(query, [v for p in params for v in p])  # one statement: one round trip
                created = cur.fetchall()
            wires = [wire_item(payment_item(r)) for r in created]

            def put(chunk: list[dict[str, Any]]) -> None:
                request = {self.mapping.target: [{"PutRequest": {"Item": w}} for w in chunk]}
                while request:
                    request = self.dynamo.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}

            with ThreadPoolExecutor(4) as pool:
                list(pool.map(put, [wires[i : i + 25] for i in range(0, len(wires), 25)]))
            self.ids.extend(int(r["payment_id"]) for r in created)

    def _new_row(self) -> tuple[Any, ...]:
        now = datetime.now(UTC)
        return (
            self.rng.randrange(1, 2000),
            self.rng.randrange(1, 10_000),
            Decimal(self.rng.randrange(100, 500_000)) / 100,
            now - timedelta(days=self.rng.randrange(0, 365), microseconds=self.rng.randrange(0, 10**6)),
            self.rng.choice(["ACH", "CARD", "WIRE", "CHECK"]),
            "PENDING",
            f"TX-{self.rng.getrandbits(48):012x}",
            now,
            now,
        )

    def create(self, drift: str | None = None) -> int:
        now = datetime.now(UTC)
        amount = Decimal(self.rng.randrange(100, 500_000)) / 100
        with self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                sql.SQL(
                    "INSERT INTO {} (customer_id, loan_id, amount, payment_date, method, status, "
                    "transaction_reference, created_at, updated_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) RETURNING *"
                ).format(self._table),
                (
                    self.rng.randrange(1, 2000),
                    self.rng.randrange(1, 10_000),
                    amount,
                    now - timedelta(days=self.rng.randrange(0, 365), microseconds=self.rng.randrange(0, 10**6)),
                    self.rng.choice(["ACH", "CARD", "WIRE", "CHECK"]),
                    "PENDING",
                    f"TX-{self.rng.getrandbits(48):012x}",
                    now,
                    now,
                ),
            )
            row = cur.fetchone()
        assert row is not None
        self.ids.append(row["payment_id"])
        if drift == "missing_in_target":
            self._record(row, drift)
            return int(row["payment_id"])
        item = payment_item(row)
        if drift in ("value_mismatch", "subtle_value"):
            self._record(row, drift)
            item = _corrupt(item, drift)
        self._put(item)
        return int(row["payment_id"])

    def update(self, payment_id: int, drift: str | None = None) -> None:
        with self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(sql.SQL("SELECT * FROM {} WHERE payment_id = %s").format(self._table), (payment_id,))
            old = cur.fetchone()
            status = self.rng.choice(["SETTLED", "FAILED", "REVERSED"])
            cur.execute(
                sql.SQL(
                    "UPDATE {} SET status = %s, processed_date = now(), updated_at = clock_timestamp() "
                    "WHERE payment_id = %s RETURNING *"
                ).format(self._table),
                (status, payment_id),
            )
            row = cur.fetchone()
        if row is None or old is None:
            return
        item = payment_item(row)
        if drift == "stale_in_target":
            # The newer write lands, and right after it a delayed retry of the older one overwrites
            # it: the classic dual-write race. (If the verifier read between the two writes it
            # would see a match: only the reconciler can catch a later overwrite.)
            self._record(row, drift)
            newer, older = wire_item(item), wire_item(payment_item(old))

            def race() -> None:
                self.dynamo.put_item(TableName=self.mapping.target, Item=newer)
                self.dynamo.put_item(TableName=self.mapping.target, Item=older)

            self.writer.submit(_kid(item, self.mapping), race)
            return
        if drift in ("value_mismatch", "subtle_value"):
            self._record(row, drift)
            item = _corrupt(item, drift)
        self._put(item)

    def delete(self, payment_id: int, drift: str | None = None) -> None:
        with self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(sql.SQL("DELETE FROM {} WHERE payment_id = %s RETURNING *").format(self._table), (payment_id,))
            row = cur.fetchone()
        if row is None:
            return
        self.ids.remove(payment_id)
        if drift == "unexpected_in_target":
            self._record(row, drift)
            return
        self._delete(payment_key(row))

    def run(self, operations: int, *, drift_every: int = 0, rate: float | None = None) -> None:
        """`operations` random creates (60%), updates (30%) and deletes (10%); every `drift_every`-th
        operation injects a drift of the next kind in DRIFT_KINDS (0 = none). A drifted row is never
        touched again, so the drift stays in place to be found."""
        kinds = itertools.cycle(DRIFT_KINDS)
        start = time.monotonic()
        for i in range(1, operations + 1):
            if rate:
                # An application's pace, not a bulk load: sleep to `rate` operations per second.
                ahead = start + i / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            drift = next(kinds) if drift_every and i % drift_every == 0 else None
            live = [p for p in self.ids if p not in self.frozen]
            r = self.rng.random()
            if (
                drift in ("value_mismatch", "subtle_value", "missing_in_target")
                or not live
                or (drift is None and r < 0.6)
            ):
                pid = self.create(drift)
            elif drift == "unexpected_in_target" or (drift is None and r >= 0.9 and len(live) > 10):
                pid = self.rng.choice(live)
                self.delete(pid, drift)
            else:
                pid = self.rng.choice(live)
                self.update(pid, drift)
            if drift is not None:
                self.frozen.add(pid)

    def finish(self, timeout: float = 60.0) -> None:
        self.writer.drain(timeout)


def _kid(item: dict[str, Any], mapping: TableMapping) -> tuple[Any, ...]:
    return tuple(item.get(k) for k in mapping.keys)


def _corrupt(item: dict[str, Any], kind: str) -> dict[str, Any]:
    item = dict(item)
    if kind == "subtle_value":
        # 10.01 vs 10.10: digits swapped, the kind of error a float/locale bug makes.
        text = f"{item['Amount']:.2f}"
        swapped = text[:-2] + text[-1] + text[-2]
        if swapped == text:
            swapped = text[:-2] + "1" + text[-2] if text[-1] != "1" else text[:-1] + "2"
        item["Amount"] = Decimal(swapped)
    else:
        item["Status"] = "CORRUPTED"
    return item
