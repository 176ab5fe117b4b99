"""A standalone reconcile's results through a real Pushgateway, scraped by a real Prometheus that
evaluates the shipped ParityReconcileStale rule and the reconciler dashboard's queries.

Both Debian packages (`prometheus-pushgateway`, `prometheus`) run on free loopback ports started
here. Prometheus scrapes the one Pushgateway twice: as documented (`honor_labels: true`, the
pushed `job` kept) and without honor_labels (the pushed job becomes `exported_job`), so the alert
is shown to work either way. The reconcile runs themselves are simulated through the catalog's
recording methods (what `Reconciler` calls); the publishing is the code `parity reconcile
--pushgateway` runs.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from parity.devstack.prereqs import program
from parity.devstack.process import ManagedProcess, free_port
from parity.devstack.prometheus import HttpService, PrometheusService
from parity.metrics.dashboards import panel_queries
from parity.reconcilers.publish import ReconcileResults, Target

pytestmark = pytest.mark.component

ROOT = Path(__file__).resolve().parents[2]
T = "public.ledger"
JOB = "nightly-ledger"


def start_pushgateway(state_dir: Path) -> HttpService:
    binary = program("prometheus-pushgateway", "prometheus-pushgateway")
    port = free_port()
    process = ManagedProcess(
        name="pushgateway", state_dir=state_dir, stop_signal=signal.SIGTERM,
        # Debian's build persists to /var/lib/prometheus by default: keep this one's data private.
        argv=[binary, f"--web.listen-address=127.0.0.1:{port}",
              f"--persistence.file={state_dir / 'pushgateway.data'}"],
    )
    service = HttpService(port=port, process=process)
    service.start()
    return service


def start_prometheus_on(state_dir: Path, pushgateway: str, rules: Path) -> PrometheusService:
    binary = program("prometheus", "prometheus")
    base = state_dir / "prometheus"
    base.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {"job_name": "pushgateway", "honor_labels": True, "static_configs": [{"targets": [pushgateway]}]},
            {"job_name": "pushgateway-plain", "static_configs": [{"targets": [pushgateway]}]},
        ],
    }
    (base / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    process = ManagedProcess(
        name="prometheus", state_dir=state_dir, stop_signal=signal.SIGTERM,
        argv=[binary, f"--config.file={base / 'prometheus.yml'}", f"--storage.tsdb.path={base / 'data'}",
              f"--web.listen-address=127.0.0.1:{port}"],
    )
    service = PrometheusService(port=port, process=process)
    service.start()
    return service


def stale_expression() -> str:
    doc = yaml.safe_load((ROOT / "prometheus" / "alerts.yml").read_text())
    return next(r["expr"] for g in doc["groups"] for r in g["rules"] if r.get("alert") == "ParityReconcileStale")


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[HttpService, PrometheusService]]:
    gateway = start_pushgateway(tmp_path)
    try:
        prometheus = start_prometheus_on(tmp_path, f"127.0.0.1:{gateway.port}", ROOT / "prometheus" / "alerts.yml")
        try:
            yield gateway, prometheus
        finally:
            prometheus.stop()
    finally:
        gateway.stop()


def run(target: Target, *, ok: bool, finished_at: float, drift: dict[str, int] | None = None) -> None:
    """One `parity reconcile --pushgateway` run: a fresh process, so a fresh registry."""
    results = ReconcileResults(expected_interval_s=600)
    results.metrics.reconcile_progressed(T, 0.5)
    results.metrics.reconcile_finished(T, ok=ok, duration_s=42.0, rows_compared=1000 if ok else 0,
                                       drift_by_kind=drift, now_unix=finished_at)
    results.publish(target, now_unix=finished_at)


def values(prometheus: PrometheusService, query: str) -> dict[str, float]:
    return {str(r["metric"].get("job")): float(r["value"][1]) for r in prometheus.query(query)}  # type: ignore[index,union-attr]


def test_pushed_results_feed_the_stale_alert_and_the_reconciler_dashboard(
    stack: tuple[HttpService, PrometheusService],
) -> None:
    gateway, prometheus = stack
    target = Target(pushgateway=gateway.url, job=JOB)
    now = time.time()
    # A success two hours ago (the interval is 10 minutes), then a failed run now.
    run(target, ok=True, finished_at=now - 7200, drift={"missing_in_target": 3})
    run(target, ok=False, finished_at=now)
    # Another schedule on the same Pushgateway, healthy: its own group, no clash with the first.
    other = ReconcileResults(expected_interval_s=3600)
    other.metrics.reconcile_finished("public.invoice", ok=True, duration_s=1.0, rows_compared=10, now_unix=now)
    other.publish(Target(pushgateway=gateway.url, job="hourly-invoice"), now_unix=now)

    last_success = f'parity_reconcile_last_success_timestamp_seconds{{table="{T}"}}'
    wait_for(lambda: len(prometheus.query(last_success)) == 2, 30, "both scrape jobs to see the pushed group")
    wait_for(lambda: len(prometheus.query("parity_reconcile_interval_seconds")) == 4, 30, "both pushed groups")
    # honor_labels keeps the push's job; without it the Pushgateway's job name is used.
    seen = {str(r["metric"]["job"]): r["metric"] for r in prometheus.query(last_success)}  # type: ignore[index]
    assert set(seen) == {JOB, "pushgateway-plain"}
    assert seen["pushgateway-plain"]["exported_job"] == JOB  # type: ignore[index]
    # The failed run kept the last success's time and its drift picture; the counters add up.
    before = pytest.approx(now - 7200)
    assert values(prometheus, last_success) == {JOB: before, "pushgateway-plain": before}
    runs = values(prometheus, f'sum by (job) (parity_reconcile_runs_total{{table="{T}"}})')
    assert runs == {JOB: 2.0, "pushgateway-plain": 2.0}
    assert values(prometheus, f'parity_reconcile_runs_total{{table="{T}",outcome="failed"}}')[JOB] == 1.0
    drift = f'parity_reconcile_last_run_drift_keys{{table="{T}",kind="missing_in_target"}}'
    assert values(prometheus, drift)[JOB] == 3.0
    assert values(prometheus, f'parity_reconcile_duration_seconds_count{{table="{T}"}}')[JOB] == 2.0

    # The shipped alert expression finds the stale table under both label layouts.
    stale = prometheus.query(stale_expression())
    assert {(str(r["metric"]["job"]), str(r["metric"]["table"])) for r in stale} == {  # type: ignore[index]
        (JOB, T), ("pushgateway-plain", T)
    }
    # ... and the rule itself evaluates cleanly and is pending (its `for` is 5 minutes).
    def pending() -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{prometheus.url}/api/v1/rules", timeout=5) as response:  # noqa: S310
            groups = json.loads(response.read())["data"]["groups"]
        rule = next(r for g in groups for r in g["rules"] if r["name"] == "ParityReconcileStale")
        assert rule["health"] == "ok", rule.get("lastError")
        return list(rule["alerts"])

    wait_for(lambda: len(pending()) == 2, 30, "ParityReconcileStale pending for the pushed job")
    assert {a["labels"]["table"] for a in pending()} == {T}

    # Every reconciler-dashboard query evaluates and returns data from the pushed series alone.
    dashboard = ROOT / "grafana" / "dashboards" / "parity-reconciler.json"
    for query in panel_queries(dashboard):
        if "rate(" in query or "increase(" in query:
            continue  # need two runs scraped apart in time: checked below after the next run
        assert prometheus.query(query), query

    # A successful run now: the table is fresh again and its drift picture is replaced.
    run(target, ok=True, finished_at=time.time(), drift={})
    wait_for(lambda: not prometheus.query(stale_expression()), 30, "the stale expression to clear")
    assert values(prometheus, drift)[JOB] == 0.0
    wait_for(lambda: values(prometheus, f'sum by (job) (parity_reconcile_runs_total{{table="{T}"}})').get(JOB) == 3.0,
             30, "three runs counted")
    rate_queries = [q for q in panel_queries(dashboard) if "rate(" in q or "increase(" in q]
    assert rate_queries
    for query in rate_queries:
        prometheus.query(query)  # valid PromQL against the pushed series (rejected queries raise)
    runs_panel = next(q for q in rate_queries if "parity_reconcile_runs_total" in q)
    wait_for(lambda: prometheus.query(runs_panel), 30, "the runs-by-outcome panel to show the pushed runs")
