"""Series the dashboards divide by or rate() over exist while the daemon is healthy.

The e2e observability test found two panels drawing nothing on a healthy daemon: the DynamoDB
error-rate and throttle panels (no error series until the first error) and the backfill progress
panel (the snapshot size was never published). These pin the fixes down.
"""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry

from parity.daemon.batch import BatchResult
from parity.daemon.telemetry import PrometheusTelemetry
from parity.metrics.catalog import DYNAMO_ERROR_KINDS, Metrics

pytestmark = pytest.mark.unit

T = "public.payments"


def test_first_dynamodb_request_creates_its_error_and_throttle_series_at_zero() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry, tables=[T])
    where = {"dynamodb_table": "Payments", "operation": "BatchGetItem"}
    assert registry.get_sample_value("parity_dynamodb_throttles_total", where) is None
    metrics.dynamo_request("Payments", "BatchGetItem", 0.004)
    for kind in DYNAMO_ERROR_KINDS:
        if kind == "conditional_check_failed":
            continue  # never a failure (outcome expected): the error-rate panel does not read it
        labels = {**where, "kind": kind, "outcome": "failed"}
        assert registry.get_sample_value("parity_dynamodb_errors_total", labels) == 0
    assert registry.get_sample_value("parity_dynamodb_throttles_total", where) == 0
    metrics.dynamo_request("Payments", "BatchGetItem", 0.2, "timeout")
    assert registry.get_sample_value("parity_dynamodb_errors_total",
                                     {**where, "kind": "timeout", "outcome": "failed"}) == 1
    assert registry.get_sample_value("parity_dynamodb_request_duration_seconds_count", where) == 2


def test_shadow_snapshot_size_is_published_when_the_snapshot_ends() -> None:
    registry = CollectorRegistry()
    telemetry = PrometheusTelemetry(Metrics(registry, tables=[T]), clock=lambda: 100.0)
    telemetry.snapshot_rows[T] = 10  # seeded by run_daemon from the state store (an earlier process)
    shadow = {T: "shadow"}
    telemetry.batch(BatchResult(snapshot_rows=Counter({T: 25}), snapshot_mode=shadow))
    assert registry.get_sample_value("parity_backfill_snapshot_rows", {"table": T}) is None  # not known yet
    assert registry.get_sample_value("parity_backfill_snapshot_done", {"table": T}) == 0
    telemetry.batch(BatchResult(snapshot_rows=Counter({T: 5}), snapshot_done={T}, snapshot_mode=shadow))
    assert registry.get_sample_value("parity_backfill_snapshot_rows", {"table": T}) == 40
    assert registry.get_sample_value("parity_backfill_rows_applied_total", {"table": T}) == 30
    assert registry.get_sample_value("parity_backfill_snapshot_done", {"table": T}) == 1


def test_verify_mode_snapshot_applies_nothing_but_is_counted() -> None:
    registry = CollectorRegistry()
    telemetry = PrometheusTelemetry(Metrics(registry, tables=[T]), clock=lambda: 100.0)
    telemetry.batch(BatchResult(snapshot_rows=Counter({T: 7}), snapshot_done={T}, snapshot_mode={T: "verify"}))
    assert registry.get_sample_value("parity_backfill_snapshot_rows", {"table": T}) == 7
    assert registry.get_sample_value("parity_backfill_rows_applied_total", {"table": T}) in (None, 0)


def test_last_batch_time_moves_only_when_records_were_processed() -> None:
    # ParityNotConsuming reads it: an empty poll (nothing fetched, Kafka down) is not progress.
    registry = CollectorRegistry()
    wall = iter([1000.0, 2000.0, 3000.0])
    telemetry = PrometheusTelemetry(Metrics(registry, tables=[T]), clock=lambda: 1.0, wall=lambda: next(wall))
    telemetry.batch(BatchResult(events=Counter({(T, "c", "match"): 3})))
    assert registry.get_sample_value("parity_last_batch_timestamp_seconds") == 1000.0
    telemetry.batch(BatchResult())
    assert registry.get_sample_value("parity_last_batch_timestamp_seconds") == 1000.0
    telemetry.batch(BatchResult(events=Counter({(T, "u", "match"): 1})))
    assert registry.get_sample_value("parity_last_batch_timestamp_seconds") == 2000.0


