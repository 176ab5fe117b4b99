"""parity_columns_not_compared_total: its `column` label is bounded by the mapping, and the
daemon's telemetry feeds it from a batch's not_compared counts."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from parity.daemon.batch import BatchResult
from parity.daemon.telemetry import PrometheusTelemetry
from parity.metrics.catalog import EVENT_OUTCOMES, Metrics
from tests.unit.test_pipeline import Harness

pytestmark = pytest.mark.unit

T = "public.accounts"
NAME = "parity_columns_not_compared_total"


def test_only_mapped_columns_and_known_reasons_become_labels() -> None:
    registry = CollectorRegistry()
    m = Metrics(registry, tables=[T], columns={T: ["id", "owner"]})
    m.column_not_compared(T, "owner", "column_missing", 3)
    assert registry.get_sample_value(NAME, {"table": T, "column": "owner", "reason": "column_missing"}) == 3
    with pytest.raises(ValueError, match="not a mapped column"):
        m.column_not_compared(T, "ssn", "column_missing")
    with pytest.raises(ValueError, match="not a mapped column"):
        m.column_not_compared("public.other", "owner", "column_missing")
    with pytest.raises(ValueError, match="reason"):
        m.column_not_compared(T, "owner", "because")
    assert "not_compared" in EVENT_OUTCOMES
    m.event(T, "u", "not_compared", direction="forward")


def test_telemetry_counts_a_batch_per_column_and_the_event_once() -> None:
    h = Harness()
    registry = CollectorRegistry()
    metrics = Metrics(registry, tables=[T], columns={T: list(h.config.tables[0].columns)})
    result = BatchResult()
    result.count(T, "not_compared", 2, op="c")
    result.not_compared[(T, "owner", "column_missing")] += 2
    result.not_compared[(T, "balance", "column_missing")] += 1
    PrometheusTelemetry(metrics, clock=lambda: 100.0).batch(result)
    assert registry.get_sample_value(NAME, {"table": T, "column": "owner", "reason": "column_missing"}) == 2
    assert registry.get_sample_value(NAME, {"table": T, "column": "balance", "reason": "column_missing"}) == 1
    events = {"table": T, "op": "c", "outcome": "not_compared", "direction": "forward"}
    assert registry.get_sample_value("parity_events_total", events) == 2
    # Not a verdict: the drift ratio's denominator does not grow.
    verdicts = {"table": T, "outcome": "match", "direction": "forward"}
    assert registry.get_sample_value("parity_verdicts_total", verdicts) == 0


def test_the_status_document_names_the_columns_not_compared() -> None:
    from parity.metrics.status import status_from_registry

    registry = CollectorRegistry()
    m = Metrics(registry, tables=[T], columns={T: ["id", "owner"]})
    m.column_not_compared(T, "owner", "column_missing", 4)
    assert status_from_registry(registry)["tables"][T]["columns_not_compared"] == {"owner": 4}
