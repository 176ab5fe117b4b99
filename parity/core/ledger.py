"""Which Kafka offsets may be committed.

A record's offset may be committed only when it and every earlier record of its partition are
resolved (verified, confirmed drift, dead letter, applied, ...). A record whose check is still
pending (waiting for its grace period) holds its partition's commit point back, so the Kafka log
itself keeps pending checks durable: after a crash or a rebalance the owner of the partition
re-reads from the oldest unresolved record and checks it again. Nothing is lost, and nothing
already confirmed is counted twice (confirmed drift is de-duplicated by key and LSN downstream).
"""

from __future__ import annotations

from dataclasses import dataclass, field

TopicPartition = tuple[str, int]


@dataclass
class _PartitionState:
    next_offset: int | None = None  # one past the last consumed offset
    pending: dict[int, int] = field(default_factory=dict)  # offset -> count of unresolved holds
    committed: int | None = None


class OffsetLedger:
    def __init__(self) -> None:
        self._parts: dict[TopicPartition, _PartitionState] = {}

    def consumed(self, tp: TopicPartition, offset: int) -> None:
        st = self._parts.setdefault(tp, _PartitionState())
        if st.next_offset is None or offset + 1 > st.next_offset:
            st.next_offset = offset + 1

    def hold(self, tp: TopicPartition, offset: int) -> None:
        """The record at `offset` is not resolved yet; keep the commit point at or before it."""
        st = self._parts.setdefault(tp, _PartitionState())
        st.pending[offset] = st.pending.get(offset, 0) + 1

    def release(self, tp: TopicPartition, offset: int) -> None:
        st = self._parts.get(tp)
        if st is None or offset not in st.pending:
            return
        st.pending[offset] -= 1
        if st.pending[offset] <= 0:
            del st.pending[offset]

    def committable(self) -> dict[TopicPartition, int]:
        """Offsets (next to read, Kafka's convention) that moved since the last `mark_committed`."""
        out: dict[TopicPartition, int] = {}
        for tp, st in self._parts.items():
            if st.next_offset is None:
                continue
            point = min(st.pending) if st.pending else st.next_offset
            if st.committed is None or point > st.committed:
                out[tp] = point
        return out

    def mark_committed(self, offsets: dict[TopicPartition, int]) -> None:
        for tp, off in offsets.items():
            st = self._parts.setdefault(tp, _PartitionState())
            st.committed = off if st.committed is None else max(st.committed, off)

    def forget(self, tps: list[TopicPartition]) -> None:
        """Partitions revoked in a rebalance: their pending records are re-read by the new owner."""
        for tp in tps:
            self._parts.pop(tp, None)

    def pending_count(self) -> int:
        return sum(sum(st.pending.values()) for st in self._parts.values())

    def partitions(self) -> list[TopicPartition]:
        return list(self._parts)
