"""Series the dashboards divide by or rate() over exist while the daemon is healthy.

The e2e observability test found two panels drawing nothing on a healthy daemon: the DynamoDB
error-rate and throttle panels (no error series until the first error) and the backfill progress
panel (the snapshot size was never published). These pin the fixes down.
"""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from parity.daemon.steps import BatchResult
from parity.daemon.telemetry import PrometheusTelemetry
from parity.metrics.catalog import DYNAMO_ERROR_KINDS, Metrics

pytestmark = pytest.mark.unit

T = "public.payments"


def test_first_dynamodb_request_creates_its_error_and_throttle_series_at_zero() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry, tables=[T])
    assert registry.get_sample_value("parity_dynamodb_throttles_total", {"table": "Payments",
                                                                         "operation": "BatchGetItem"}) is None
    metrics.dynamo_request("Payments", "BatchGetItem", 0.004)
    for kind in DYNAMO_ERROR_KINDS:
        labels = {"table": "Payments", "operation": "BatchGetItem", "kind": kind}
        assert registry.get_sample_value("parity_dynamodb_errors_total", labels) == 0
    assert registry.get_sample_value("parity_dynamodb_throttles_total",
                                     {"table": "Payments", "operation": "BatchGetItem"}) == 0
    metrics.dynamo_request("Payments", "BatchGetItem", 0.2, "timeout")
    assert registry.get_sample_value("parity_dynamodb_errors_total",
                                     {"table": "Payments", "operation": "BatchGetItem", "kind": "timeout"}) == 1
    assert registry.get_sample_value("parity_dynamodb_request_duration_seconds_count",
                                     {"table": "Payments", "operation": "BatchGetItem"}) == 2


def _pipeline(mode: str) -> Any:
    table = SimpleNamespace(source=T, mode=mode)
    config = SimpleNamespace(tables=[table], table=lambda source: table)
    return SimpleNamespace(config=config, rechecks=SimpleNamespace(checks=lambda: []))


def test_shadow_snapshot_size_is_published_when_the_snapshot_ends() -> None:
    registry = CollectorRegistry()
    telemetry = PrometheusTelemetry(Metrics(registry, tables=[T]), clock=lambda: 100.0)
    telemetry.snapshot_rows[T] = 10  # seeded by run_daemon from the state store (an earlier process)
    pipeline = _pipeline("shadow")
    telemetry.batch(BatchResult(snapshot_rows=Counter({T: 25})), pipeline)
    assert registry.get_sample_value("parity_backfill_snapshot_rows", {"table": T}) is None  # not known yet
    assert registry.get_sample_value("parity_backfill_snapshot_done", {"table": T}) == 0
    telemetry.batch(BatchResult(snapshot_rows=Counter({T: 5}), snapshot_done={T}), pipeline)
    assert registry.get_sample_value("parity_backfill_snapshot_rows", {"table": T}) == 40
    assert registry.get_sample_value("parity_backfill_rows_applied_total", {"table": T}) == 30
    assert registry.get_sample_value("parity_backfill_snapshot_done", {"table": T}) == 1


def test_verify_mode_snapshot_applies_nothing_but_is_counted() -> None:
    registry = CollectorRegistry()
    telemetry = PrometheusTelemetry(Metrics(registry, tables=[T]), clock=lambda: 100.0)
    telemetry.batch(BatchResult(snapshot_rows=Counter({T: 7}), snapshot_done={T}), _pipeline("verify"))
    assert registry.get_sample_value("parity_backfill_snapshot_rows", {"table": T}) == 7
    assert registry.get_sample_value("parity_backfill_rows_applied_total", {"table": T}) in (None, 0)
