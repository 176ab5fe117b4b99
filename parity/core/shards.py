"""Shard lineage of a DynamoDB Stream: which shards may be read now, and from where.

A stream is a tree of shards. A shard is open (no EndingSequenceNumber) or closed; when DynamoDB
splits or rotates a shard it closes it and opens children naming it as ParentShardId. Records of
one key move from the parent to a child, so a child is read only once its parents are *finished*:
read to their end (GetRecords returned no NextShardIterator) and every record of them committed.
A parent DynamoDB no longer describes (past the 24 h retention) cannot be read any more and does
not hold its children back; nor does one whose data was trimmed (it is counted, not waited for).

Pure: the adapter (parity.adapters.streams) describes, reads and stores; this decides.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from parity.core.streams import StreamRecord

StartPosition = Literal["TRIM_HORIZON", "LATEST"]


@dataclass(frozen=True, slots=True)
class Shard:
    shard_id: str
    parent_id: str | None
    starting_sequence: str
    ending_sequence: str | None  # None while the shard is open

    @property
    def closed(self) -> bool:
        return self.ending_sequence is not None


def shard_from_description(description: Mapping[str, Any]) -> Shard:
    """A shard from one element of DescribeStream's `Shards`; ValueError naming what is missing."""
    shard_id = description.get("ShardId")
    if not isinstance(shard_id, str) or not shard_id:
        raise ValueError(f"shard description without ShardId: {dict(description)!r}")
    seq_range = description.get("SequenceNumberRange") or {}
    starting = seq_range.get("StartingSequenceNumber")
    if not isinstance(starting, str) or not starting.isdigit():
        raise ValueError(f"shard {shard_id}: StartingSequenceNumber missing or not digits: {starting!r}")
    ending = seq_range.get("EndingSequenceNumber")
    if ending is not None and (not isinstance(ending, str) or not ending.isdigit()):
        raise ValueError(f"shard {shard_id}: EndingSequenceNumber not digits: {ending!r}")
    parent = description.get("ParentShardId") or None
    return Shard(shard_id, parent, starting, ending)


def readable_shards(shards: Sequence[Shard], finished: Collection[str]) -> list[Shard]:
    """The shards that may be read now: not finished, and every parent finished or no longer
    described (trimmed away). Oldest generations first, then by starting sequence number, so a
    reader with a limited share takes the shards that hold the others back first."""
    described = {s.shard_id for s in shards}
    out = [
        s
        for s in shards
        if s.shard_id not in finished
        and (s.parent_id is None or s.parent_id not in described or s.parent_id in finished)
    ]
    depth = _depths(shards)
    return sorted(out, key=lambda s: (depth[s.shard_id], int(s.starting_sequence), s.shard_id))


def _depths(shards: Sequence[Shard]) -> dict[str, int]:
    parents = {s.shard_id: s.parent_id for s in shards}
    depth: dict[str, int] = {}
    for shard in shards:
        seen: set[str] = set()
        node: str | None = shard.shard_id
        n = 0
        while node is not None and node in parents and node not in seen:  # a cycle would be DynamoDB's bug
            seen.add(node)
            node = parents[node]
            n += 1
        depth[shard.shard_id] = n
    return depth


def finished_by_checkpoint(shard: Shard, checkpoint: str | None) -> bool:
    """A closed shard whose last record is already committed: nothing is left to read in it."""
    if shard.ending_sequence is None or checkpoint is None:
        return False
    return int(checkpoint) >= int(shard.ending_sequence)


@dataclass(frozen=True, slots=True)
class IteratorStart:
    """How to open a shard iterator: GetShardIterator's ShardIteratorType and SequenceNumber."""

    kind: Literal["TRIM_HORIZON", "LATEST", "AFTER_SEQUENCE_NUMBER"]
    sequence: str | None = None


def iterator_start(
    shard: Shard, read_upto: str | None, checkpoint: str | None, start: StartPosition, fresh_stream: bool
) -> IteratorStart:
    """Where to resume a shard: after the last record handed out (an expired iterator), else after
    the committed checkpoint (a restart, a lease taken over), else at the start position. LATEST
    applies only to open shards of a stream nothing was ever committed from: a shard born later
    (a child, a rotation) is read from its beginning, or its first records would be skipped."""
    if read_upto is not None:
        return IteratorStart("AFTER_SEQUENCE_NUMBER", read_upto)
    if checkpoint is not None:
        return IteratorStart("AFTER_SEQUENCE_NUMBER", checkpoint)
    if start == "LATEST" and fresh_stream and not shard.closed:
        return IteratorStart("LATEST")
    return IteratorStart("TRIM_HORIZON")


def skipped_at_start(shards: Iterable[Shard], start: StartPosition, fresh_stream: bool) -> list[str]:
    """With LATEST on a fresh stream, the closed shards are history from before parity started:
    they are taken as finished without being read, so their open children become readable."""
    if start != "LATEST" or not fresh_stream:
        return []
    return [s.shard_id for s in shards if s.closed]


def higher(a: str | None, b: str | None) -> str | None:
    """The later of two sequence numbers (decimal strings, compared as integers)."""
    if a is None:
        return b
    if b is None:
        return a
    return a if int(a) >= int(b) else b


def highest_per_shard(records: Iterable[StreamRecord]) -> dict[str, str]:
    """Per shard, the highest sequence number among `records` (what a commit checkpoints)."""
    out: dict[str, str] = {}
    for record in records:
        out[record.shard_id] = higher(out.get(record.shard_id), record.sequence_number) or record.sequence_number
    return out


def unseen(records: Iterable[StreamRecord], committed: Mapping[str, str]) -> list[StreamRecord]:
    """The records after each shard's committed sequence number: what is left once the records a
    restart or a lease hand-over delivers again (at-least-once) are dropped by position."""
    return [r for r in records if r.shard_id not in committed or int(r.sequence_number) > int(committed[r.shard_id])]
