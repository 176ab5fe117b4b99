"""The alert rules pass `promtool check rules` and their unit tests (`promtool test rules`)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from parity.metrics.dashboards import panel_queries

pytestmark = pytest.mark.component

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package `prometheus`; `make prereqs` installs it)"
)


def promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


@needs_promtool
def test_rules_are_valid() -> None:
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_every_alert_has_a_unit_test() -> None:
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    tests = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tested_firing = {
        case["alertname"] for t in tests["tests"] for case in t.get("alert_rule_test", []) if case.get("exp_alerts")
    }
    tested_quiet = {
        case["alertname"] for t in tests["tests"] for case in t.get("alert_rule_test", []) if not case.get("exp_alerts")
    }
    assert alerts == tested_firing
    assert alerts == tested_quiet


@needs_promtool
def test_example_scrape_config_is_valid() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


MUTATIONS = {
    # The drift rule without its minimum volume: one drift in fifty checks would page.
    "ParityDriftHigh-volume": ("ParityDriftHigh", ">= 100", ">= 1"),
    # An average of per-replica ratios instead of sum over sum.
    "ParityDriftHigh-average": (
        "ParityDriftHigh",
        """(
            sum by (table, direction) (increase(parity_verdicts_total{outcome="drift"}[10m]))
            / sum by (table, direction) (increase(parity_verdicts_total[10m]))
          )""",
        """avg by (table, direction) (
            sum by (job, instance, table, direction) (increase(parity_verdicts_total{outcome="drift"}[10m]))
            / sum by (job, instance, table, direction) (increase(parity_verdicts_total[10m]))
          )""",
    ),
    # Counting retried throttles and conditional-check failures as errors.
    "ParityErrorRateHigh-expected": (
        "ParityErrorRateHigh",
        'parity_dynamodb_errors_total{outcome="failed"}',
        "parity_dynamodb_errors_total",
    ),
    # Matching the interval on (job, instance): pushed reconcile results never match.
    "ParityReconcileStale-push": (
        "ParityReconcileStale",
        "ignoring (table) group_left",
        "on (job, instance) group_left",
    ),
    "ParityNotConsuming-threshold": (
        "ParityNotConsuming",
        "(time() - parity_last_batch_timestamp_seconds) > 300",
        "(time() - parity_last_batch_timestamp_seconds) > 900",
    ),
    "ParityDependencyDown-for": (
        "ParityDependencyDown",
        "parity_dependency_up == 0\n        for: 2m",
        "parity_dependency_up == 0\n        for: 1m",
    ),
}


@needs_promtool
@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_a_broken_rule_would_be_caught(tmp_path: Path, mutation: str) -> None:
    # The gate can fail: the same tests against a rule with the wrong maths fail, naming the alert.
    alert, old, new = MUTATIONS[mutation]
    alerts = (PROMETHEUS_DIR / "alerts.yml").read_text()
    assert alerts.count(old) == 1, old
    (tmp_path / "alerts.yml").write_text(alerts.replace(old, new))
    shutil.copy(PROMETHEUS_DIR / "alerts_test.yml", tmp_path / "alerts_test.yml")
    result = promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert result.returncode != 0, mutation
    # "alertname: X," for a wrong verdict, "rule: X," for a rule that failed to evaluate.
    assert re.search(rf"(alertname|rule): {alert},", result.stdout + result.stderr), result.stdout


@needs_promtool
def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    # promtool parses each expression of a rule file: the panel queries, as recording rules.
    dashboards = sorted((PROMETHEUS_DIR.parent / "grafana" / "dashboards").glob("*.json"))
    queries = [q for path in dashboards for q in panel_queries(path)]
    assert queries
    rules = {
        "groups": [{"name": "panels", "rules": [{"record": f"panel:q{i}", "expr": q} for i, q in enumerate(queries)]}]
    }
    (tmp_path / "panels.yml").write_text(yaml.safe_dump(rules))
    result = promtool("check", "rules", "panels.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(queries)} rules found" in result.stdout
