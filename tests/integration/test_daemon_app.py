"""DaemonApp, the one composition of the daemon process, on the real stack: in a thread it serves
what `parity run` serves (readiness from the loop and the probe, the catalog with the runtime
collectors, parity_dependency_up, the periodic-reconcile interval, /status), and `stop()` ends the
loop, the schedule, the endpoints and the state store, once."""

from __future__ import annotations

import json
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from parity.daemon.app import DaemonApp, readiness
from tests.conftest import unique
from tests.integration.verify_harness import create_topics, deploy_example, wait_for

pytestmark = pytest.mark.integration


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (the app's own http URL)
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_the_app_in_a_thread_serves_what_parity_run_serves_and_stops_in_order(
    pg: Any, kafka: Any, dynamodb: Any, tmp_path: Path
) -> None:
    dep = deploy_example(
        "payments", pg=pg, dynamodb=dynamodb, kafka=kafka, suffix=unique("app"), state_dir=tmp_path / "state",
        overrides={"reconcile": {"interval_s": 3600}},
    )
    create_topics(kafka, dep.config.topics())
    source = dep.config.tables[0].source
    app = DaemonApp(dep.config, probe_interval_s=1.0)
    assert app.thread is None and app.server is None  # nothing runs before start()
    with app:
        assert app.server is not None and app.scheduler is not None and app.thread is not None
        url = app.server.url
        wait_for(app.ready, 60, "the daemon to join its group and the probe to reach everything")
        assert app.failed_checks() == []
        status, _ = _get(f"{url}/readyz")
        assert status == 200
        status, body = _get(f"{url}/metrics")
        assert status == 200
        text = body.decode()
        assert "process_cpu_seconds_total" in text  # register_runtime_collectors, as `parity run`
        for dependency in ("postgres", "kafka", "dynamodb"):
            assert app.metric("parity_dependency_up", dependency=dependency) == 1
        assert app.metric("parity_reconcile_interval_seconds") == 3600
        assert app.metric("parity_reconcile_progress_ratio", table=source) == 1
        assert app.metric("parity_drift_window_seconds") == dep.config.daemon.drift_window_s
        [build] = [s for f in app.registry.collect() for s in f.samples if s.name == "parity_build_info"]
        assert build.labels["version"] and build.value == 1
        status, body = _get(f"{url}/status")
        assert status == 200
        document = json.loads(body)
        assert document["ready"] is True
        assert document["assigned_partitions"] == sorted(
            f"{t}[{p}]" for t, p in app.daemon.source.assigned
        )
    assert not app.thread.is_alive()
    assert app.scheduler._thread is not None and not app.scheduler._thread.is_alive()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{url}/healthz", timeout=2)  # noqa: S310
    with pytest.raises(sqlite3.ProgrammingError):  # closed last, after everything that writes to it
        app.daemon.state.outcome_counts()
    app.stop()  # a second stop (an explicit one, then `with`) does nothing


def test_without_telemetry_the_loop_runs_unobserved(pg: Any, kafka: Any, dynamodb: Any, tmp_path: Path) -> None:
    dep = deploy_example(
        "payments", pg=pg, dynamodb=dynamodb, kafka=kafka, suffix=unique("app"), state_dir=tmp_path / "state"
    )
    create_topics(kafka, dep.config.topics())
    with DaemonApp(dep.config, telemetry=False, http=False, probe_interval_s=None) as app:
        wait_for(lambda: app.ready() and bool(app.daemon.source.assigned), 60, "the daemon to own partitions")
        # Readiness without a probe is the loop's own checks.
        assert [c.name for c in readiness(app.daemon, None)] == ["group_joined", "pipeline", "stores_writable"]
        assert app.server is None and app.scheduler is None
        assert app.metric("parity_kafka_assigned_partitions") == 0  # nothing fed the catalog
        assert app.metric("parity_dependency_up", dependency="kafka") == 0
