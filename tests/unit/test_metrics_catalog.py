"""The metric catalog: naming rules, bounded labels, and what each recording method exposes."""

from __future__ import annotations

import enum
import re

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from parity.metrics.catalog import ALLOWED_LABELS, EVENT_OUTCOMES, OPS, Metrics, catalog_specs

pytestmark = pytest.mark.unit

T = "public.subscriber"


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Metrics:
    return Metrics(registry, version="1.2.3", tables=[T], drift_window_s=60)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


# --- the catalog's rules ---------------------------------------------------------------------


def test_every_name_is_prefixed_unique_and_counters_end_in_total() -> None:
    specs = catalog_specs()
    names = [s.name for s in specs]
    assert len(names) == len(set(names))
    for s in specs:
        assert re.fullmatch(r"parity_[a-z][a-z0-9_]*", s.name), s.name
        assert s.name.endswith("_total") == (s.type == "counter"), s.name
        assert s.help, s.name


def test_units_are_base_units() -> None:
    for s in catalog_specs():
        assert not re.search(r"_(ms|milliseconds|minutes|hours|kb|mb|percent)(_|$)", s.name), s.name
    histograms = [s.name for s in catalog_specs() if s.type == "histogram"]
    assert histograms and all(n.endswith("_seconds") for n in histograms)


def test_labels_are_bounded() -> None:
    for s in catalog_specs():
        assert set(s.labels) <= ALLOWED_LABELS, (s.name, s.labels)
        assert not {"key", "value", "pk", "id"} & set(s.labels)


def test_exposition_contains_exactly_the_declared_families(registry: CollectorRegistry, metrics: Metrics) -> None:
    text = generate_latest(registry).decode()
    exposed = set(re.findall(r"^# TYPE (\S+) ", text, flags=re.MULTILINE))
    assert exposed == {s.name for s in metrics.specs()}
    assert "_created" not in text


def test_build_info_carries_the_version(registry: CollectorRegistry, metrics: Metrics) -> None:
    assert value(registry, "parity_build_info", version="1.2.3") == 1


def test_declared_tables_start_at_zero(registry: CollectorRegistry, metrics: Metrics) -> None:
    assert value(registry, "parity_verdicts_total", table=T, outcome="match", direction="forward") == 0
    assert value(registry, "parity_verdicts_total", table=T, outcome="drift", direction="forward") == 0
    assert value(registry, "parity_shadow_apply_total", table=T, outcome="failed") == 0
    assert value(registry, "parity_drift_ratio", table=T) == 0
    assert value(registry, "parity_cdc_lag_seconds_count", table=T) == 0


# --- streaming ----------------------------------------------------------------------------------


class _Op(enum.StrEnum):
    UPDATE = "u"


