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


# -- DynamoDB Streams (the reverse direction) ------------------------------------------------------


class FakeStream:
    """One table's DynamoDB Stream in memory, and the durable state every `FakeStreamSource` on it
    shares (as replicas share the lease table, and a restarted source its state store): the
    table's items, shards with lineage, per-shard checkpoints and finished marks, and leases.

    Writes emit records as DynamoDB does (INSERT / MODIFY / REMOVE with NEW_AND_OLD_IMAGES); a
    write that changes nothing (a delete of a missing item) emits none. `split()` closes the open
    shard and opens a child, as DynamoDB rotates shards."""

    def __init__(self, table: str, key_names: Sequence[str], *, clock: Callable[[], float] | None = None) -> None:
        import time

        self.table = table
        self.key_names = tuple(key_names)
        self.clock = clock or time.monotonic
        self.items: dict[tuple[Any, ...], Item] = {}
        self.records: dict[str, list[Any]] = {}  # shard -> StreamRecords, in order
        self.parents: dict[str, str | None] = {}
        self.closed: set[str] = set()
        self.trimmed: set[str] = set()  # shards gone past retention: no longer described
        self._seq = 0
        self.open_shard = self._new_shard(None)
        self.checkpoints: dict[str, str] = {}
        self.finished: set[str] = set()
        self.leases: dict[str, tuple[str, float]] = {}  # shard -> (owner, expires at by `clock`)

    def _new_shard(self, parent: str | None) -> str:
        shard = f"shardId-{len(self.records):04d}"
        self.records[shard] = []
        self.parents[shard] = parent
        return shard

    def split(self) -> str:
        self.closed.add(self.open_shard)
        self.open_shard = self._new_shard(self.open_shard)
        return self.open_shard

    def _emit(self, name: str, key: Item, new: Item | None, old: Item | None) -> None:
        import time

        from parity.core.streams import StreamRecord

        self._seq += 1
        self.records[self.open_shard].append(StreamRecord(
            self.table, self.open_shard, f"{self._seq:021d}", name,  # type: ignore[arg-type]
            dict(key), dict(new) if new is not None else None, dict(old) if old is not None else None, time.time(),
        ))

    def put(self, item: Item) -> None:
        k = key_tuple(self.key_names, item)
        old = self.items.get(k)
        self.items[k] = dict(item)
        self._emit("MODIFY" if old is not None else "INSERT", {n: item[n] for n in self.key_names}, item, old)

    def update(self, key: Item, attributes: Item) -> None:
        k = key_tuple(self.key_names, key)
        old = self.items.get(k)
        new = {**(old or dict(key)), **attributes}
        self.items[k] = new
        self._emit("MODIFY" if old is not None else "INSERT", key, new, old)

    def delete(self, key: Item) -> None:
        old = self.items.pop(key_tuple(self.key_names, key), None)
        if old is not None:
            self._emit("REMOVE", key, None, old)

    def shards(self) -> list[Any]:
        from parity.core.shards import Shard

        out = []
        for shard, records in self.records.items():
            if shard in self.trimmed:
                continue
            ending = (records[-1].sequence_number if records else f"{self._seq:021d}") if shard in self.closed else None
            out.append(Shard(shard, self.parents[shard], records[0].sequence_number if records else "0", ending))
        return out


class FakeStreamSource:
    """A `parity.adapters.ports.StreamSource` over a `FakeStream`, with the real one's rules:
    children after finished parents, leases (simple expiry by the stream's clock), checkpoints
    and resume after them, finished marks written only once a closed shard's records are all
    committed. Passes tests/contract/test_stream_source_contract.py like the real source."""

    def __init__(self, stream: FakeStream, *, owner_id: str = "fake", lease_duration_s: float = 20.0,
                 sleep: Callable[[float], None] | None = None) -> None:
        import time

        self.stream = stream
        self.owner_id = owner_id
        self.lease_duration_s = lease_duration_s
        self._sleep = sleep or time.sleep
        self.positions: dict[str, int] = {}  # shard -> index of the next record to hand out
        self.counts: dict[str, int] = {"records": 0, "shards_finished": 0}
        self.closed = False

    @property
    def held(self) -> list[str]:
        return sorted(self.positions)

    def _index_after(self, shard: str, seq: str | None) -> int:
        if seq is None:
            return 0
        return sum(1 for r in self.stream.records[shard] if int(r.sequence_number) <= int(seq))

    def _maintain(self) -> None:
        from parity.core.shards import readable_shards

        s, now = self.stream, self.stream.clock()
        for shard in list(self.positions):  # renew, or notice the lease was taken
            lease = s.leases.get(shard)
            if lease is None or lease[0] != self.owner_id:
                del self.positions[shard]
            else:
                s.leases[shard] = (self.owner_id, now + self.lease_duration_s)
        for shard in list(self.positions):  # finish what is read to its end and committed
            end = len(s.records[shard])
            if shard in s.closed and self.positions[shard] >= end \
                    and self._index_after(shard, s.checkpoints.get(shard)) >= end:
                s.finished.add(shard)
                s.leases.pop(shard, None)
                del self.positions[shard]
                self.counts["shards_finished"] += 1
        for shard in readable_shards(s.shards(), s.finished):
            sid = shard.shard_id
            lease = s.leases.get(sid)
            if sid in self.positions or (lease is not None and lease[0] != self.owner_id and lease[1] > now):
                continue
            s.leases[sid] = (self.owner_id, now + self.lease_duration_s)
            self.positions[sid] = self._index_after(sid, s.checkpoints.get(sid))

    def poll(self, max_records: int, timeout_s: float) -> list[Any]:
        if self.closed:
            raise RuntimeError("poll on a closed FakeStreamSource")
        import time

        deadline = time.monotonic() + timeout_s
        while True:
            self._maintain()
            out: list[Any] = []
            for shard in sorted(self.positions):
                batch = self.stream.records[shard][self.positions[shard]:][: max_records - len(out)]
                self.positions[shard] += len(batch)
                out.extend(batch)
            self.counts["records"] += len(out)
            if out or time.monotonic() >= deadline:
                return out
            self._sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def commit(self, records: Sequence[Any]) -> None:
        from parity.core.shards import higher, highest_per_shard

        for shard, seq in highest_per_shard(records).items():
            self.stream.checkpoints[shard] = higher(self.stream.checkpoints.get(shard), seq) or seq

    def lag_s(self) -> dict[str, float]:
        import time

        out: dict[str, float] = {}
        for shard, pos in self.positions.items():
            records = self.stream.records[shard]
            if pos >= len(records):
                out[shard] = 0.0  # caught up
            elif pos:
                out[shard] = max(0.0, time.time() - records[pos - 1].approximate_creation_s)
        return out

    def close(self) -> None:
        for shard in self.positions:
            if self.stream.leases.get(shard, ("",))[0] == self.owner_id:
                del self.stream.leases[shard]
        self.positions.clear()
        self.closed = True
