"""Shard lineage (parity.core.shards) on shard descriptions as DescribeStream returns them.

DynamoDB Local never split or rotated a shard in our runs (see docs/reverse.md), so the shapes
below are written out in DescribeStream's wire form: a rotation (a closed parent and one open
child), a split (two children of one parent), three generations, a parent trimmed away past the
24 h retention, and closed shards whose records are all committed."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from parity.core.shards import (
    IteratorStart,
    Shard,
    finished_by_checkpoint,
    higher,
    highest_per_shard,
    iterator_start,
    readable_shards,
    shard_from_description,
    skipped_at_start,
    unseen,
)
from parity.core.streams import StreamRecord

pytestmark = pytest.mark.unit

ROOT = "shardId-00000001700000000000-aaaaaaaa"
LEFT = "shardId-00000001700014400000-bbbbbbbb"
RIGHT = "shardId-00000001700014400001-cccccccc"
GRANDCHILD = "shardId-00000001700028800000-dddddddd"
GONE = "shardId-00000001699900000000-eeeeeeee"  # a parent no longer described (past retention)

# Three generations: ROOT closed and split into LEFT (closed, rotated into GRANDCHILD) and RIGHT (open).
DESCRIBED: list[dict[str, Any]] = [
    {"ShardId": ROOT, "SequenceNumberRange": {"StartingSequenceNumber": "100000000000000000001",
                                              "EndingSequenceNumber": "100000000000000000950"}},
    {"ShardId": LEFT, "ParentShardId": ROOT,
     "SequenceNumberRange": {"StartingSequenceNumber": "200000000000000000001",
                             "EndingSequenceNumber": "200000000000000000400"}},
    {"ShardId": RIGHT, "ParentShardId": ROOT,
     "SequenceNumberRange": {"StartingSequenceNumber": "200000000000000000002"}},
    {"ShardId": GRANDCHILD, "ParentShardId": LEFT,
     "SequenceNumberRange": {"StartingSequenceNumber": "300000000000000000001"}},
]


def _shards(described: list[dict[str, Any]] = DESCRIBED) -> list[Shard]:
    return [shard_from_description(d) for d in described]


def _ids(shards: list[Shard]) -> list[str]:
    return [s.shard_id for s in shards]


def test_a_description_becomes_a_shard() -> None:
    root, left, right, _ = _shards()
    assert root == Shard(ROOT, None, "100000000000000000001", "100000000000000000950")
    assert root.closed and left.closed and not right.closed
    assert right.parent_id == ROOT and right.ending_sequence is None


@pytest.mark.parametrize("bad", [
    {"SequenceNumberRange": {"StartingSequenceNumber": "1"}},
    {"ShardId": "s", "SequenceNumberRange": {}},
    {"ShardId": "s", "SequenceNumberRange": {"StartingSequenceNumber": "1e5"}},
    {"ShardId": "s", "SequenceNumberRange": {"StartingSequenceNumber": "1", "EndingSequenceNumber": "x"}},
])
def test_a_malformed_description_is_refused_naming_what_is_wrong(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"ShardId|SequenceNumber"):
        shard_from_description(bad)


def test_only_the_root_is_readable_until_it_is_finished() -> None:
    assert _ids(readable_shards(_shards(), finished=set())) == [ROOT]


def test_a_split_makes_both_children_readable_once_the_parent_is_finished() -> None:
    assert _ids(readable_shards(_shards(), finished={ROOT})) == [LEFT, RIGHT]


def test_a_grandchild_waits_for_its_own_parent_not_for_its_uncle() -> None:
    assert _ids(readable_shards(_shards(), finished={ROOT, LEFT})) == [RIGHT, GRANDCHILD]
    assert _ids(readable_shards(_shards(), finished={ROOT, RIGHT})) == [LEFT]


def test_finished_shards_are_not_readable_again() -> None:
    assert readable_shards(_shards(), finished={ROOT, LEFT, RIGHT, GRANDCHILD}) == []


def test_a_parent_trimmed_away_does_not_hold_its_child_back() -> None:
    described = [{"ShardId": "child", "ParentShardId": GONE,
                  "SequenceNumberRange": {"StartingSequenceNumber": "5"}}]
    assert _ids(readable_shards(_shards(described), finished=set())) == ["child"]


def test_after_trimming_the_oldest_described_generation_goes_first() -> None:
    # ROOT is gone: LEFT and RIGHT have no described parent; GRANDCHILD still waits for LEFT.
    described = [d for d in DESCRIBED if d["ShardId"] != ROOT]
    assert _ids(readable_shards(_shards(described), finished=set())) == [LEFT, RIGHT]


def test_readable_shards_come_in_generation_then_sequence_order_whatever_the_described_order() -> None:
    shuffled = [DESCRIBED[3], DESCRIBED[2], DESCRIBED[1], DESCRIBED[0]]
    assert _ids(readable_shards(_shards(shuffled), finished={ROOT, LEFT})) == [RIGHT, GRANDCHILD]


def test_a_closed_shard_is_finished_by_a_checkpoint_at_its_end_only() -> None:
    root, _, right, _ = _shards()
    assert finished_by_checkpoint(root, "100000000000000000950")
    assert not finished_by_checkpoint(root, "100000000000000000949")
    assert not finished_by_checkpoint(root, None)
    assert not finished_by_checkpoint(right, "999999999999999999999")  # open: more may come


def test_sequence_numbers_compare_as_numbers_not_text() -> None:
    assert higher("9", "10") == "10"
    assert higher("000000000000000000010", "9") == "000000000000000000010"
    assert higher(None, "3") == "3" and higher("3", None) == "3"


def test_where_a_shard_resumes() -> None:
    root, _, right, _ = _shards()
    # an expired iterator: after the last record handed out, even past the checkpoint
    assert iterator_start(right, "25", "20", "TRIM_HORIZON", False) == IteratorStart("AFTER_SEQUENCE_NUMBER", "25")
    # a restart or a lease taken over: after the checkpoint
    assert iterator_start(right, None, "20", "LATEST", True) == IteratorStart("AFTER_SEQUENCE_NUMBER", "20")
    assert iterator_start(right, None, None, "TRIM_HORIZON", True) == IteratorStart("TRIM_HORIZON")
    assert iterator_start(right, None, None, "LATEST", True) == IteratorStart("LATEST")
    # LATEST never applies to a stream already read from, nor to a closed shard
    assert iterator_start(right, None, None, "LATEST", False) == IteratorStart("TRIM_HORIZON")
    assert iterator_start(root, None, None, "LATEST", True) == IteratorStart("TRIM_HORIZON")


def test_latest_on_a_fresh_stream_skips_the_closed_history() -> None:
    assert skipped_at_start(_shards(), "LATEST", True) == [ROOT, LEFT]
    assert skipped_at_start(_shards(), "LATEST", False) == []
    assert skipped_at_start(_shards(), "TRIM_HORIZON", True) == []


def _record(shard: str, seq: str) -> StreamRecord:
    return StreamRecord("T", shard, seq, "INSERT", {"PK": "a"}, {"PK": "a", "n": Decimal(1)}, None, 0.0)


def test_a_commit_takes_the_highest_sequence_number_per_shard() -> None:
    records = [_record(LEFT, "9"), _record(LEFT, "10"), _record(RIGHT, "7"), _record(LEFT, "8")]
    assert highest_per_shard(records) == {LEFT: "10", RIGHT: "7"}


def test_records_delivered_again_are_dropped_by_position() -> None:
    records = [_record(LEFT, "9"), _record(LEFT, "10"), _record(RIGHT, "7"), _record(GRANDCHILD, "1")]
    assert unseen(records, {LEFT: "9", RIGHT: "7"}) == [records[1], records[3]]
