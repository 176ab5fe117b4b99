"""One side's bucket digests, and the key spill file that lets a run find the exact drifted keys.

Every row (Postgres) or item (DynamoDB) becomes one record: (key fingerprint, row hash, mapping
index, key). The bucket digests (count, sum of row hashes mod 2^64) live in memory as flat
`array('Q')`s, 16 bytes per bucket per mapping, independent of the table size. The records go
to an append-only spill file per work unit (a DynamoDB segment, a Postgres partition):

- the drill-down reads the spill files back and keeps only the records of mismatched buckets,
  so memory follows the drift, not the table (a second Scan of DynamoDB would double the
  dominant cost of a run; a sequential read of a local file costs a small fraction of it);
- the spill file *is* the persisted partial digest of a unit: a resumed run truncates it to the
  last checkpointed offset and rebuilds the digests from it, then continues the Scan from the
  checkpointed LastEvaluatedKey.

Key fingerprint = `key_bucket(key, 2**64)`, the full 64-bit stable key hash; bucket =
fingerprint % buckets, which is exactly `key_bucket(key, buckets)`.
"""

from __future__ import annotations

import base64
import os
import struct
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from parity.core.digest import MASK, key_bucket
from parity.core.values import Item, Value, from_wire, to_wire
from parity.files import open_private
from parity.reconcilers.coverage import NotCompared

FINGERPRINT_SPACE = 1 << 64
UNMAPPED = 0xFFFF  # mapping index of an item no mapping claims
OTHER_TABLE = 0xFFFE  # an item of a mapping this run does not check (--table)
# A Postgres row that failed to map: FAILED | mapping index. Its record's key is a JSON payload
# {"reason", "primary_key", "key" (wire JSON, or null when the key itself cannot be rendered)}
# and its fingerprint that of the key (0 without one); it is counted, never digested.
FAILED = 0x8000
_RECORD = struct.Struct("<QQHI")  # fingerprint, row hash, mapping index, key length
_CHUNK = 1 << 22
UNMAPPED_SAMPLE = 20


def key_fingerprint(key: Mapping[str, Value]) -> int:
    return key_bucket(key, FINGERPRINT_SPACE)


def key_to_json(key: Mapping[str, Value]) -> dict[str, dict[str, Any]]:
    """A DynamoDB key in wire shape, JSON-ready (binary as base64), for reports and spill files."""
    out: dict[str, dict[str, Any]] = {}
    for name, value in key.items():
        wire = to_wire(value)
        if "B" in wire:
            wire = {"B": base64.b64encode(wire["B"]).decode("ascii")}
        out[name] = wire
    return out


def key_from_json(data: Mapping[str, Mapping[str, Any]]) -> Item:
    out: Item = {}
    for name, wire in data.items():
        if "B" in wire:
            out[name] = base64.b64decode(wire["B"])
        else:
            out[name] = from_wire(wire)
    return out


def key_bytes(key: Mapping[str, Value]) -> bytes:
    return orjson.dumps(key_to_json(key), option=orjson.OPT_SORT_KEYS)


@dataclass
class SideTally:
    """Bucket digests of one side for every mapping of one DynamoDB table (not thread-safe)."""

    mappings: int
    buckets: int
    counts: list[array[int]] = field(init=False)
    totals: list[array[int]] = field(init=False)
    unmapped: int = 0
    unmapped_sample: list[bytes] = field(default_factory=list)
    other_tables: int = 0
    not_compared: list[NotCompared] = field(init=False)  # per mapping: rows that failed to map

    def __post_init__(self) -> None:
        zeros = bytes(8 * self.buckets)
        self.counts = [array("Q", zeros) for _ in range(self.mappings)]
        self.totals = [array("Q", zeros) for _ in range(self.mappings)]
        self.not_compared = [NotCompared() for _ in range(self.mappings)]

    def add(self, mapping: int, fingerprint: int, row_hash: int) -> None:
        b = fingerprint % self.buckets
        self.counts[mapping][b] += 1
        totals = self.totals[mapping]
        totals[b] = (totals[b] + row_hash) & MASK

    def add_unmapped(self, key: bytes) -> None:
        self.unmapped += 1
        if len(self.unmapped_sample) < UNMAPPED_SAMPLE:
            self.unmapped_sample.append(key)

    def add_failed(self, mapping: int, payload: bytes) -> None:
        data = orjson.loads(payload)
        self.not_compared[mapping].add(data["reason"], data["primary_key"])

    def rows(self, mapping: int) -> int:
        return sum(self.counts[mapping])

    def merge(self, other: SideTally) -> None:
        for m in range(self.mappings):
            c, t = self.counts[m], self.totals[m]
            oc, ot = other.counts[m], other.totals[m]
            for b in range(self.buckets):
                if oc[b]:
                    c[b] += oc[b]
                    t[b] = (t[b] + ot[b]) & MASK
        for mine, theirs in zip(self.not_compared, other.not_compared, strict=True):
            mine.merge(theirs)
        self.other_tables += other.other_tables
        self.unmapped += other.unmapped
        room = UNMAPPED_SAMPLE - len(self.unmapped_sample)
        self.unmapped_sample.extend(other.unmapped_sample[: max(0, room)])


