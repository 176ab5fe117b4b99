"""The drift sink's disk full: the daemon stops committing offsets and reports not ready rather
than dropping a drift record; once space is back it catches up and every drift is written once."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from parity.workload import PaymentsApp
from tests.faults.harness import (
    TelemetryDaemon,
    assert_accounted,
    committed_offsets,
    drift_log_lines,
    partition_ends,
    settle_and_account,
)
from tests.integration.payments_harness import FAST_GRACE, PaymentsStack
from tests.integration.verify_harness import wait_for

pytestmark = pytest.mark.faults


def test_drift_log_on_a_full_disk_stops_commits_and_readiness_until_space_is_back(
    pg: Any, kafka: Any, dynamodb: Any, bridge_factory: Any, tmp_path: Path
) -> None:
    log_dir = tmp_path / "drift"
    log_dir.mkdir()
    drift_log = log_dir / "drift.jsonl"
    # /dev/full: every write fails with ENOSPC, as on a full disk (root ignores permissions, so a
    # read-only directory would not stop a root test run; this does).
    drift_log.symlink_to("/dev/full")
    stack = PaymentsStack(
        pg, kafka, dynamodb, tmp_path, tag="fs", table_overrides=FAST_GRACE,
        overrides={"daemon": {"drift_log": str(drift_log)}},
    )
    dep, mapping = stack.dep, stack.mapping
    bridge = stack.start_cdc(bridge_factory)
    group = dep.config.kafka.group_id
    with pg.connect() as conn, TelemetryDaemon(dep.config) as runner:
        wait_for(runner.ready, 60, "the daemon to join its group")
        app = PaymentsApp(conn, dynamodb.client(), mapping, lag_ms=500, seed=33)
        app.run(150, drift_every=10, rate=60)
        # The first confirmed drift cannot be written: not ready, and the check names the store.
        wait_for(
            lambda: "stores_writable" in runner.failed_checks(), 60, "/readyz to turn false on the full disk"
        )
        assert "drift log" in (runner.daemon.health.last_error or "")
        ends = partition_ends(kafka.bootstrap, bridge.topics)
        frozen = committed_offsets(kafka.bootstrap, group, list(ends))
        # More changes arrive during the fault; none of their offsets may be committed.
        app.run(60, drift_every=10, rate=60)
        time.sleep(6)
        assert committed_offsets(kafka.bootstrap, group, list(ends)) == frozen
        assert not runner.ready()
        waiting = len(runner.daemon.state.unemitted())
        assert waiting >= 1  # confirmed drift waits in the state store's outbox, not dropped
        drift_log.unlink()  # space is back
        wait_for(runner.ready, 60, "/readyz to turn true once the disk has space")
        app.finish()
        acc = settle_and_account(dep.config, kafka.bootstrap, bridge.topics, app, daemon=runner.daemon)
        assert runner.daemon.state.unemitted() == []
    lines = drift_log_lines(drift_log)
    print(f"drift records waiting in the outbox during the fault: {waiting}; drift log lines after: {len(lines)}")
    assert_accounted(acc, "drift log disk full (/dev/full)")
    # Every drift reached the log exactly once.
    assert sorted((x["table"], str(sorted(x["key"].items()))) for x in lines) == sorted(
        {(x["table"], str(sorted(x["key"].items()))) for x in lines}
    )
    assert len(lines) == acc.drift_found
    assert os.path.isfile(drift_log)
