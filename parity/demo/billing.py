"""The billing service of examples/billing-single-table.yaml, in shadow mode: it writes Postgres only
(parity applies every change to DynamoDB). Its drift comes from elsewhere: out-of-band writes to the
DynamoDB table (a stray script, a half-finished manual fix) that only a reconcile can see.

Each billing account (ban) owns 1 customer, 2 subscribers, 2 service agreements, 2 bills and 3
charges: 11 rows. Some accounts are reserved up front for drift injection and never touched by the
workload, so an injected drift stays in place until the reconcile finds it.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from psycopg.rows import dict_row

from parity.core.compare import Match, compare
from parity.core.config import ParityConfig, TableMapping
from parity.core.mapping import ItemMapper
from parity.core.values import item_from_wire, item_to_wire
from parity.workload import DRIFT_KINDS, InjectedDrift

ROWS_PER_ACCOUNT = 11
FIRST_BAN = 1000
PHANTOM_CUSTOMER = 900_000_000  # customer ids of items with no Postgres row (unexpected_in_target)

SEED_SQL = """
INSERT INTO billing.customer SELECT i, 'First' || i, 'Last' || i, 'c' || i || '@example.com', 'TAX' || i,
    date '1980-01-01' + i %% 9000, jsonb_build_object('paper', i %% 2 = 0, 'lang', 'en'), now()
    FROM generate_series(1, %(n)s) i;
INSERT INTO billing.billing_account SELECT 1000 + i, i, 'I', 'O', 1 + i %% 4, date '2020-01-01' + i %% 1000,
    500.50, now() FROM generate_series(1, %(n)s) i;
INSERT INTO billing.subscriber SELECT 1000 + i, '555' || lpad((i * 10 + k)::text, 7, '0'), 'A', 'PLAN' || k,
    date '2021-01-01' + i %% 1000, NULL, CASE WHEN k = 1 THEN ARRAY['VM', 'DATA'] ELSE NULL END, now()
    FROM generate_series(1, %(n)s) i, generate_series(1, 2) k;
INSERT INTO billing.service_agreement SELECT ban, subscriber_no, 'SOC1', date '2022-01-01', NULL, 9.99,
    '{"speed": 100, "roaming": false}', now() FROM billing.subscriber;
INSERT INTO billing.bill SELECT 1000 + i, k, 1 + i %% 4, date '2024-01-01' + k * 30, date '2024-01-15' + k * 30,
    12.30 * k, 'CLOSED', now() FROM generate_series(1, %(n)s) i, generate_series(1, 2) k;
INSERT INTO billing.charge SELECT 1000 + i, k, 1, k,
    CASE WHEN k = 3 THEN NULL ELSE '555' || lpad((i * 10 + 1)::text, 7, '0') END,
    'MRC', 10.00 + k, 1.10, CASE WHEN k = 2 THEN '' ELSE 'monthly' END, date '2024-02-01'
    FROM generate_series(1, %(n)s) i, generate_series(1, 3) k;
