"""Stream checkpoints in the state store: per (stream, shard), never moving back, durable."""

from __future__ import annotations

from pathlib import Path

import pytest

from parity.adapters.state import StateStore
from parity.core.errors import StoreError

pytestmark = pytest.mark.unit

ARN = "arn:aws:dynamodb:us-east-1:111122223333:table/T/stream/2026-01-01T00:00:00.000"


def test_checkpoints_survive_a_reopen_and_never_move_back(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.db")
    store.commit_stream_positions(ARN, {"s1": "000000000000000000009", "s2": "000000000000000000003"}, 1.0)
    store.commit_stream_positions(ARN, {"s1": "000000000000000000010"}, 2.0)
    store.commit_stream_positions(ARN, {"s1": "000000000000000000002"}, 3.0)  # an older batch, late
    store.finish_stream_shard(ARN, "s2", 4.0)
    store.close()
    again = StateStore(tmp_path / "s.db")
    assert again.stream_checkpoints(ARN) == {"s1": ("000000000000000000010", False),
                                             "s2": ("000000000000000000003", True)}
    assert again.stream_checkpoints("another-stream") == {}
    again.close()


def test_sequence_numbers_compare_as_numbers(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.db")
    store.commit_stream_positions(ARN, {"s1": "9"}, 1.0)
    store.commit_stream_positions(ARN, {"s1": "10"}, 2.0)  # "10" < "9" as text
    assert store.stream_checkpoints(ARN) == {"s1": ("10", False)}
    store.close()


def test_a_shard_finished_without_any_record_committed(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.db")
    store.finish_stream_shard(ARN, "empty", 1.0)
    assert store.stream_checkpoints(ARN) == {"empty": (None, True)}
    store.close()


def test_a_sequence_number_that_is_not_digits_is_refused(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.db")
    with pytest.raises(StoreError, match="not digits"):
        store.commit_stream_positions(ARN, {"s1": "12a"}, 1.0)
    assert store.stream_checkpoints(ARN) == {}  # the transaction wrote nothing
    store.close()
