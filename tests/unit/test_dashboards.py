"""Grafana dashboards and alert rules agree with the metric catalog."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from parity.metrics.catalog import catalog_specs
from parity.metrics.dashboards import (
    alert_expressions,
    dashboard_panels,
    exposed_names,
    metric_names,
    panel_queries,
    substitute,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
ALERTS = ROOT / "prometheus" / "alerts.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"
# Series Prometheus itself produces.
PROMETHEUS_NAMES = {"up"}


def test_both_dashboards_exist() -> None:
    titles = {json.loads(p.read_text())["title"] for p in DASHBOARDS}
    assert titles == {"parity overview", "parity reconciler"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_valid_json_with_unique_panel_ids(path: Path) -> None:
    doc = json.loads(path.read_text())
    assert doc["uid"] and doc["schemaVersion"] >= 36
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in doc["templating"]["list"]}
    assert {"table", "instance", "datasource"} <= variables


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_panel_has_a_promql_target(path: Path) -> None:
    panels = dashboard_panels(path)
    assert panels
    for panel in panels:
        exprs = [t.get("expr") for t in panel.get("targets", [])]
        assert exprs and all(exprs), panel["title"]
        assert all(t["datasource"]["type"] == "prometheus" for t in panel["targets"]), panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_metric_in_a_panel_is_in_the_catalog(path: Path) -> None:
    known = exposed_names(catalog_specs()) | PROMETHEUS_NAMES
    for query in panel_queries(path):
        names = metric_names(query)
        assert names, query
        assert names <= known, (query, names - known)


def test_every_metric_in_an_alert_is_in_the_catalog() -> None:
    known = exposed_names(catalog_specs()) | PROMETHEUS_NAMES
    exprs = alert_expressions(ALERTS)
    assert exprs
    for alert, expr in exprs.items():
        names = metric_names(expr)
        assert names and names <= known, (alert, names - known)


def test_panel_queries_have_no_template_variables_left() -> None:
    for path in DASHBOARDS:
        for query in panel_queries(path):
            assert "$" not in query, query
    assert substitute('x{table=~"$table"}[$__rate_interval]') == 'x{table=~".*"}[1m]'
    assert substitute('x{table=~"${table}"}', {"table": "public.a"}) == 'x{table=~"public.a"}'
    with pytest.raises(KeyError):
        substitute("x[$unknown]")


def test_the_dashboard_shows_the_1_percent_drift_threshold() -> None:
    overview = next(p for p in DASHBOARDS if p.name == "parity-overview.json")
    drift = next(p for p in dashboard_panels(overview) if "Drift ratio" in p["title"])
    steps = drift["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert 0.01 in [s["value"] for s in steps]
    assert "parity_drift_ratio" in drift["targets"][0]["expr"]
    # The alert's maths, next to the daemons' own windows.
    assert 'parity_verdicts_total{outcome="drift"' in drift["targets"][1]["expr"]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('sum by (table, le) (rate(parity_cdc_lag_seconds_bucket{table=~"a"}[5m]))', {"parity_cdc_lag_seconds_bucket"}),
        ("time() - parity_x > on (job) group_left () 2 * parity_y", {"parity_x", "parity_y"}),
        ('up{job="parity"} == 0 or absent(up{job="parity"})', {"up"}),
        ("a / ignoring(kind) b offset 5m", {"a", "b"}),
        ("histogram_quantile(0.99, x_bucket) > 1e3", {"x_bucket"}),
    ],
)
def test_metric_names_are_parsed_out_of_promql(expr: str, expected: set[str]) -> None:
    assert metric_names(expr) == expected


def test_every_alert_has_severity_summary_description_and_a_runbook_section() -> None:
    doc = yaml.safe_load(ALERTS.read_text())
    rules = [r for g in doc["groups"] for r in g["rules"] if "alert" in r]
    required = {
        "ParityDriftHigh",
        "ParityCdcLagHigh",
        "ParityErrorRateHigh",
        "ParityDeadLettersGrowing",
        "ParityRecheckBacklogGrowing",
        "ParityReconcileStale",
        "ParityDaemonDown",
        "ParityNotConsuming",
        "ParityDependencyDown",
    }
    assert required <= {r["alert"] for r in rules}
    anchors = {
        re.sub(r"[^a-z0-9-]", "", h.strip().lower().replace(" ", "-"))
        for h in re.findall(r"^## (.+)$", RUNBOOK.read_text(), flags=re.MULTILINE)
    }
    base = runbook_base()
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        ann = rule["annotations"]
        assert ann["summary"] and ann["description"], rule["alert"]
        page, _, anchor = ann["runbook_url"].partition("#")
        assert page == base and anchor in anchors, rule["alert"]
        if "table" in metric_labels_of(rule["expr"]):
            assert "$labels.table" in ann["summary"] + ann["description"], rule["alert"]


def runbook_base() -> str:
    match = re.search(r"^# RUNBOOK_BASE: (\S+)$", ALERTS.read_text(), flags=re.MULTILINE)
    assert match, "alerts.yml documents its runbook base URL"
    return match.group(1)


def test_runbook_urls_are_full_urls_and_the_render_script_replaces_the_base(tmp_path: Path) -> None:
    import subprocess
    import sys

    base = runbook_base()
    assert re.fullmatch(r"https://[^/]+/\S+", base)
    rendered = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "render-alerts"), "--runbook-base", "https://git.example.org/p/runbook.md"],
        capture_output=True, text=True, check=True,
    ).stdout
    doc = yaml.safe_load(rendered)
    urls = [r["annotations"]["runbook_url"] for g in doc["groups"] for r in g["rules"] if "alert" in r]
    assert urls and all(u.startswith("https://git.example.org/p/runbook.md#") for u in urls)
    assert base not in rendered


def test_no_rule_names_a_scrape_job() -> None:
    for alert, expr in alert_expressions(ALERTS).items():
        assert not re.search(r"job\s*=", expr), alert


def metric_labels_of(expr: str) -> set[str]:
    labels: set[str] = set()
    by_name = {s.name: s for s in catalog_specs()}
    for name in metric_names(expr):
        base = re.sub(r"_(bucket|count|sum)$", "", name)
        spec = by_name.get(name) or by_name.get(base)
        if spec:
            labels |= set(spec.labels)
    return labels


def test_drift_alert_is_the_1_percent_for_5_minutes_headline() -> None:
    doc = yaml.safe_load(ALERTS.read_text())
    rule = next(r for g in doc["groups"] for r in g["rules"] if r.get("alert") == "ParityDriftHigh")
    expr = " ".join(rule["expr"].split())
    # Sum of drift over sum of final verdicts per table (every replica together), above 1%, with a
    # minimum volume of 100 verdicts in the window.
    assert 'sum by (table, direction) (increase(parity_verdicts_total{outcome="drift"}[10m]))' in expr
    assert "/ sum by (table, direction) (increase(parity_verdicts_total[10m])) ) > 0.01" in expr
    assert "and on (table, direction) sum by (table, direction) (increase(parity_verdicts_total[10m])) >= 100" in expr
    assert rule["for"] == "5m"
    assert rule["labels"]["severity"] == "critical"
