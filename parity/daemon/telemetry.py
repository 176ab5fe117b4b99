"""Feeds the daemon's batch results into the Prometheus catalog (`parity.metrics.catalog`)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from parity.adapters.errors import RETRIED_KINDS, error_kind
from parity.core.outcomes import SHADOW, Outcome
from parity.daemon.batch import BatchResult
from parity.daemon.run import Telemetry
from parity.metrics.catalog import Metrics


class PrometheusTelemetry(Telemetry):
    def __init__(
        self,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        direction: str = "forward",
    ) -> None:
        self.metrics = metrics
        # The direction label of what this loop counts: the Kafka loop is forward, the DynamoDB
        # Stream loop (parity.daemon.reverse) reverse.
        self.direction = direction
        self.clock = clock
        self.wall = wall
        self._assigned: set[tuple[str, int]] = set()
        # Snapshot rows seen per table (run_daemon seeds it with the counts the state store kept).
        self.snapshot_rows: dict[str, int] = {}
        self._open_tables: set[str] = set()

    def batch(self, result: BatchResult) -> None:
        m = self.metrics
        now = self.clock()
        if result.events:
            m.batch_processed(self.wall())
        for (table, op, outcome), n in result.events.items():
            m.event(table, op, outcome, n, direction=self.direction)
            if outcome in SHADOW:
                m.shadow_applied(table, outcome, n)
        matched: Counter[str] = Counter()
        for (table, outcome), n in result.outcomes.items():
            if outcome == Outcome.MATCH:
                matched[table] += n
        drifted: dict[str, Counter[str]] = {}
        for d in result.drift:
            drifted.setdefault(d.source, Counter())[d.kind] += 1
        for table in set(matched) | set(drifted):
            m.verdicts_batch(
                table, now, matched=matched.get(table, 0), drifted=dict(drifted.get(table, {})),
                direction=self.direction,
            )
        m.observe_cdc_lags(result.cdc_lag)
        m.observe_verdict_latencies(result.verdict_latency)
        for dl in result.dead_letters:
            m.dead_letter(dl.source or "<unknown>", dl.reason_class)
        for (table, column, reason), n in result.not_compared.items():
            m.column_not_compared(table, column, reason, n)
        for table, rows in result.snapshot_rows.items():
            shadow = result.snapshot_mode.get(table) == "shadow"
            self.snapshot_rows[table] = self.snapshot_rows.get(table, 0) + rows
            done = table in result.snapshot_done
            # The snapshot's size is known once its last row has arrived: the backfill progress
            # panel divides the rows applied by it.
            total = self.snapshot_rows[table] if done else None
            m.backfill_progress(table, rows if shadow else 0, snapshot_rows=total, done=done)
        wall = time.time()
        for table, n in result.recheck_backlog.items():
            m.set_recheck_backlog(table, n, wall - result.recheck_oldest[table] if n else 0.0)
        m.refresh_all_drift_ratios(now)

    def stream_lag(self, lag_by_table: dict[str, float]) -> None:
        """Reverse direction: per DynamoDB table, the largest lag of the shards held."""
        for table, lag in lag_by_table.items():
            self.metrics.set_stream_lag(table, lag)

    def drift_open(self, counts: dict[str, int]) -> None:
        # A table whose open drift all resolved is absent from `counts`: it goes back to zero.
        for table in self._open_tables | set(counts):
            self.metrics.set_drift_open(table, counts.get(table, 0))
        self._open_tables = set(counts)

    def drift_resolved(self, source: str, how: str, n: int) -> None:
        self.metrics.drift_resolutions(source, how, n)

    def consumer_lag(self, lag: dict[tuple[str, int], int]) -> None:
        current = set(lag)
        for topic, partition in self._assigned - current:
            self.metrics.forget_partition(topic, partition)
        for (topic, partition), n in lag.items():
            self.metrics.set_consumer_lag(topic, partition, n)
        self._assigned = current

    def assigned_partitions(self, count: int) -> None:
        # From the consumer's assignment, not from the lag: an idle partition (nothing fetched
        # yet, so no watermark) is still assigned, and ParityNotConsuming reads this.
        self.metrics.set_assigned_partitions(count)

    def dynamo_request(
        self, table: str, operation: str, seconds: float, error: str | None, last_attempt: bool = True
    ) -> None:
        # `table` here is the DynamoDB table (the metrics' `dynamodb_table` label).
        kind = error_kind(error) if error else None
        outcome = "retried" if kind in RETRIED_KINDS and not last_attempt else "failed"
        self.metrics.dynamo_request(table, operation, seconds, kind, outcome)
        if kind == "throttled":
            self.metrics.dynamo_throttled(table, operation)

    def failure(self, kind: str) -> None:
        return None

    def dependencies(self, reachable: dict[str, bool]) -> None:
        """The reachability probe's latest result, as parity_dependency_up."""
        for dependency, up in reachable.items():
            self.metrics.set_dependency_up(dependency, up)
