"""A whole-table reconcile spread over a Dask cluster (`parity reconcile --cluster tcp://host:8786`).

Bucket digests add, so a reconcile splits into independent tasks (cluster_tasks.py):

1. Digests: one task per DynamoDB Scan segment and per Postgres hash partition. Every partition
   imports the snapshot this client exports and keeps open for the whole run, so all of them see
   Postgres at one instant, as in one process. Each task returns its unit's bucket digests; the
   client adds them up as they arrive and records each finished unit's digest in the run
   directory (`<unit>.digest`), so `--resume` submits only the units that had not finished.
2. Drill-down: if buckets differ, one task per unit returns only the records of those buckets,
   sent to the worker whose digest task left the unit's spill file on its disk; where the file
   is gone (a lost worker), the task reads its unit again: the Postgres partition in the same
   snapshot, DynamoDB by a new Scan (a key that changed between the two scans is a candidate or
   not, and the recheck decides). Nothing depends on a worker's disk but the cost.
3. The recheck, coverage and the report run here, on the client, exactly as in one process
   (`Reconciler._finish_target`).

Failures: Dask re-runs the tasks of a worker that dies (they only read); a task that raises is
retried `reconcile.cluster.retries` times, then the run fails with the task's error and can be
resumed. DynamoDB reads of all workers share one read budget on the scheduler (cluster_budget.py).
"""

from __future__ import annotations

import base64
import dataclasses
import time
import uuid
from collections.abc import Sequence
from typing import Any

import orjson

from parity.adapters.clients import PostgresTarget
from parity.adapters.dynamodb import DynamoStore
from parity.core.config import ParityConfig
from parity.core.mapping import ItemMapper, TargetRouter
from parity.files import write_private
from parity.reconcilers import cluster_budget
from parity.reconcilers.checkpoint import Checkpoint
from parity.reconcilers.cluster_tasks import (
    PartitionUnit,
    SegmentUnit,
    SpillPlace,
    UnitDigest,
    UnitRecords,
    read_partition_unit,
    remove_spill,
    scan_segment,
    tally_of,
)
from parity.reconcilers.postgres import check_mapped_columns, exported_snapshot
from parity.reconcilers.reconcile import DrillDown, ReconcileError, Reconciler, TargetGroup
from parity.reconcilers.tally import SideTally

Unit = SegmentUnit | PartitionUnit


def connect(address: str, timeout_s: float = 30.0) -> Any:
    """A Dask client of the scheduler at `address`; a clear error when the extra is missing or
    the scheduler does not answer."""
    try:
        from distributed import Client
    except ImportError as exc:
        raise ReconcileError(
            "--cluster needs the optional Dask dependencies: install parity with its `cluster` extra"
        ) from exc
    try:
        return Client(address, timeout=timeout_s)  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError) as exc:
        raise ReconcileError(f"cannot reach the Dask scheduler at {address}: {type(exc).__name__}: {exc}") from exc


