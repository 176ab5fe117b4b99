"""The tasks a cluster reconcile runs on Dask workers: one per DynamoDB Scan segment and one per
Postgres hash partition, in two phases.

- Digest (phase 1): read the unit page by page (as in one process: `SegmentScanner`,
  `PartitionReader`), return its bucket digests and not-compared counts, never rows.
- Drill (phase 2): read the unit again and return only the records (mapping, key fingerprint, row
  hash, key) whose bucket is in the given set. Records are not kept on a worker's disk between the
  phases: a lost worker would take them along (docs/reconciler.md weighs the second read).

Tasks only read, so running one twice is harmless: Dask re-runs the tasks of a lost worker, and
the client retries one that raised. Memory per task is one page or fetch batch plus the digests
(16 bytes per bucket per mapping) and, when drilling, the records of the drilled buckets.
Secrets never travel in a task: the Postgres target goes without its password (workers take it
from their environment: PGPASSWORD or PGPASSFILE) and AWS credentials come from each worker's own
credential chain.
"""

from __future__ import annotations

import threading
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parity.adapters.clients import PostgresTarget, dynamodb_client
from parity.adapters.dynamodb import DynamoStore
from parity.core.config import DynamoConfig, TableMapping
from parity.core.mapping import ItemMapper, TargetRouter
from parity.reconcilers.cluster_budget import ClusterReadBudget, ThrottleReporter
from parity.reconcilers.coverage import NotCompared
from parity.reconcilers.dynamo import SegmentScanner
from parity.reconcilers.postgres import PartitionReader
from parity.reconcilers.tally import SideTally, SpillWriter

Record = tuple[int, int, int, bytes]  # mapping index, key fingerprint, row hash, key


@dataclass(frozen=True, slots=True)
class SegmentUnit:
    name: str
    dynamodb: DynamoConfig
    table: str
    mappings: tuple[TableMapping, ...]  # every mapping writing the table (routing)
    selected: tuple[TableMapping, ...]  # the ones this run checks
    segment: int
    segments: int
    buckets: int
    page_limit: int
    consistent: bool
    budget: str | None  # the scheduler-side read budget's name (cluster_budget.py)


@dataclass(frozen=True, slots=True)
class PartitionUnit:
    name: str
    target: PostgresTarget  # without its password
    snapshot: str | None
    mapping: TableMapping
    index: int
    mappings: int
    part: int
    parts: int
    buckets: int


@dataclass(frozen=True, slots=True)
class UnitDigest:
    """What phase 1 of a unit returns: digests and counts, no row."""

    name: str
    rows: int
    counts: tuple[bytes, ...]  # per mapping, array('Q') bytes
    totals: tuple[bytes, ...]
    not_compared: tuple[dict[str, list[Any]], ...]  # per mapping, NotCompared.groups
    unmapped: int
    unmapped_sample: tuple[bytes, ...]
    other_tables: int
    throttles: int = 0


@dataclass(frozen=True, slots=True)
class UnitRecords:
    """What phase 2 of a unit returns: the records of the drilled buckets."""

    name: str
    records: tuple[Record, ...]


class _Records(SpillWriter):
    """A spill writer that keeps, in memory, the records of some buckets (none: a digest run)."""

    def __init__(self, buckets: int, wanted: frozenset[int] | None) -> None:
        self.path = Path("<memory>")
        self._buckets = buckets
        self._wanted = wanted
        self.records: list[Record] = []

    def write(self, mapping: int, fingerprint: int, row_hash: int, key: bytes) -> None:
        if self._wanted is not None and fingerprint % self._buckets in self._wanted:
            self.records.append((mapping, fingerprint, row_hash, key))

    def flush(self) -> int:
        return 0

    def close(self) -> int:
        return 0


def digest_of(name: str, tally: SideTally, rows: int, throttles: int = 0) -> UnitDigest:
    return UnitDigest(
        name, rows,
        tuple(c.tobytes() for c in tally.counts), tuple(t.tobytes() for t in tally.totals),
        tuple(dict(nc.groups) for nc in tally.not_compared),
        tally.unmapped, tuple(tally.unmapped_sample), tally.other_tables, throttles,
    )


def tally_of(digest: UnitDigest, mappings: int, buckets: int) -> SideTally:
    tally = SideTally(mappings, buckets)
    for m in range(mappings):
        tally.counts[m] = array("Q", digest.counts[m])
        tally.totals[m] = array("Q", digest.totals[m])
        if len(tally.counts[m]) != buckets:
            raise ValueError(f"unit {digest.name}: {len(tally.counts[m])} buckets, the run has {buckets}")
        nc = NotCompared()
        nc.groups = {reason: [group[0], list(group[1])] for reason, group in digest.not_compared[m].items()}
        tally.not_compared[m] = nc
    tally.unmapped = digest.unmapped
    tally.unmapped_sample = list(digest.unmapped_sample)
    tally.other_tables = digest.other_tables
    return tally


_CLIENTS: dict[str, Any] = {}  # per worker process: building a boto3 client costs ~0.2 s of CPU
_CLIENTS_LOCK = threading.Lock()


def _dynamodb_client(cfg: DynamoConfig) -> Any:
    # botocore clients are thread-safe once built; building one is not (boto3 sessions).
    key = cfg.model_dump_json()
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            client = _CLIENTS[key] = dynamodb_client(cfg)
        return client


def scan_segment(unit: SegmentUnit, drill: frozenset[int] | None = None) -> UnitDigest | UnitRecords:
    budget = ClusterReadBudget(unit.budget) if unit.budget else None
    reporter = ThrottleReporter(budget) if budget is not None else None
    store = DynamoStore(_dynamodb_client(unit.dynamodb), concurrency=1, observer=reporter)
    try:
        selected = [ItemMapper(m) for m in unit.selected]
        scanner = SegmentScanner(store, unit.table, TargetRouter(unit.mappings), selected,
                                 page_limit=unit.page_limit, consistent=unit.consistent, limiter=budget)
        tally = SideTally(len(selected), unit.buckets)
        sink = _Records(unit.buckets, drill)
        rows = scanner.scan(unit.segment, unit.segments, tally, threading.Lock(), sink)
    finally:
        store.close()
    if drill is not None:
        return UnitRecords(unit.name, tuple(sink.records))
    return digest_of(unit.name, tally, rows, reporter.throttles if reporter is not None else 0)


def read_partition_unit(unit: PartitionUnit, drill: frozenset[int] | None = None) -> UnitDigest | UnitRecords:
    tally = SideTally(unit.mappings, unit.buckets)
    sink = _Records(unit.buckets, drill)
    rows = PartitionReader(unit.target, ItemMapper(unit.mapping), unit.index).read(
        unit.snapshot, unit.part, unit.parts, tally, threading.Lock(), sink)
    if drill is not None:
        return UnitRecords(unit.name, tuple(sink.records))
    return digest_of(unit.name, tally, rows)
