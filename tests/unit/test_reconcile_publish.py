"""Publishing a standalone reconcile's results: merged with the previous publication."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from parity.reconcilers.publish import ReconcileResults, Target

pytestmark = pytest.mark.unit

T = "public.ledger"


def samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(path.read_text())
        for s in f.samples
    }


def value(path: Path, name: str, **labels: str) -> float | None:
    return samples(path).get((name, tuple(sorted(labels.items()))))


def run(path: Path, *, ok: bool, at: float, drift: dict[str, int] | None = None) -> None:
    results = ReconcileResults(expected_interval_s=3600)
    results.metrics.reconcile_finished(T, ok=ok, duration_s=30.0, rows_compared=500 if ok else 0,
                                       drift_by_kind=drift, now_unix=at)
    results.publish(Target(textfile=path), now_unix=at)


def test_textfile_keeps_counters_monotonic_and_a_failure_keeps_the_last_success(tmp_path: Path) -> None:
    path = tmp_path / "parity_reconcile.prom"
    run(path, ok=True, at=1000.0, drift={"missing_in_target": 2, "value_mismatch": 1})
    assert value(path, "parity_reconcile_last_success_timestamp_seconds", table=T) == 1000.0
    assert value(path, "parity_reconcile_interval_seconds") == 3600
    run(path, ok=False, at=2000.0)
    assert value(path, "parity_reconcile_last_success_timestamp_seconds", table=T) == 1000.0
    assert value(path, "parity_reconcile_runs_total", table=T, outcome="success") == 1
    assert value(path, "parity_reconcile_runs_total", table=T, outcome="failed") == 1
    assert value(path, "parity_reconcile_last_run_drift_keys", table=T, kind="missing_in_target") == 2
    run(path, ok=True, at=3000.0, drift={"value_mismatch": 4})
    assert value(path, "parity_reconcile_last_success_timestamp_seconds", table=T) == 3000.0
    assert value(path, "parity_reconcile_runs_total", table=T, outcome="success") == 2
    assert value(path, "parity_reconcile_rows_compared_total", table=T) == 1000
    assert value(path, "parity_reconcile_drift_total", table=T, kind="value_mismatch") == 5
    assert value(path, "parity_reconcile_duration_seconds_count", table=T) == 3
    # The latest successful run's picture: a kind it no longer found is back to zero.
    assert value(path, "parity_reconcile_last_run_drift_keys", table=T, kind="missing_in_target") == 0
    assert value(path, "parity_reconcile_last_run_drift_keys", table=T, kind="value_mismatch") == 4


def test_a_job_that_never_succeeds_still_goes_stale(tmp_path: Path) -> None:
    # Its first publication's time stands in for the last success (as the daemon's scheduling time
    # does), so twice the interval later ParityReconcileStale fires.
    path = tmp_path / "parity_reconcile.prom"
    run(path, ok=False, at=500.0)
    run(path, ok=False, at=900.0)
    assert value(path, "parity_reconcile_last_success_timestamp_seconds", table=T) == 500.0


def test_only_reconcile_families_are_published(tmp_path: Path) -> None:
    # A pushed parity_build_info or partition count would look like a daemon to the alert rules.
    path = tmp_path / "parity_reconcile.prom"
    run(path, ok=True, at=1.0)
    names = {name for name, _labels in samples(path)}
    assert names and all(n.startswith("parity_reconcile_") for n in names)


def test_progress_without_a_terminal_is_json_log_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import json

    from parity.logging import configure_logging
    from parity.reconcilers import cli

    class NotATerminal(io.StringIO):
        def isatty(self) -> bool:
            return False

    monkeypatch.setattr(cli.sys, "stdout", NotATerminal())
    assert isinstance(cli._progress(as_json=False), cli.JsonProgress)

    out = io.StringIO()
    configure_logging("info", stream=out)
    now = [0.0]
    progress = cli.JsonProgress(every_s=10.0, clock=lambda: now[0])
    progress.begin("public.ledger", units=4, estimated_rows=1000)
    now[0] = 3.0
    progress.advance(100)  # within 10 s of the last line: quiet
    now[0] = 12.0
    progress.advance(400)  # a line
    now[0] = 12.5
    progress.unit_done()  # quiet
    now[0] = 30.0
    progress.end()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(x["event"], x["state"], x["rows_read"]) for x in lines] == [
        ("reconcile progress", "begin", 0),
        ("reconcile progress", "running", 500),
        ("reconcile progress", "end", 500),
    ]
    assert lines[-1]["target"] == "public.ledger" and lines[-1]["units_done"] == 1 and lines[-1]["units"] == 4
