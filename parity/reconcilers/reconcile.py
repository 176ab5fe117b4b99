"""A whole-table reconcile: digests of both sides -> mismatched buckets -> exact keys -> recheck.

Per DynamoDB table (several Postgres tables share one in a single-table design):

1. Read both sides at once: DynamoDB segments on one bounded pool, Postgres hashed partitions of
   every source table (one exported snapshot) on another. Every row/item becomes a record in
   its unit's spill file and a term of its bucket digest (`tally.py`).
2. Compare bucket digests per mapping. Clean buckets are done.
3. Drill down: read the spill files back and keep only the records of mismatched buckets:
   fingerprints present on one side only, or with different row hashes, are candidates.
   The bucket count grows with the table (about 32 rows per bucket, `config.reconcile.buckets`
   is the minimum), so with drift under 0.1 % the drill-down holds a few percent of the records.
   Candidates of all mappings of the DynamoDB table are merged by key: one key, one candidate,
   owned by the table whose Postgres row maps to it (even if the item's EntityType names another
   table or none), else by the table the item routes to (`DrillDown`, docs/reconciler.md).
4. Recheck: once its grace period has passed since the scan saw it differ (its DynamoDB page's
   arrival; for a key absent from DynamoDB, the end of the DynamoDB scan: `grace.py`), re-read
   each candidate from both sides (Postgres by primary key, DynamoDB consistent reads), decide its
   owner again from the current rows and compare with `core.compare`; a key that matches in any
   of the rounds was in flight. Candidates are rechecked in waves as they come due. Only drift
   that persists is reported, once per key. A candidate whose row does not map is not compared.
5. Coverage: rows and items that could not be compared are counted by reason (`coverage.py`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from parity.adapters.clients import PostgresSource, postgres_target, with_statement_timeout
from parity.adapters.dynamodb import DynamoStore, key_tuple
from parity.core.compare import Mismatch, compare
from parity.core.config import ParityConfig, TableMapping
from parity.core.errors import MappingError, ParityError
from parity.core.mapping import ItemMapper, TargetRouter
from parity.core.ratelimit import Pacer
from parity.core.values import Item
from parity.files import private_dir, write_private
from parity.reconcilers.checkpoint import Checkpoint
from parity.reconcilers.coverage import (
    PG_ROW_UNMAPPABLE,
    UNROUTABLE,
    NotCompared,
    primary_key_json,
    reason_of,
    typed_primary_key,
)
from parity.reconcilers.dynamo import SegmentScanner
from parity.reconcilers.grace import GraceSchedule, recheck_in_waves
from parity.reconcilers.postgres import (
    PartitionReader,
    PartitionTask,
    RowLookup,
    check_mapped_columns,
    estimated_rows,
    exported_snapshot,
    merge_partition,
    numeric_key_columns,
    read_partition,
)
from parity.reconcilers.report import (
    DriftEntry,
    drift_entry,
    drift_total,
    not_compared_total,
    table_report,
    target_report,
)
from parity.reconcilers.tally import (
    FAILED,
    OTHER_TABLE,
    UNMAPPED,
    SideTally,
    SpillWriter,
    key_from_json,
    mismatched_buckets,
    read_spill,
    tally_spill,
)

ROWS_PER_BUCKET = 32
MAX_BUCKETS = 1 << 20
RECHECK_ROUNDS = 2
PROCESS_MIN_ROWS = 50_000  # from here on, Postgres partitions run in worker processes (postgres.py)
# ... on machines with cores to spare: on 2 shared cores (DynamoDB Local and Postgres need CPU too)
# threads measured faster than processes (docs/reconciler.md).
PROCESS_MIN_CPUS = 2  # one core reads DynamoDB, the other(s) map and hash Postgres rows


class ReconcileError(ParityError):
    """A run could not finish (a side unreachable, a resume that does not fit)."""


class Progress(Protocol):
    def begin(self, target: str, units: int, estimated_rows: int) -> None: ...
    def advance(self, rows: int) -> None: ...
    def unit_done(self) -> None: ...
    def end(self) -> None: ...


class _NoProgress:
    def begin(self, target: str, units: int, estimated_rows: int) -> None:
        return None

    def advance(self, rows: int) -> None:
        return None

    def unit_done(self) -> None:
        return None

    def end(self) -> None:
        return None


@dataclass(frozen=True)
class TargetGroup:
    """One DynamoDB table: every mapping writing it (for routing) and the ones this run checks."""

    table: str
    mappings: tuple[TableMapping, ...]
    selected: tuple[TableMapping, ...]


def target_groups(config: ParityConfig, tables: Sequence[str] | None = None) -> list[TargetGroup]:
    wanted = set(tables) if tables else None
    if wanted:
        unknown = wanted - {t.source for t in config.tables}
        if unknown:
            raise ReconcileError(f"not a mapped table: {', '.join(sorted(unknown))}")
    by_table: dict[str, list[TableMapping]] = {}
    for t in config.tables:
        by_table.setdefault(t.write_table, []).append(t)
    groups = []
    for table, mappings in by_table.items():
        selected = tuple(m for m in mappings if wanted is None or m.source in wanted)
        if selected:
            groups.append(TargetGroup(table, tuple(mappings), selected))
    return groups


def bucket_count(minimum: int, estimated: int) -> int:
    """A power of two near estimated/ROWS_PER_BUCKET, at least `minimum` (see the module doc)."""
    want = estimated // ROWS_PER_BUCKET
    if want <= minimum:
        return minimum
    n = 1
    while n < want:
        n <<= 1
    return max(minimum, min(n, MAX_BUCKETS))


def drift_candidates(
    expected: dict[int, tuple[int, bytes]], actual: dict[int, tuple[int, bytes]]
) -> list[tuple[int, bytes]]:
    """(fingerprint, key) of each key whose record differs or exists on one side only."""
    out: list[tuple[int, bytes]] = []
    for fp, (h, key) in expected.items():
        other = actual.get(fp)
        if other is None or other[0] != h:
            out.append((fp, key))
    out.extend((fp, key) for fp, (_h, key) in actual.items() if fp not in expected)
    out.sort()
    return out


@dataclass
class _Side:
    tally: SideTally
    lock: threading.Lock = field(default_factory=threading.Lock)


class Reconciler:
    def __init__(
        self,
        config: ParityConfig,
        *,
        dynamo: DynamoStore,
        dsn: PostgresSource,
        metrics: Any | None = None,
        progress: Progress | None = None,
        sleep: Callable[[float], None] = time.sleep,
        stop: threading.Event | None = None,
        pg_processes: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pg_processes = pg_processes  # None: processes for large tables only
        self.config = config
        self.settings = config.reconcile
        self.dynamo = dynamo
        # Parsed once (the password kept apart from the DSN), every session with the statement timeout.
        self.dsn = with_statement_timeout(postgres_target(dsn), config.reconcile.statement_timeout_s)
        self.metrics = metrics
        self.progress: Progress = progress or _NoProgress()
        self._sleep = sleep
        self._clock = clock  # when pages were read and candidates come due (grace.py)
        self._stop = stop or threading.Event()
        self.report_dir = Path(config.reconcile.report_dir)

    # -- the run -----------------------------------------------------------------------------------

    def run(
        self,
        *,
        tables: Sequence[str] | None = None,
        segments: int | None = None,
        workers: int | None = None,
        resume: bool = False,
    ) -> dict[str, Any]:
        started = time.monotonic()
        started_at = dt.datetime.now(dt.UTC)
        report: dict[str, Any] = {
            "run_id": started_at.strftime("%Y%m%dT%H%M%SZ"),
            "started_at": started_at.isoformat(),
            "settings": {
                "segments": segments or self.settings.segments,
                "workers": workers or self.settings.workers,
                "page_limit": self.settings.page_limit,
                "consistent_read": self.settings.consistent_read,
                "read_rate_limit": self.settings.read_rate_limit,
                "grace_period_s": self.settings.grace_period_s,
            },
            "targets": {},
            "tables": {},
        }
        for group in target_groups(self.config, tables):
            try:
                self._run_target(group, report, segments or self.settings.segments,
                                 workers or self.settings.workers, resume)
            except Exception as exc:
                if self.metrics is not None:
                    for m in group.selected:
                        self.metrics.reconcile_finished(m.source, ok=False, duration_s=time.monotonic() - started,
                                                        rows_compared=0, now_unix=time.time())
                if isinstance(exc, ParityError):
                    raise
                # psycopg / botocore failures: one clear error naming the table, the cause chained.
                raise ReconcileError(f"reconcile of {group.table} failed: {type(exc).__name__}: {exc}") from exc
        report["finished_at"] = dt.datetime.now(dt.UTC).isoformat()
        report["duration_s"] = round(time.monotonic() - started, 3)
        report["drift_total"] = drift_total(report)
        report["not_compared_total"] = not_compared_total(report)
        return report

    def _checkpoint(self, group: TargetGroup, segments: int, workers: int, resume: bool) -> Checkpoint:
        sources = [m.source for m in group.selected]
        if resume:
            cp = Checkpoint.latest_incomplete(self.report_dir, group.table)
            if cp is not None:
                if cp.data.get("sources") != sources:
                    raise ReconcileError(
                        f"cannot resume {cp.run_dir}: it checks {cp.data.get('sources')}, this run {sources}"
                    )
                return cp
        estimate = estimated_rows(self.dsn, group.selected)
        with contextlib.suppress(Exception):  # an estimate only: DescribeTable may be denied
            described = self.dynamo.call("DescribeTable", TableName=group.table)
            estimate = max(estimate, int(described["Table"].get("ItemCount") or 0))
        params = {
            "sources": sources,
            "segments": segments,
            "workers": workers,
            "buckets": bucket_count(self.settings.buckets, estimate),
            "estimated_rows": estimate,
        }
        return Checkpoint.create(self.report_dir, group.table, params)

    def _run_target(
        self, group: TargetGroup, report: dict[str, Any], segments: int, workers: int, resume: bool
    ) -> None:
        started = time.monotonic()
        check_mapped_columns(self.dsn, self.config, group.selected)  # fail loudly, before any read
        cp = self._checkpoint(group, segments, workers, resume)
        segments, workers, buckets = cp.data["segments"], cp.data["workers"], cp.data["buckets"]
        selected = [ItemMapper(m) for m in group.selected]
        router = TargetRouter(group.mappings)
        pg = _Side(SideTally(len(selected), buckets))
        ddb = _Side(SideTally(len(selected), buckets))

        ddb_units = [f"ddb-{s}" for s in range(segments)]
        pg_units = [(f"pg-{m}-{p}", m, p) for m in range(len(selected)) for p in range(workers)]
        pending_ddb: list[tuple[int, dict[str, Any] | None, int]] = []
        # When the scan read each DynamoDB record (a candidate's grace runs from then): per unit,
        # (records read so far, time) after every page. Records of an earlier, resumed process
        # count as read when this run's reads begin, which only lengthens their grace.
        read_marks: dict[str, list[tuple[int, float]]] = {}
        for s, name in enumerate(ddb_units):
            unit = cp.unit(name)
            offset = int(unit.get("offset", 0))
            prior = tally_spill(cp.spill_path(name), ddb.tally, limit=offset)  # partial digests of a resumed unit
            read_marks[name] = [(prior, self._clock())]
            if not unit.get("done"):
                pending_ddb.append((s, unit.get("lek"), offset))
        pending_pg: list[tuple[str, int, int]] = []
        for name, m, p in pg_units:
            if cp.unit(name).get("done"):
                tally_spill(cp.spill_path(name), pg.tally, limit=int(cp.unit(name)["offset"]))
            else:
                pending_pg.append((name, m, p))

        units_total = len(ddb_units) + len(pg_units)
        units_done = [units_total - len(pending_ddb) - len(pending_pg)]
        done_lock = threading.Lock()

        def unit_finished() -> None:
            with done_lock:
                units_done[0] += 1
                ratio = units_done[0] / units_total
            self.progress.unit_done()
            if self.metrics is not None:
                for m in group.selected:
                    self.metrics.reconcile_progressed(m.source, ratio)

        self.progress.begin(group.table, units_total, 2 * int(cp.data.get("estimated_rows", 0)))
        rate = self.settings.read_rate_limit
        limiter = Pacer(rate, clock=time.monotonic, sleep=self._sleep, lock=threading.Lock()) if rate else None
        scanner = SegmentScanner(
            self.dynamo, group.table, router, selected,
            page_limit=self.settings.page_limit, consistent=self.settings.consistent_read, limiter=limiter,
        )

        abort = threading.Event()  # one unit failed: the others stop at their next page

        def should_stop() -> bool:
            return abort.is_set() or self._stop.is_set()

        def scan(segment: int, lek: dict[str, Any] | None, offset: int) -> None:
            name = f"ddb-{segment}"
            writer = SpillWriter(cp.spill_path(name), offset=offset)
            finished = False

            marks = read_marks[name]

            def on_page(seg: int, last: dict[str, Any] | None, off: int, n: int) -> None:
                nonlocal finished
                finished = last is None
                marks.append((marks[-1][0] + n, self._clock()))
                cp.update(name, lek=last, offset=off, done=finished)
                self.progress.advance(n)

            try:
                scanner.scan(segment, segments, ddb.tally, ddb.lock, writer,
                             start_key=key_from_json(lek) if lek else None,
                             on_page=on_page, should_stop=should_stop)
            finally:
                writer.close()
            if finished:
                unit_finished()

        readers = [PartitionReader(self.dsn, mapper, i) for i, mapper in enumerate(selected)]

        def read(snapshot: str | None, name: str, m: int, p: int) -> None:
            writer = SpillWriter(cp.spill_path(name))
            try:
                readers[m].read(snapshot, p, workers, pg.tally, pg.lock, writer,
                                on_batch=lambda n, _off: self.progress.advance(n))
            finally:
                offset = writer.close()
            if not should_stop():
                cp.update(name, offset=offset, done=True)
                unit_finished()

        use_processes = self.pg_processes
        if use_processes is None:
            use_processes = (
                int(cp.data.get("estimated_rows", 0)) >= PROCESS_MIN_ROWS
                and len(pending_pg) > 1
                and (os.cpu_count() or 1) >= PROCESS_MIN_CPUS
            )
        pg_slots = max(1, min(workers, len(pending_pg) or 1))
        if use_processes:
            pg_slots = min(pg_slots, os.cpu_count() or 1)
            pg_pool_cm: Any = ProcessPoolExecutor(pg_slots, mp_context=multiprocessing.get_context("spawn"))
        else:
            pg_pool_cm = ThreadPoolExecutor(pg_slots, "reconcile-pg")

        def read_in_process(snapshot: str | None, name: str, m: int, p: int) -> None:
            task = PartitionTask(self.dsn, snapshot, selected[m].mapping, m, len(selected), p, workers, buckets,
                                 str(cp.spill_path(name)))
            result = pg_pool.submit(read_partition, task).result()
            with pg.lock:
                merge_partition(pg.tally, m, result)
            self.progress.advance(result.rows)
            if not should_stop():
                cp.update(name, offset=result.offset, done=True)
                unit_finished()

        snapshot_cm = exported_snapshot(self.dsn) if pending_pg else contextlib.nullcontext(None)
        with (
            snapshot_cm as snapshot,
            ThreadPoolExecutor(max(1, min(workers, len(pending_ddb) or 1)), "reconcile-ddb") as ddb_pool,
            pg_pool_cm as pg_pool,
            ThreadPoolExecutor(pg_slots, "reconcile-pg-wait") as waiters,
        ):
            # A resumed unit's records count as read now, after this run's Postgres snapshot: a
            # resumed run may read Postgres later than DynamoDB, and the grace runs from the later.
            began = self._clock()
            for marks in read_marks.values():
                marks[0] = (marks[0][0], began)
            futures: list[Future[None]] = [ddb_pool.submit(scan, s, lek, off) for s, lek, off in pending_ddb]
            if use_processes:
                futures += [waiters.submit(read_in_process, snapshot, name, m, p) for name, m, p in pending_pg]
            else:
                futures += [pg_pool.submit(read, snapshot, name, m, p) for name, m, p in pending_pg]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in done if f.exception() is not None]
            if failed:
                abort.set()
                for f in futures:
                    f.cancel()
                cause = failed[0].exception()
                raise ReconcileError(f"reconcile of {group.table} failed: {cause}") from cause
        cp.save()
        self.progress.end()
        if self._stop.is_set():
            raise ReconcileError(f"reconcile of {group.table} stopped before the end; resume it with --resume")
        # The DynamoDB side read every key by now: a key it did not see was absent since then.
        absent_seen = max(m[-1][1] for m in read_marks.values()) if read_marks else self._clock()
        pg_names = [n for n, _, _ in pg_units]
        self._finish_target(
            group, report, cp, selected, router, pg.tally, ddb.tally, pg_names, ddb_units, started,
            lambda mm: self._collect(cp, pg_names, ddb_units, mm, buckets, read_marks, absent_seen),
        )

    def _finish_target(
        self, group: TargetGroup, report: dict[str, Any], cp: Checkpoint, selected: list[ItemMapper],
        router: TargetRouter, pg_tally: SideTally, ddb_tally: SideTally, pg_units: list[str], ddb_units: list[str],
        started: float, collect: Callable[[list[set[int]]], DrillDown],
    ) -> None:
        """After both sides' digests: drill down, recheck, coverage and the report (a cluster run
        shares it, with its own `collect` of the mismatched buckets' records: cluster.py)."""
        pg, ddb = _Side(pg_tally), _Side(ddb_tally)

        # -- drill down and recheck ---------------------------------------------------------------
        mismatched = [mismatched_buckets(pg.tally, ddb.tally, m) for m in range(len(selected))]
        plan = DrillDown(len(selected))
        if any(mismatched):
            plan = collect(mismatched)
        candidates = plan.candidates()
        outcomes = self._recheck(group.table, router, selected, candidates) if candidates else []

        # -- coverage and the report --------------------------------------------------------------
        n = len(selected)
        routed = [ddb.tally.rows(m) for m in range(n)]
        unroutable = NotCompared()
        if ddb.tally.unmapped:
            unroutable.add(UNROUTABLE, None, ddb.tally.unmapped)
            for kb in ddb.tally.unmapped_sample:
                unroutable.add(UNROUTABLE, orjson.loads(kb), 0)
        other_tables = ddb.tally.other_tables
        for c in candidates:  # the key's owner is the table whose row maps to it (module docstring)
            if c.item_at is None or c.item_at == c.owner or not c.pg_side:
                continue
            routed[c.owner] += 1
            if c.item_at == UNMAPPED:
                unroutable.remove(UNROUTABLE, orjson.loads(c.key))
            elif c.item_at == OTHER_TABLE:
                other_tables -= 1
            else:
                routed[c.item_at] -= 1
        drift: list[list[DriftEntry]] = [[] for _ in range(n)]
        items_not_compared = [NotCompared() for _ in range(n)]
        resolved = [0] * n
        hinted = [0] * n
        for c, outcome in zip(candidates, outcomes, strict=True):
            hinted[c.owner] += 1
            if isinstance(outcome, DriftEntry):
                drift[outcome_index(selected, outcome.source)].append(outcome)
            elif isinstance(outcome, Unmappable):
                items_not_compared[outcome.index].add(PG_ROW_UNMAPPABLE + outcome.reason, outcome.sample)
            else:
                resolved[c.owner] += 1

        duration = time.monotonic() - started
        tables: dict[str, Any] = {}
        for m, mapper in enumerate(selected):
            source = mapper.mapping.source
            entry = table_report(
                target=group.table,
                rows_compared=pg.tally.rows(m),
                rows_not_compared=pg.tally.not_compared[m],
                items_scanned=routed[m],
                items_not_compared=items_not_compared[m],
                duration_s=duration,
                candidates=hinted[m],
                resolved_in_flight=resolved[m],
                drift=drift[m],
                source_of_truth="dynamodb" if mapper.mapping.mode == "reverse" else "postgres",
            )
            tables[source] = entry
            report["tables"][source] = entry
            if self.metrics is not None:
                self.metrics.reconcile_finished(
                    source, ok=True, duration_s=duration,
                    rows_compared=entry["rows_compared"] + entry["items_compared"],
                    drift_by_kind=entry["drift_counts"], now_unix=time.time(),
                )
        report["targets"][group.table] = target_report(
            items_scanned=sum(ddb.tally.rows(m) for m in range(n)) + ddb.tally.unmapped + ddb.tally.other_tables,
            tables=tables,
            unroutable=unroutable,
            items_other_tables=other_tables,
            run_dir=str(cp.run_dir),
        )
        cp.set(complete=True)
        for name in [*ddb_units, *pg_units]:
            cp.spill_path(name).unlink(missing_ok=True)

    def _collect(
        self, cp: Checkpoint, pg_units: Iterable[str], ddb_units: Iterable[str], mismatched: list[set[int]],
        buckets: int, read_marks: dict[str, list[tuple[int, float]]] | None = None,
        absent_seen: float | None = None,
    ) -> DrillDown:
        """Records of the mismatched buckets only, from both sides' spill files, with when the
        scan read each DynamoDB record of them (`read_marks`, see `_run_target`)."""
        if absent_seen is None:  # read times unknown: everything was read by now
            absent_seen = self._clock()
        plan = DrillDown(len(mismatched), absent_seen=absent_seen)
        anywhere = set().union(*mismatched)  # an owner's bucket may be clean for the item's mapping
        for side, units in ((plan.expected, pg_units), (plan.actual, ddb_units)):
            for name in units:
                limit = int(cp.unit(name).get("offset", 0))
                marks = (read_marks or {}).get(name) if side is plan.actual else None
                mark = 0
                for n, (m, fp, h, key) in enumerate(read_spill(cp.spill_path(name), limit=limit)):
                    if marks is not None and fp % buckets in anywhere:
                        while mark < len(marks) and marks[mark][0] <= n:
                            mark += 1  # the first page whose records include the n-th
                        plan.seen[fp] = marks[mark][1] if mark < len(marks) else absent_seen
                    plan.keep(side, m, fp, h, key, mismatched, anywhere, buckets)
        return plan

    def _recheck(
        self, table: str, router: TargetRouter, selected: list[ItemMapper], candidates: list[Candidate]
    ) -> list[DriftEntry | Unmappable | None]:
        """Re-read candidates from both sides; drift is what mismatches in every round, the first
        round `grace_period_s` after the scan saw the candidate differ (`Candidate.seen_at`), the
        next ones a moment apart; candidates are rechecked in waves as they come due (grace.py).

        The owner of a key is decided again from the current rows: the table one of whose rows
        maps to the key (the drill-down's owner first), else the table the item routes to."""
        lookup = RowLookup(self.dsn)
        by_source = {m.mapping.source: i for i, m in enumerate(selected)}
        numeric = {m.mapping.source: numeric_key_columns(self.dsn, m.mapping) for m in selected}
        key_attributes = router.mappers[0].key_attributes
        keys_json = [orjson.loads(c.key) for c in candidates]
        items = [key_from_json(k) for k in keys_json]
        outcomes: list[DriftEntry | Unmappable | None] = [None] * len(candidates)

        def check(pending: list[int]) -> set[int]:
            """One round for these candidates: their outcome now; returns those that still differ."""
            keys = [items[i] for i in pending]
            actual = self.dynamo.batch_get(table, key_attributes, keys, consistent=True)
            rows = _rows_by_key(lookup, router.mappers, keys)
            still: list[int] = []
            for i, key, found in zip(pending, keys, rows, strict=True):
                got = actual.get(key_tuple(key_attributes, key))
                hint = selected[candidates[i].owner].mapping.source
                owner, row = _owner(router, hint, found, got)
                outcomes[i] = None
                if owner is None or owner.mapping.source not in by_source:
                    continue  # nothing on either side, an item of no mapping, or another table's key
                index = by_source[owner.mapping.source]
                mapper = selected[index]
                try:
                    expected = mapper.item(row) if row is not None else None
                except MappingError as exc:
                    if got is not None:  # the row is counted already; its item could not be compared
                        sample = {"key": keys_json[i], "primary_key": primary_key_json(mapper.mapping, row or {})}
                        outcomes[i] = Unmappable(index, reason_of(str(exc)), sample)
                        still.append(i)
                    continue
                outcome = compare(mapper, expected, got)
                if isinstance(outcome, Mismatch):
                    entry = drift_entry(mapper, keys_json[i], outcome, got)
                    typed = typed_primary_key(mapper.mapping, entry.primary_key, numeric[mapper.mapping.source])
                    outcomes[i] = dataclasses.replace(entry, primary_key=typed)
                    still.append(i)
            return set(still)

        grace = self.settings.grace_period_s
        schedule = GraceSchedule([c.seen_at for c in candidates], grace_s=grace, rounds=RECHECK_ROUNDS,
                                 spacing_s=min(1.0, max(0.2, grace)))
        recheck_in_waves(schedule, check, clock=self._clock, sleep=self._sleep)
        return outcomes


