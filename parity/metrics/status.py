"""The `/status` document, read back from the metrics registry.

The registry already holds every number `/status` shows, so the daemon can serve
`lambda: status_from_registry(metrics.registry, extra)` instead of keeping a second copy of its
counters. `extra` carries what metrics do not (mode, assigned partitions, last reconcile report
path).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry

_PER_TABLE_GAUGES = {
    "parity_drift_ratio": "drift_ratio",
    "parity_drift_window_verdicts": "verdicts_in_window",
    "parity_recheck_pending_keys": "pending_rechecks",
    "parity_recheck_oldest_pending_age_seconds": "oldest_pending_age_seconds",
    "parity_backfill_snapshot_rows": "snapshot_rows",
    "parity_backfill_snapshot_done": "snapshot_done",
    "parity_backfill_rows_applied_total": "backfill_rows_applied",
    "parity_reconcile_last_success_timestamp_seconds": "reconcile_last_success_unix",
    "parity_reconcile_rows_per_second": "reconcile_rows_per_second",
    "parity_reconcile_progress_ratio": "reconcile_progress_ratio",
}


def status_from_registry(
    registry: CollectorRegistry, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    tables: dict[str, dict[str, Any]] = {}
    consumer_lag: dict[str, float] = {}

    def table(name: str) -> dict[str, Any]:
        return tables.setdefault(
            name,
            {
                "events": {},
                "verdicts": {},
                "drift_by_kind": {},
                "shadow_apply": {},
                "reconcile_last_run_drift": {},
                "columns_not_compared": {},
            },
        )

    for family in registry.collect():
        for s in family.samples:
            t = s.labels.get("table")
            if s.name == "parity_events_total" and t:
                events = table(t)["events"]
                events[s.labels["outcome"]] = events.get(s.labels["outcome"], 0) + int(s.value)
            elif s.name == "parity_verdicts_total" and t:
                table(t)["verdicts"][s.labels["outcome"]] = int(s.value)
            elif s.name == "parity_drift_total" and t:
                table(t)["drift_by_kind"][s.labels["kind"]] = int(s.value)
            elif s.name == "parity_shadow_apply_total" and t:
                table(t)["shadow_apply"][s.labels["outcome"]] = int(s.value)
            elif s.name == "parity_columns_not_compared_total" and t:
                table(t)["columns_not_compared"][s.labels["column"]] = int(s.value)
            elif s.name == "parity_reconcile_last_run_drift_keys" and t:
                table(t)["reconcile_last_run_drift"][s.labels["kind"]] = int(s.value)
            elif s.name in _PER_TABLE_GAUGES and t:
                table(t)[_PER_TABLE_GAUGES[s.name]] = s.value
            elif s.name == "parity_kafka_consumer_lag_messages":
                consumer_lag[f"{s.labels['topic']}[{s.labels['partition']}]"] = s.value

    doc: dict[str, Any] = {
        "tables": {name: tables[name] for name in sorted(tables)},
        "consumer_lag_messages": consumer_lag,
        "consumer_lag_total": sum(consumer_lag.values()),
    }
    doc.update(extra or {})
    return doc
