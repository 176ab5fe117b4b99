"""The ports: what the daemon, reconciler and repair need from each adapter, as Protocols.

A real adapter and its test fake both satisfy these (checked by mypy where a fake is passed, and
by the contract suites in tests/contract/, which run against the real service and the fake).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Protocol

from parity.core.ledger import TopicPartition as TP

if TYPE_CHECKING:
    from parity.adapters.kafka import Record
    from parity.core.streams import StreamRecord

Item = dict[str, Any]
KeyTuple = tuple[Any, ...]


class DynamoReads(Protocol):
    """Consistent reads by key: what verification needs (the pipeline, rechecks, re-reads)."""

    def batch_get(
        self, table: str, key_names: Sequence[str], keys: Sequence[Item], *, consistent: bool = True
    ) -> dict[KeyTuple, Item]: ...

    def batch_get_async(
        self, table: str, key_names: Sequence[str], keys: Sequence[Item], *, consistent: bool = True
    ) -> Future[dict[KeyTuple, Item]]: ...

    def get(self, table: str, key: Item, *, consistent: bool = True) -> Item | None: ...


class WatchedDynamoReads(DynamoReads, Protocol):
    """Reads whose store reports an outage as it happens: what the daemon loop needs, to be not
    ready from the first failed attempt instead of after minutes of retries."""

    # Told of every failed attempt that looks like an outage, before the retries run out.
    on_unreachable: Callable[[str], None] | None


class DynamoPort(WatchedDynamoReads, Protocol):
    """Reads plus any DynamoDB operation with parity's retries (writes, scans, transactions)."""

    def call(self, operation: str, **kwargs: Any) -> dict[str, Any]: ...

    # `fn` of every item in order, at most `width` at once; raises only after every started call returned.
    def map_parallel(
        self, fn: Callable[[Any], Any], items: Sequence[Any], *, width: int | None = None
    ) -> list[Any]: ...

    def close(self) -> None: ...


class ChangeSource(Protocol):
    """The change stream the daemon loop consumes: batches of records from the partitions this
    member of the consumer group owns, with explicit commits (nothing is committed otherwise).

    A failure of the stream (a fetch, a commit, a seek) is raised as `BrokerUnavailable`."""

    # Called with the partitions being taken away, before they go: the loop commits what is
    # resolved there and forgets their pending checks (the next owner re-reads them).
    on_revoke: Callable[[list[TP]], None] | None

    @property
    def topics(self) -> Sequence[str]: ...

    @property
    def assigned(self) -> Collection[TP]:
        """The partitions this member owns now."""

    @property
    def joined(self) -> bool:
        """In the group, even with no partition (more members than partitions)."""

    @property
    def positions(self) -> Mapping[TP, int]:
        """Next offset to read per partition, for those read from since their assignment."""

    @property
    def high_watermarks(self) -> Mapping[TP, int]:
        """Per partition, the end of the log as last seen by `lag()`."""

    def poll_batch(self, max_records: int, timeout_s: float) -> list[Record]: ...

    def commit(self, offsets: dict[TP, int]) -> None:
        """Commit these offsets (the next to read) of the partitions still owned; returns once durable."""

    def lag(self) -> dict[TP, int]:
        """Records behind per owned partition, where known (unknown is absent, never zero)."""

    def rewind(self, tps: Collection[TP]) -> None:
        """Read these partitions again from their committed offsets (the earliest without one)."""

    def close(self) -> None: ...


class StreamSource(Protocol):
    """The DynamoDB Stream the reverse direction consumes (parity.adapters.streams).

    `poll` returns records of the shards this replica holds a lease on, each shard in sequence
    order and a child shard only after its parents are finished. `commit` checkpoints the given
    records' positions (per shard, the highest sequence number) durably: after a restart, reading
    resumes after the last committed record of each shard (at-least-once; the verifier drops
    records it already decided, by position). A failure to reach DynamoDB Streams is raised as
    `DynamoUnavailable`."""

    @property
    def counts(self) -> Mapping[str, int]:
        """Named stream events of this process (records read, positions or shards trimmed away
        past retention, expired iterators, leases taken and lost, ...): shown by `parity status`."""
        ...

    def poll(self, max_records: int, timeout_s: float) -> list[StreamRecord]: ...

    def commit(self, records: Sequence[StreamRecord]) -> None: ...

    def lag_s(self) -> dict[str, float]:
        """Per shard held, seconds between now and the newest record read (0 when caught up)."""
        ...

    def close(self) -> None:
        """Stop reading and give up the leases held, so another replica takes over at once."""
        ...


class MessageSink(Protocol):
    """A topic that takes keyed messages (drift records, dead letters)."""

    def send(self, messages: Sequence[tuple[bytes | None, bytes]]) -> None: ...

    def flush(self) -> None:
        """Returns once every message sent is acknowledged; raises StoreError otherwise."""


class LineSink(Protocol):
    """An append-only file of lines (the drift log)."""

    def write(self, lines: Sequence[bytes]) -> None:
        """Appends the lines, durable on return; raises StoreError otherwise."""
