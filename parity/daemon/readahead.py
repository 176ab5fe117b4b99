"""Consistent reads of verify keys, issued in chunks while the batch is still being decoded.

Every 100 new keys of verify tables go to DynamoDB in the background, so the reads of the first
keys are in flight while the rest of the batch is still CPU work. A read is per key, not per
event: the newest event of the key (after collapse) is compared with it, and a read issued during
decoding is still later than the event it checks. Re-checks and re-reads of open drift use the
same chunked reads.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from parity.adapters.dynamodb import BATCH_GET_LIMIT
from parity.adapters.ports import DynamoReads
from parity.core.config import TableMapping
from parity.core.recheck import KeyId

Item = dict[str, Any]


class ReadAhead:
    def __init__(self, dynamo: DynamoReads) -> None:
        self.dynamo = dynamo
        self.issued: set[KeyId] = set()
        self._pending: dict[str, tuple[list[str], list[Item]]] = {}
        self._futures: list[tuple[str, Future[dict[tuple[Any, ...], Item]]]] = []
        self._found: dict[str, dict[tuple[Any, ...], Item]] = {}

    def offer(self, target: str, mapping: TableMapping, key: Item, key_id: KeyId) -> None:
        if key_id in self.issued:
            return
        self.issued.add(key_id)
        _names, keys = self._pending.setdefault(target, (list(mapping.keys), []))
        keys.append(key)
        if len(keys) >= BATCH_GET_LIMIT:
            self._submit(target)

    def _submit(self, target: str) -> None:
        names, keys = self._pending.pop(target)
        self._futures.append((target, self.dynamo.batch_get_async(target, names, keys, consistent=True)))

    def found(self) -> dict[str, dict[tuple[Any, ...], Item]]:
        """Every item read so far, by target and key tuple (waits for the reads in flight)."""
        for target in list(self._pending):
            self._submit(target)
        futures, self._futures = self._futures, []
        for target, future in futures:
            self._found.setdefault(target, {}).update(future.result())
        return self._found
