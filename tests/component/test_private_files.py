"""File modes of what parity writes, on the real filesystem under a permissive umask (022).

The state store, drift log, reconcile reports, checkpoints and spill files hold customer keys and
non-redacted values: directories 0700, files 0600, whatever the process umask.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from parity.adapters.sinks import JsonLinesFile
from parity.adapters.state import StateStore
from parity.files import open_private
from parity.reconcilers.checkpoint import Checkpoint
from parity.reconcilers.reconcile import write_report
from parity.reconcilers.tally import SpillWriter

pytestmark = pytest.mark.component


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    old = os.umask(0o022)  # the common default: new files 0644, directories 0755
    try:
        yield
    finally:
        os.umask(old)


def test_a_new_state_store_is_a_private_directory_of_private_files(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    store = StateStore(state_dir / "state.sqlite")
    try:
        store.set_fact("probe", {"k": 1})  # a write, so the -wal file exists
        assert mode(state_dir) == 0o700
        files = sorted(p.name for p in state_dir.iterdir())
        assert {"state.sqlite", "state.sqlite-wal", "state.sqlite-shm"} <= set(files), files
        for name in files:
            assert mode(state_dir / name) == 0o600, name
    finally:
        store.close()


def test_an_existing_state_store_with_wide_modes_is_tightened(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    StateStore(state_dir / "state.sqlite").close()
    os.chmod(state_dir, 0o755)  # noqa: S103 - the wide mode under test
    for p in state_dir.iterdir():
        os.chmod(p, 0o644)
    store = StateStore(state_dir / "state.sqlite")
    try:
        store.set_fact("probe", {"k": 2})
        assert mode(state_dir) == 0o700
        for p in state_dir.iterdir():
            assert mode(p) == 0o600, p.name
    finally:
        store.close()


def test_the_drift_log_is_private_and_its_existing_parent_is_left_alone(tmp_path: Path) -> None:
    shared = tmp_path / "logs"
    shared.mkdir(mode=0o755)
    log = JsonLinesFile(shared / "drift.jsonl")
    log.write([b'{"key": "customer-1"}'])
    assert mode(shared / "drift.jsonl") == 0o600
    assert mode(shared) == 0o755  # not parity's directory: never changed
    os.chmod(shared / "drift.jsonl", 0o644)
    JsonLinesFile(shared / "drift.jsonl").write([b"{}"])
    assert mode(shared / "drift.jsonl") == 0o600
    fresh = JsonLinesFile(tmp_path / "new" / "drift.jsonl")
    fresh.write([b"{}"])
    assert mode(tmp_path / "new") == 0o700


def test_reports_checkpoints_and_spill_files_are_private(tmp_path: Path) -> None:
    report_dir = tmp_path / "reports"
    path = write_report({"run_id": "r1", "drift": []}, report_dir)
    assert mode(report_dir) == 0o700 and mode(path) == 0o600
    cp = Checkpoint.create(report_dir, "Payments", {"buckets": 4})
    cp.set(complete=False)
    assert mode(report_dir / "runs") == 0o700 and mode(cp.run_dir) == 0o700
    assert mode(cp.path) == 0o600
    writer = SpillWriter(cp.spill_path("ddb-0"))
    writer.write(0, 1, 2, b'{"id": 1}')
    writer.close()
    assert mode(cp.spill_path("ddb-0")) == 0o600
    resumed = SpillWriter(cp.spill_path("ddb-0"), offset=5)
    resumed.close()
    assert mode(cp.spill_path("ddb-0")) == 0o600


def test_a_symlinked_drift_log_does_not_change_its_target_s_mode(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.txt"
    target.write_text("not parity's")
    os.chmod(target, 0o644)
    link = tmp_path / "drift.jsonl"
    link.symlink_to(target)
    JsonLinesFile(link)
    assert mode(target) == 0o644


def test_an_in_memory_state_store_creates_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    StateStore(":memory:").close()
    assert list(tmp_path.iterdir()) == []


def test_a_device_as_the_drift_log_keeps_its_mode(tmp_path: Path) -> None:
    before = mode(Path("/dev/null"))
    JsonLinesFile("/dev/null")  # (a write would fail on fsync, as it always did: not a drift log to use)
    os.close(open_private("/dev/null", os.O_WRONLY))
    assert mode(Path("/dev/null")) == before


def test_opening_a_second_store_in_the_process_keeps_the_first_ones_commits_visible(tmp_path: Path) -> None:
    """Closing any descriptor of a file drops every POSIX lock the process holds on it. A second
    StateStore that opened and closed the database file itself (to create it 0600) dropped the
    daemon connection's locks; the next reader in another process (`parity status`) then took
    itself for the last connection, checkpointed and deleted the WAL, and the daemon's later
    commits went to the deleted file: invisible to every other process."""
    import subprocess
    import sys
    from decimal import Decimal

    from parity.adapters.state import DriftRecord, Resolution, StateStore

    path = tmp_path / "state" / "state.sqlite"
    script = (f"import sqlite3; db = sqlite3.connect({str(path)!r}); "
              "print(db.execute('SELECT count(*) FROM drift WHERE resolved_at IS NULL').fetchone()[0]); db.close()")

    def open_drift_seen_by_another_process() -> str:
        return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout

    daemon = StateStore(path)
    key = {"id": Decimal(7)}
    record = DriftRecord(source="public.t", target="T", key=key, kind="unexpected_in_target", diffs=[], lsn=5,
                         first_seen=1.0, confirmed_at=2.0, op="d")
    daemon.record_batch({("public.t", "drift"): 1}, [record])
    reader = StateStore(path)  # as the test harness and the demo do, in the daemon's process
    assert len(reader.drift_records()) == 1
    reader.close()
    assert open_drift_seen_by_another_process().strip() == "1"
    daemon.resolve_drift([Resolution(source="public.t", target="T", key=key, how="reread", at=3.0, lsn=5)])
    assert daemon.open_drift_counts() == {}
    assert open_drift_seen_by_another_process().strip() == "0"
    daemon.close()
