"""The tasks a cluster reconcile runs on Dask workers: one per DynamoDB Scan segment and one per
Postgres hash partition, in two phases.

- Digest (phase 1): read the unit page by page (as in one process: `SegmentScanner`,
  `PartitionReader`), return its bucket digests and not-compared counts, never rows.
- Drill (phase 2): return only the records (mapping, key fingerprint, row hash, key) whose bucket
  is in the given set: from the spill file the digest task left on its worker's disk when the
  task runs there and the file is still there, else by reading the unit again (a lost worker
  takes its files along; nothing depends on them).

Tasks only read, so running one twice is harmless: Dask re-runs the tasks of a lost worker, and
the client retries one that raised. Memory per task is one page or fetch batch plus the digests
(16 bytes per bucket per mapping) and, when drilling, the records of the drilled buckets.
Secrets never travel in a task: the Postgres target goes without its password (workers take it
from their environment: PGPASSWORD or PGPASSFILE) and AWS credentials come from each worker's own
credential chain.
"""

from __future__ import annotations

import shutil
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
from parity.reconcilers.tally import SideTally, SpillWriter, read_spill

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
class SpillPlace:
    """Where a digest task left its unit's records: a spill file on one worker's local disk."""

    worker: str
    path: str
    offset: int


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
    spill: SpillPlace | None = None


@dataclass(frozen=True, slots=True)
class UnitRecords:
    """What phase 2 of a unit returns: the records of the drilled buckets."""

    name: str
    records: tuple[Record, ...]
    reread: bool  # False: from the digest task's spill file; True: the unit was read again


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


def digest_of(name: str, tally: SideTally, rows: int, throttles: int = 0, spill: SpillPlace | None = None
              ) -> UnitDigest:
    return UnitDigest(
        name, rows,
        tuple(c.tobytes() for c in tally.counts), tuple(t.tobytes() for t in tally.totals),
        tuple(dict(nc.groups) for nc in tally.not_compared),
        tally.unmapped, tuple(tally.unmapped_sample), tally.other_tables, throttles, spill,
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


# --- records kept on the worker between the phases ------------------------------------------------
#
# A digest task also writes its unit's records to a spill file on its worker's local disk (as one
# process does), and the drill-down task of the unit is sent to that worker: it reads the file
# instead of the source, so a run that finds drift does not read DynamoDB twice. When the file is
# gone (the worker died, the task landed elsewhere), the drill-down task reads the unit again.


def _spill_dir(run: str, worker: Any = None) -> Path:
    if worker is None:
        from distributed import get_worker

        worker = get_worker()
    return Path(worker.local_directory) / "parity-spill" / run


def remove_spill(run: str, dask_worker: Any = None) -> None:
    """Run on every worker (`Client.run`) when a run is complete."""
    shutil.rmtree(_spill_dir(run, dask_worker), ignore_errors=True)


def _sink(name: str, buckets: int, drill: frozenset[int] | None, keep: str | None) -> SpillWriter:
    if drill is None and keep:
        folder = _spill_dir(keep)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # every key of the unit: private
        return SpillWriter(folder / f"{name}.spill")
    return _Records(buckets, drill)


def _result(name: str, tally: SideTally, rows: int, sink: SpillWriter, drill: frozenset[int] | None,
            throttles: int = 0) -> UnitDigest | UnitRecords:
    if isinstance(sink, _Records):
        if drill is not None:
            return UnitRecords(name, tuple(sink.records), reread=True)
        return digest_of(name, tally, rows, throttles)
    from distributed import get_worker

    place = SpillPlace(get_worker().address, str(sink.path), sink.close())
    return digest_of(name, tally, rows, throttles, place)


def _kept(name: str, kept: SpillPlace | None, buckets: int, drill: frozenset[int] | None) -> UnitRecords | None:
    if drill is None or kept is None:
        return None
    path = Path(kept.path)
    try:
        if path.stat().st_size < kept.offset:
            return None  # pragma: no cover - a file cut short by a full disk: read the unit again
    except OSError:
        return None  # another worker, or this one restarted: read the unit again
    records = tuple(r for r in read_spill(path, limit=kept.offset) if r[1] % buckets in drill)
    return UnitRecords(name, records, reread=False)


def scan_segment(unit: SegmentUnit, drill: frozenset[int] | None = None, *, keep: str | None = None,
                 kept: SpillPlace | None = None) -> UnitDigest | UnitRecords:
    """Phase 1 (`drill` None): digests, records kept under run `keep`. Phase 2: the records of the
    `drill` buckets, from `kept` when that file is on this worker, else by scanning again."""
    found = _kept(unit.name, kept, unit.buckets, drill)
    if found is not None:
        return found
    budget = ClusterReadBudget(unit.budget) if unit.budget else None
    reporter = ThrottleReporter(budget) if budget is not None else None
    store = DynamoStore(_dynamodb_client(unit.dynamodb), concurrency=1, observer=reporter)
    sink = _sink(unit.name, unit.buckets, drill, keep)
    try:
        selected = [ItemMapper(m) for m in unit.selected]
        scanner = SegmentScanner(store, unit.table, TargetRouter(unit.mappings), selected,
                                 page_limit=unit.page_limit, consistent=unit.consistent, limiter=budget)
        tally = SideTally(len(selected), unit.buckets)
        rows = scanner.scan(unit.segment, unit.segments, tally, threading.Lock(), sink)
    except BaseException:
        sink.close()
        raise
    finally:
        store.close()
    return _result(unit.name, tally, rows, sink, drill, reporter.throttles if reporter is not None else 0)


def read_partition_unit(unit: PartitionUnit, drill: frozenset[int] | None = None, *, keep: str | None = None,
                        kept: SpillPlace | None = None) -> UnitDigest | UnitRecords:
    found = _kept(unit.name, kept, unit.buckets, drill)
    if found is not None:
        return found
    tally = SideTally(unit.mappings, unit.buckets)
    sink = _sink(unit.name, unit.buckets, drill, keep)
    try:
        rows = PartitionReader(unit.target, ItemMapper(unit.mapping), unit.index).read(
            unit.snapshot, unit.part, unit.parts, tally, threading.Lock(), sink)
    except BaseException:
        sink.close()
        raise
    return _result(unit.name, tally, rows, sink, drill)