def mismatched_buckets(a: SideTally, b: SideTally, mapping: int) -> set[int]:
    """Buckets whose digests differ between the two sides for one mapping."""
    ac, at, bc, bt = a.counts[mapping], a.totals[mapping], b.counts[mapping], b.totals[mapping]
    if ac == bc and at == bt:  # array equality runs in C: the common, clean case is cheap
        return set()
    return {i for i in range(a.buckets) if ac[i] != bc[i] or at[i] != bt[i]}


# --- spill files ---------------------------------------------------------------------------------


class SpillWriter:
    """Append records to one unit's spill file; `flush()` returns the durable offset."""

    def __init__(self, path: Path, *, offset: int = 0) -> None:
        self.path = path
        mode = "r+b" if offset and path.exists() else "wb"
        # Every key of the table passes through here: 0600 (parity.files).
        flags = os.O_RDWR if mode == "r+b" else os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        self._file: BinaryIO = os.fdopen(open_private(path, flags), mode)  # type: ignore[assignment]  # closed by close()
        self._file.truncate(offset if mode == "r+b" else 0)
        self._file.seek(0, os.SEEK_END)

    def write(self, mapping: int, fingerprint: int, row_hash: int, key: bytes) -> None:
        self._file.write(_RECORD.pack(fingerprint, row_hash, mapping, len(key)))
        self._file.write(key)

    def flush(self) -> int:
        self._file.flush()
        return self._file.tell()

    def close(self) -> int:
        offset = self.flush()
        self._file.close()
        return offset


def read_spill(path: Path, *, limit: int | None = None) -> Iterator[tuple[int, int, int, bytes]]:
    """(mapping, fingerprint, row hash, key json) of each record up to `limit` bytes, read in
    chunks so that memory stays flat however large the file is."""
    if not path.exists():
        return
    remaining = path.stat().st_size if limit is None else min(limit, path.stat().st_size)
    size = _RECORD.size
    unpack = _RECORD.unpack_from
    with open(path, "rb") as f:
        data = b""
        while remaining > 0 or data:
            chunk = f.read(min(_CHUNK, remaining)) if remaining > 0 else b""
            remaining -= len(chunk)
            data = data + chunk if data else chunk
            pos, end = 0, len(data)
            while pos + size <= end:
                fingerprint, row_hash, mapping, length = unpack(data, pos)
                if pos + size + length > end:
                    break
                yield mapping, fingerprint, row_hash, data[pos + size : pos + size + length]
                pos += size + length
            data = data[pos:]
            if not chunk:
                return  # nothing more to read: what is left is a torn record (killed mid-write)


def tally_spill(path: Path, tally: SideTally, *, limit: int | None = None) -> int:
    """Add a spill file's records to `tally` (rebuilding a unit's digests on resume); rows read."""
    n = 0
    for mapping, fingerprint, row_hash, key in read_spill(path, limit=limit):
        if mapping == UNMAPPED:
            tally.add_unmapped(key)
        elif mapping == OTHER_TABLE:
            tally.other_tables += 1
        elif mapping & FAILED:
            tally.add_failed(mapping & ~FAILED, key)
        else:
            tally.add(mapping, fingerprint, row_hash)
        n += 1
    return n
