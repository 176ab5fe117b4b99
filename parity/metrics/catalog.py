"""Every metric parity publishes, declared once, with its labels and buckets.

Rules the catalog keeps (and tests/unit/test_metrics_catalog.py checks):
- every name starts with `parity_`, uses base units (`_seconds`, `_bytes`, `_ratio`), counters end
  in `_total`;
- labels are bounded: a table, a topic and partition, an operation, an op code, an outcome, a
  dependency or a kind from a fixed set, or a column named by the table's mapping (registered per table, so a
  column the configuration does not name is refused). Never a key or a value: a label per key
  would grow without bound and would leak data into the monitoring system. Label values from a
  fixed set are checked here, so a typo fails loudly in the caller's test instead of creating a
  new series.
- one vocabulary: `table` is always the source table (schema.table); a DynamoDB table name is
  `dynamodb_table` (the parity_dynamodb_* metrics).

Adapters receive a `Metrics` built on a registry they are given (a fresh `CollectorRegistry` in
tests, read back with `registry.get_sample_value`).
"""

from __future__ import annotations

import contextlib
import enum
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from parity.core.window import DriftWindow, DriftWindows

# Fixed label values. The daemon passes these strings (or enums whose value is one of them).
# Debezium op codes, as parity.core.events.Op; "unknown" for records that could not be decoded.
OPS: Final = ("c", "u", "d", "r", "t", "unknown")
# Where the pipeline left each event (see parity.core.outcomes): verify mode, then shadow mode.
EVENT_OUTCOMES: Final = (
    "match",
    "drift",
    "pending",
    "superseded",
    "duplicate",
    "unverified",
    "not_compared",
    "dead_letter",
    "skipped",
    "truncate",
    "unmapped",
    "applied",
    "stale_skipped",
    "failed",
)
VERDICTS: Final = ("match", "drift")
SHADOW_OUTCOMES: Final = ("applied", "stale_skipped", "failed")
RECONCILE_OUTCOMES: Final = ("success", "failed")
DYNAMO_OPERATIONS: Final = (
    "BatchGetItem",
    "GetItem",
    "BatchWriteItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "TransactWriteItems",
    "Query",
    "Scan",
    "DescribeTable",
)
DYNAMO_ERROR_KINDS: Final = (
    "throttled",
    "conditional_check_failed",
    "client",
    "server",
    "timeout",
    "connection",
)
# What became of a failed DynamoDB attempt: `retried` (another attempt followed), `failed` (the error
# reached the caller), `expected` (a conditional-check failure: in shadow mode the condition refusing
# a stale write is the design, not a fault). The error-rate alert counts `failed` only.
DYNAMO_ERROR_OUTCOMES: Final = ("retried", "failed", "expected")
# The systems the daemon's background reachability probe checks (parity.daemon.app.ReachabilityProbe).
DEPENDENCIES: Final = ("postgres", "kafka", "dynamodb")
DEAD_LETTER_REASONS: Final = ("decode", "mapping", "too_large", "schema", "sink", "other")
# Why a mapped column of an event was not compared (outcome `not_compared`, parity.core.columns).
NOT_COMPARED_REASONS: Final = ("column_missing",)
# Which way a table is verified: forward (Debezium events checked against DynamoDB, or applied to it)
# or reverse (after cutover: DynamoDB Stream records checked against Postgres, docs/reverse.md).
DIRECTIONS: Final = ("forward", "reverse")
# How open drift was found healed (parity.adapters.state.RESOLUTION_HOWS).
DRIFT_RESOLUTIONS: Final = ("newer_event", "reread", "repair", "reconcile")

# Label names allowed anywhere in the catalog (a test holds the catalog to this list).
# One vocabulary: `table` is always the source table (schema.table); a DynamoDB table name is
# `dynamodb_table`.
ALLOWED_LABELS: Final = frozenset(
    {
        "table",
        "dynamodb_table",
        "op",
        "outcome",
        "kind",
        "operation",
        "partition",
        "topic",
        "reason",
        "version",
        "column",
        "dependency",
        "direction",
    }
)

