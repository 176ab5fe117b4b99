"""Reading the bridge's progress from its log: incrementally, across partial lines, from one run."""

from __future__ import annotations

from pathlib import Path

import pytest

from parity.devstack.debezium import BridgeLog, _last_run_offset

pytestmark = pytest.mark.unit


def test_progress_counts_forwarded_events_and_snapshot_lines_across_partial_writes(tmp_path: Path) -> None:
    path = tmp_path / "bridge.log"
    path.write_bytes(b"old run: Starting streaming\n")
    log = BridgeLog(path, offset=path.stat().st_size)
    with path.open("ab") as out:
        out.write(b"bridge: run begins (pid 7)\n10:00:00.000 INFO [x] Snapshot step 1 - Preparing\nbridge: forw")
    log.read()
    assert log.progress() == (0, 1) and not log.streaming
    with path.open("ab") as out:
        out.write(b"arded 2048 events\n10:00:10.000 INFO \t Exported 30000 records for table 'public.t'\n")
    log.read()
    assert log.progress() == (2048, 2)
    with path.open("ab") as out:
        out.write(b"bridge: forwarded 9000 events\n10:00:12.000 INFO Starting streaming\n")
    log.read()
    assert log.progress() == (9000, 2) and log.streaming


def test_an_adopted_bridge_is_read_from_its_last_run_only(tmp_path: Path) -> None:
    path = tmp_path / "bridge.log"
    first = b"bridge: run begins (pid 1)\nStarting streaming\nbridge: stopped\n"
    path.write_bytes(first + b"bridge: run begins (pid 2)\nSnapshot step 1\n")
    offset = _last_run_offset(path)
    assert offset == len(first)
    log = BridgeLog(path, offset)
    log.read()
    assert not log.streaming  # the first run's marker does not count for the second
    assert _last_run_offset(tmp_path / "absent.log") == 0