"""


def subscriber_no(ban: int, k: int) -> str:
    return f"555{(ban - FIRST_BAN) * 10 + k:07d}"


class BillingApp:
    """Postgres-only billing writes at an application's pace, plus out-of-band DynamoDB drift."""

    def __init__(self, conn: Any, dynamo: Any, config: ParityConfig, *, accounts: int, reserved: int,
                 seed: int = 17) -> None:
        self.conn = conn
        self.dynamo = dynamo
        self.mappings: dict[str, TableMapping] = {
            t.table: t for t in config.tables if t.schema == "billing"
        }
        self.mappers = {name: ItemMapper(m) for name, m in self.mappings.items()}
        self.rng = random.Random(seed)
        self.accounts = accounts
        reserved = min(reserved, accounts // 2)
        # The highest bans are kept for drift; the workload changes the others.
        self.reserved = [FIRST_BAN + accounts - i for i in range(reserved)]
        self.live = [FIRST_BAN + i for i in range(1, accounts + 1 - reserved)]
        self._next_charge: dict[int, int] = {}
        self._next_bill: dict[int, int] = {}
        self._charges: list[tuple[int, int, int]] = []  # (ban, charge_seq, activity_num) deletable
        self._kinds = itertools.cycle(DRIFT_KINDS)
        self._phantoms = itertools.count(1)
        self.injected: list[InjectedDrift] = []
        self.operations = 0

    @property
    def rows(self) -> int:
        return self.accounts * ROWS_PER_ACCOUNT

    def seed(self) -> None:
        with self.conn.cursor() as cur:
            for statement in filter(str.strip, SEED_SQL.split(";")):
                cur.execute(statement, {"n": self.accounts})
        self._charges = [(ban, k, 1) for ban in self.live for k in range(1, 4)]

    # -- the application's writes (Postgres only) ------------------------------------------------

    def step(self) -> None:
        """One random operation on a non-reserved account."""
        if not self.live:
            return
        ban = self.rng.choice(self.live)
        r = self.rng.random()
        with self.conn.cursor() as cur:
            if r < 0.4:
                seq = self._next_charge.get(ban, 100)
                self._next_charge[ban] = seq + 1
                sub = self.rng.choice([subscriber_no(ban, 1), subscriber_no(ban, 2), None])
                cur.execute(
                    "INSERT INTO billing.charge (ban, charge_seq, activity_num, bill_seq_no, subscriber_no, "
                    "charge_code, amount, tax_amount, description, charge_date) "
                    "VALUES (%s, %s, 1, NULL, %s, 'OCC', %s, %s, %s, current_date)",
                    (ban, seq, sub, Decimal(self.rng.randrange(100, 10_000)) / 100,
                     Decimal(self.rng.randrange(0, 300)) / 100, self.rng.choice(["usage", "", None])),
                )
                self._charges.append((ban, seq, 1))
            elif r < 0.65:
                cur.execute(
                    "UPDATE billing.subscriber SET price_plan = %s, sub_status = %s, updated_at = clock_timestamp() "
                    "WHERE ban = %s AND subscriber_no = %s",
                    (f"PLAN{self.rng.randrange(1, 9)}", self.rng.choice("ASR"), ban,
                     subscriber_no(ban, self.rng.choice((1, 2)))),
                )
            elif r < 0.8:
                cur.execute(
                    "UPDATE billing.billing_account SET credit_limit = %s, updated_at = clock_timestamp() "
                    "WHERE ban = %s",
                    (Decimal(self.rng.randrange(10_000, 500_000)) / 100, ban),
                )
            elif r < 0.9 and self._charges:
                victim = self._charges.pop(self.rng.randrange(len(self._charges)))
                cur.execute(
                    "DELETE FROM billing.charge WHERE ban = %s AND charge_seq = %s AND activity_num = %s", victim
                )
            else:
                seq = self._next_bill.get(ban, 10)
                self._next_bill[ban] = seq + 1
                cur.execute(
                    "INSERT INTO billing.bill VALUES (%s, %s, 1, current_date, current_date + 14, %s, 'OPEN', now())",
                    (ban, seq, Decimal(self.rng.randrange(100, 50_000)) / 100),
                )
        self.operations += 1

    def run(self, seconds: float, rate: float, stop: Callable[[], bool] = lambda: False,
            drift_at: list[float] | None = None, wait_applied_s: float = 60.0) -> None:
        """`rate` operations per second for `seconds`; injects one drift at each offset in `drift_at`."""
        start = time.monotonic()
        pending = sorted(drift_at or [])
        i = 0
        while not stop():
            elapsed = time.monotonic() - start
            if elapsed >= seconds:
                break
            while pending and elapsed >= pending[0]:
                pending.pop(0)
                self.inject(wait_applied_s=wait_applied_s)
            i += 1
            ahead = start + i / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
            self.step()
        for _ in pending:
            if stop():
                break
            self.inject(wait_applied_s=wait_applied_s)

    # -- out-of-band drift (DynamoDB only) ------------------------------------------------------

    def inject(self, kind: str | None = None, *, wait_applied_s: float = 60.0) -> InjectedDrift | None:
        """Corrupt one item of the next reserved account, once parity has applied it; None when
        no reserved account is left."""
        kind = kind or next(self._kinds)
        if kind == "unexpected_in_target":
            return self._phantom()
        if not self.reserved:
            return None
        ban = self.reserved.pop()
        if kind == "value_mismatch":
            table, where = "subscriber", {"ban": ban, "subscriber_no": subscriber_no(ban, 1)}
        elif kind == "subtle_value":
            table, where = "charge", {"ban": ban, "charge_seq": 1, "activity_num": 1}
        elif kind == "missing_in_target":
            table, where = "bill", {"ban": ban, "bill_seq_no": 1}
        else:
            table, where = "billing_account", {"ban": ban}
        row = self._row(table, where)
        mapper = self.mappers[table]
        target = self.mappings[table].write_table
        key = mapper.key(row)
        current = self._await_applied(mapper, target, row, wait_applied_s)
        if kind == "missing_in_target":
            self.dynamo.delete_item(TableName=target, Key=item_to_wire(key))
        else:
            item = dict(current)
            if kind == "value_mismatch":
                item["price_plan"] = "CORRUPTED"
            elif kind == "subtle_value":
                item["tax_amount"] = Decimal("1.01")  # 1.10 -> 1.01: two digits swapped
            else:  # stale_in_target: an older version of the account written back over the newer one
                older = dict(row, account_status="S", updated_at=row["updated_at"] - dt.timedelta(hours=1))
                item.update(mapper.item(older))
            self.dynamo.put_item(TableName=target, Item=item_to_wire(item))
        drift = InjectedDrift(self.mappings[table].source, key, kind, time.time())
        self.injected.append(drift)
        return drift

    def _phantom(self) -> InjectedDrift:
        n = PHANTOM_CUSTOMER + next(self._phantoms)
        row = {"customer_id": n, "first_name": "Ghost", "last_name": f"Customer{n}", "email": None,
               "tax_id": None, "date_of_birth": None, "preferences": {"lang": "en"},
               "updated_at": dt.datetime.now(dt.UTC)}
        mapper = self.mappers["customer"]
        self.dynamo.put_item(TableName=self.mappings["customer"].write_table, Item=item_to_wire(mapper.item(row)))
        drift = InjectedDrift(self.mappings["customer"].source, mapper.key(row), "unexpected_in_target", time.time())
        self.injected.append(drift)
        return drift

    def _row(self, table: str, where: dict[str, Any]) -> dict[str, Any]:
        cond = " AND ".join(f"{c} = %({c})s" for c in where)
        with self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(f"SELECT * FROM billing.{table} WHERE {cond}", where)  # names are ours, not input
            row = cur.fetchone()
        if row is None:
            raise RuntimeError(f"billing.{table} {where}: seeded row not found")
        return dict(row)

    def _await_applied(self, mapper: ItemMapper, target: str, row: dict[str, Any], timeout: float) -> dict[str, Any]:
        """The target item once it holds the row (the shadow applier got there); corrupting it
        earlier would only be overwritten by parity, which is not drift."""
        expected = mapper.item(row)
        deadline = time.monotonic() + timeout
        while True:
            got = self.dynamo.get_item(TableName=target, Key=item_to_wire(mapper.key(row)), ConsistentRead=True)
            wire = got.get("Item")
            if wire is not None:
                item = item_from_wire(wire)
                if isinstance(compare(mapper, expected, item), Match):
                    return item
            if time.monotonic() > deadline:
                raise TimeoutError(f"{mapper.mapping.source}: item {expected!r} not applied in {timeout:.0f}s")
            time.sleep(0.5)

