"""In-memory stand-ins for unit tests of pure-ish logic. FakeDynamoStore passes the same contract
tests as the real adapter (tests/contract/); FakeSource is held to the ChangeSource port by mypy
where tests/unit/test_daemon_loop.py hands it to the real loop."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future
from typing import Any

from parity.adapters.dynamodb import key_tuple
from parity.adapters.kafka import Record
from parity.core.errors import BrokerUnavailable, DynamoUnavailable

Item = dict[str, Any]
TP = tuple[str, int]


class FakeDynamoStore:
    """The read side of `parity.adapters.dynamodb.DynamoStore`, over dicts (a WatchedDynamoReads)."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[tuple[Any, ...], Item]] = {}
        self.key_names: dict[str, tuple[str, ...]] = {}
        self.reads = 0
        self.on_unreachable: Callable[[str], None] | None = None
        # Reads that fail next as the real store's fail once its retries run out: each told to
        # `on_unreachable` first (as the real store tells every failed attempt), then raised.
        self.outages = 0

    def create_table(self, table: str, key_names: Sequence[str]) -> None:
        self.tables[table] = {}
        self.key_names[table] = tuple(key_names)

    def put(self, table: str, item: Item) -> None:
        self.tables[table][key_tuple(self.key_names[table], item)] = dict(item)

    def delete(self, table: str, key: Item) -> None:
        self.tables[table].pop(key_tuple(self.key_names[table], key), None)

    def batch_get(
        self, table: str, key_names: Sequence[str], keys: Sequence[Item], *, consistent: bool = True
    ) -> dict[tuple[Any, ...], Item]:
        self.reads += 1
        if self.outages > 0:
            self.outages -= 1
            if self.on_unreachable is not None:
                self.on_unreachable("BatchGetItem: EndpointConnectionError")
            raise DynamoUnavailable("BatchGetItem: EndpointConnectionError after 8 attempts")
        if table not in self.tables:
            raise KeyError(f"ResourceNotFoundException: {table}")
        found: dict[tuple[Any, ...], Item] = {}
        for key in keys:
            t = key_tuple(key_names, key)
            if t in self.tables[table]:
                found[t] = dict(self.tables[table][t])
        return found

    def batch_get_async(
        self, table: str, key_names: Sequence[str], keys: Sequence[Item], *, consistent: bool = True
    ) -> Future[dict[tuple[Any, ...], Item]]:
        if len(keys) > 100:
            raise ValueError(f"at most 100 keys per chunk, got {len(keys)}")
        future: Future[dict[tuple[Any, ...], Item]] = Future()
        try:
            future.set_result(self.batch_get(table, key_names, keys, consistent=consistent))
        except Exception as exc:  # the real store reports errors through the future too
            future.set_exception(exc)
        return future

    def get(self, table: str, key: Item, *, consistent: bool = True) -> Item | None:
        found = self.batch_get(table, self.key_names[table], [key])
        return next(iter(found.values()), None)


class FakeSource:
    """A `parity.adapters.ports.ChangeSource` over in-memory partition logs, owning every
    partition it has a log for. Records the commits and rewinds the loop asks for."""

    def __init__(self, topic: str, partitions: int = 1) -> None:
        self.topics = [topic]
        self.logs: dict[TP, list[Record]] = {(topic, p): [] for p in range(partitions)}
        self.assigned: set[TP] = set(self.logs)
        self.joined = True
        self.positions: dict[TP, int] = {}
        self.high_watermarks: dict[TP, int] = {}
        self.committed: dict[TP, int] = {}  # as the broker holds them
        self.commits: list[dict[TP, int]] = []  # every successful commit, in order
        self.rewinds: list[list[TP]] = []
        self.failing_commits = 0  # commits that fail next, as on a broker restart
        self.on_revoke: Callable[[list[TP]], None] | None = None
        self.closed = False

    def append(self, partition: int, key: bytes | None, value: bytes | None, timestamp_ms: int | None) -> Record:
        tp = (self.topics[0], partition)
        rec = Record(tp[0], partition, len(self.logs[tp]), key, value, timestamp_ms)
        self.logs[tp].append(rec)
        return rec

    def _position(self, tp: TP) -> int:
        return self.positions.get(tp, self.committed.get(tp, 0))

    def poll_batch(self, max_records: int, timeout_s: float) -> list[Record]:
        out: list[Record] = []
        for tp in sorted(self.assigned):
            start = self._position(tp)
            batch = self.logs[tp][start : start + max_records - len(out)]
            if batch:
                self.positions[tp] = batch[-1].offset + 1
            out.extend(batch)
        return out

    def commit(self, offsets: dict[TP, int]) -> None:
        if not offsets:
            return
        if self.failing_commits > 0:
            self.failing_commits -= 1
            raise BrokerUnavailable("KafkaError{code=UNKNOWN_MEMBER_ID}", kind="KafkaException")
        owned = {tp: o for tp, o in offsets.items() if tp in self.assigned}
        if owned:
            self.committed.update(owned)
            self.commits.append(owned)

    def lag(self) -> dict[TP, int]:
        out: dict[TP, int] = {}
        for tp in self.assigned:
            self.high_watermarks[tp] = len(self.logs[tp])
            out[tp] = len(self.logs[tp]) - self._position(tp)
        return out

    def rewind(self, tps: Collection[TP]) -> None:
        self.rewinds.append(sorted(tps))
        for tp in tps:
            self.positions.pop(tp, None)  # read again from the committed offset

    def close(self) -> None:
        self.closed = True
