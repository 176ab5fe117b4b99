"""The daemon loop: poll -> process -> re-check -> persist -> commit.

Order matters for "never lose an event": dead letters are acknowledged by Kafka, drift is in
the state store (and emitted from its outbox), and only then are offsets committed. When any of
that fails (DynamoDB down, disk full, broker gone) the loop drops its in-memory state, rewinds
its partitions to the committed offsets, reports not ready and backs off; the records are then
processed again. At-least-once, with drift de-duplicated by key and LSN in the state store.
"""

from __future__ import annotations

import contextlib
import gc
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import structlog

from parity.adapters.ports import ChangeSource, LineSink, MessageSink, WatchedDynamoReads
from parity.adapters.state import StateStore, reread_item
from parity.core.config import ParityConfig
from parity.core.errors import DynamoUnavailable, TransientError
from parity.core.keys import canonical_key, key_fragment
from parity.daemon.batch import BatchResult, dead_letter_message
from parity.daemon.pipeline import Pipeline

log = structlog.get_logger("parity.daemon")

STREAM_FACT = "stream"  # the state-store fact `parity status` reads (see stream_snapshot)
STREAM_HEARTBEAT_S = 5.0  # an idle daemon still refreshes it this often: `parity status` sees it live

# A batch allocates tens of thousands of container objects (decoded rows, expected items, items
# read back) that live until the batch is done. With CPython's default first-generation threshold
# (700 net allocations) the cyclic collector runs hundreds of times per batch, promotes them, and
# the promotions trigger full collections over the whole heap (botocore's models included): 17-21%
# of the daemon's CPU on the verifier benchmark (issue 23). Reference counting frees a batch's
# objects either way; only reference cycles wait for the collector, and 50k objects is a few MB.
LOOP_GC_THRESHOLD = 50_000


@contextlib.contextmanager
def loop_gc() -> Iterator[None]:
    """The verification loops' collector threshold while they run (process-wide; restored after)."""
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], LOOP_GC_THRESHOLD), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


class Telemetry:
    """What the loop reports. The default does nothing; `parity.daemon.telemetry` feeds Prometheus."""

    def batch(self, result: BatchResult) -> None:
        return None

    def consumer_lag(self, lag: dict[tuple[str, int], int]) -> None:
        return None

    def assigned_partitions(self, count: int) -> None:
        """Partitions the consumer holds now (lag is known only for those with a fetched watermark)."""
        return None

    def failure(self, kind: str) -> None:
        return None

    def drift_open(self, counts: dict[str, int]) -> None:
        """Keys with open drift per table (absent tables: none)."""
        return None

    def drift_resolved(self, source: str, how: str, n: int) -> None:
        return None

    def stream_lag(self, lag_by_table: dict[str, float]) -> None:
        """Reverse direction: per DynamoDB table, seconds behind its stream (largest shard)."""
        return None


# Open drift keys are re-read so that a late write that lands after confirmation is noticed:
# at most REREAD_MAX_KEYS keys every REREAD_INTERVAL_S (least recently re-read first), so the
# re-read costs at most 10 reads/s however much drift is open.
REREAD_INTERVAL_S = 10.0
REREAD_MAX_KEYS = 100


@dataclass
class Health:
    last_loop_at: float = 0.0
    last_error: str | None = None
    failing_since: float | None = None
    checks: dict[str, bool] = field(default_factory=dict)


