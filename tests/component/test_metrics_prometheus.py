"""A real Prometheus scrapes a real MetricsServer: every dashboard query and alert rule evaluates.

The e2e suite repeats this against the running daemon; here the registry is filled by hand, so a
broken query or a metric renamed in the catalog shows up without the whole stack.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from parity.core.config import HttpConfig
from parity.devstack.prometheus import PrometheusService, start_prometheus
from parity.metrics.catalog import Metrics
from parity.metrics.dashboards import panel_queries
from parity.metrics.server import Check, MetricsServer

pytestmark = pytest.mark.component

ROOT = Path(__file__).resolve().parents[2]
T = "public.subscriber"


@pytest.fixture
def live(prometheus_bin: str, tmp_path: Path) -> Iterator[tuple[Metrics, PrometheusService]]:
    registry = CollectorRegistry()
    metrics = Metrics(registry, version="0.1.0", tables=[T], drift_window_s=60)
    metrics.verdicts_batch(T, now=time.monotonic(), matched=95, drifted={"value_mismatch": 5}, direction="forward")
    metrics.observe_cdc_lag(T, 0.3)
    metrics.observe_verdict_latency(T, 0.05)
    metrics.set_consumer_lag("pg.public.subscriber", 0, 12)
    metrics.dynamo_request("BillingSystem", "BatchGetItem", 0.004)
    metrics.set_recheck_backlog(T, 3, 1.5)
    metrics.dead_letter(T, "decode")
    metrics.shadow_applied(T, "applied", 4)
    metrics.backfill_progress(T, 10, snapshot_rows=20)
    metrics.reconcile_scheduled(3600, [T], now_unix=time.time())
    metrics.reconcile_finished(
        T, ok=True, duration_s=2, rows_compared=100, drift_by_kind={"missing_in_target": 1}, now_unix=time.time()
    )
    with MetricsServer(registry, HttpConfig(port=0), readiness=lambda: [Check("test", True)]) as server:
        prometheus = start_prometheus(
            tmp_path, [f"127.0.0.1:{server.port}"], rule_files=[ROOT / "prometheus" / "alerts.yml"]
        )
        try:
            deadline = time.monotonic() + 30
            while not prometheus.query('up{job="parity"} == 1'):
                assert time.monotonic() < deadline, "Prometheus never scraped the metrics server"
                time.sleep(0.2)
            # The drift alert reads the counters' increase(): verdicts counted after the first scrape.
            metrics.verdicts_batch(
                T, now=time.monotonic(), matched=950, drifted={"value_mismatch": 50}, direction="forward"
            )
            yield metrics, prometheus
        finally:
            prometheus.stop()


def test_scraped_values_and_every_panel_query_evaluate(live: tuple[Metrics, PrometheusService]) -> None:
    _metrics, prometheus = live
    [drift] = prometheus.query(f'parity_drift_ratio{{table="{T}"}}')
    assert float(drift["value"][1]) == pytest.approx(0.05)  # type: ignore[index]
    # The alert's maths (sum over sum of the counters' increase) sees the same 5%.
    deadline = time.monotonic() + 30
    while True:
        fleet = prometheus.query(
            f'sum(increase(parity_verdicts_total{{table="{T}",outcome="drift"}}[10m]))'
            f' / sum(increase(parity_verdicts_total{{table="{T}"}}[10m]))'
        )
        if fleet and float(fleet[0]["value"][1]) > 0:  # type: ignore[index]
            break
        assert time.monotonic() < deadline, fleet
        time.sleep(0.5)
    assert float(fleet[0]["value"][1]) == pytest.approx(0.05, rel=0.01)  # type: ignore[index]
    queries = [q for path in sorted((ROOT / "grafana" / "dashboards").glob("*.json")) for q in panel_queries(path)]
    assert queries
    for query in queries:
        prometheus.query(query)  # a query Prometheus rejects raises HTTPError (400)
    # Gauges and counters the panels read directly have data.
    assert prometheus.query("max by (table) (parity_reconcile_last_run_drift_keys)")
    assert prometheus.query("sum by (topic) (parity_kafka_consumer_lag_messages)")


def test_alert_rules_load_and_evaluate_cleanly(live: tuple[Metrics, PrometheusService]) -> None:
    _metrics, prometheus = live
    deadline = time.monotonic() + 30
    while True:
        with urllib.request.urlopen(f"{prometheus.url}/api/v1/rules", timeout=5) as response:  # noqa: S310
            groups = json.loads(response.read())["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        if rules and all(r.get("health") == "ok" for r in rules):
            break
        assert time.monotonic() < deadline, [(r["name"], r.get("health"), r.get("lastError")) for r in rules]
        time.sleep(0.5)
    assert {r["name"] for r in rules} >= {"ParityDriftHigh", "ParityDaemonDown"}
    # 5% drift in 1000 verdicts is above the 1% threshold and the 100-verdict minimum: the headline
    # alert is at least pending.
    drift = next(r for r in rules if r["name"] == "ParityDriftHigh")
    deadline = time.monotonic() + 30
    while not drift["alerts"]:
        assert time.monotonic() < deadline, "ParityDriftHigh never became pending"
        time.sleep(0.5)
        with urllib.request.urlopen(f"{prometheus.url}/api/v1/rules", timeout=5) as response:  # noqa: S310
            groups = json.loads(response.read())["data"]["groups"]
        drift = next(r for g in groups for r in g["rules"] if r["name"] == "ParityDriftHigh")
    assert drift["alerts"][0]["labels"]["table"] == T
