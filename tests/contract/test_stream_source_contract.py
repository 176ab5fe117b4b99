"""One contract for the DynamoDB Stream source of the reverse direction, run against the real
adapter on DynamoDB Local's Streams and against the in-memory fake the verifier's unit tests use.

Items are written with raw boto3 (wire dicts written out here) or, for the fake, as the literal
decoded dicts that the real source must hand back for them."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from parity.adapters.ports import StreamSource
from parity.core.streams import StreamRecord
from tests.conftest import unique
from tests.fakes import FakeStream, FakeStreamSource

pytestmark = pytest.mark.component

LEASE_TABLE = "parity-contract-leases"

# (wire item as boto3 writes it, the decoded item the source must return)
ITEMS = [
    ({"PK": {"S": "A#1"}, "SK": {"S": "X"}, "amount": {"N": "12.50"}, "tags": {"SS": ["b", "a"]},
      "doc": {"M": {"n": {"L": [{"N": "1"}, {"NULL": True}, {"BOOL": False}]}}}, "blob": {"B": b"\x00\x01"}},
     {"PK": "A#1", "SK": "X", "amount": Decimal("12.5"), "tags": frozenset({"a", "b"}),
      "doc": {"n": [Decimal(1), None, False]}, "blob": b"\x00\x01"}),
    ({"PK": {"S": "A#2"}, "SK": {"S": "Y"}, "amount": {"N": "-3"}},
     {"PK": "A#2", "SK": "Y", "amount": Decimal(-3)}),
]


class _Real:
    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        import boto3

        from parity.devstack.dynamodb import CREDENTIALS

        service = request.getfixturevalue("dynamodb")
        self.client: Any = service.client()
        self.streams_client = boto3.client("dynamodbstreams", endpoint_url=service.endpoint, **CREDENTIALS)
        self.table = unique("Streams")
        self.client.create_table(
            TableName=self.table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in ("PK", "SK")],
            KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        self.tmp_path = tmp_path
        self.stores: dict[str, Any] = {}
        self.sources: list[Any] = []

    def put(self, index: int) -> None:
        self.client.put_item(TableName=self.table, Item=ITEMS[index][0])

    def set_amount(self, key: dict[str, str], amount: str) -> None:
        self.client.update_item(
            TableName=self.table, Key={k: {"S": v} for k, v in key.items()},
            UpdateExpression="SET amount = :a", ExpressionAttributeValues={":a": {"N": amount}},
        )

    def delete(self, key: dict[str, str]) -> None:
        self.client.delete_item(TableName=self.table, Key={k: {"S": v} for k, v in key.items()})

    def source(self, owner: str = "a", lease_duration_s: float = 20.0) -> StreamSource:
        from parity.adapters.state import StateStore
        from parity.adapters.streams import DynamoStreamSource

        # One state store per owner, as each replica has its own: a replica taking over finds the
        # last owner's checkpoint in the lease table, a restarted one in its store as well.
        if owner not in self.stores:
            self.stores[owner] = StateStore(self.tmp_path / f"state-{owner}.db")
        source = DynamoStreamSource(
            self.streams_client, self.client, self.stores[owner], [self.table], owner_id=owner,
            lease_table=LEASE_TABLE, lease_duration_s=lease_duration_s,
            describe_interval_s=1.0, min_read_interval_s=0.05, max_idle_interval_s=0.2,
        )
        self.sources.append(source)
        return source

    def close(self) -> None:
        for source in self.sources:
            source.close()
        for store in self.stores.values():
            store.close()


class _Fake:
    def __init__(self) -> None:
        self.table = unique("Streams")
        self.stream = FakeStream(self.table, ("PK", "SK"))
        self.sources: list[FakeStreamSource] = []

    def put(self, index: int) -> None:
        self.stream.put(ITEMS[index][1])

    def set_amount(self, key: dict[str, str], amount: str) -> None:
        self.stream.update(dict(key), {"amount": Decimal(amount)})

    def delete(self, key: dict[str, str]) -> None:
        self.stream.delete(dict(key))

    def source(self, owner: str = "a", lease_duration_s: float = 20.0) -> StreamSource:
        source = FakeStreamSource(self.stream, owner_id=owner, lease_duration_s=lease_duration_s)
        self.sources.append(source)
        return source

    def close(self) -> None:
        for source in self.sources:
            source.close()


@pytest.fixture(params=["fake", "dynamodb-local"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    made: Any = _Fake() if request.param == "fake" else _Real(request, tmp_path)
    yield made
    made.close()


def drain(source: StreamSource, n: int, timeout_s: float = 30.0) -> list[StreamRecord]:
    """Poll until `n` records came (fails after `timeout_s`), then once more briefly: no extra."""
    got: list[StreamRecord] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n:
        assert time.monotonic() < deadline, f"only {len(got)} of {n} records after {timeout_s} s: {got}"
        got.extend(source.poll(100, 0.5))
    got.extend(source.poll(100, 0.3))
    assert len(got) == n, f"{len(got) - n} records more than the {n} written"
    return got


def _write_three(backend: Any) -> None:
    backend.put(0)
    backend.set_amount({"PK": "A#1", "SK": "X"}, "13")
    backend.delete({"PK": "A#1", "SK": "X"})


def test_changes_come_back_in_order_with_their_images(backend: Any) -> None:
    source = backend.source()
    _write_three(backend)
    backend.put(1)
    got = drain(source, 4)
    assert [r.event_name for r in got] == ["INSERT", "MODIFY", "REMOVE", "INSERT"]
    assert all(r.table == backend.table for r in got)
    assert [int(r.sequence_number) for r in got] == sorted(int(r.sequence_number) for r in got)
    assert len({r.position for r in got}) == 4
    insert, modify, remove, other = got
    assert insert.keys == {"PK": "A#1", "SK": "X"}
    assert insert.new_image == ITEMS[0][1] and insert.old_image is None
    assert modify.old_image == ITEMS[0][1]
    assert modify.new_image == {**ITEMS[0][1], "amount": Decimal(13)}
    assert remove.new_image is None and remove.old_image == {**ITEMS[0][1], "amount": Decimal(13)}
    assert remove.keys == {"PK": "A#1", "SK": "X"}
    assert other.new_image == ITEMS[1][1]
    assert insert.approximate_creation_s > 0


def test_a_restart_resumes_after_the_last_commit(backend: Any) -> None:
    first = backend.source()
    _write_three(backend)
    got = drain(first, 3)
    first.commit(got[:2])  # the third was read, not committed: at-least-once re-delivers it
    first.close()
    backend.put(1)
    second = backend.source()
    again = drain(second, 2)
    assert [r.position for r in again] == [got[2].position, again[1].position]
    assert again[1].event_name == "INSERT" and again[1].new_image == ITEMS[1][1]
    second.commit(again)
    second.close()
    third = backend.source()
    assert drain(third, 0, timeout_s=1) == []  # nothing after the last commit: none re-delivered


def test_a_killed_reader_loses_nothing(backend: Any) -> None:
    """Killed: no close, its lease still held; the same replica restarted takes it back at once."""
    first = backend.source(owner="k")
    _write_three(backend)
    got = drain(first, 3)
    first.commit(got[:1])
    backend.put(1)
    restarted = backend.source(owner="k")
    again = drain(restarted, 3)
    assert [r.position for r in again[:2]] == [got[1].position, got[2].position]
    assert again[2].new_image == ITEMS[1][1]


def test_one_reader_per_shard_and_the_other_takes_over_on_close(backend: Any) -> None:
    a = backend.source(owner="a")
    b = backend.source(owner="b")
    _write_three(backend)
    got = drain(a, 3)
    assert b.poll(100, 0.5) == []  # a holds the only shard
    a.commit(got[:2])
    a.close()
    backend.put(1)
    taken = drain(b, 2)
    assert taken[0].position == got[2].position  # from a's checkpoint: the uncommitted one again
    assert taken[1].new_image == ITEMS[1][1]


def test_an_expired_lease_is_taken_over_from_the_checkpoint(backend: Any) -> None:
    a = backend.source(owner="a", lease_duration_s=1.5)
    b = backend.source(owner="b", lease_duration_s=1.5)
    _write_three(backend)
    got = drain(a, 3)
    a.commit(got[:1])
    # a dies here (never polls, renews nor closes again): b takes the shard once the lease expires
    assert b.poll(100, 0.2) == []
    taken = drain(b, 2, timeout_s=30)
    assert [r.position for r in taken] == [got[1].position, got[2].position]


def test_lag_is_zero_once_caught_up(backend: Any) -> None:
    source = backend.source()
    backend.put(0)
    drain(source, 1)
    lag = source.lag_s()
    assert lag and set(lag.values()) == {0.0}
