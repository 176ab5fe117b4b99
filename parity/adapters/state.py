"""The daemon's durable local state: a SQLite file in the state directory.

- `drift`: confirmed drift, keyed by (table, key, lsn) so a re-delivered event never counts
  twice. It is also an outbox: a record is written here first, then emitted to the JSON lines
  file and the drift topic, then marked emitted; records not yet emitted at start-up are emitted
  again, so a crash between the two steps loses nothing.
  Drift has a lifecycle: a row is *open* until the key is found healed (`resolved_at`,
  `resolved_how`: a newer event verified as a match, a re-read of the open key, a repair, a
  reconcile that found the key clean) or a newer drift row of the same key replaces it
  (`superseded`). Open drift is counted per key. Rows of origin `reconcile` are keys a reconcile
  found drifted that the stream had not reported: open, not emitted (the reconcile report is
  their record), not counted as stream drift.
- `drift_resolved`: outbox of `resolved` records for the drift sinks (same emit protocol).
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

import base64
import contextlib
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

from parity.core.compare import AttributeDiff
from parity.core.errors import MappingError, StoreError
from parity.core.keys import key_fragment
from parity.core.recheck import PendingCheck
from parity.core.values import item_from_wire, item_to_wire, number_text
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
CREATE TABLE IF NOT EXISTS drift_resolved (
  id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, key TEXT NOT NULL, how TEXT NOT NULL,
  resolved_at REAL NOT NULL, record TEXT NOT NULL, emitted INTEGER NOT NULL DEFAULT 0
);
"""
# Added with the drift lifecycle; ALTERed into state files written by older versions.
_DRIFT_COLUMNS = {
    "resolved_at": "REAL",
    "resolved_how": "TEXT",
    "origin": "TEXT NOT NULL DEFAULT 'stream'",
    "reread": "TEXT",  # {"target", "key", "expected", "unavailable"} in wire JSON, for re-reads
    "last_reread": "REAL NOT NULL DEFAULT 0",
}
_DRIFT_INDEX = """
CREATE INDEX IF NOT EXISTS drift_open ON drift(last_reread) WHERE resolved_at IS NULL;
CREATE INDEX IF NOT EXISTS drift_resolved_unemitted ON drift_resolved(id) WHERE emitted = 0;
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
    # For re-reads of open drift (kept in the state store only, never in the drift sinks).
    expected: dict[str, Any] | None = None
    unavailable: tuple[str, ...] = ()

    @classmethod
    def confirmed(
        cls, c: PendingCheck, kind: str, diffs: Iterable[AttributeDiff], now: float
    ) -> DriftRecord:
        """The drift a pending check ended in (either direction: the verifier's and the reverse one's)."""
        return cls(
            source=c.source,
            target=c.key_id[0],
            key=c.key,
            kind=kind,
            diffs=[{"attribute": d.attribute, "expected": d.expected, "actual": d.actual} for d in diffs],
            lsn=c.lsn or 0,
            first_seen=c.first_seen,
            confirmed_at=now,
            op=c.op,
            expected=c.expected,
            unavailable=c.unavailable,
        )

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


RESOLUTION_HOWS = ("newer_event", "reread", "repair", "reconcile")


@dataclass(frozen=True, slots=True)
class Resolution:
    """Open drift of a key found healed: `how` is one of RESOLUTION_HOWS."""

    source: str
    target: str
    key: dict[str, Any]
    how: str
    at: float
    # Only drift of LSNs up to this one is closed: a newer event closes what came before it (a
    # replayed older event after a rewind must not close newer drift), a re-read closes the
    # record it re-read. None: every open record of the key (a repair, a reconcile).
    lsn: int | None = None

    def key_text(self) -> str:
        return key_json(self.key)


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
                # Create the file 0600 only when it is missing. Never open and close an existing
                # one: closing any descriptor of a file drops every POSIX lock this process holds
                # on it, including those of another connection of this process (a daemon thread),
                # after which SQLite may checkpoint and unlink a WAL still in use (seen: a second
                # StateStore in the daemon's process made later commits invisible to others).
                if not self.path.exists():
                    with contextlib.suppress(FileExistsError):
                        os.close(open_private(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL))
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed batch survives power loss, not only a process crash.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            have = {row[1] for row in self._db.execute("PRAGMA table_info(drift)")}
            for name, decl in _DRIFT_COLUMNS.items():
                if name not in have:
                    self._db.execute(f"ALTER TABLE drift ADD COLUMN {name} {decl}")
            self._db.executescript(_DRIFT_INDEX)
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
                key = d.key_text()
                cur = db.execute(
                    "INSERT OR IGNORE INTO drift(source, key, lsn, kind, record, confirmed_at, reread, last_reread) "
                    "VALUES (?,?,?,?,?,?,?,?)",
                    (d.source, key, d.lsn, d.kind, d.to_json().decode(), d.confirmed_at, _reread_json(d),
                     d.confirmed_at),
                )
                if cur.rowcount:
                    new.append(d)
                    # The key's older open drift is now described by this newer record.
                    db.execute(
                        "UPDATE drift SET resolved_at = ?, resolved_how = 'superseded' "
                        "WHERE source = ? AND key = ? AND lsn != ? AND resolved_at IS NULL",
                        (d.confirmed_at, d.source, key, d.lsn),
                    )
        return new

    # -- drift lifecycle -----------------------------------------------------------------------

    def resolve_drift(self, resolutions: Iterable[Resolution]) -> list[Resolution]:
        """Mark the open drift of each resolution's key resolved; return those that closed any.
        A `resolved` record is queued for the drift sinks when stream drift was closed."""
        closed: list[Resolution] = []
        with self.transaction() as db:
            for r in resolutions:
                if _close(db, r.source, r.key_text(), r.how, r.at, target=r.target, max_lsn=r.lsn):
                    closed.append(r)
        return closed

    def resolve_keys(self, source: str, keys: Iterable[str], how: str, at: float) -> int:
        """Close open drift of `keys` (key_json texts) of one table, e.g. after a repair wrote them."""
        n = 0
        with self.transaction() as db:
            for key in keys:
                n += bool(_close(db, source, key, how, at))
        return n

    def reconciled(
        self, source: str, target: str, *, started_at: float, drifted: dict[str, tuple[str, dict[str, Any]]], at: float
    ) -> dict[str, int]:
        """A finished reconcile of `source` that began at `started_at` found exactly `drifted`
        (key_json text -> (kind, DynamoDB key)) wrong. Open drift confirmed before the reconcile began and not in
        `drifted` is resolved (`reconcile`); drifted keys without open drift are opened as
        reconcile-origin rows, so open drift is what either side knows to be wrong now.
        (Drift confirmed after the reconcile began may postdate its read of the key: left open.)"""
        closed = opened = 0
        with self.transaction() as db:
            rows = db.execute(
                "SELECT DISTINCT key FROM drift WHERE source = ? AND resolved_at IS NULL AND confirmed_at < ?",
                (source, started_at),
            ).fetchall()
            for (key,) in rows:
                if key not in drifted:
                    closed += bool(_close(db, source, key, "reconcile", at))
            for key, (kind, item_key) in drifted.items():
                if db.execute(
                    "SELECT 1 FROM drift WHERE source = ? AND key = ? AND resolved_at IS NULL LIMIT 1", (source, key)
                ).fetchone():
                    continue
                # `reread` carries only the key (so the daemon can match newer events to it); a
                # reconcile-origin row is never re-read by the daemon (its expected item is unknown).
                reread = orjson.dumps(
                    {"target": target, "key": item_to_wire(item_key), "expected": None, "unavailable": []},
                    default=_wire_default,
                ).decode()
                db.execute(
                    "INSERT INTO drift(source, key, lsn, kind, record, emitted, confirmed_at, origin, reread, "
                    "last_reread) VALUES (?, ?, -1, ?, '{}', 1, ?, 'reconcile', ?, ?) "
                    "ON CONFLICT(source, key, lsn) DO UPDATE SET kind = excluded.kind, "
                    "confirmed_at = excluded.confirmed_at, resolved_at = NULL, resolved_how = NULL",
                    (source, key, kind, at, reread, at),
                )
                opened += 1
        return {"resolved": closed, "opened": opened}

    def open_drift(self, after_rowid: int = 0) -> list[tuple[int, str, str, str | None, int]]:
        """Open drift rows after `after_rowid`: (rowid, source, key text, reread JSON, lsn)."""
        with self._lock:
            return self._db.execute(
                "SELECT rowid, source, key, reread, lsn FROM drift WHERE resolved_at IS NULL AND rowid > ? "
                "ORDER BY rowid",
                (after_rowid,),
            ).fetchall()

    def reread_candidates(self, *, limit: int, older_than: float) -> list[tuple[int, str, str, str, int]]:
        """Open stream drift not re-read since `older_than`, least recently re-read first:
        (rowid, source, key text, reread JSON, lsn)."""
        with self._lock:
            return self._db.execute(
                "SELECT rowid, source, key, reread, lsn FROM drift WHERE resolved_at IS NULL AND reread IS NOT NULL "
                "AND origin = 'stream' AND last_reread <= ? ORDER BY last_reread LIMIT ?",
                (older_than, limit),
            ).fetchall()

    def touch_reread(self, rowids: Iterable[int], at: float) -> None:
        with self.transaction() as db:
            db.executemany("UPDATE drift SET last_reread = ? WHERE rowid = ?", [(at, r) for r in rowids])

    def open_drift_counts(self) -> dict[str, int]:
        """Keys with open drift, per table."""
        with self._lock:
            rows = self._db.execute(
                "SELECT source, count(DISTINCT key) FROM drift WHERE resolved_at IS NULL GROUP BY source"
            ).fetchall()
        return dict(rows)

    def drift_lifecycle(self) -> dict[str, dict[str, Any]]:
        """Per table: keys with open drift now, and resolved drift rows by how they resolved."""
        out: dict[str, dict[str, Any]] = {}
        for source, n in self.open_drift_counts().items():
            out.setdefault(source, _lifecycle())["drift_open"] = n
        with self._lock:
            rows = self._db.execute(
                "SELECT source, resolved_how, count(*) FROM drift WHERE resolved_at IS NOT NULL "
                "AND origin = 'stream' GROUP BY source, resolved_how"
            ).fetchall()
        for source, how, n in rows:
            entry = out.setdefault(source, _lifecycle())
            entry["drift_resolved_by"][how] = n
            if how != "superseded":
                entry["drift_resolved"] += n
        return out

    def unemitted_resolutions(self) -> list[tuple[int, str, bytes]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, key, record FROM drift_resolved WHERE emitted = 0 ORDER BY id"
            ).fetchall()
        return [(i, k, r.encode()) for i, k, r in rows]

    def mark_resolutions_emitted(self, ids: Iterable[int]) -> None:
        with self.transaction() as db:
            db.executemany("UPDATE drift_resolved SET emitted = 1 WHERE id = ?", [(i,) for i in ids])

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
            rows = self._db.execute(
                "SELECT source, kind, count(*) FROM drift WHERE origin = 'stream' GROUP BY source, kind"
            ).fetchall()
        out: dict[str, dict[str, int]] = {}
        for source, kind, n in rows:
            out.setdefault(source, {})[kind] = n
        return out

    def drift_records(self, source: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            if source is None:
                rows = self._db.execute(
                    "SELECT record FROM drift WHERE origin = 'stream' ORDER BY confirmed_at"
                ).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT record FROM drift WHERE source = ? AND origin = 'stream' ORDER BY confirmed_at", (source,)
                ).fetchall()
        return [orjson.loads(r[0]) for r in rows]

    def resolved_records(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT record FROM drift_resolved ORDER BY id").fetchall()
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

    # -- DynamoDB Stream checkpoints (the reverse direction) -----------------------------------
    # Per (stream ARN, shard): the highest committed sequence number (decimal text, kept as
    # DynamoDB wrote it: GetShardIterator wants it back as it was), and whether the shard is
    # finished (closed, read to its end, every record committed), so its children are read after
    # a restart. Created on first use, so state files of earlier versions need no migration.

    def _stream_tables(self) -> None:
        if getattr(self, "_streams_ready", False):
            return
        with self.transaction() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS stream_shards (stream TEXT NOT NULL, shard TEXT NOT NULL, "
                "sequence TEXT, finished INTEGER NOT NULL DEFAULT 0, updated_at REAL NOT NULL, "
                "PRIMARY KEY (stream, shard))"
            )
        self._streams_ready = True

    def stream_checkpoints(self, stream: str) -> dict[str, tuple[str | None, bool]]:
        """Per shard of `stream`: (highest committed sequence number or None, finished)."""
        self._stream_tables()
        with self._lock:
            rows = self._db.execute(
                "SELECT shard, sequence, finished FROM stream_shards WHERE stream = ?", (stream,)
            ).fetchall()
        return {shard: (seq, bool(done)) for shard, seq, done in rows}

    def commit_stream_positions(self, stream: str, positions: Mapping[str, str], at: float) -> None:
        """Checkpoint these shards at these sequence numbers, in one transaction; a checkpoint
        never moves back (a lower number than the stored one is ignored)."""
        if not positions:
            return
        self._stream_tables()
        with self.transaction() as db:
            for shard, seq in positions.items():
                if not seq.isdigit():
                    raise StoreError(f"stream {stream} shard {shard}: sequence number {seq!r} is not digits")
                row = db.execute(
                    "SELECT sequence FROM stream_shards WHERE stream = ? AND shard = ?", (stream, shard)
                ).fetchone()
                if row is not None and row[0] is not None and int(row[0]) >= int(seq):
                    continue
                db.execute(
                    "INSERT INTO stream_shards(stream, shard, sequence, updated_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(stream, shard) DO UPDATE SET sequence = excluded.sequence, "
                    "updated_at = excluded.updated_at",
                    (stream, shard, seq, at),
                )

    def finish_stream_shard(self, stream: str, shard: str, at: float) -> None:
        """Mark a shard finished: read to its end with every record committed."""
        self._stream_tables()
        with self.transaction() as db:
            db.execute(
                "INSERT INTO stream_shards(stream, shard, finished, updated_at) VALUES (?, ?, 1, ?) "
                "ON CONFLICT(stream, shard) DO UPDATE SET finished = 1, updated_at = excluded.updated_at",
                (stream, shard, at),
            )


def _lifecycle() -> dict[str, Any]:
    return {"drift_open": 0, "drift_resolved": 0, "drift_resolved_by": {}}


def _close(
    db: sqlite3.Connection,
    source: str,
    key: str,
    how: str,
    at: float,
    *,
    target: str | None = None,
    max_lsn: int | None = None,
) -> int:
    """Resolve the open drift rows of one key (up to `max_lsn`); queue a `resolved` record for
    each stream drift row closed."""
    bound = (1 << 63) - 1 if max_lsn is None else max_lsn
    rows = db.execute(
        "SELECT lsn, kind, origin, record FROM drift WHERE source = ? AND key = ? AND resolved_at IS NULL "
        "AND lsn <= ?",
        (source, key, bound),
    ).fetchall()
    if not rows:
        return 0
    db.execute(
        "UPDATE drift SET resolved_at = ?, resolved_how = ? WHERE source = ? AND key = ? AND resolved_at IS NULL "
        "AND lsn <= ?",
        (at, how, source, key, bound),
    )
    for lsn, kind, origin, record in rows:
        if origin != "stream":
            continue
        drift = orjson.loads(record)
        resolved = {
            "event": "resolved",
            "table": source,
            "target": drift.get("target", target),
            "key": drift.get("key"),
            "kind": kind,
            "lsn": lsn,
            "how": how,
            "confirmed_at": drift.get("confirmed_at"),
            "resolved_at": at,
        }
        db.execute(
            "INSERT INTO drift_resolved(source, key, how, resolved_at, record) VALUES (?,?,?,?,?)",
            (source, key, how, at, orjson.dumps(resolved).decode()),
        )
    return len(rows)


def _wire_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError(type(value).__name__)


def _reread_json(d: DriftRecord) -> str | None:
    """What a re-read of the open key needs: None when the expected item has no wire form."""
    try:
        data = {
            "target": d.target,
            "key": item_to_wire(d.key),
            "expected": None if d.expected is None else item_to_wire(d.expected),
            "unavailable": list(d.unavailable),
        }
        return orjson.dumps(data, default=_wire_default).decode()
    except (MappingError, TypeError):
        return None


def reread_item(text: str) -> tuple[str, dict[str, Any], dict[str, Any] | None, tuple[str, ...]]:
    """(target, key, expected, unavailable) from a row's `reread` JSON."""
    data = orjson.loads(text)
    expected = data["expected"]
    return (
        data["target"],
        item_from_wire(data["key"]),
        None if expected is None else item_from_wire(expected),
        tuple(data["unavailable"]),
    )


def reconcile_drift_keys(table_report: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """A reconcile report's drifted keys of one table: key_json text -> (kind, DynamoDB key)."""
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for entry in table_report.get("drift", []):
        key = item_from_wire(entry["key"])
        out[key_json(key)] = (entry["kind"], key)
    return out
