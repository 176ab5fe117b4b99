"""The daemon's durable local state: a SQLite file in the state directory.

- `drift`: confirmed drift, keyed by (table, key, lsn) so a re-delivered event never counts
  twice. It is also an outbox: a record is written here first, then emitted to the JSON lines
  file and the drift topic, then marked emitted; records not yet emitted at start-up are emitted
  again, so a crash between the two steps loses nothing.
- `outcomes`: per table and outcome, how many events ended that way (for `parity status`), under
  the event's own table name even when it is not configured (`<unknown>` when no table is known),
  so the counts add up to every record consumed.
- `graveyard`: the LSN of the last delete per key in shadow mode, so that replaying an old
  create after a delete cannot bring the item back.
- `facts`: small named values (snapshot progress, truncate marks, last reconcile summary, and
  `stream`: the daemon's view of its partitions and pending checks, for `parity status`).

Every batch writes in one transaction before offsets are committed. A failed write raises
`StoreError`; the daemon then stops committing and reports not ready.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from parity.core.errors import StoreError
from parity.core.keys import key_fragment
from parity.core.values import number_text
from parity.files import open_private, private_dir, private_file


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return number_text(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def key_json(key: dict[str, Any]) -> str:
    """A DynamoDB key's *identity* text in the state store (drift dedupe, the shadow graveyard, the
    drift topic's message key). Numbers are quoted digits here, and stay so: stores written by
    earlier versions hold this form, and a new form would make a stored key a different key (a
    re-delivered drift counted twice, a graveyard entry missed). What people and tools read is
    `parity.core.keys.key_document`, where a number is a JSON number."""
    return orjson.dumps(key, default=_plain, option=orjson.OPT_SORT_KEYS).decode()

_SCHEMA = """
CREATE TABLE IF NOT EXISTS drift (
  source TEXT NOT NULL, key TEXT NOT NULL, lsn INTEGER NOT NULL, kind TEXT NOT NULL,
  record TEXT NOT NULL, emitted INTEGER NOT NULL DEFAULT 0, confirmed_at REAL NOT NULL,
  PRIMARY KEY (source, key, lsn)
);
CREATE TABLE IF NOT EXISTS outcomes (
  source TEXT NOT NULL, outcome TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (source, outcome)
);
CREATE TABLE IF NOT EXISTS graveyard (
  target TEXT NOT NULL, key TEXT NOT NULL, lsn INTEGER NOT NULL, PRIMARY KEY (target, key)
);
CREATE TABLE IF NOT EXISTS facts (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class DriftRecord:
    source: str
    target: str
    key: dict[str, Any]
    kind: str
    diffs: list[dict[str, str]]
    lsn: int
    first_seen: float
    confirmed_at: float
    op: str

    def key_text(self) -> str:
        return key_json(self.key)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "table": self.source,
                "target": self.target,
                "key": key_fragment(self.key),
                "kind": self.kind,
                "diffs": self.diffs,
                "lsn": self.lsn,
                "op": self.op,
                "first_seen": self.first_seen,
                "confirmed_at": self.confirmed_at,
            },
            default=_plain,
        )


class StateStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            # Private: the store holds customer keys and drifted values (parity.files). SQLite gives
            # its -wal and -shm files the database file's mode, so creating that one 0600 first
            # covers them; files left by an older run are tightened.
            if str(path) != ":memory:":  # SQLite's in-memory database (tests): no file at all
                private_dir(self.path.parent)
                for existing in (self.path, *(self.path.with_name(self.path.name + s) for s in ("-wal", "-shm"))):
                    private_file(existing)
                os.close(open_private(self.path, os.O_RDWR | os.O_CREAT))
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed batch survives power loss, not only a process crash.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"state store {self.path}: {exc}") from exc
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StoreError(f"state store {self.path}: {exc}") from exc

    def record_batch(
        self,
        outcomes: dict[tuple[str, str], int],
        drift: Iterable[DriftRecord],
        facts: Mapping[str, Any] | None = None,
    ) -> list[DriftRecord]:
        """Add outcome counts and confirmed drift in one transaction; return the drift that is new.
        `facts` are written in the same transaction, so a reader never sees outcome counts of one
        batch with the stream snapshot (pending checks, lag) of another."""
        new: list[DriftRecord] = []
        with self.transaction() as db:
            for name, value in (facts or {}).items():
                db.execute(
                    "INSERT INTO facts(name, value) VALUES (?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                    (name, orjson.dumps(value, default=str).decode()),
                )
            for (source, outcome), n in outcomes.items():
                db.execute(
                    "INSERT INTO outcomes(source, outcome, n) VALUES (?, ?, ?) "
                    "ON CONFLICT(source, outcome) DO UPDATE SET n = n + excluded.n",
                    (source, outcome, n),
                )
            for d in drift:
                cur = db.execute(
                    "INSERT OR IGNORE INTO drift(source, key, lsn, kind, record, confirmed_at) VALUES (?,?,?,?,?,?)",
                    (d.source, d.key_text(), d.lsn, d.kind, d.to_json().decode(), d.confirmed_at),
                )
                if cur.rowcount:
                    new.append(d)
        return new

    def unemitted(self) -> list[tuple[str, str, int, bytes]]:
        with self._lock:
            rows = self._db.execute("SELECT source, key, lsn, record FROM drift WHERE emitted = 0").fetchall()
        return [(s, k, lsn, r.encode()) for s, k, lsn, r in rows]

    def mark_emitted(self, keys: Iterable[tuple[str, str, int]]) -> None:
        with self.transaction() as db:
            db.executemany("UPDATE drift SET emitted = 1 WHERE source = ? AND key = ? AND lsn = ?", list(keys))

    def outcome_counts(self) -> dict[str, dict[str, int]]:
        with self._lock:
            rows = self._db.execute("SELECT source, outcome, n FROM outcomes").fetchall()
        out: dict[str, dict[str, int]] = {}
        for source, outcome, n in rows:
            out.setdefault(source, {})[outcome] = n
        return out

    def drift_by_kind(self) -> dict[str, dict[str, int]]:
        with self._lock:
            rows = self._db.execute("SELECT source, kind, count(*) FROM drift GROUP BY source, kind").fetchall()
        out: dict[str, dict[str, int]] = {}
        for source, kind, n in rows:
            out.setdefault(source, {})[kind] = n
        return out

    def drift_records(self, source: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            if source is None:
                rows = self._db.execute("SELECT record FROM drift ORDER BY confirmed_at").fetchall()
            else:
                rows = self._db.execute(
                    "SELECT record FROM drift WHERE source = ? ORDER BY confirmed_at", (source,)
                ).fetchall()
        return [orjson.loads(r[0]) for r in rows]

    # -- shadow mode graveyard -----------------------------------------------------------------

    def graveyard_lsns(self, target: str, keys: Iterable[str]) -> dict[str, int]:
        keys = list(keys)
        out: dict[str, int] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                marks = ",".join("?" * len(chunk))
                for k, lsn in self._db.execute(
                    f"SELECT key, lsn FROM graveyard WHERE target = ? AND key IN ({marks})", (target, *chunk)
                ):
                    out[k] = lsn
        return out

    def bury(self, rows: Iterable[tuple[str, str, int]], resurrect: Iterable[tuple[str, str]] = ()) -> None:
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO graveyard(target, key, lsn) VALUES (?,?,?) "
                "ON CONFLICT(target, key) DO UPDATE SET lsn = max(lsn, excluded.lsn)",
                list(rows),
            )
            db.executemany("DELETE FROM graveyard WHERE target = ? AND key = ?", list(resurrect))

    # -- facts ---------------------------------------------------------------------------------

    def set_fact(self, name: str, value: Any) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO facts(name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                (name, orjson.dumps(value, default=str).decode()),
            )

    def facts(self) -> dict[str, Any]:
        with self._lock:
            rows = self._db.execute("SELECT name, value FROM facts").fetchall()
        return {n: orjson.loads(v) for n, v in rows}
