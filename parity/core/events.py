"""Debezium envelope -> ChangeEvent.

CONTRACT (shared by the daemon, shadow mode and tests; change it only with all of them):
- `decode_record(topic, key, value, hints)` never raises for bad data except `DecodeError`
  with a reason naming what is wrong; it returns a `ChangeEvent`, a `Tombstone`, or a `Skip`
  (heartbeats, transaction metadata, schema-change messages).
- Row values are plain Python values, the same as psycopg 3 returns for the column type, so a
  row read from Postgres and a row decoded from Debezium map and compare alike:
  numeric -> Decimal, integer -> int, float -> float, text/enum -> str, bool -> bool,
  bytea -> bytes, uuid -> uuid.UUID, json/jsonb -> parsed (dict/list/str/int/...),
  date -> datetime.date, time -> datetime.time, timestamp -> naive datetime,
  timestamptz -> aware datetime in UTC, arrays -> list, NULL -> None,
  TOAST placeholder `__debezium_unavailable_value` -> `UNAVAILABLE` (never a value).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Final


class _Unavailable:
    """Debezium's marker for an unchanged TOASTed column: the value is not in the event."""

    _instance: _Unavailable | None = None

    def __new__(cls) -> _Unavailable:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNAVAILABLE"

    def __reduce__(self) -> str:
        return "UNAVAILABLE"


UNAVAILABLE: Final = _Unavailable()


class Op(enum.StrEnum):
    CREATE = "c"
    UPDATE = "u"
    DELETE = "d"
    READ = "r"  # snapshot
    TRUNCATE = "t"


Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    source: str  # schema.table
    op: Op
    key: Row  # primary-key column -> decoded value (from the record key, else from before/after)
    before: Row | None
    after: Row | None
    lsn: int | None
    tx_id: int | None
    ts_ms: int | None  # commit time at the source (source.ts_ms)
    snapshot: bool  # part of the initial snapshot (source.snapshot is true/first/last/...)
    snapshot_last: bool = False  # the last record of the snapshot (source.snapshot == "last")

    @property
    def row(self) -> Row | None:
        """The row state after the event; None for deletes and truncates."""
        return self.after if self.op in (Op.CREATE, Op.UPDATE, Op.READ) else None


@dataclass(frozen=True, slots=True)
class Tombstone:
    """The null-valued record Kafka Connect writes after a delete, for log compaction."""

    source: str | None
    key: Row


@dataclass(frozen=True, slots=True)
class Skip:
    """A message that is not a row change: heartbeat, transaction metadata, schema change."""

    reason: str


Decoded = ChangeEvent | Tombstone | Skip
