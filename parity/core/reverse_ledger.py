"""Which DynamoDB Stream records may be checkpointed, and which were already decided.

The stream's checkpoint is per shard: the sequence number after which reading resumes. A record
may be checkpointed only when it and every earlier record of its shard are decided (a check
waiting out its grace period holds its shard back, as a pending Kafka offset does forward), so a
restart re-reads every undecided record.

Delivery is at-least-once: a restart re-reads the records after the checkpoint, and some of them
may have been decided already (decided after the held-back one, or decided and persisted before
the checkpoint was written). Those positions are kept (`decided_above`), persisted in the same
transaction as the outcomes they produced, so a re-delivered record is recognised as a
`duplicate` instead of being counted twice.

Positions are (shard, int(sequence number)); pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from parity.core.streams import StreamRecord


@dataclass
class _Shard:
    held: dict[int, StreamRecord] = field(default_factory=dict)  # undecided records by sequence number
    decided: dict[int, StreamRecord] = field(default_factory=dict)  # decided, not yet checkpointed
    # Decided by an earlier run, not delivered again yet: never checkpointed from here, since the
    # records before them may still be undecided (they are re-read and held first).
    restored: set[int] = field(default_factory=set)
    checkpoint: int = -1  # highest sequence number checkpointed (or known to be)


class StreamLedger:
    def __init__(self) -> None:
        self._shards: dict[str, _Shard] = {}

    def seen(self, record: StreamRecord) -> bool:
        """Already consumed in this run or decided before a restart: a re-delivery."""
        shard, seq = record.position
        st = self._shards.get(shard)
        return st is not None and (
            seq <= st.checkpoint or seq in st.held or seq in st.decided or seq in st.restored
        )

    def redelivered(self, record: StreamRecord) -> None:
        """A `seen` record came again: a position restored from an earlier run is now in stream
        order with the records around it, so it may be checkpointed once they are decided."""
        shard, seq = record.position
        st = self._shards.get(shard)
        if st is not None and seq in st.restored:
            st.restored.discard(seq)
            st.decided[seq] = record

    def hold(self, record: StreamRecord) -> None:
        shard, seq = record.position
        self._shards.setdefault(shard, _Shard()).held[seq] = record

    def decide(self, record: StreamRecord) -> None:
        shard, seq = record.position
        st = self._shards.setdefault(shard, _Shard())
        st.held.pop(seq, None)
        if seq > st.checkpoint:
            st.decided[seq] = record

    def committable(self) -> list[StreamRecord]:
        """Per shard, the newest decided record with nothing undecided before it."""
        out: list[StreamRecord] = []
        for st in self._shards.values():
            bound = min(st.held) if st.held else None
            ready = [s for s in st.decided if bound is None or s < bound]
            if ready:
                out.append(st.decided[max(ready)])
        return out

    def committed(self, records: Iterable[StreamRecord]) -> None:
        for record in records:
            shard, seq = record.position
            st = self._shards.setdefault(shard, _Shard())
            st.checkpoint = max(st.checkpoint, seq)
            st.decided = {s: r for s, r in st.decided.items() if s > st.checkpoint}
            st.restored = {s for s in st.restored if s > st.checkpoint}

    def forget_held(self) -> None:
        """After a failed batch: undecided records will be delivered again (rewound or restarted)."""
        for st in self._shards.values():
            st.held.clear()

    def pending(self) -> int:
        return sum(len(st.held) for st in self._shards.values())

    # -- persistence (a fact of the state store, written with the outcomes) ---------------------

    def decided_above(self) -> dict[str, dict[str, object]]:
        """{shard: {"checkpoint": seq, "decided": [seq, ...]}} as JSON-able text numbers."""
        return {
            shard: {
                "checkpoint": str(st.checkpoint),
                "decided": [str(s) for s in sorted({*st.decided, *st.restored})],
            }
            for shard, st in self._shards.items()
            if st.decided or st.restored or st.checkpoint >= 0
        }

    def restore(self, fact: Mapping[str, Mapping[str, object]]) -> None:
        """Positions decided by an earlier run (see `decided_above`); they count as re-deliveries."""
        for shard, entry in fact.items():
            st = self._shards.setdefault(shard, _Shard())
            st.checkpoint = max(st.checkpoint, int(str(entry.get("checkpoint", -1))))
            decided = entry.get("decided", [])
            for text in decided if isinstance(decided, list) else []:
                seq = int(str(text))
                if seq > st.checkpoint and seq not in st.decided:
                    st.restored.add(seq)
