"""Pieces of the cluster reconcile that need no cluster: a unit's digest survives the trip to the
client and to the run directory unchanged, and throttles reported by any worker cut the one
budget on the scheduler."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from parity.reconcilers import cluster_budget
from parity.reconcilers.checkpoint import Checkpoint
from parity.reconcilers.cluster import load_digest, save_digest
from parity.reconcilers.cluster_budget import ClusterReadBudget, ThrottleReporter
from parity.reconcilers.cluster_tasks import digest_of, tally_of
from parity.reconcilers.tally import SideTally, key_bytes, mismatched_buckets

pytestmark = pytest.mark.unit


def a_tally() -> SideTally:
    tally = SideTally(2, 64)
    for i in range(500):
        tally.add(i % 2, (i * 0x9E3779B97F4A7C15) % (1 << 64), (i * 7919) % (1 << 64))
    tally.add_unmapped(key_bytes({"PK": "OTHER#1"}))
    tally.other_tables = 3
    tally.not_compared[1].add("column_missing", {"id": 7})
    return tally


def test_a_units_digest_comes_back_from_the_run_directory_as_it_was(tmp_path: Path) -> None:
    tally = a_tally()
    cp = Checkpoint.create(tmp_path, "T", {"sources": ["a", "b"]})
    save_digest(cp, digest_of("ddb-3", tally, 501))
    assert (cp.run_dir / "ddb-3.digest").stat().st_mode & 0o077 == 0  # it holds sample keys
    loaded = load_digest(cp, "ddb-3")
    assert loaded is not None and loaded.rows == 501
    back = tally_of(loaded, 2, 64)
    assert [mismatched_buckets(tally, back, m) for m in range(2)] == [set(), set()]
    assert back.unmapped_sample == tally.unmapped_sample and back.other_tables == 3
    assert back.not_compared[1].to_json() == tally.not_compared[1].to_json()
    # Digests of several units add up to the digest of all of them.
    merged = SideTally(2, 64)
    merged.merge(tally_of(digest_of("a", tally, 0), 2, 64))
    merged.merge(tally_of(digest_of("b", tally, 0), 2, 64))
    double = SideTally(2, 64)
    double.merge(tally)
    double.merge(tally)
    assert merged.counts == double.counts and merged.totals == double.totals


def test_a_torn_digest_file_means_the_unit_runs_again(tmp_path: Path) -> None:
    cp = Checkpoint.create(tmp_path, "T", {})
    (cp.run_dir / "pg-0-1.digest").write_bytes(b'{"name": "pg-0-1", "ro')
    assert load_digest(cp, "pg-0-1") is None
    assert load_digest(cp, "pg-0-2") is None


def test_a_digest_of_another_bucket_count_is_refused() -> None:
    with pytest.raises(ValueError, match="64 buckets, the run has 128"):
        tally_of(digest_of("ddb-0", a_tally(), 0), 2, 128)


class SchedulerClient:
    """Runs the functions `Client.run_on_scheduler` would send, on one stand-in scheduler object."""

    def __init__(self) -> None:
        self.scheduler = type("Scheduler", (), {})()

    def run_on_scheduler(self, fn: Any, *args: Any) -> Any:
        return fn(*args, dask_scheduler=self.scheduler)


def test_throttles_reported_by_workers_slow_every_worker_down() -> None:
    client = SchedulerClient()
    client.run_on_scheduler(cluster_budget.open_budget, "run-1", 100.0)
    slept: list[float] = []
    workers = [ClusterReadBudget("run-1", client=lambda: client, sleep=slept.append) for _ in range(2)]
    for w in workers:
        w.acquire(100)  # the first second's burst, spent by the first worker
    assert len(slept) == 1 and slept[0] == pytest.approx(1.0, abs=0.05)  # the second waits a second
    reporter = ThrottleReporter(workers[0])
    reporter.dynamo_request("T", "Scan", 0.01, "ProvisionedThroughputExceededException", last_attempt=False)
    reporter.dynamo_request("T", "Scan", 0.01, "ValidationException")  # not a throttle
    reporter.dynamo_request("T", "Scan", 0.01, None)
    assert reporter.throttles == 1
    workers[1].acquire(50)  # at half the rate now, behind the debt
    assert slept[-1] > 1.0 + 50 / 100
    stats = client.run_on_scheduler(cluster_budget.close_budget, "run-1")
    assert stats["throttles"] == 1 and stats["cuts"] == 1 and stats["ceiling"] == 100
    assert stats["units_spent"] == 250
    assert client.run_on_scheduler(cluster_budget.reserve, "run-1", 10) == 0.0  # closed: no budget left
