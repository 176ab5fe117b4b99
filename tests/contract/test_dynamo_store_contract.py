"""One contract for the DynamoDB read side, run against the real adapter on DynamoDB Local and
against the in-memory fake used by unit tests: both must behave alike."""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

import pytest

from parity.adapters.dynamodb import DynamoStore
from parity.adapters.ports import DynamoReads, WatchedDynamoReads
from parity.core.values import item_to_wire
from tests.conftest import unique
from tests.fakes import FakeDynamoStore

pytestmark = pytest.mark.component

KEYS = ("PK", "SK")


class _RealWriter:
    def __init__(self, client: Any) -> None:
        self.client = client

    def create_table(self, table: str, key_names: tuple[str, ...]) -> None:
        self.client.create_table(
            TableName=table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in key_names],
            KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in zip(key_names, ("HASH", "RANGE"), strict=False)],
        )

    def put(self, table: str, item: dict[str, Any]) -> None:
        self.client.put_item(TableName=table, Item=item_to_wire(item))


@pytest.fixture(params=["fake", "dynamodb-local"])
def store(request: pytest.FixtureRequest) -> Any:
    table = unique("Contract")
    if request.param == "fake":
        fake = FakeDynamoStore()
        fake.create_table(table, KEYS)
        return fake, fake, table
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    dynamodb = request.getfixturevalue("dynamodb")
    client = dynamodb.client()
    writer = _RealWriter(client)
    writer.create_table(table, KEYS)
    return DynamoStore(client, concurrency=4), writer, table


def _item(i: int) -> dict[str, Any]:
    return {
        "PK": f"A#{i % 7}",
        "SK": f"B#{i}",
        "Amount": Decimal(i) / 4,
        "Tags": frozenset({"x", f"t{i}"}),
        "Doc": {"n": [Decimal(1), "two", None, True]},
        "Blob": bytes([i % 256, 0]),
    }


def test_batch_get_returns_existing_items_by_key_and_omits_missing(store: Any) -> None:
    reader, writer, table = store
    for i in range(0, 250, 2):  # even keys exist
        writer.put(table, _item(i))
    keys = [{"PK": f"A#{i % 7}", "SK": f"B#{i}"} for i in range(250)]  # > 100: chunked by the real one
    found = reader.batch_get(table, KEYS, keys)
    assert set(found) == {(f"A#{i % 7}", f"B#{i}") for i in range(0, 250, 2)}
    assert found[("A#4", "B#4")] == _item(4)


def test_get_returns_the_item_or_none(store: Any) -> None:
    reader, writer, table = store
    writer.put(table, _item(3))
    assert reader.get(table, {"PK": "A#3", "SK": "B#3"}) == _item(3)
    assert reader.get(table, {"PK": "A#3", "SK": "B#4"}) is None


def test_an_unknown_table_is_an_error(store: Any) -> None:
    reader, _writer, _table = store
    with pytest.raises(Exception, match="ResourceNotFound"):
        reader.batch_get("NoSuchTable", KEYS, [{"PK": "a", "SK": "b"}])


def test_batch_get_async_reads_one_chunk_in_the_background(store: Any) -> None:
    reader, writer, table = store
    for i in range(0, 40, 2):
        writer.put(table, _item(i))
    keys = [{"PK": f"A#{i % 7}", "SK": f"B#{i}"} for i in range(40)]
    assert reader.batch_get_async(table, KEYS, keys).result(timeout=30) == reader.batch_get(table, KEYS, keys)
    with pytest.raises(ValueError):
        reader.batch_get_async(table, KEYS, [*keys, *keys, *keys])  # 120 > 100 keys
    with pytest.raises(Exception, match="ResourceNotFound"):
        reader.batch_get_async(unique("Missing"), KEYS, keys[:1]).result(timeout=30)


def _as_port(reader: DynamoStore | FakeDynamoStore) -> WatchedDynamoReads:
    # The static half of the contract: mypy rejects this line if either stops being the port
    # the daemon loop (WatchedDynamoReads) and the pipeline (DynamoReads) are typed with.
    return reader


def test_the_real_store_and_the_fake_are_the_read_port_the_loop_is_typed_with(store: Any) -> None:
    reader, writer, table = store
    writer.put(table, _item(5))
    port: DynamoReads = _as_port(reader)
    assert port.get(table, {"PK": "A#5", "SK": "B#5"}) == _item(5)
    assert _as_port(reader).on_unreachable is None  # nothing told of outages until the loop asks