class Daemon:
    def __init__(
        self,
        config: ParityConfig,
        *,
        source: ChangeSource,
        dynamo: WatchedDynamoReads,
        state: StateStore,
        dead_letters: MessageSink,
        drift_topic: MessageSink | None,
        drift_file: LineSink | None,
        telemetry: Telemetry | None = None,
        shadow: Any | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.config = config
        self.source = source
        self.state = state
        self.dead_letters = dead_letters
        self.drift_topic = drift_topic
        self.drift_file = drift_file
        self.telemetry = telemetry or Telemetry()
        self.clock = clock
        self.stop_event = threading.Event()
        self.sleep = sleep or (lambda seconds: self.stop_event.wait(seconds) and None)
        self.pipeline = Pipeline(config, dynamo, shadow=shadow)
        dynamo.on_unreachable = self._dynamo_unreachable
        self._caught_up: set[tuple[str, int]] = set()
        self.pipeline.caught_up = self._caught_up.__contains__
        source.on_revoke = self._on_revoke
        self.health = Health()
        self._failures = 0
        self._dynamo_trouble = False  # set by DynamoStore from its worker threads, read per step
        # Tables the reverse loop verifies (DaemonApp sets them: this loop's config has none).
        self.reverse_sources: set[str] = {t.source for t in config.tables if t.mode == "reverse"}
        self.reread_interval_s = REREAD_INTERVAL_S
        self.reread_max_keys = REREAD_MAX_KEYS
        self._next_reread = 0.0
        self._open_rowid = 0  # open drift rows up to this rowid are in pipeline.open_drift
        self.snapshot_rows: dict[str, int] = dict(state.facts().get("snapshot_rows", {}))
        self.snapshot_done: set[str] = set(state.facts().get("snapshot_done", []))
        # For `parity status` (a separate process): what this daemon consumed and still holds.
        self.started_at = clock()
        self.committed: dict[tuple[str, int], int] = {}
        previous = state.facts().get(STREAM_FACT) or {}
        self.last_event_at: float | None = previous.get("last_event_at")
        self.last_event_source_at: float | None = previous.get("last_event_source_at")
        self._stream_written: tuple[float, Any] = (0.0, None)
        # The loop's latest lag, for the HTTP thread: computing it there would call the consumer
        # (a committed-offsets round trip of up to 5 s) from a second thread.
        self.last_lag: dict[tuple[str, int], int] = {}
        # Seconds from the loop's start to the group join, the first records and the first commit,
        # logged once ("back at work") so a restart's cost is visible (bench/recovery.py).
        self.startup: dict[str, float] = {}
        self._loop_started = time.monotonic()

    # -- lifecycle -----------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        def stop(signum: int, frame: Any) -> None:
            log.info("stopping", signal=signal.Signals(signum).name)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def run(self) -> None:
        log.info("started", topics=self.source.topics, group=self.config.kafka.group_id)
        self._loop_started = time.monotonic()
        self._emit_outbox()
        while not self.stop_event.is_set():
            self.step()
        self.shutdown()

    def shutdown(self) -> None:
        """Finish: persist and commit what is resolved, leave the group. Pending checks stay
        uncommitted in Kafka and are checked again by whoever owns the partition next."""
        try:
            self._commit()
        except Exception as exc:  # shutting down anyway; the offsets are simply re-read
            log.warning("final commit failed", error=str(exc))
        try:  # tell `parity status` the stream is no longer watched (not merely quiet)
            now = self.clock()
            self.state.set_fact(STREAM_FACT, {**self.stream_snapshot(now, self.source.lag()), "stopped_at": now})
        except Exception as exc:
            log.warning("final stream snapshot failed", error=str(exc))
        self.source.close()
        log.info("stopped")

    def ready(self) -> bool:
        return bool(getattr(self.source, "joined", self.source.assigned)) and self.health.failing_since is None

    # -- one iteration -------------------------------------------------------------------------

    def step(self) -> BatchResult | None:
        d = self.config.daemon
        try:
            self._emit_outbox()
            records = self.source.poll_batch(d.batch_max_events, d.batch_max_wait_ms / 1000)
            self._startup_milestones(records=bool(records))
            now = self.clock()
            if records:
                self.last_event_at = now
                stamps = [r.timestamp_ms for r in records if r.timestamp_ms]
                if stamps:
                    self.last_event_source_at = max(self.last_event_source_at or 0.0, max(stamps) / 1000)
            self._dynamo_trouble = False
            result = self.pipeline.process(records, now) if records else BatchResult()
            lag = self.source.lag()
            self.last_lag = lag
            self._caught_up.clear()
            self._caught_up.update(tp for tp, n in lag.items() if n == 0)
            self.pipeline.recheck_due(now, result)
            reread = self._reread_open_drift(now, result)
            if self._dynamo_trouble:
                # The reads succeeded only after DynamoDB came back: an application's dual writes
                # queued behind the same outage may not have landed yet, and grace periods ran
                # out during it. Redo the batch from the committed offsets, so every check gets
                # a full grace period after the outage (no false drift), and nothing is skipped.
                raise DynamoUnavailable("DynamoDB was unreachable during the batch; redoing it")
            self._persist(result, self._stream_facts(now, lag, result))
            if reread:
                self.state.touch_reread(reread, now)
            if self._commit() and "first_commit_s" not in self.startup:
                self._startup_milestones(committed=True)
            self.telemetry.batch(result)
            self.telemetry.consumer_lag(lag)
            self.telemetry.assigned_partitions(len(self.source.assigned))
            self.health.last_loop_at = now
            self.health.failing_since = None
            self.health.last_error = None
            self._failures = 0
            return result
        except TransientError as exc:  # the adapters raise every dependency's failure as one
            self._recover(exc.kind, str(exc))
        return None

    def _reread_open_drift(self, now: float, result: BatchResult) -> list[int]:
        """Every reread_interval_s: pick up open drift recorded elsewhere (a reconcile, a restart),
        re-read a bounded number of open keys, and publish the open count. Returns the rows read."""
        if now < self._next_reread:
            return []
        self._next_reread = now + self.reread_interval_s
        for rowid, source, _key, text, lsn in self.state.open_drift(self._open_rowid):
            self._open_rowid = max(self._open_rowid, rowid)
            if text:
                target, key, _expected, _unavailable = reread_item(text)
                self.pipeline.open_drift[(target, canonical_key(key))] = (source, lsn)
        rows = self.state.reread_candidates(limit=self.reread_max_keys, older_than=now - self.reread_interval_s)
        # Open drift of the tables this loop verifies only (a reverse table's is re-read by the
        # reverse loop, parity.daemon.reverse); rows of tables no longer configured are skipped
        # by reread_open as before.
        rows = [r for r in rows if r[1] not in self.reverse_sources]
        entries = []
        for _rowid, source, _key, text, lsn in rows:
            target, key, expected, unavailable = reread_item(text)
            entries.append((source, target, key, expected, unavailable, lsn))
        if entries:
            self.pipeline.reread_open(entries, now, result)
        self.telemetry.drift_open(self.state.open_drift_counts())
        return [r[0] for r in rows]

    def _dynamo_unreachable(self, detail: str) -> None:
        # Mid-batch, while DynamoStore still retries: not ready from the first failed attempt, so
        # /readyz is false for the whole outage. A completed step clears it.
        self.health.last_error = f"DynamoUnavailable: {detail} (retrying)"  # before failing_since:
        if self.health.failing_since is None:  # a probe in between must see which check fails
            self.health.failing_since = self.clock()
        self._dynamo_trouble = True

    def _recover(self, kind: str, message: str) -> None:
        now = self.clock()
        self.health.last_error = f"{kind}: {message}"
        if self.health.failing_since is None:
            self.health.failing_since = now
        self._failures += 1
        if kind == "DynamoUnavailable":
            # Grace periods run from the source commit, but the application's dual writes queued
            # behind this outage land only after it: the redone checks' grace starts no earlier.
            self.pipeline.grace_floor = now
        self.telemetry.failure(kind)
        log.warning("batch failed; rewinding to committed offsets", error=kind, detail=message, attempt=self._failures)
        self._rewind()
        # Waits on the stop event, so SIGTERM during a long back-off still exits promptly.
        self.sleep(min(30.0, 0.5 * 2 ** min(self._failures, 6)))

    def _rewind(self) -> None:
        tps = list(self.source.assigned)
        self.pipeline.revoke(tps)
        if not tps:
            return
        try:
            self.source.rewind(tps)
        except Exception as exc:  # the broker itself may be the failure; the group will resync us
            log.warning("rewind failed", error=str(exc))

    # -- persistence ---------------------------------------------------------------------------

    def stream_snapshot(
        self, now: float, lag: dict[tuple[str, int], int], *, about_to_commit: bool = True
    ) -> dict[str, Any]:
        """Pending checks per table and, per assigned partition, the committed offset, position,
        high watermark and lag: what `parity status` needs to say whether the stream is drained.
        With `about_to_commit` (the loop writes the snapshot just before committing) the offsets
        being committed count as committed; the HTTP thread passes False and leaves the ledger
        alone, which only the loop may walk."""
        pending = self.pipeline.rechecks.pending_by_source()
        committed = dict(self.committed)
        if about_to_commit:
            committed.update(self.pipeline.ledger.committable())
        partitions: dict[str, dict[str, int | None]] = {}
        for tp in sorted(self.source.assigned):
            high = self.source.high_watermarks.get(tp)
            n = lag.get(tp)
            position = self.source.positions.get(tp)
            if position is None and high is not None and n is not None:
                position = high - n
            partitions[f"{tp[0]}[{tp[1]}]"] = {
                "committed": committed.get(tp),
                "position": position,
                "high_watermark": high,
                "lag": n,  # None: unknown (nothing fetched yet, or the broker's watermark is behind)
            }
        return {
            "written_at": now,
            "started_at": self.started_at,
            "stopped_at": None,
            "ready": self.ready(),
            "last_error": self.health.last_error,
            "last_event_at": self.last_event_at,
            "last_event_source_at": self.last_event_source_at,
            "pending_rechecks": pending,
            "partitions": partitions,
        }

    def _stream_facts(self, now: float, lag: dict[tuple[str, int], int], result: BatchResult) -> dict[str, Any]:
        # Written with every batch that counted something (same transaction, no extra fsync); an
        # idle loop writes only when the picture changed or every few seconds, as a heartbeat.
        snapshot = self.stream_snapshot(now, lag)
        state = {k: v for k, v in snapshot.items() if k != "written_at"}
        last_at, last_state = self._stream_written
        if result.outcomes or result.drift or state != last_state or now - last_at >= STREAM_HEARTBEAT_S:
            self._stream_written = (now, state)
            return {STREAM_FACT: snapshot}
        return {}

    def _persist(self, result: BatchResult, facts: dict[str, Any] | None = None) -> None:
        if result.dead_letters:
            self.dead_letters.send([(None, dead_letter_message(dl, self.config)) for dl in result.dead_letters])
            self.dead_letters.flush()
        for source, n in result.snapshot_rows.items():
            self.snapshot_rows[source] = self.snapshot_rows.get(source, 0) + n
        self.snapshot_done |= result.snapshot_done
        new = self.state.record_batch(dict(result.outcomes), result.drift, facts)
        if result.resolved:
            result.resolved = self.state.resolve_drift(result.resolved)
        if new or result.resolved:
            self.telemetry.drift_open(self.state.open_drift_counts())
        if result.snapshot_rows or result.snapshot_done:
            self.state.set_fact("snapshot_rows", self.snapshot_rows)
            self.state.set_fact("snapshot_done", sorted(self.snapshot_done))
        for source in result.truncated:
            self.state.set_fact(f"truncated:{source}", self.clock())
        for source, n in result.truncate_deleted.items():
            log.warning("truncate applied", table=source, items_deleted=n)
            self.state.set_fact(f"truncate_applied:{source}", {"at": self.clock(), "items_deleted": n})
        for r in result.resolved:
            log.info(
                "drift resolved",
                table=r.source,
                how=r.how,
                key=key_fragment(r.key) if not _redacted_key(self, r.source) else "<redacted>",
            )
        if new:
            for d in new:
                log.warning(
                    "drift",
                    table=d.source,
                    kind=d.kind,
                    # The very text drift.jsonl has, so the key can be grepped across both.
                    key=key_fragment(d.key) if not _redacted_key(self, d.source) else "<redacted>",
                )
        if new or result.resolved:
            self._emit_outbox()

    def _emit_outbox(self) -> None:
        emit_outbox(self.state, self.drift_file, self.drift_topic, self.telemetry)

    def _commit(self) -> bool:
        offsets = self.pipeline.ledger.committable()
        if offsets:
            self.source.commit(offsets)
            self.pipeline.ledger.mark_committed(offsets)
            self.committed.update(offsets)
        return bool(offsets)

    def _startup_milestones(self, *, records: bool = False, committed: bool = False) -> None:
        if "first_commit_s" in self.startup:
            return
        since = round(time.monotonic() - self._loop_started, 3)
        if "joined_s" not in self.startup and self.source.joined:
            self.startup["joined_s"] = since
        if records and "first_records_s" not in self.startup:
            self.startup["first_records_s"] = since
        if committed:
            self.startup["first_commit_s"] = since
            log.info("back at work", **self.startup)

    def _on_revoke(self, tps: list[tuple[str, int]]) -> None:
        # Commit what is resolved before the partitions move; pending checks are re-read there.
        try:
            offsets = {tp: o for tp, o in self.pipeline.ledger.committable().items() if tp in set(tps)}
            if offsets:
                self.source.commit(offsets)
        except Exception as exc:
            log.warning("commit on revoke failed", error=str(exc))
        self.pipeline.revoke(tps)
        for tp in tps:
            self.committed.pop(tp, None)


def emit_outbox(
    state: StateStore, drift_file: LineSink | None, drift_topic: MessageSink | None, telemetry: Telemetry
) -> None:
    """Emit the state store's drift outbox to the drift sinks, then mark it emitted. One emitter
    per process (the Kafka loop, or the reverse loop when there is no Kafka loop): both
    directions' drift goes through the same outbox."""
    rows = state.unemitted()
    if rows:
        values = [r[3] for r in rows]
        if drift_file is not None:
            drift_file.write(values)
        if drift_topic is not None:
            drift_topic.send([(r[1].encode(), r[3]) for r in rows])
            drift_topic.flush()
        state.mark_emitted([(r[0], r[1], r[2]) for r in rows])
    # `resolved` records (from this daemon, a reconcile or `parity repair`), after the drift
    # records they close; the counter of resolutions is fed here, in one place.
    resolved = state.unemitted_resolutions()
    if not resolved:
        return
    if drift_file is not None:
        drift_file.write([r[2] for r in resolved])
    if drift_topic is not None:
        drift_topic.send([(r[1].encode(), r[2]) for r in resolved])
        drift_topic.flush()
    state.mark_resolutions_emitted([r[0] for r in resolved])
    for _id, _key, record in resolved:
        data = orjson.loads(record)
        telemetry.drift_resolved(data["table"], data["how"], 1)


def _redacted_key(daemon: Daemon, source: str) -> bool:
    mapping = daemon.config.table(source)
    key_columns = {c for t in mapping.keys.values() for c in _template_columns(t)}
    return any(mapping.rule(c).redact for c in key_columns)


def _template_columns(template: str) -> list[str]:
    from parity.core.config import template_fields

    return [c for c, _ in template_fields(template)]


def state_path(config: ParityConfig) -> Path:
    return Path(config.daemon.state_dir) / "state.sqlite"
