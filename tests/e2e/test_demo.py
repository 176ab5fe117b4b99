"""`parity demo --json` end to end on the real local stack (Postgres, tansu, Debezium, DynamoDB Local):
exactly the injected drift is reported, nothing when nothing is injected, and nothing keeps running."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from parity.devstack.stack import Stack
from parity.workload import DRIFT_KINDS

pytestmark = pytest.mark.e2e

# A grace period well above the lag: on a shared, overloaded machine a dual write can land seconds
# after its scheduled time, and a write later than the grace period is drift by definition.
SMALL = ["--rows", "100", "--duration", "10", "--lag-ms", "800", "--grace", "12", "--no-prometheus"]


@pytest.fixture
def state_dir() -> Iterator[Path]:
    # World-searchable parents: the private Postgres runs as the `postgres` OS user under root.
    base = Path(tempfile.mkdtemp(prefix="parity-demo-"))
    base.chmod(0o755)
    yield base / "demo"
    Stack(base / "demo").down()  # a no-op when the demo cleaned up, as it should
    shutil.rmtree(base, ignore_errors=True)


def run_demo(state_dir: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    proc = subprocess.run(
        [sys.executable, "-m", "parity.cli", "demo", "--json", "--state-dir", str(state_dir), *SMALL, *args],
        capture_output=True, text=True, timeout=600, check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"stdout must be one JSON object:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.returncode, json.loads(lines[0]), proc.stderr


def assert_stopped(state_dir: Path) -> None:
    running = {name: p for name, p in Stack(state_dir).status().items() if p["running"]}
    assert running == {}


def test_demo_reports_exactly_the_injected_drift(state_dir: Path) -> None:
    code, result, stderr = run_demo(state_dir, "--drift-rate", "0.05")

    assert result["reconcile"]["status"] == "ok", result["reconcile"]
    assert result["exact"] is True, {k: result[k] for k in ("missed_keys", "false_positive_keys", "notes")}
    assert code == 0, stderr[-2000:]
    for kind in DRIFT_KINDS:
        assert result["injected"][kind] >= 1, kind  # every kind was injected at least once
        assert result["injected"][kind] == result["detected"][kind] + result["missed"][kind]
        assert result["missed"][kind] == 0
    assert not any(result["false_positives"].values())
    # Per-table cells add up to the totals.
    for key in ("injected", "detected"):
        assert sum(c[key] for kinds in result["tables"].values() for c in kinds.values()) == sum(
            result[key].values())
    # The streaming verifier found the payments drift; billing (shadow mode) only the reconcile can.
    # (A stale overwrite landing right after the verifier's read is for the reconcile alone to see.)
    cells = result["tables"]["public.payments"]
    payments = sum(c["injected"] for c in cells.values())
    assert payments == result["workload"]["injected_payments"]
    stream = result["stream"]["drift"]
    assert payments - cells["stale_in_target"]["injected"] <= stream <= payments
    assert result["detection_latency"]["stream"]["count"] == stream
    billing = result["workload"]["injected_billing"]
    assert billing >= 1
    assert result["reconcile"]["drift_total"] == payments + billing
    assert_accounted(result)
    # The HTML report stands alone: inline SVG charts, no script, nothing fetched.
    html = Path(result["report_html"]).read_text()
    assert html.count("<svg") >= 3
    assert "<script" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", html)
    assert_stopped(state_dir)


def test_demo_without_drift_reports_none(state_dir: Path) -> None:
    code, result, stderr = run_demo(state_dir, "--drift-rate", "0")

    assert result["exact"] is True, {k: result[k] for k in ("false_positive_keys", "notes", "workload")}
    assert code == 0, stderr[-2000:]
    for key in ("injected", "detected", "missed", "false_positives"):
        assert not any(result[key].values()), key
    assert result["stream"]["drift"] == 0
    assert result["reconcile"]["status"] == "ok"
    assert result["reconcile"]["drift_total"] == 0
    outcomes = result["stream"]["outcomes"]["public.payments"]
    assert outcomes["match"] >= 100  # the seeded rows were verified, and the workload's changes too
    assert_accounted(result)
    assert result["reconcile"]["coverage"]["not_compared_total"] == 0
    assert_stopped(state_dir)


def assert_accounted(result: dict[str, Any]) -> None:
    """Every event and every row ended in a named, counted outcome, against counts parity did not
    make (the broker's watermarks, count(*) in Postgres)."""
    acc = result["accounting"]
    assert acc["adds_up"] is True, acc
    assert acc["records_on_topics"] == acc["consumed"] > 0
    for source, t in acc["tables"].items():
        assert t["consumed"] == t["outcomes"] + t["pending_rechecks"], source
        assert t["pending_rechecks"] == 0, source
    cov = result["reconcile"]["coverage"]
    assert cov["adds_up"] is True, cov
    for source, t in cov["tables"].items():
        assert t["rows_in_postgres"] == t["rows_compared"] + t["rows_not_compared"] > 0, source
    assert result["accounted"] is True


def test_cutover_demo_scores_the_reverse_direction_and_stops_its_services(state_dir: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "parity.cli", "demo", "--phase", "cutover", "--json", "--state-dir", str(state_dir),
         "--duration", "6", "--drift-rate", "0.05"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"stdout must be one JSON object:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    result = json.loads(lines[0])
    assert result["phase"] == "cutover"
    assert result["exact"] is True and result["accounted"] is True, result
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert all(c["injected"] >= 1 for c in result["kinds"].values())  # every kind at least once
    assert result["late_postgres_writes"] >= 1 and result["late_reported"] == 0
    assert_stopped(state_dir.parent / "demo-cutover" / "services")
