"""Postgres restarted during a reconcile: the run fails cleanly or carries on, a resumed run
finishes, and its report is exactly the injected drift (the same as an undisturbed run's)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_reconcile import EXPECTED, RESUME_RCU, Deployment, drift_keys

pytestmark = pytest.mark.faults


def test_postgres_restart_mid_reconcile_resumes_to_the_correct_report(
    pg: Any, dynamodb: Any, tmp_path: Path
) -> None:
    d = Deployment(pg, dynamodb, tmp_path, 6000, segments=4, workers=2, page_limit=100, read_rate_limit=RESUME_RCU)
    try:
        d.inject()
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["report"] = d.reconciler().run()
            except Exception as exc:  # what a restart does to the run is the point of the test
                outcome["error"] = exc

        worker = threading.Thread(target=run)
        worker.start()
        time.sleep(float(os.environ.get("PARITY_FAULT_PG_AT", "0.5")))  # mid-run: while Postgres is read
        assert worker.is_alive(), "the reconcile ended before Postgres could be restarted"
        t = time.monotonic()
        pg.restart()
        restart_s = time.monotonic() - t
        worker.join(180)
        assert not worker.is_alive()
        first = "error" if "error" in outcome else "completed"
        report = outcome.get("report")
        if report is None:
            report = d.reconciler().run(resume=True)
        found = drift_keys(report, d.mapping.source)
        summary = report["tables"][d.mapping.source]
    finally:
        d.store.close()
        d.dynamodb.client().delete_table(TableName=d.target)
        with pg.connect() as conn:
            conn.execute(f"DROP SCHEMA {d.schema} CASCADE")
    print(
        f"Postgres restarted in {restart_s:.1f} s mid-reconcile; the run {first}"
        + (f" ({type(outcome['error']).__name__}: {str(outcome['error'])[:120]})" if "error" in outcome else "")
        + f"; rows compared {summary['rows_postgres']}, drift {summary['drift_counts']}"
    )
    assert found == EXPECTED
    assert summary["rows_postgres"] == 6000
