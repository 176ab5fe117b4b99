"""Once a second, a picture of the daemon read from its own metrics registry: what the live view
shows and what the HTML report charts. Reading the registry (not scraping /metrics) keeps the demo
independent of Prometheus, which is optional."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the run began
    phase: str
    events_total: float
    events_per_s: float
    drift_ratio: dict[str, float]  # verify tables: confirmed drift / verdicts in the rolling window
    drift_total: dict[str, float]  # confirmed drift so far, per table
    cdc_lag_s: float | None  # mean lag of the events consumed since the previous sample
    consumer_lag: float  # messages behind the end of the topics
    pending_rechecks: dict[str, float]
    backfill_rows: dict[str, float]  # shadow rows applied from the snapshot, per table
    backfill_done: dict[str, bool]


def _by_table(values: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for (n, labels), v in values.items():
        if n == name:
            table = dict(labels).get("table")
            if table is not None:
                out[table] = out.get(table, 0.0) + v
    return out


def read_registry(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in registry.collect():
        for s in family.samples:
            values[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return values


@dataclass
class Sampler:
    """Samples `registry` every `interval_s` on its own thread until `stop()`."""

    registry: CollectorRegistry
    phase: Callable[[], str]
    interval_s: float = 1.0
    samples: list[Sample] = field(default_factory=list)
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self._start = self.clock()
        self._prev: tuple[float, float, float, float] | None = None  # t, events, lag sum, lag count
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="demo-sampler", daemon=True)
        self._lock = threading.Lock()

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    @property
    def latest(self) -> Sample | None:
        with self._lock:
            return self.samples[-1] if self.samples else None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.take()

    def take(self) -> Sample:
        values = read_registry(self.registry)
        t = self.clock() - self._start
        events = sum(v for (n, _), v in values.items() if n == "parity_events_total")
        lag_sum = sum(v for (n, _), v in values.items() if n == "parity_cdc_lag_seconds_sum")
        lag_count = sum(v for (n, _), v in values.items() if n == "parity_cdc_lag_seconds_count")
        rate, lag = 0.0, None
        if self._prev is not None:
            pt, pe, ps, pc = self._prev
            rate = (events - pe) / (t - pt) if t > pt else 0.0
            if lag_count > pc:
                lag = (lag_sum - ps) / (lag_count - pc)
        self._prev = (t, events, lag_sum, lag_count)
        sample = Sample(
            t=round(t, 2),
            phase=self.phase(),
            events_total=events,
            events_per_s=rate,
            drift_ratio=_by_table(values, "parity_drift_ratio"),
            drift_total=_by_table(values, "parity_drift_total"),
            cdc_lag_s=lag,
            consumer_lag=sum(v for (n, _), v in values.items() if n == "parity_kafka_consumer_lag_messages"),
            pending_rechecks=_by_table(values, "parity_recheck_pending_keys"),
            backfill_rows=_by_table(values, "parity_backfill_rows_applied_total"),
            backfill_done={k: v >= 1 for k, v in _by_table(values, "parity_backfill_snapshot_done").items()},
        )
        with self._lock:
            self.samples.append(sample)
        return sample