# Seconds. CDC lag runs from milliseconds (healthy streaming) to many minutes (a backlog or a
# stalled connector); the verdict latency includes the recheck grace period (up to ~1 minute).
LAG_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
    300,
    600,
    1800,
    3600,
)
VERDICT_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)
# A DynamoDB call: single-digit milliseconds when healthy, seconds with retries and throttling.
DYNAMO_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# A whole-table reconcile: seconds for a small table, hours for a large one.
RECONCILE_BUCKETS: Final = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800)

_KIND_MAX_LEN: Final = 40

# Drift counts by kind: plain strings or the compare module's enum members.
DriftCounts = Mapping[str, int] | Mapping[enum.Enum, int]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """What the catalog declares about one metric (used by tests, docs and the dashboard check)."""

    name: str  # as exposed; counters include `_total`
    type: str  # counter | gauge | histogram
    labels: tuple[str, ...]
    help: str


def _label(value: str | enum.Enum) -> str:
    return str(value.value) if isinstance(value, enum.Enum) else str(value)


def _one_of(value: str | enum.Enum, allowed: Sequence[str], what: str) -> str:
    text = _label(value)
    if text not in allowed:
        raise ValueError(f"{what} {text!r} is not one of {list(allowed)}")
    return text


def _kind(value: str | enum.Enum) -> str:
    # Drift kinds come from the compare module's enum; accept any short identifier so the catalog
    # does not have to import it, but refuse anything that looks like data.
    text = _label(value)
    if not text or len(text) > _KIND_MAX_LEN or not text.replace("_", "").isalnum() or not text.islower():
        raise ValueError(f"kind {text!r} must be a short lower_snake_case identifier")
    return text