class ClusterReconciler(Reconciler):
    """`Reconciler` whose reads run as tasks on a Dask cluster; everything else is shared."""

    def __init__(self, config: ParityConfig, *, client: Any, dynamo: DynamoStore, dsn: Any, **kwargs: Any) -> None:
        super().__init__(config, dynamo=dynamo, dsn=dsn, **kwargs)
        self.client = client
        self.retries = config.reconcile.cluster.retries
        self.units_submitted: list[str] = []  # unit names, per phase (a resumed run submits fewer)
        self.budget_stats: dict[str, Any] = {}
        self.phase_s: dict[str, float] = {}  # wall time of the digest and drill-down phases (bench/cluster.py)
        self.drill_reread: list[str] = []  # units the drill-down read again (their spill file was gone)

    def run(self, **kwargs: Any) -> dict[str, Any]:
        report = super().run(**kwargs)
        threads = self.client.nthreads()  # worker address -> threads, at the end of the run
        report["settings"]["cluster"] = {
            "scheduler": self.client.scheduler.address, "workers": len(threads), "threads": sum(threads.values()),
            "read_budget": self.budget_stats or None, "phases_s": self.phase_s,
            "drill_down_units_read_again": len(self.drill_reread),
        }
        return report

    # -- units ---------------------------------------------------------------------------------------

    def _units(self, group: TargetGroup, segments: int, parts: int, buckets: int,
               snapshot: str | None, budget: str | None) -> list[Unit]:
        # Workers take the Postgres password from their own environment (cluster_tasks.py).
        target = PostgresTarget(self.dsn.conninfo, None)
        units: list[Unit] = [
            SegmentUnit(f"ddb-{s}", self.config.dynamodb, group.table, group.mappings, group.selected, s, segments,
                        buckets, self.settings.page_limit, self.settings.consistent_read, budget)
            for s in range(segments)
        ]
        units += [
            PartitionUnit(f"pg-{m}-{p}", target, snapshot, mapping, m, len(group.selected), p, parts, buckets)
            for m, mapping in enumerate(group.selected) for p in range(parts)
        ]
        return units

    def _submit(self, units: Sequence[Unit], phase: str, run: str, drill: frozenset[int] | None = None, *,
                keep: str | None = None, kept: dict[str, SpillPlace] | None = None) -> list[Any]:
        futures = []
        for unit in units:
            fn = scan_segment if isinstance(unit, SegmentUnit) else read_partition_unit
            place = (kept or {}).get(unit.name)
            # To the worker holding the unit's records if it is still there, else anywhere.
            where = {"workers": [place.worker], "allow_other_workers": True} if place is not None else {}
            # Keys unique per run and phase: a resumed run (a new client) never meets an old result.
            futures.append(self.client.submit(fn, unit, drill, keep=keep, kept=place,
                                              key=f"parity-{phase}-{unit.name}-{run}",
                                              retries=self.retries, pure=False, **where))
            self.units_submitted.append(f"{phase}:{unit.name}")
        return futures

    def _gather(self, futures: list[Any], group: TargetGroup) -> Any:
        """Results as they finish; on a failure (or a stop) cancel the rest and raise."""
        from distributed import as_completed

        try:
            for future in as_completed(futures):  # type: ignore[no-untyped-call]
                if self._stop.is_set():
                    raise ReconcileError(f"reconcile of {group.table} stopped before the end; resume it with --resume")
                if future.status == "error":
                    cause = future.exception()
                    raise ReconcileError(f"reconcile of {group.table} failed: {type(cause).__name__}: {cause}") \
                        from cause
                yield future.result()
        except BaseException:
            self.client.cancel(futures)
            raise

    # -- budget --------------------------------------------------------------------------------------

    def _budget_ceiling(self, table: str) -> float | None:
        if self.settings.read_rate_limit:
            return self.settings.read_rate_limit
        share = self.settings.cluster.read_capacity_share
        if share is None:
            return None
        described = self.dynamo.call("DescribeTable", TableName=table)
        provisioned = float((described["Table"].get("ProvisionedThroughput") or {}).get("ReadCapacityUnits") or 0)
        if provisioned <= 0:
            raise ReconcileError(
                f"reconcile.cluster.read_capacity_share: {table} has no provisioned read capacity (on-demand); "
                "give the budget in RCU/s with reconcile.read_rate_limit")
        return share * provisioned

    # -- the run -------------------------------------------------------------------------------------

    def _run_target(
        self, group: TargetGroup, report: dict[str, Any], segments: int, workers: int, resume: bool
    ) -> None:
        started = time.monotonic()
        check_mapped_columns(self.dsn, self.config, group.selected)  # fail loudly, before any task
        cp = self._checkpoint(group, segments, workers, resume)
        segments, parts, buckets = cp.data["segments"], cp.data["workers"], cp.data["buckets"]
        selected = [ItemMapper(m) for m in group.selected]
        router = TargetRouter(group.mappings)
        n = len(selected)
        pg, ddb = SideTally(n, buckets), SideTally(n, buckets)
        run = uuid.uuid4().hex[:12]
        ceiling = self._budget_ceiling(group.table)
        budget = f"{cp.run_dir.name}-{run}" if ceiling else None
        if budget is not None:
            self.client.run_on_scheduler(cluster_budget.open_budget, budget, ceiling)
        try:
            with exported_snapshot(self.dsn) as snapshot:
                units = self._units(group, segments, parts, buckets, snapshot, budget)
                pending = []
                for unit in units:
                    digest = load_digest(cp, unit.name) if cp.unit(unit.name).get("done") else None
                    if digest is None:
                        pending.append(unit)
                    else:
                        _side(unit, pg, ddb).merge(tally_of(digest, n, buckets))
                done = len(units) - len(pending)
                self.progress.begin(group.table, len(units), 2 * int(cp.data.get("estimated_rows", 0)))
                keep = cp.run_dir.name if self.settings.cluster.worker_spill else None
                for result in self._gather(self._submit(pending, "digest", run, keep=keep), group):
                    unit = next(u for u in pending if u.name == result.name)
                    save_digest(cp, result)
                    spill = dataclasses.asdict(result.spill) if result.spill is not None else None
                    cp.update(unit.name, done=True, rows=result.rows, spill=spill)
                    cp.save()  # units are large and few: each one finished is on disk at once
                    _side(unit, pg, ddb).merge(tally_of(result, n, buckets))
                    done += 1
                    self.progress.advance(result.rows)
                    self.progress.unit_done()
                    if self.metrics is not None:
                        for m in group.selected:
                            self.metrics.reconcile_progressed(m.source, done / len(units))
                cp.save()
                self.progress.end()
                scanned_at = time.monotonic()
                self.phase_s["digest"] = round(scanned_at - started, 3)

                def collect(mismatched: list[set[int]]) -> DrillDown:
                    kept = {u.name: SpillPlace(**p) for u in units if (p := cp.unit(u.name).get("spill"))}
                    return self._drill(group, units, run, mismatched, buckets, kept)

                self._finish_target(group, report, cp, selected, router, pg, ddb,
                                    [u.name for u in units if isinstance(u, PartitionUnit)],
                                    [u.name for u in units if isinstance(u, SegmentUnit)],
                                    started, collect)
        finally:
            if budget is not None:
                self.budget_stats = self.client.run_on_scheduler(cluster_budget.close_budget, budget)
        for unit in units:
            digest_path(cp, unit.name).unlink(missing_ok=True)
        self.client.run(remove_spill, cp.run_dir.name)  # the run is complete: its records go

    def _drill(self, group: TargetGroup, units: Sequence[Unit], run: str, mismatched: list[set[int]],
               buckets: int, kept: dict[str, SpillPlace]) -> DrillDown:
        plan = DrillDown(len(mismatched))
        anywhere: set[int] = set().union(*mismatched)  # an owner's bucket may be clean for the item's mapping
        by_name = {u.name: u for u in units}
        started = time.monotonic()
        for result in self._gather(self._submit(units, "drill", run, frozenset(anywhere), kept=kept), group):
            assert isinstance(result, UnitRecords)
            if result.reread:
                self.drill_reread.append(result.name)
            side = plan.actual if isinstance(by_name[result.name], SegmentUnit) else plan.expected
            for m, fp, h, key in result.records:
                plan.keep(side, m, fp, h, key, mismatched, anywhere, buckets)
        self.phase_s["drill"] = round(time.monotonic() - started, 3)
        # Workers' clocks are not the client's, and a drill task may have re-read its unit: every
        # candidate's grace counts from now, after the last read of any record it was drawn from.
        plan.absent_seen = self._clock()
        return plan


