"""The reverse direction end to end on DynamoDB Local's Streams and the local Postgres: an
application that writes DynamoDB first and Postgres second. Late Postgres writes inside the grace
period are no drift; drift injected of every kind is found once, with its kind; a kill -9 of the
daemon mid-stream ends with the same findings and nothing counted twice."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from parity.daemon.app import DaemonApp
from tests.integration.reverse_harness import ReverseStack, wait_until
from tests.integration.verify_harness import start_daemon_process

pytestmark = pytest.mark.integration


def test_late_writes_are_no_drift_and_each_injected_kind_is_found_once(
    pg: Any, dynamodb: Any, tmp_path: Path
) -> None:
    stack = ReverseStack(pg, dynamodb, tmp_path)
    with DaemonApp(stack.config, probe_interval_s=None, reconcile_schedule=False, http=False) as app:
        assert app.daemon is None and app.reverse is not None  # every table reverse: no Kafka loop
        stack.workload()
        stack.join_late_writes()
        wait_until(lambda: stack.decided() >= stack.records and len(stack.drift()) >= 4, 90,
                   "every stream record decided")
        # The metrics are fed after the step's state-store write: wait for them too.
        wait_until(lambda: app.metric("parity_verdicts_total", direction="reverse", outcome="drift") >= 4, 30,
                   "the drift verdicts in the metrics")
        assert app.metric("parity_verdicts_total", direction="reverse", outcome="drift") == 4
        assert app.metric("parity_verdicts_total", direction="forward") == 0
    assert stack.drift() == sorted(stack.injected.items())
    outcomes = stack.outcomes()
    assert outcomes.get("drift") == 4 and stack.decided() == stack.records, outcomes
    assert not set(stack.late) & {pk for pk, _ in stack.drift()}
    lines = [json.loads(line) for line in (tmp_path / "drift.jsonl").read_text().splitlines()]
    assert sorted((d["key"]["PK"], d["kind"]) for d in lines) == sorted(stack.injected.items())


def test_kill_9_mid_stream_ends_with_the_same_findings(pg: Any, dynamodb: Any, tmp_path: Path) -> None:
    stack = ReverseStack(pg, dynamodb, tmp_path)
    log = tmp_path / "daemon.log"
    proc = start_daemon_process(stack.config_path, log)
    try:
        stack.workload()
        # Mid-stream: some records decided, the injected drift still inside its grace period.
        wait_until(lambda: stack.decided() >= 10, 60, "the first records to be decided")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        decided_before = stack.decided()
        proc = start_daemon_process(stack.config_path, log)
        stack.join_late_writes()
        wait_until(lambda: stack.decided() >= stack.records and len(stack.drift()) >= 4, 120,
                   "every stream record decided after the restart")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert decided_before < stack.records, "the kill did not land mid-stream"
    assert stack.drift() == sorted(stack.injected.items())
    # Re-delivered records were recognised: every record decided exactly once.
    assert stack.decided() == stack.records, (stack.outcomes(), log.read_text()[-3000:])