class Metrics:
    """The parity metric catalog, registered on `registry`.

    `tables` (source tables, schema.table) pre-creates every per-table series at zero, so a rate()
    over them exists from the first scrape and an absent series means a broken exporter, not an
    idle table. `columns` (table -> the columns its mapping names) bounds the `column` label.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        version: str = "0.0.0",
        tables: Iterable[str] = (),
        columns: Mapping[str, Iterable[str]] | None = None,
        drift_window_s: float = 300.0,
        directions: Mapping[str, str] | None = None,
    ) -> None:
        # `*_created` series double the exposition size and no dashboard or alert uses them.
        # (A process-wide switch in prometheus_client; parity never wants them.)
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry
        self._windows = DriftWindows(drift_window_s)
        # Verdicts arrive from the pipeline and from the recheck timer, on different threads.
        self._windows_lock = threading.Lock()
        self._specs: list[MetricSpec] = []
        self._last_drift_kinds: dict[str, set[str]] = {}
        self._backfill_done: set[str] = set()
        self._dynamo_seen: set[tuple[str, str]] = set()
        self._columns: dict[str, frozenset[str]] = {t: frozenset(c) for t, c in (columns or {}).items()}

        self.build_info = self._gauge(
            "parity_build_info", "Always 1; the version label says which parity runs.", ("version",)
        )
        self.build_info.labels(version=version).set(1)

        # --- streaming verification ---------------------------------------------------------------
        self.events = self._counter(
            "parity_events_total",
            "Change events consumed, by the outcome the pipeline reached for each (final verdicts are also "
            "counted in parity_verdicts_total, the denominator of the drift ratio).",
            ("table", "op", "outcome", "direction"),
        )
        self.verdicts = self._counter(
            "parity_verdicts_total",
            "Final verdicts (immediately or after recheck): the denominator of the drift ratio.",
            ("table", "outcome", "direction"),
        )
        self.drift = self._counter(
            "parity_drift_total",
            "Confirmed drift (still wrong after the recheck grace period), by mismatch kind (reverse: "
            "the kinds name Postgres as the side that is wrong, e.g. missing_in_source).",
            ("table", "kind", "direction"),
        )
        self.drift_ratio = self._gauge(
            "parity_drift_ratio",
            "Confirmed drift / final verdicts over this daemon's rolling drift window (ParityDriftHigh "
            "computes the ratio across replicas from parity_verdicts_total instead).",
            ("table",),
        )
        self.drift_window_verdicts = self._gauge(
            "parity_drift_window_verdicts",
            "Final verdicts inside the rolling drift window (the drift ratio's denominator).",
            ("table",),
        )
        self.drift_open = self._gauge(
            "parity_drift_open_keys",
            "Keys with open drift now: confirmed by the stream (or found by a reconcile) and not yet "
            "resolved by a newer matching event, a re-read, a repair or a clean reconcile.",
            ("table",),
        )
        self.drift_resolved = self._counter(
            "parity_drift_resolved_total",
            "Confirmed stream drift found healed, by how (newer_event, reread, repair, reconcile).",
            ("table", "reason"),
        )
        self.drift_window_seconds = self._gauge(
            "parity_drift_window_seconds", "Length of the rolling drift-ratio window.", ()
        )
        self.drift_window_seconds.set(DriftWindow(drift_window_s).window_s)
        self.cdc_lag = self._histogram(
            "parity_cdc_lag_seconds",
            "Time from the source commit (Debezium ts_ms) to the event being consumed.",
            ("table",),
            LAG_BUCKETS,
        )
        self.verdict_latency = self._histogram(
            "parity_verdict_latency_seconds",
            "Time from consuming an event to its final verdict (includes rechecks).",
            ("table",),
            VERDICT_BUCKETS,
        )
        self.stream_lag = self._gauge(
            "parity_dynamodb_stream_lag_seconds",
            "Reverse direction: seconds between now and the newest DynamoDB Stream record read, the "
            "largest over the shards this daemon holds (0 when caught up).",
            ("dynamodb_table",),
        )
        self.consumer_lag = self._gauge(
            "parity_kafka_consumer_lag_messages",
            "High watermark minus the consumer position, per assigned partition.",
            ("topic", "partition"),
        )
        self.assigned_partitions = self._gauge(
            "parity_kafka_assigned_partitions", "Partitions currently assigned to this daemon.", ()
        )
        self.last_batch = self._gauge(
            "parity_last_batch_timestamp_seconds",
            "Unix time the daemon last processed a batch holding at least one record (the consumer's "
            "progress; with messages waiting and this not moving, the daemon is not consuming).",
            (),
        )
        self.dependency_up = self._gauge(
            "parity_dependency_up",
            "1 when the background reachability probe (the same checks as /readyz and `parity doctor`) "
            "last reached the dependency, else 0.",
            ("dependency",),
        )
        self.dead_letters = self._counter(
            "parity_dead_letters_total",
            "Records sent to the dead-letter topic, by reason class.",
            ("table", "reason"),
        )
        self.columns_not_compared = self._counter(
            "parity_columns_not_compared_total",
            "Events whose mapped column could not be compared (or applied), by column and reason "
            "(column_missing: the event does not carry the column at all, e.g. it was dropped or the "
            "mapping misspells it). Each such event's outcome is not_compared.",
            ("table", "column", "reason"),
        )

        # --- DynamoDB -----------------------------------------------------------------------------
        self.dynamo_latency = self._histogram(
            "parity_dynamodb_request_duration_seconds",
            "Latency of each DynamoDB request attempt (parity retries throttling and transport errors "
            "itself: every attempt is one request here).",
            ("dynamodb_table", "operation"),
            DYNAMO_BUCKETS,
        )
        self.dynamo_errors = self._counter(
            "parity_dynamodb_errors_total",
            "DynamoDB request attempts that failed, by error class and by what became of them "
            "(outcome: retried, failed = reached the caller, expected = a conditional-check failure).",
            ("dynamodb_table", "operation", "kind", "outcome"),
        )
        self.dynamo_throttles = self._counter(
            "parity_dynamodb_throttles_total",
            "Throttled DynamoDB attempts (also those a retry absorbed) and unprocessed batch items.",
            ("dynamodb_table", "operation"),
        )

        # --- recheck store ------------------------------------------------------------------------
        self.recheck_pending = self._gauge(
            "parity_recheck_pending_keys", "Keys waiting in the recheck store.", ("table",)
        )
        self.recheck_oldest_age = self._gauge(
            "parity_recheck_oldest_pending_age_seconds",
            "Age of the oldest key waiting in the recheck store.",
            ("table",),
        )

        # --- shadow mode --------------------------------------------------------------------------
        self.shadow_apply = self._counter(
            "parity_shadow_apply_total", "Shadow-mode writes to DynamoDB, by outcome.", ("table", "outcome")
        )
        self.backfill_rows = self._counter(
            "parity_backfill_rows_applied_total",
            "Snapshot rows applied to DynamoDB in shadow mode.",
            ("table",),
        )
        self.backfill_snapshot_rows = self._gauge(
            "parity_backfill_snapshot_rows",
            "Rows in the source snapshot, when known (estimate before it ends).",
            ("table",),
        )
        self.backfill_done = self._gauge(
            "parity_backfill_snapshot_done", "1 once the table's snapshot has been fully applied.", ("table",)
        )

        # --- reconciler ---------------------------------------------------------------------------
        self.reconcile_rows = self._counter(
            "parity_reconcile_rows_compared_total",
            "Rows compared by the reconciler (both sides).",
            ("table",),
        )
        self.reconcile_drift = self._counter(
            "parity_reconcile_drift_total",
            "Drifted keys confirmed by the reconciler, by kind.",
            ("table", "kind"),
        )
        self.reconcile_last_drift = self._gauge(
            "parity_reconcile_last_run_drift_keys",
            "Drifted keys found by the last finished run, by kind.",
            ("table", "kind"),
        )
        self.reconcile_runs = self._counter(
            "parity_reconcile_runs_total", "Finished reconcile runs, by outcome.", ("table", "outcome")
        )
        self.reconcile_duration = self._histogram(
            "parity_reconcile_duration_seconds",
            "Wall time of a reconcile run.",
            ("table",),
            RECONCILE_BUCKETS,
        )
        self.reconcile_rows_per_second = self._gauge(
            "parity_reconcile_rows_per_second",
            "Rows compared per second by the last finished run.",
            ("table",),
        )
        self.reconcile_last_success = self._gauge(
            "parity_reconcile_last_success_timestamp_seconds",
            "Unix time of the last successful run (set to the scheduling time before the first one).",
            ("table",),
        )
        self.reconcile_progress = self._gauge(
            "parity_reconcile_progress_ratio",
            "Fraction of buckets done by the current run (1 when idle).",
            ("table",),
        )
        self.reconcile_interval = self._gauge(
            "parity_reconcile_interval_seconds", "Configured interval between periodic reconcile runs.", ()
        )
        # table -> direction (DIRECTIONS); a table not named is forward.
        self._directions = {t: _one_of(d, DIRECTIONS, "direction") for t, d in (directions or {}).items()}
        for table in tables:
            self.add_table(table, self._directions.get(table, "forward"))

    # ----- declaration helpers --------------------------------------------------------------------

    def _counter(self, name: str, doc: str, labels: tuple[str, ...]) -> Counter:
        # prometheus_client appends `_total` itself; the catalog lists the exposed name.
        self._specs.append(MetricSpec(name, "counter", labels, doc))
        return Counter(name.removesuffix("_total"), doc, labels, registry=self.registry)

    def _gauge(self, name: str, doc: str, labels: tuple[str, ...]) -> Gauge:
        self._specs.append(MetricSpec(name, "gauge", labels, doc))
        return Gauge(name, doc, labels, registry=self.registry)

    def _histogram(self, name: str, doc: str, labels: tuple[str, ...], buckets: Sequence[float]) -> Histogram:
        self._specs.append(MetricSpec(name, "histogram", labels, doc))
        return Histogram(name, doc, labels, buckets=buckets, registry=self.registry)

    def specs(self) -> list[MetricSpec]:
        return list(self._specs)

    def add_table(self, table: str, direction: str = "forward") -> None:
        """Creates the table's series at zero (verdicts, shadow outcomes, gauges, lag histograms)."""
        # Events by (op, outcome) are not pre-created: 6 x 12 series per table that mostly stay zero.
        direction = _one_of(direction, DIRECTIONS, "direction")
        for outcome in VERDICTS:
            self.verdicts.labels(table=table, outcome=outcome, direction=direction)
        for outcome in SHADOW_OUTCOMES:
            self.shadow_apply.labels(table=table, outcome=outcome)
        self.drift_ratio.labels(table=table).set(0)
        self.drift_window_verdicts.labels(table=table).set(0)
        self.recheck_pending.labels(table=table).set(0)
        self.drift_open.labels(table=table).set(0)
        for how in DRIFT_RESOLUTIONS:
            self.drift_resolved.labels(table=table, reason=how)
        self.recheck_oldest_age.labels(table=table).set(0)
        self.cdc_lag.labels(table=table)
        self.verdict_latency.labels(table=table)

    # ----- streaming ------------------------------------------------------------------------------

    def event(
        self, table: str, op: str | enum.Enum, outcome: str, count: int = 1, *, direction: str
    ) -> None:
        self.events.labels(
            table=table,
            op=_one_of(op, OPS, "op"),
            outcome=_one_of(outcome, EVENT_OUTCOMES, "outcome"),
            direction=_one_of(direction, DIRECTIONS, "direction"),
        ).inc(count)

    def verdict(
        self, table: str, now: float, drift_kind: str | enum.Enum | None = None, *, direction: str
    ) -> float:
        """Counts one final verdict (drift when `drift_kind` is given) and refreshes the drift ratio.

        `now` is the clock of the drift window (monotonic seconds are fine). Returns the ratio.
        """
        if drift_kind is None:
            return self.verdicts_batch(table, now, matched=1, direction=direction)
        return self.verdicts_batch(table, now, matched=0, drifted={_kind(drift_kind): 1}, direction=direction)

    def verdicts_batch(
        self, table: str, now: float, *, matched: int, drifted: DriftCounts | None = None, direction: str
    ) -> float:
        """Counts a batch of final verdicts at once (cheaper than one call per event)."""
        direction = _one_of(direction, DIRECTIONS, "direction")
        drift_count = 0
        for kind, n in (drifted or {}).items():
            label = _kind(kind)
            if n:
                self.drift.labels(table=table, kind=label, direction=direction).inc(n)
                drift_count += n
        if matched:
            self.verdicts.labels(table=table, outcome="match", direction=direction).inc(matched)
        if drift_count:
            self.verdicts.labels(table=table, outcome="drift", direction=direction).inc(drift_count)
        with self._windows_lock:
            self._windows.record(table, now, verdicts=matched + drift_count, drifted=drift_count)
        return self.refresh_drift_ratio(table, now)

    def refresh_drift_ratio(self, table: str, now: float) -> float:
        """Re-evaluates the window; call it on a timer too, so the ratio decays when a table goes idle."""
        with self._windows_lock:
            totals = self._windows.window(table).totals(now)
            # Set under the lock: a slower thread must not overwrite a newer ratio with an older one.
            self.drift_ratio.labels(table=table).set(totals.ratio)
            self.drift_window_verdicts.labels(table=table).set(totals.verdicts)
        return totals.ratio

    def refresh_all_drift_ratios(self, now: float) -> None:
        with self._windows_lock:
            tables = self._windows.tables()
        for table in tables:
            self.refresh_drift_ratio(table, now)

    def set_drift_open(self, table: str, keys: int) -> None:
        self.drift_open.labels(table=table).set(max(0, keys))

    def drift_resolutions(self, table: str, how: str, count: int = 1) -> None:
        self.drift_resolved.labels(table=table, reason=_one_of(how, DRIFT_RESOLUTIONS, "reason")).inc(count)

    def observe_cdc_lag(self, table: str, lag_s: float) -> None:
        self.observe_cdc_lags(((table, lag_s),))

    def observe_cdc_lags(self, lags: Iterable[tuple[str, float]]) -> None:
        """One observation per (table, seconds) pair, as `observe_cdc_lag` each."""
        _observe_per_table(self.cdc_lag, lags)

    def observe_verdict_latency(self, table: str, latency_s: float) -> None:
        self.observe_verdict_latencies(((table, latency_s),))

    def observe_verdict_latencies(self, latencies: Iterable[tuple[str, float]]) -> None:
        """One observation per (table, seconds) pair, as `observe_verdict_latency` each."""
        _observe_per_table(self.verdict_latency, latencies)

    def set_stream_lag(self, dynamodb_table: str, lag_s: float) -> None:
        self.stream_lag.labels(dynamodb_table=dynamodb_table).set(max(0.0, lag_s))

    def set_assigned_partitions(self, count: int) -> None:
        self.assigned_partitions.set(max(0, count))

    def set_consumer_lag(self, topic: str, partition: int, lag_messages: int) -> None:
        self.consumer_lag.labels(topic=topic, partition=str(partition)).set(max(0, lag_messages))

    def forget_partition(self, topic: str, partition: int) -> None:
        """On revocation: another consumer now owns the partition, so this daemon stops reporting it."""
        with contextlib.suppress(KeyError):
            self.consumer_lag.remove(topic, str(partition))

    def dead_letter(self, table: str, reason: str) -> None:
        self.dead_letters.labels(table=table, reason=_one_of(reason, DEAD_LETTER_REASONS, "reason")).inc()

    def column_not_compared(self, table: str, column: str, reason: str, count: int = 1) -> None:
        # The column label is bounded by the configuration: only columns the table's mapping names.
        if column not in self._columns.get(table, frozenset()):
            raise ValueError(f"column {column!r} is not a mapped column of {table!r}")
        self.columns_not_compared.labels(
            table=table, column=column, reason=_one_of(reason, NOT_COMPARED_REASONS, "reason")
        ).inc(count)

    # ----- DynamoDB -------------------------------------------------------------------------------

    def dynamo_request(
        self,
        dynamodb_table: str,
        operation: str,
        duration_s: float,
        error_kind: str | None = None,
        error_outcome: str = "failed",
    ) -> None:
        """One DynamoDB attempt. `error_outcome` says what became of a failed one (see
        DYNAMO_ERROR_OUTCOMES); a conditional-check failure is always `expected`."""
        op = _one_of(operation, DYNAMO_OPERATIONS, "operation")
        if (dynamodb_table, op) not in self._dynamo_seen:
            # First call of this operation on this table: its failed-error and throttle series start
            # at zero, so the error-rate and throttle panels show 0 rather than "no data" while healthy.
            self._dynamo_seen.add((dynamodb_table, op))
            for kind in DYNAMO_ERROR_KINDS:
                if kind != "conditional_check_failed":
                    self.dynamo_errors.labels(dynamodb_table=dynamodb_table, operation=op, kind=kind, outcome="failed")
            self.dynamo_throttles.labels(dynamodb_table=dynamodb_table, operation=op)
        self.dynamo_latency.labels(dynamodb_table=dynamodb_table, operation=op).observe(max(0.0, duration_s))
        if error_kind is not None:
            kind = _one_of(error_kind, DYNAMO_ERROR_KINDS, "kind")
            outcome = "expected" if kind == "conditional_check_failed" else error_outcome
            self.dynamo_errors.labels(
                dynamodb_table=dynamodb_table,
                operation=op,
                kind=kind,
                outcome=_one_of(outcome, DYNAMO_ERROR_OUTCOMES, "outcome"),
            ).inc()

    def dynamo_throttled(self, dynamodb_table: str, operation: str, count: int = 1) -> None:
        self.dynamo_throttles.labels(
            dynamodb_table=dynamodb_table, operation=_one_of(operation, DYNAMO_OPERATIONS, "operation")
        ).inc(count)

    # ----- dependencies and progress --------------------------------------------------------------

    def set_dependency_up(self, dependency: str, up: bool) -> None:
        self.dependency_up.labels(dependency=_one_of(dependency, DEPENDENCIES, "dependency")).set(1 if up else 0)

    def batch_processed(self, now_unix: float) -> None:
        self.last_batch.set(now_unix)

    # ----- recheck store --------------------------------------------------------------------------

    def set_recheck_backlog(self, table: str, pending: int, oldest_age_s: float) -> None:
        self.recheck_pending.labels(table=table).set(pending)
        self.recheck_oldest_age.labels(table=table).set(max(0.0, oldest_age_s) if pending else 0.0)

    # ----- shadow mode ----------------------------------------------------------------------------

    def shadow_applied(self, table: str, outcome: str, count: int = 1) -> None:
        self.shadow_apply.labels(table=table, outcome=_one_of(outcome, SHADOW_OUTCOMES, "outcome")).inc(count)

    def backfill_progress(
        self, table: str, rows_applied: int, snapshot_rows: int | None = None, done: bool = False
    ) -> None:
        """`rows_applied` is the increment since the last call; `snapshot_rows` the total when known;
        `done` once the snapshot has been fully applied (it stays done)."""
        if rows_applied:
            self.backfill_rows.labels(table=table).inc(rows_applied)
        if snapshot_rows is not None:
            self.backfill_snapshot_rows.labels(table=table).set(snapshot_rows)
        # Sticky: callers report `done` in the batch where the snapshot ended, not in every later one.
        if done:
            self._backfill_done.add(table)
        self.backfill_done.labels(table=table).set(1 if table in self._backfill_done else 0)

    # ----- reconciler -----------------------------------------------------------------------------

    def reconcile_scheduled(self, interval_s: float, tables: Iterable[str], now_unix: float) -> None:
        """Periodic reconciling is on: publish the interval, and count the wait for the first success
        from now (otherwise a reconciler that never succeeds would never look stale)."""
        self.set_reconcile_interval(interval_s)
        for table in tables:
            if (
                self.registry.get_sample_value("parity_reconcile_last_success_timestamp_seconds", {"table": table})
                is None
            ):
                self.reconcile_last_success.labels(table=table).set(now_unix)
            self.reconcile_progress.labels(table=table).set(1)

    def set_reconcile_interval(self, interval_s: float) -> None:
        """The schedule's period (0: no schedule, which turns ParityReconcileStale off)."""
        self.reconcile_interval.set(max(0.0, interval_s))

    def reconcile_progressed(self, table: str, ratio: float) -> None:
        self.reconcile_progress.labels(table=table).set(min(1.0, max(0.0, ratio)))

    def reconcile_finished(
        self,
        table: str,
        *,
        ok: bool,
        duration_s: float,
        rows_compared: int,
        drift_by_kind: DriftCounts | None = None,
        now_unix: float,
    ) -> None:
        self.reconcile_runs.labels(table=table, outcome="success" if ok else "failed").inc()
        self.reconcile_duration.labels(table=table).observe(max(0.0, duration_s))
        self.reconcile_rows.labels(table=table).inc(rows_compared)
        self.reconcile_rows_per_second.labels(table=table).set(rows_compared / duration_s if duration_s > 0 else 0.0)
        self.reconcile_progress.labels(table=table).set(1)
        if not ok:
            return
        self.reconcile_last_success.labels(table=table).set(now_unix)
        # The last run's picture replaces the previous one: kinds that disappeared go back to zero.
        for seen in self._last_drift_kinds.get(table, set()):
            self.reconcile_last_drift.labels(table=table, kind=seen).set(0)
        kinds = self._last_drift_kinds.setdefault(table, set())
        for kind, n in (drift_by_kind or {}).items():
            k = _kind(kind)
            kinds.add(k)
            self.reconcile_last_drift.labels(table=table, kind=k).set(n)
            if n:
                self.reconcile_drift.labels(table=table, kind=k).inc(n)