def test_dynamodb_errors_say_whether_a_retry_followed() -> None:
    registry = CollectorRegistry()
    telemetry = PrometheusTelemetry(Metrics(registry, tables=[T]))
    where = {"dynamodb_table": "Payments", "operation": "BatchGetItem"}
    # Throttled twice, then the retry succeeds: two retried errors, no failure.
    telemetry.dynamo_request("Payments", "BatchGetItem", 0.01, "ThrottlingException", last_attempt=False)
    telemetry.dynamo_request("Payments", "BatchGetItem", 0.01, "ThrottlingException", last_attempt=False)
    telemetry.dynamo_request("Payments", "BatchGetItem", 0.01, None, last_attempt=False)
    errors = "parity_dynamodb_errors_total"
    assert registry.get_sample_value(errors, {**where, "kind": "throttled", "outcome": "retried"}) == 2
    assert registry.get_sample_value(errors, {**where, "kind": "throttled", "outcome": "failed"}) == 0
    assert registry.get_sample_value("parity_dynamodb_throttles_total", where) == 2
    # The last attempt throttled too: that one failed.
    telemetry.dynamo_request("Payments", "BatchGetItem", 0.01, "ThrottlingException", last_attempt=True)
    assert registry.get_sample_value(errors, {**where, "kind": "throttled", "outcome": "failed"}) == 1
    # A validation error is never retried, whatever the attempt: failed.
    telemetry.dynamo_request("Payments", "BatchGetItem", 0.01, "ValidationException", last_attempt=False)
    assert registry.get_sample_value(errors, {**where, "kind": "client", "outcome": "failed"}) == 1
    # Shadow mode's conditional write refusing a stale event: expected.
    telemetry.dynamo_request("Payments", "PutItem", 0.01, "ConditionalCheckFailedException")
    assert registry.get_sample_value(
        errors, {"dynamodb_table": "Payments", "operation": "PutItem", "kind": "conditional_check_failed",
                 "outcome": "expected"}
    ) == 1


def test_reachability_probe_results_become_dependency_gauges() -> None:
    registry = CollectorRegistry()
    telemetry = PrometheusTelemetry(Metrics(registry, tables=[T]))
    telemetry.dependencies({"postgres": True, "kafka": False, "dynamodb": True})
    assert registry.get_sample_value("parity_dependency_up", {"dependency": "kafka"}) == 0
    assert registry.get_sample_value("parity_dependency_up", {"dependency": "postgres"}) == 1
    telemetry.dependencies({"postgres": True, "kafka": True, "dynamodb": True})
    assert registry.get_sample_value("parity_dependency_up", {"dependency": "kafka"}) == 1


def test_the_reachability_probe_reports_each_result(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import parity.doctor
    from parity.daemon.app import ReachabilityProbe

    results = [[("postgres", True, ""), ("dynamodb", True, ""), ("kafka", False, "refused")]]
    monkeypatch.setattr(parity.doctor, "reachability", lambda config, timeout_s: results[0])
    seen: list[dict[str, bool]] = []
    done = threading.Event()

    def on_result(reachable: dict[str, bool]) -> None:
        seen.append(reachable)
        done.set()

    probe = ReachabilityProbe(SimpleNamespace(), interval_s=60, on_result=on_result).start()  # type: ignore[arg-type]
    try:
        assert done.wait(10)
    finally:
        probe.stop()
    assert seen[0] == {"postgres": True, "dynamodb": True, "kafka": False}


def test_assigned_partitions_come_from_the_assignment_not_from_known_lag() -> None:
    # An idle partition has no fetched watermark, so no lag entry, but it is assigned: counting
    # lag entries made a healthy idle daemon report 0 partitions (and ParityNotConsuming fire).
    registry = CollectorRegistry()
    telemetry = PrometheusTelemetry(Metrics(registry, tables=[T]))
    telemetry.consumer_lag({})
    telemetry.assigned_partitions(4)
    assert registry.get_sample_value("parity_kafka_assigned_partitions") == 4
    telemetry.consumer_lag({("pg.public.payments", 0): 3})
    assert registry.get_sample_value("parity_kafka_assigned_partitions") == 4
