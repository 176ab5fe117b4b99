"""The reconcile on a real Dask cluster (`distributed.LocalCluster`, worker processes) against the real
Postgres and DynamoDB Local: the same drift as in one process, also when a worker is killed mid-run,
and a stopped run resumes without re-running its finished units."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from parity.cli import app
from parity.reconcilers.checkpoint import Checkpoint
from parity.reconcilers.cluster import ClusterReconciler
from tests.integration import test_reconcile
from tests.integration.reconcile_harness import write_config
from tests.integration.test_reconcile import EXPECTED, UNMAPPED_KEYS, Deployment, drift_keys

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.integration

ROWS = 3000
deploy = test_reconcile.deploy  # the fixture: tables under unique names, dropped afterwards


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None,
                                 silence_logs=logging.ERROR) as local,
        distributed.Client(local) as client,
    ):
        yield client


def same_findings(a: dict[str, Any], b: dict[str, Any], d: Deployment) -> None:
    source = d.mapping.source
    for field in ("rows_postgres", "items_dynamodb", "drift_counts", "drift"):
        assert a["tables"][source][field] == b["tables"][source][field], field
    unmapped_a, unmapped_b = a["targets"][d.target]["unmapped"], b["targets"][d.target]["unmapped"]
    assert unmapped_a["count"] == unmapped_b["count"]
    # Samples are kept in the order units finish, which differs between runs.
    assert sorted(k["PK"]["S"] for k in unmapped_a["sample"]) == sorted(k["PK"]["S"] for k in unmapped_b["sample"])


def test_a_cluster_reconcile_reports_exactly_the_drift_of_an_in_process_one(
    deploy: Callable[..., Deployment], cluster: Any
) -> None:
    d = deploy(rows=ROWS, segments=4, workers=3)
    d.inject()
    local = d.reconciler().run()
    assert drift_keys(local, d.mapping.source) == EXPECTED
    reconciler = ClusterReconciler(d.config, client=cluster, dynamo=d.store, dsn=d.pg.dsn)
    report = reconciler.run()
    assert drift_keys(report, d.mapping.source) == EXPECTED
    same_findings(report, local, d)
    assert report["targets"][d.target]["unmapped"]["count"] == len(UNMAPPED_KEYS)
    assert report["settings"]["cluster"]["workers"] == 2 and report["settings"]["cluster"]["read_budget"] is None
    # Both phases ran as tasks: 4 segments + 3 partitions, digests then drill-down, the drill-down
    # from the records the digest tasks left on their workers.
    assert sorted(reconciler.units_submitted) == sorted(
        f"{phase}:{u}" for phase in ("digest", "drill") for u in [*(f"ddb-{s}" for s in range(4)),
                                                                   *(f"pg-0-{p}" for p in range(3))])
    assert report["settings"]["cluster"]["drill_down_units_read_again"] == 0

    class LosesTheRecords(ClusterReconciler):
        """As if the workers holding the records had gone between the phases."""

        def _drill(self, group: Any, units: Any, run: str, mismatched: Any, buckets: int, kept: Any) -> Any:
            assert len(kept) == 7
            for place in kept.values():
                Path(place.path).unlink()
            return super()._drill(group, units, run, mismatched, buckets, kept)

    again = LosesTheRecords(d.config, client=cluster, dynamo=d.store, dsn=d.pg.dsn).run()
    same_findings(again, local, d)
    assert again["settings"]["cluster"]["drill_down_units_read_again"] == 7  # every unit read again instead
    assert not list(Path(d.config.reconcile.report_dir, "runs").glob("*/*.digest"))  # cleaned up when complete


def test_a_worker_killed_mid_run_does_not_change_the_result(
    deploy: Callable[..., Deployment], cluster: Any
) -> None:
    # Small pages under a global budget of 150 RCU/s: the Scan tasks run for seconds.
    d = deploy(rows=ROWS, segments=6, workers=2, page_limit=50, read_rate_limit=150)
    d.inject()
    reconciler = ClusterReconciler(d.config, client=cluster, dynamo=d.store, dsn=d.pg.dsn)
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["report"] = reconciler.run()
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    victim = None
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline and thread.is_alive():
        busy = {w: tasks for w, tasks in cluster.processing().items()
                if any(str(t).startswith("parity-digest-ddb") for t in tasks)}
        if busy:
            victim = next(iter(busy))
        else:
            time.sleep(0.05)
    assert victim is not None, "no scan task was seen running"
    pids = cluster.run(os.getpid)
    os.kill(pids[victim], signal.SIGKILL)
    thread.join(180)
    assert not thread.is_alive()
    assert "error" not in out, out.get("error")
    report = out["report"]
    assert drift_keys(report, d.mapping.source) == EXPECTED  # what the in-process run finds (test above)
    table = report["tables"][d.mapping.source]
    assert table["rows_postgres"] == ROWS and table["items_dynamodb"] == ROWS
    assert victim not in cluster.scheduler_info()["workers"]  # the killed process is gone (the nanny restarts one)
    # Every worker's Scan pages went through the one budget on the scheduler.
    assert reconciler.budget_stats["ceiling"] == 150 and reconciler.budget_stats["units_spent"] > 0


def test_a_stopped_cluster_run_resumes_with_only_its_unfinished_units(
    deploy: Callable[..., Deployment], cluster: Any, tmp_path: Path
) -> None:
    d = deploy(rows=ROWS, segments=4, workers=2, page_limit=50, read_rate_limit=150)
    d.inject()
    stop = threading.Event()

    class StopAfterFirstUnit:
        def begin(self, target: str, units: int, estimated_rows: int) -> None: ...
        def advance(self, rows: int) -> None: ...
        def end(self) -> None: ...

        def unit_done(self) -> None:
            stop.set()

    first = ClusterReconciler(d.config, client=cluster, dynamo=d.store, dsn=d.pg.dsn,
                              stop=stop, progress=StopAfterFirstUnit())
    with pytest.raises(Exception, match="resume it with --resume"):
        first.run()
    finished = [u for u, v in Checkpoint.latest_incomplete(Path(d.config.reconcile.report_dir), d.target)
                .data["units"].items() if v.get("done")]
    assert finished
    # The resumed run through the CLI, as a CronJob runs it: only the unfinished units are submitted.
    config_path = write_config(d.raw, tmp_path / "parity.yaml")
    with distributed.get_task_stream(client=cluster) as stream:
        result = CliRunner().invoke(app, ["reconcile", "--config", str(config_path), "--once", "--resume", "--json",
                                          "--cluster", cluster.scheduler.address])
    assert result.exit_code == 1, result.output  # drift found
    report = orjson.loads(result.stdout)
    prefix = "parity-digest-"
    ran = {str(t["key"])[len(prefix):].rsplit("-", 1)[0] for t in stream.data if str(t["key"]).startswith(prefix)}
    assert ran and not ran & set(finished), (ran, finished)
    assert drift_keys(report, d.mapping.source) == EXPECTED
    table = report["tables"][d.mapping.source]
    assert table["rows_postgres"] == ROWS and table["items_dynamodb"] == ROWS
    assert report["targets"][d.target]["unmapped"]["count"] == len(UNMAPPED_KEYS)
