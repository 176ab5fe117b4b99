"""The /status document is read back from the metrics registry."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from parity.metrics.catalog import Metrics
from parity.metrics.status import status_from_registry

pytestmark = pytest.mark.unit

A, B = "public.account", "public.subscriber"


def test_status_summarises_each_table_and_the_consumer_lag() -> None:
    registry = CollectorRegistry()
    m = Metrics(registry, tables=[B, A])
    m.event(A, "c", "match", direction="forward")
    m.event(A, "u", "match", direction="forward")
    m.event(A, "u", "pending", direction="forward")
    m.verdicts_batch(A, now=0.0, matched=3, drifted={"value_mismatch": 1}, direction="forward")
    m.set_recheck_backlog(A, pending=4, oldest_age_s=12.5)
    m.set_consumer_lag("pg.public.account", 0, 10)
    m.set_consumer_lag("pg.public.account", 1, 5)
    m.reconcile_finished(
        A, ok=True, duration_s=4, rows_compared=40, drift_by_kind={"missing_in_target": 2}, now_unix=99.0
    )

    doc = status_from_registry(registry, {"mode": "verify"})

    assert list(doc["tables"]) == [A, B]
    a = doc["tables"][A]
    assert a["events"] == {"match": 2, "pending": 1}
    assert a["verdicts"] == {"match": 3, "drift": 1}
    assert a["drift_by_kind"] == {"value_mismatch": 1}
    assert a["drift_ratio"] == pytest.approx(0.25)
    assert (a["pending_rechecks"], a["oldest_pending_age_seconds"]) == (4, 12.5)
    assert a["reconcile_last_success_unix"] == 99.0
    assert a["reconcile_last_run_drift"] == {"missing_in_target": 2}
    assert a["reconcile_rows_per_second"] == 10
    assert doc["tables"][B]["drift_ratio"] == 0
    assert doc["consumer_lag_messages"] == {"pg.public.account[0]": 10, "pg.public.account[1]": 5}
    assert doc["consumer_lag_total"] == 15
    assert doc["mode"] == "verify"