@dataclass(frozen=True, slots=True)
class Unmappable:
    """A candidate whose DynamoDB item exists but whose Postgres row does not map: not compared."""

    index: int
    reason: str
    sample: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A key found in a mismatched bucket, with the table it is attributed to before the recheck:
    the table whose Postgres row maps to it (compared or failed), else the one its item routed to."""

    key: bytes
    owner: int
    pg_side: bool  # a Postgres row of `owner` maps to the key
    item_at: int | None  # where the scan counted the item: a mapping index, UNMAPPED, OTHER_TABLE; None: no item
    # When the scan saw the key differ (the reconciler's clock): its DynamoDB page's arrival, or
    # for a key absent from DynamoDB the end of the DynamoDB scan. Its grace runs from then.
    seen_at: float = 0.0


@dataclass
class DrillDown:
    """The records of mismatched buckets, by side and mapping, and the uncompared ones near them."""

    mappings: int
    expected: list[dict[int, tuple[int, bytes]]] = field(init=False)
    actual: list[dict[int, tuple[int, bytes]]] = field(init=False)
    failed: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # fp -> (mapping, key) rows that failed
    elsewhere: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # fp -> (UNMAPPED | OTHER_TABLE, key)
    seen: dict[int, float] = field(default_factory=dict)  # fp -> when the scan read its DynamoDB item
    absent_seen: float = 0.0  # when the DynamoDB scan ended (a key it did not read was absent by then)

    def __post_init__(self) -> None:
        self.expected = [{} for _ in range(self.mappings)]
        self.actual = [{} for _ in range(self.mappings)]

    def keep(
        self, side: list[dict[int, tuple[int, bytes]]], m: int, fp: int, h: int, key: bytes,
        mismatched: list[set[int]], anywhere: set[int], buckets: int,
    ) -> None:
        """Keep one record (of `side`: `self.expected` or `self.actual`) if the drill-down needs it."""
        b = fp % buckets
        if m in (UNMAPPED, OTHER_TABLE):
            if b in anywhere:
                self.elsewhere[fp] = (m, key)
        elif m & FAILED:
            if b in anywhere and fp:
                data = orjson.loads(key)
                if data.get("key") is not None:
                    self.failed[fp] = (m & ~FAILED, orjson.dumps(data["key"], option=orjson.OPT_SORT_KEYS))
        elif mismatched[m] and b in mismatched[m]:
            side[m][fp] = (h, key)

    def candidates(self) -> list[Candidate]:
        """One candidate per key, however many mappings saw it differ (one key, one finding)."""
        fps: set[int] = set()
        for m in range(self.mappings):
            fps.update(fp for fp, _ in drift_candidates(self.expected[m], self.actual[m]))
        out: list[Candidate] = []
        for fp in sorted(fps):
            pg = next((m for m in range(self.mappings) if fp in self.expected[m]), None)
            key = self.expected[pg][fp][1] if pg is not None else None
            if pg is None and fp in self.failed:
                pg, key = self.failed[fp]
            at = next((m for m in range(self.mappings) if fp in self.actual[m]), None)
            if at is not None:
                key = key or self.actual[at][fp][1]
            elif fp in self.elsewhere:
                at = self.elsewhere[fp][0]
            owner = pg if pg is not None else at
            if owner is None or owner in (UNMAPPED, OTHER_TABLE) or key is None:
                continue  # pragma: no cover - a candidate comes from a mapping's own records
            seen_at = self.seen.get(fp, self.absent_seen) if at is not None else self.absent_seen
            out.append(Candidate(key, owner, pg is not None, at, seen_at))
        return out


def outcome_index(selected: Sequence[ItemMapper], source: str) -> int:
    return next(i for i, m in enumerate(selected) if m.mapping.source == source)


def _rows_by_key(
    lookup: RowLookup, mappers: Sequence[ItemMapper], keys: Sequence[Item]
) -> list[list[tuple[ItemMapper, dict[str, Any]]]]:
    """Per key, every (mapper, current row) of a mapping whose key templates fit it and whose row exists."""
    found: list[list[tuple[ItemMapper, dict[str, Any]]]] = [[] for _ in keys]
    for mapper in mappers:
        fits = [(j, pk) for j, key in enumerate(keys) if (pk := mapper.primary_key_from_item(key)) is not None]
        if not fits:
            continue
        rows = lookup.rows(mapper.mapping, [pk for _, pk in fits])
        for (j, _), row in zip(fits, rows, strict=True):
            if row is not None:
                found[j].append((mapper, row))
    return found


def _owner(
    router: TargetRouter, hint: str, found: Sequence[tuple[ItemMapper, dict[str, Any]]], got: Item | None
) -> tuple[ItemMapper | None, dict[str, Any] | None]:
    """The routing rule: a key a current Postgres row maps to belongs to that row's table, whatever
    the item's discriminator says; a key no row maps to belongs to the table the item routes to."""
    if found:
        routed = router.mapper_for(got) if got is not None else None
        for preferred in (hint, routed.mapping.source if routed is not None else None):
            for mapper, row in found:
                if mapper.mapping.source == preferred:
                    return mapper, row
        return found[0]
    if got is None:
        return None, None
    return router.mapper_for(got), None


def write_report(report: dict[str, Any], report_dir: Path) -> Path:
    private_dir(report_dir)  # reports list drifted keys and values (parity.files)
    path = report_dir / f"reconcile-{report['run_id']}.json"
    n = 1
    while path.exists():
        n += 1
        path = report_dir / f"reconcile-{report['run_id']}-{n}.json"
    write_private(path, orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return path