def _observe_per_table(histogram: Histogram, observations: Iterable[tuple[str, float]]) -> None:
    # The daemon observes a lag and a latency per event: the labelled child is looked up once per
    # table here (`labels()` costs as much as the observation itself), and each value is still
    # observed on its own, so the buckets and the sum are exactly those of one call per value.
    children: dict[str, Histogram] = {}
    for table, seconds in observations:
        child = children.get(table)
        if child is None:
            child = children[table] = histogram.labels(table=table)
        # A source clock ahead of ours gives a negative lag; clamp rather than corrupt the histogram.
        child.observe(seconds if seconds > 0.0 else 0.0)


def register_runtime_collectors(registry: CollectorRegistry) -> None:
    """The process (CPU, memory, open files, start time), platform (python_info) and garbage
    collector metrics of prometheus_client, on the daemon's own registry (its global registry
    is not served). They are the client library's standard names, not parity's."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)


def declared_names(metrics: Metrics) -> set[str]:
    return {s.name for s in metrics.specs()}


def catalog_specs() -> list[MetricSpec]:
    """The catalog without a caller's registry (for docs and static checks)."""
    return Metrics(CollectorRegistry(auto_describe=True)).specs()


__all__ = [
    "ALLOWED_LABELS",
    "DEAD_LETTER_REASONS",
    "DEPENDENCIES",
    "DIRECTIONS",
    "DRIFT_RESOLUTIONS",
    "DYNAMO_ERROR_KINDS",
    "DYNAMO_ERROR_OUTCOMES",
    "DYNAMO_OPERATIONS",
    "EVENT_OUTCOMES",
    "NOT_COMPARED_REASONS",
    "OPS",
    "RECONCILE_OUTCOMES",
    "SHADOW_OUTCOMES",
    "MetricSpec",
    "Metrics",
    "catalog_specs",
    "declared_names",
    "register_runtime_collectors",
]
