"""The newest LSN seen per key, so a redelivered or older event is a duplicate, not a new check.

Kafka delivers at least once: after a rebalance or a crash, records come again. An event whose
LSN is not newer than the newest one already seen for its key says nothing new about the key.

The memory is bounded (least recently seen keys are forgotten first): a forgotten key's replayed
event is simply checked again, which costs a read but is never wrong. It also remembers which
partition each key's newest event was read from: when a partition is revoked (or the daemon
rewinds), its uncommitted records will be read again, and their keys must be forgotten, or the
re-read events would be taken for duplicates and resolved without a check, losing pending drift.

Pure: no I/O, the caller passes everything in.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection

from parity.core.ledger import TopicPartition
from parity.core.recheck import KeyId


class LsnMemory:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._lsn: OrderedDict[KeyId, int] = OrderedDict()
        self._tp: dict[KeyId, TopicPartition] = {}

    def __len__(self) -> int:
        return len(self._lsn)

    def last(self, key_id: KeyId) -> int | None:
        """The newest LSN remembered for the key, None when it is not (or no longer) remembered."""
        return self._lsn.get(key_id)

    def not_newer(self, key_id: KeyId, lsn: int) -> bool:
        """True when an event at `lsn` is not newer than the newest remembered for the key."""
        last = self._lsn.get(key_id)
        return last is not None and lsn <= last

    def remember(self, key_id: KeyId, lsn: int, tp: TopicPartition) -> None:
        """The key's newest event is at `lsn`, read from partition `tp`."""
        self._lsn[key_id] = lsn
        self._tp[key_id] = tp
        self._lsn.move_to_end(key_id)
        if len(self._lsn) > self.capacity:
            old, _ = self._lsn.popitem(last=False)
            self._tp.pop(old, None)

    def forget_partitions(self, tps: Collection[TopicPartition]) -> None:
        """Forget the keys whose newest event came from one of `tps` (module docstring)."""
        gone = set(tps)
        for key_id in [k for k, tp in self._tp.items() if tp in gone]:
            del self._tp[key_id]
            self._lsn.pop(key_id, None)
