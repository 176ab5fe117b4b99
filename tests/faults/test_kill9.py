"""kill -9 of the daemon at random points while a workload runs: the drift set is exactly the
injected drift and every record is resolved and committed (at-least-once, nothing lost)."""

from __future__ import annotations

import os
import random
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from parity.workload import PaymentsApp
from tests.faults.harness import assert_accounted, settle_and_account
from tests.integration.verify_harness import start_daemon_process, wait_for

pytestmark = pytest.mark.faults

KILLS = 6


def test_six_kill_9s_at_random_points_lose_nothing_and_report_exactly_the_injected_drift(
    payments: Any, pg: Any, kafka: Any, dynamodb: Any, tmp_path: Path
) -> None:
    dep, bridge = payments.dep, payments.bridge
    mapping = dep.config.tables[0]
    rng = random.Random(int(os.environ.get("PARITY_FAULT_SEED", "20261122")))
    log = tmp_path / "daemon.log"
    proc = start_daemon_process(dep.config_path, log)
    kills: list[float] = []
    try:
        with pg.connect() as conn:
            app = PaymentsApp(conn, dynamodb.client(), mapping, lag_ms=500, seed=rng.randrange(1000))
            # The workload runs the whole time; the kills land wherever the daemon happens to be:
            # starting up, joining the group, mid-batch, holding pending re-checks, committing.
            work = threading.Thread(target=app.run, args=(600,), kwargs={"drift_every": 12, "rate": 15})
            work.start()
            started = time.monotonic()
            for i in range(KILLS):
                # Kill only after this incarnation has started (Python start-up alone takes seconds
                # on a busy machine), then at a random point of its group join, batches or re-checks.
                wait_for(lambda n=i: _starts(log) > n, 60, f"daemon incarnation {i + 1} to start")
                time.sleep(rng.uniform(0.5, 6.0))
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                kills.append(round(time.monotonic() - started, 1))
                proc = start_daemon_process(dep.config_path, log)
            work.join(120)
            assert not work.is_alive()
            app.finish()
        acc = settle_and_account(dep.config, kafka.bootstrap, bridge.topics, app)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    print(f"kill -9 at {kills} s; outcomes beyond records (replayed after a kill): {acc.outcomes - acc.records}")
    assert len(kills) == KILLS
    assert acc.drift_injected >= 40
    assert_accounted(acc, f"kill-9 x{KILLS} (verify)")


def _starts(log: Path) -> int:
    return sum(1 for line in log.read_text(errors="replace").splitlines() if re.search(r'"event":\s*"started"', line))
