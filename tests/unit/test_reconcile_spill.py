"""Spill files and checkpoints of the reconciler (local files only, no service)."""

from __future__ import annotations

from pathlib import Path

import pytest

from parity.reconcilers.checkpoint import Checkpoint
from parity.reconcilers.tally import UNMAPPED, SideTally, SpillWriter, read_spill, tally_spill

pytestmark = pytest.mark.component


def test_spill_records_round_trip_across_read_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import parity.reconcilers.tally as tally

    monkeypatch.setattr(tally, "_CHUNK", 37)  # records straddle chunk borders
    path = tmp_path / "u.spill"
    writer = SpillWriter(path)
    records = [(i % 3, (i * 2654435761) % (1 << 64), i << 40, f'{{"PK":{{"S":"k{i}"}}}}'.encode()) for i in range(200)]
    for m, fp, h, key in records:
        writer.write(m, fp, h, key)
    writer.close()
    assert list(read_spill(path)) == records


def test_resume_truncates_to_the_checkpointed_offset_and_ignores_a_torn_record(tmp_path: Path) -> None:
    path = tmp_path / "u.spill"
    writer = SpillWriter(path)
    writer.write(0, 11, 1, b"a")
    writer.write(UNMAPPED, 0, 0, b"u")
    offset = writer.flush()
    writer.write(0, 12, 2, b"lost after the checkpoint")
    writer.close()
    with open(path, "ab") as f:
        f.write(b"\x01\x02\x03")  # half a record: killed mid-write
    assert [r[1] for r in read_spill(path)] == [11, 0, 12]

    resumed = SpillWriter(path, offset=offset)
    resumed.write(0, 13, 3, b"c")
    resumed.close()
    assert [r[1] for r in read_spill(path)] == [11, 0, 13]
    t = SideTally(1, 4)
    assert tally_spill(path, t) == 3
    assert t.rows(0) == 2 and t.unmapped == 1 and t.unmapped_sample == [b"u"]


def test_only_the_newest_incomplete_run_is_resumable(tmp_path: Path) -> None:
    first = Checkpoint.create(tmp_path, "Accounts", {"sources": ["s.a"]})
    first.update("ddb-0", lek={"PK": {"S": "k"}}, offset=10, done=False)
    first.save()
    found = Checkpoint.latest_incomplete(tmp_path, "Accounts")
    assert found is not None and found.run_dir == first.run_dir
    assert found.unit("ddb-0") == {"lek": {"PK": {"S": "k"}}, "offset": 10, "done": False}
    first.set(complete=True)
    assert Checkpoint.latest_incomplete(tmp_path, "Accounts") is None
    assert Checkpoint.latest_incomplete(tmp_path, "Other") is None
