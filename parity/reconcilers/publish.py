"""Results of a standalone `parity reconcile` (a Kubernetes CronJob, a cron entry) for Prometheus.

A run lives seconds to hours; nothing scrapes it. It publishes its reconcile metrics (the same
names and labels as the daemon's periodic reconciles, so the reconciler dashboard and
ParityReconcileStale work unchanged) to one of:

- a Pushgateway (`--pushgateway URL`): one group per `--push-job` (grouping key: `job` only, so
  two schedules reconciling different tables need two job names);
- node_exporter's textfile collector (`--metrics-textfile PATH`, a `*.prom` file in its directory,
  written atomically by prometheus_client's `write_to_textfile`).

Both keep only the previous *result*, not a series of runs, so each publication merges with the
previous one it finds there: counters and histograms (runs, rows compared, drift found, run
durations) are carried forward and added to, which keeps them monotonic for the dashboards'
increase()/rate(); gauges take this run's value, except that a failed run keeps the previous
successful run's `parity_reconcile_last_success_timestamp_seconds` and drift picture. A table
that never succeeded gets its first publication's time as its "last success", as in the daemon,
so a job that fails from its first run still goes stale. Only `parity_reconcile_*` families are
published: a pushed `parity_build_info` or partition count would look like a daemon to the alerts.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, push_to_gateway, write_to_textfile
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from parity.metrics.catalog import Metrics

PREFIX = "parity_reconcile_"
LAST_SUCCESS = "parity_reconcile_last_success_timestamp_seconds"
LAST_DRIFT = "parity_reconcile_last_run_drift_keys"
INTERVAL = "parity_reconcile_interval_seconds"
# Labels a Pushgateway adds to what it serves (and Prometheus would add on a scrape).
_GROUP_LABELS = ("job", "instance")

SampleKey = tuple[str, tuple[tuple[str, str], ...]]


def _key(name: str, labels: dict[str, str]) -> SampleKey:
    return name, tuple(sorted((k, v) for k, v in labels.items() if k not in _GROUP_LABELS))


@dataclass(frozen=True)
class Target:
    """Where to publish: a Pushgateway URL and job, or a textfile path."""

    pushgateway: str | None = None
    job: str = "parity-reconcile"
    textfile: Path | None = None


def previous_families(text: str, job: str | None = None) -> dict[str, Metric]:
    """The reconcile families in an exposition (a Pushgateway's /metrics: only the group of `job`)."""
    out: dict[str, Metric] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith(PREFIX):
            continue
        kept = Metric(family.name, family.documentation, family.type)
        for s in family.samples:
            if job is not None and (s.labels.get("job") != job or s.labels.get("instance", "")):
                continue
            kept.add_sample(s.name, {k: v for k, v in s.labels.items() if k not in _GROUP_LABELS}, s.value)
        if kept.samples:
            out[family.name] = kept
    return out


def merge(current: Iterable[Metric], previous: dict[str, Metric], now_unix: float) -> list[Metric]:
    """This run's reconcile families merged with the previously published ones (see the module doc)."""
    merged: list[Metric] = []
    succeeded: set[str] = set()
    tables: set[str] = set()
    families = [f for f in current if f.name.startswith(PREFIX)]
    for family in families:
        for s in family.samples:
            if "table" in s.labels:
                tables.add(s.labels["table"])
            if s.name == LAST_SUCCESS:
                succeeded.add(s.labels["table"])
    for family in families:
        before = previous.get(family.name)
        prev: dict[SampleKey, float] = {}
        if before is not None:
            prev = {_key(s.name, s.labels): s.value for s in before.samples}
        values: dict[SampleKey, float] = {}
        if family.type in ("counter", "histogram"):
            values.update(prev)
            for s in family.samples:
                k = _key(s.name, s.labels)
                values[k] = values.get(k, 0.0) + s.value
        else:
            for k, v in prev.items():
                labels = dict(k[1])
                if family.name == LAST_DRIFT and labels.get("table") in succeeded:
                    v = 0.0  # a kind the latest successful run no longer found
                values[k] = v
            for s in family.samples:
                values[_key(s.name, s.labels)] = s.value
            if family.name == LAST_SUCCESS:
                known = {dict(k[1]).get("table") for k in values}
                for table in sorted(tables - known):
                    values[_key(LAST_SUCCESS, {"table": table})] = now_unix
        out = Metric(family.name, family.documentation, family.type)
        for (name, pairs), value in sorted(values.items()):
            out.add_sample(name, dict(pairs), value)
        merged.append(out)
    return merged


class _Families:
    """A collector serving fixed families (what push_to_gateway / write_to_textfile read)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families


class ReconcileResults:
    """The reconcile metrics of one standalone run, published when it ends (success or failure)."""

    def __init__(self, *, expected_interval_s: float, version: str = "0.0.0") -> None:
        self.registry = CollectorRegistry()
        self.metrics = Metrics(self.registry, version=version)
        # The schedule's period: ParityReconcileStale fires after twice this without a success
        # (0 turns the alert off for this job).
        self.metrics.set_reconcile_interval(expected_interval_s)

    def families(self, previous: dict[str, Metric], now_unix: float) -> list[Metric]:
        return merge(self.registry.collect(), previous, now_unix)

    def publish(self, target: Target, *, now_unix: float | None = None, timeout_s: float = 10.0) -> None:
        now = time.time() if now_unix is None else now_unix
        if target.pushgateway:
            url = target.pushgateway.rstrip("/")
            with urllib.request.urlopen(f"{url}/metrics", timeout=timeout_s) as response:  # noqa: S310 - operator URL
                text = response.read().decode()
            registry = CollectorRegistry(auto_describe=False)
            registry.register(_Families(self.families(previous_families(text, target.job), now)))
            # PUT: the merged families replace the group (nothing of the previous push is lost).
            push_to_gateway(url, job=target.job, registry=registry, timeout=timeout_s)
        if target.textfile is not None:
            path = Path(target.textfile)
            text = path.read_text() if path.exists() else ""
            registry = CollectorRegistry(auto_describe=False)
            registry.register(_Families(self.families(previous_families(text), now)))
            write_to_textfile(str(path), registry)


__all__ = ["ReconcileResults", "Target", "merge", "previous_families"]