def _side(unit: Unit, pg: SideTally, ddb: SideTally) -> SideTally:
    return ddb if isinstance(unit, SegmentUnit) else pg


# --- finished units' digests in the run directory (for --resume) --------------------------------------


def digest_path(cp: Checkpoint, unit: str) -> Any:
    return cp.run_dir / f"{unit}.digest"


def save_digest(cp: Checkpoint, digest: UnitDigest) -> None:
    data = dataclasses.asdict(digest)
    for name in ("counts", "totals"):
        data[name] = [base64.b64encode(b).decode("ascii") for b in data[name]]
    data["unmapped_sample"] = [b.decode() for b in digest.unmapped_sample]
    write_private(digest_path(cp, digest.name), orjson.dumps(data))  # samples hold keys: 0600


def load_digest(cp: Checkpoint, unit: str) -> UnitDigest | None:
    path = digest_path(cp, unit)
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None  # unreadable or torn: the unit runs again
    return UnitDigest(
        data["name"], data["rows"],
        tuple(base64.b64decode(b) for b in data["counts"]), tuple(base64.b64decode(b) for b in data["totals"]),
        tuple(data["not_compared"]), data["unmapped"], tuple(s.encode() for s in data["unmapped_sample"]),
        data["other_tables"], data.get("throttles", 0),
    )