def test_event_outcomes_count_by_table_op_and_outcome(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.event(T, "c", "match", direction="forward")
    metrics.event(T, _Op.UPDATE, "pending", direction="forward")
    metrics.event(T, _Op.UPDATE, "pending", direction="forward")
    for op in OPS:
        for outcome in EVENT_OUTCOMES:
            metrics.event(T, op, outcome, direction="forward")
    assert value(registry, "parity_events_total", table=T, op="c", outcome="match", direction="forward") == 2
    assert value(registry, "parity_events_total", table=T, op="u", outcome="pending", direction="forward") == 3
    dead = value(registry, "parity_events_total", table=T, op="unknown", outcome="dead_letter", direction="forward")
    assert dead == 1


@pytest.mark.parametrize(("op", "outcome"), [("x", "match"), ("c", "maybe"), ("c", "MATCH")])
def test_unknown_label_values_are_refused(metrics: Metrics, op: str, outcome: str) -> None:
    with pytest.raises(ValueError):
        metrics.event(T, op, outcome, direction="forward")


@pytest.mark.parametrize("kind", ["", "Missing", "pk=42", "a" * 41, "value mismatch"])
def test_drift_kinds_that_look_like_data_are_refused(metrics: Metrics, kind: str) -> None:
    with pytest.raises(ValueError):
        metrics.verdict(T, now=0.0, drift_kind=kind, direction="forward")


def test_drift_kinds_may_be_enum_members(registry: CollectorRegistry, metrics: Metrics) -> None:
    class Kind(enum.Enum):
        MISSING = "missing_in_target"

    metrics.verdicts_batch(T, now=0.0, matched=1, drifted={Kind.MISSING: 1}, direction="forward")
    metrics.verdict(T, now=0.0, drift_kind=Kind.MISSING, direction="forward")
    metrics.reconcile_finished(T, ok=True, duration_s=1, rows_compared=1, drift_by_kind={Kind.MISSING: 4}, now_unix=0)
    assert value(registry, "parity_drift_total", table=T, kind="missing_in_target", direction="forward") == 2
    assert value(registry, "parity_reconcile_last_run_drift_keys", table=T, kind="missing_in_target") == 4


def test_verdicts_feed_counters_and_the_windowed_ratio(registry: CollectorRegistry, metrics: Metrics) -> None:
    drifted = {"missing_in_target": 2, "value_mismatch": 1}
    metrics.verdicts_batch(T, now=100.0, matched=97, drifted=drifted, direction="forward")
    assert value(registry, "parity_verdicts_total", table=T, outcome="match", direction="forward") == 97
    assert value(registry, "parity_verdicts_total", table=T, outcome="drift", direction="forward") == 3
    assert value(registry, "parity_drift_total", table=T, kind="missing_in_target", direction="forward") == 2
    assert value(registry, "parity_drift_ratio", table=T) == pytest.approx(0.03)
    assert value(registry, "parity_drift_window_verdicts", table=T) == 100
    ratio = metrics.verdict(T, now=130.0, drift_kind="value_mismatch", direction="forward")
    assert ratio == pytest.approx(4 / 101)
    # 60 s window: at t=161 only the verdict of t=130 is left, and it was drift.
    metrics.refresh_all_drift_ratios(now=161.0)
    assert value(registry, "parity_drift_ratio", table=T) == 1.0
    metrics.refresh_all_drift_ratios(now=200.0)
    assert value(registry, "parity_drift_ratio", table=T) == 0.0
    assert value(registry, "parity_drift_total", table=T, kind="value_mismatch", direction="forward") == 2
    assert value(registry, "parity_drift_window_seconds") == 60


def test_lag_histograms_use_seconds_and_clamp_clock_skew(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.observe_cdc_lag(T, 0.02)
    metrics.observe_cdc_lag(T, 90.0)
    metrics.observe_cdc_lag(T, -3.0)  # source clock ahead of ours
    assert value(registry, "parity_cdc_lag_seconds_count", table=T) == 3
    assert value(registry, "parity_cdc_lag_seconds_bucket", table=T, le="0.005") == 1
    assert value(registry, "parity_cdc_lag_seconds_bucket", table=T, le="60.0") == 2
    assert value(registry, "parity_cdc_lag_seconds_bucket", table=T, le="120.0") == 3
    assert value(registry, "parity_cdc_lag_seconds_sum", table=T) == pytest.approx(90.02)
    metrics.observe_verdict_latency(T, 1.5)
    assert value(registry, "parity_verdict_latency_seconds_bucket", table=T, le="2.5") == 1


def test_a_batch_of_lags_exposes_exactly_what_one_call_per_value_does() -> None:
    # The daemon observes a whole batch at once (one series lookup per table): every bucket, count
    # and sum must be those of one observe_* call per value, in the same order (sums bit for bit).
    tables = [T, "public.other"]
    lags = [(tables[i % 2], (i * 0.37) % 13 - 1.0) for i in range(400)]  # a few negative: clamped
    latencies = [(tables[i % 2], (i * 0.91) % 40) for i in range(400)]
    one_by_one, batched = CollectorRegistry(), CollectorRegistry()
    single = Metrics(one_by_one, tables=tables)
    for table, lag in lags:
        single.observe_cdc_lag(table, lag)
    for table, latency in latencies:
        single.observe_verdict_latency(table, latency)
    batch = Metrics(batched, tables=tables)
    batch.observe_cdc_lags(lags)
    batch.observe_verdict_latencies(latencies)

    def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in registry.collect()
            if family.name in ("parity_cdc_lag_seconds", "parity_verdict_latency_seconds")
            for s in family.samples
        }

    expected = samples(one_by_one)
    assert expected[("parity_cdc_lag_seconds_count", (("table", T),))] == 200
    assert expected[("parity_verdict_latency_seconds_count", (("table", "public.other"),))] == 200
    assert samples(batched) == expected


def test_consumer_lag_per_partition_and_forgotten_on_revocation(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.set_consumer_lag("pg.public.subscriber", 0, 120)
    metrics.set_consumer_lag("pg.public.subscriber", 1, -5)
    assert value(registry, "parity_kafka_consumer_lag_messages", topic="pg.public.subscriber", partition="0") == 120
    assert value(registry, "parity_kafka_consumer_lag_messages", topic="pg.public.subscriber", partition="1") == 0
    metrics.forget_partition("pg.public.subscriber", 0)
    metrics.forget_partition("pg.public.subscriber", 7)  # never assigned: no error
    assert value(registry, "parity_kafka_consumer_lag_messages", topic="pg.public.subscriber", partition="0") is None


def test_dead_letters_by_reason(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.dead_letter(T, "decode")
    assert value(registry, "parity_dead_letters_total", table=T, reason="decode") == 1
    with pytest.raises(ValueError):
        metrics.dead_letter(T, "because")


# --- DynamoDB, recheck store, shadow mode --------------------------------------------------------


def test_dynamodb_latency_errors_and_throttles(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.dynamo_request("BillingSystem", "BatchGetItem", 0.004)
    metrics.dynamo_request("BillingSystem", "BatchGetItem", 2.0, error_kind="throttled", error_outcome="retried")
    metrics.dynamo_request("BillingSystem", "BatchGetItem", 2.0, error_kind="throttled")
    metrics.dynamo_throttled("BillingSystem", "BatchGetItem", 3)
    labels = {"dynamodb_table": "BillingSystem", "operation": "BatchGetItem"}
    assert registry.get_sample_value("parity_dynamodb_request_duration_seconds_count", labels) == 3
    assert registry.get_sample_value("parity_dynamodb_request_duration_seconds_bucket", {**labels, "le": "0.005"}) == 1
    errors = "parity_dynamodb_errors_total"
    assert registry.get_sample_value(errors, {**labels, "kind": "throttled", "outcome": "retried"}) == 1
    assert registry.get_sample_value(errors, {**labels, "kind": "throttled", "outcome": "failed"}) == 1
    assert registry.get_sample_value("parity_dynamodb_throttles_total", labels) == 3
    with pytest.raises(ValueError):
        metrics.dynamo_request("BillingSystem", "GetItems", 0.1)
    with pytest.raises(ValueError):
        metrics.dynamo_request("BillingSystem", "GetItem", 0.1, error_kind="server", error_outcome="maybe")


def test_conditional_check_failures_are_expected_not_failed(registry: CollectorRegistry, metrics: Metrics) -> None:
    # Shadow mode's conditional writes refuse stale events by design: the error-rate alert
    # (outcome="failed") must not count them.
    metrics.dynamo_request("Orders", "PutItem", 0.01, error_kind="conditional_check_failed")
    labels = {"dynamodb_table": "Orders", "operation": "PutItem", "kind": "conditional_check_failed"}
    assert registry.get_sample_value("parity_dynamodb_errors_total", {**labels, "outcome": "expected"}) == 1
    assert registry.get_sample_value("parity_dynamodb_errors_total", {**labels, "outcome": "failed"}) is None


def test_table_always_means_the_source_table() -> None:
    # One vocabulary: DynamoDB metrics name the DynamoDB table `dynamodb_table`, never `table`.
    for s in catalog_specs():
        if s.name.startswith("parity_dynamodb_"):
            assert "dynamodb_table" in s.labels and "table" not in s.labels, s.name
        else:
            assert "dynamodb_table" not in s.labels, s.name


def test_dependency_reachability_and_last_batch(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.set_dependency_up("kafka", False)
    metrics.set_dependency_up("postgres", True)
    assert value(registry, "parity_dependency_up", dependency="kafka") == 0
    assert value(registry, "parity_dependency_up", dependency="postgres") == 1
    with pytest.raises(ValueError):
        metrics.set_dependency_up("redis", True)
    metrics.batch_processed(1_700_000_000.0)
    assert value(registry, "parity_last_batch_timestamp_seconds") == 1_700_000_000.0


def test_runtime_collectors_export_process_and_python_metrics() -> None:
    from parity.metrics.catalog import register_runtime_collectors

    registry = CollectorRegistry()
    register_runtime_collectors(registry)
    text = generate_latest(registry).decode()
    assert "process_resident_memory_bytes" in text
    assert "python_info{" in text
    assert "python_gc_collections_total" in text


def test_recheck_backlog_age_is_zero_when_empty(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.set_recheck_backlog(T, pending=12, oldest_age_s=42.0)
    assert value(registry, "parity_recheck_pending_keys", table=T) == 12
    assert value(registry, "parity_recheck_oldest_pending_age_seconds", table=T) == 42
    metrics.set_recheck_backlog(T, pending=0, oldest_age_s=42.0)
    assert value(registry, "parity_recheck_oldest_pending_age_seconds", table=T) == 0


def test_shadow_outcomes_and_backfill_progress(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.shadow_applied(T, "applied", 10)
    metrics.shadow_applied(T, "stale_skipped")
    with pytest.raises(ValueError):
        metrics.shadow_applied(T, "ignored")
    assert value(registry, "parity_shadow_apply_total", table=T, outcome="applied") == 10
    assert value(registry, "parity_shadow_apply_total", table=T, outcome="stale_skipped") == 1
    assert value(registry, "parity_shadow_apply_total", table=T, outcome="failed") == 0
    metrics.backfill_progress(T, rows_applied=500)
    assert value(registry, "parity_backfill_snapshot_rows", table=T) is None  # size not known yet
    assert value(registry, "parity_backfill_snapshot_done", table=T) == 0
    metrics.backfill_progress(T, rows_applied=500, snapshot_rows=1000, done=True)
    assert value(registry, "parity_backfill_rows_applied_total", table=T) == 1000
    assert value(registry, "parity_backfill_snapshot_rows", table=T) == 1000
    assert value(registry, "parity_backfill_snapshot_done", table=T) == 1
    metrics.backfill_progress(T, rows_applied=0)  # a later batch does not undo "done"
    assert value(registry, "parity_backfill_snapshot_done", table=T) == 1


# --- reconciler ---------------------------------------------------------------------------------------


def test_reconcile_scheduling_starts_the_staleness_clock_once(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.reconcile_scheduled(3600, [T], now_unix=1_000.0)
    assert value(registry, "parity_reconcile_interval_seconds") == 3600
    assert value(registry, "parity_reconcile_last_success_timestamp_seconds", table=T) == 1_000
    metrics.reconcile_finished(T, ok=True, duration_s=10, rows_compared=5000, now_unix=2_000.0)
    metrics.reconcile_scheduled(3600, [T], now_unix=3_000.0)  # a reschedule keeps the real success
    assert value(registry, "parity_reconcile_last_success_timestamp_seconds", table=T) == 2_000


def test_reconcile_finished_records_the_run(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.reconcile_progressed(T, 0.25)
    assert value(registry, "parity_reconcile_progress_ratio", table=T) == 0.25
    metrics.reconcile_finished(
        T, ok=True, duration_s=20, rows_compared=10_000, drift_by_kind={"missing_in_target": 3}, now_unix=50.0
    )
    assert value(registry, "parity_reconcile_progress_ratio", table=T) == 1
    assert value(registry, "parity_reconcile_rows_per_second", table=T) == 500
    assert value(registry, "parity_reconcile_rows_compared_total", table=T) == 10_000
    assert value(registry, "parity_reconcile_duration_seconds_count", table=T) == 1
    assert value(registry, "parity_reconcile_last_run_drift_keys", table=T, kind="missing_in_target") == 3
    assert value(registry, "parity_reconcile_runs_total", table=T, outcome="success") == 1
    # The next run finds other drift: the last run's picture is replaced, the totals add up.
    metrics.reconcile_finished(
        T, ok=True, duration_s=20, rows_compared=10, drift_by_kind={"value_mismatch": 1}, now_unix=60.0
    )
    assert value(registry, "parity_reconcile_last_run_drift_keys", table=T, kind="missing_in_target") == 0
    assert value(registry, "parity_reconcile_last_run_drift_keys", table=T, kind="value_mismatch") == 1
    assert value(registry, "parity_reconcile_drift_total", table=T, kind="missing_in_target") == 3
    # A failed run does not move the last success.
    metrics.reconcile_finished(T, ok=False, duration_s=1, rows_compared=0, now_unix=70.0)
    assert value(registry, "parity_reconcile_last_success_timestamp_seconds", table=T) == 60
    assert value(registry, "parity_reconcile_runs_total", table=T, outcome="failed") == 1


def test_two_catalogs_on_separate_registries_do_not_collide() -> None:
    a, b = CollectorRegistry(), CollectorRegistry()
    Metrics(a).event(T, "c", "match", direction="forward")
    Metrics(b)
    labels = {"table": T, "op": "c", "outcome": "match", "direction": "forward"}
    assert a.get_sample_value("parity_events_total", labels) == 1
    assert b.get_sample_value("parity_events_total", labels) is None
