"""The store's fast read path (wire JSON decoded by orjson) against botocore's own parsing, on
DynamoDB Local: same items, same paging, binary keys round-trip, errors unchanged, and other users
of a shared client unaffected."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError

from parity.adapters.dynamodb import DynamoStore
from parity.core.errors import TransientError
from parity.core.values import item_from_wire, item_to_wire
from tests.conftest import unique

pytestmark = pytest.mark.component


def _item(i: int) -> dict[str, Any]:
    return {
        "K": bytes([i % 256, i // 256, 0, 255]),  # binary partition key: base64 on the wire
        "S": f"s{i}",
        "N": Decimal(i) / 8,
        "Big": Decimal("12345678901234567890.123456789"),
        "Set": frozenset({"x", f"t{i}"}),
        "Nums": frozenset({Decimal(1), Decimal(i) + Decimal("0.5")}),
        "Bins": frozenset({b"\x00", bytes([i % 256])}),
        "Doc": {"n": [Decimal(1), "two", None, True, b"\xff"]},
        "Flag": False,
        "Nothing": None,
    }


@pytest.fixture
def table(dynamodb: Any) -> tuple[Any, str]:
    client = dynamodb.client()
    name = unique("Raw")
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "K", "AttributeType": "B"}],
        KeySchema=[{"AttributeName": "K", "KeyType": "HASH"}],
    )
    for i in range(120):
        client.put_item(TableName=name, Item=item_to_wire(_item(i)))
    return client, name


def _scan_all(store: DynamoStore, name: str) -> tuple[list[dict[str, Any]], int]:
    items: list[dict[str, Any]] = []
    pages = 0
    kwargs: dict[str, Any] = {"TableName": name, "Limit": 17}
    while True:
        page = store.call("Scan", **kwargs)
        pages += 1
        items.extend(item_from_wire(w) for w in page["Items"])
        if not page.get("LastEvaluatedKey"):
            return items, pages
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_raw_scan_pages_equal_botocore_parsing(table: tuple[Any, str]) -> None:
    client, name = table
    raw, fallback = DynamoStore(client, concurrency=2), DynamoStore(client, concurrency=2, raw_reads=False)
    assert raw.raw_reads and not fallback.raw_reads
    fast, fast_pages = _scan_all(raw, name)
    slow, slow_pages = _scan_all(fallback, name)
    assert fast_pages == slow_pages >= 120 // 17
    assert fast == slow
    assert sorted(fast, key=lambda i: i["K"]) == sorted((_item(i) for i in range(120)), key=lambda i: i["K"])
    page = raw.call("Scan", TableName=name, Limit=5)
    assert isinstance(page["Items"][0]["K"]["B"], str)  # really the raw wire form: base64 text
    assert isinstance(page["LastEvaluatedKey"]["K"]["B"], bytes)  # handed back to botocore as bytes
    assert page["Count"] == 5 and page["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_raw_batch_get_and_get_equal_the_items(table: tuple[Any, str]) -> None:
    client, name = table
    store = DynamoStore(client, concurrency=2)
    keys = [{"K": _item(i)["K"]} for i in range(0, 150, 3)]  # 40 exist (< 120), 10 do not
    found = store.batch_get(name, ("K",), keys)
    assert set(found) == {(_item(i)["K"],) for i in range(0, 120, 3)}
    assert found[(_item(9)["K"],)] == _item(9)
    assert store.get(name, {"K": _item(7)["K"]}) == _item(7)
    assert store.get(name, {"K": b"absent"}) is None


def test_errors_are_still_parsed_by_botocore(table: tuple[Any, str]) -> None:
    client, _ = table
    store = DynamoStore(client, concurrency=2)
    with pytest.raises(ClientError) as exc:
        store.call("Scan", TableName=unique("Missing"), Limit=1)
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"
    # Still a ClientError to callers that read its code; to the daemon loop, a failure to redo.
    assert isinstance(exc.value, TransientError)
    assert (exc.value.kind, str(exc.value)) == ("ClientError", str(exc.value.__cause__))


def test_a_shared_client_keeps_botocore_parsing_outside_the_store(table: tuple[Any, str]) -> None:
    client, name = table
    DynamoStore(client, concurrency=2)
    page = client.scan(TableName=name, Limit=3)
    assert isinstance(page["Items"][0]["K"]["B"], bytes)


def test_a_damaged_body_is_left_to_botocore() -> None:
    store = DynamoStore(object(), concurrency=1, raw_reads=False)  # only the hook is exercised
    store._raw.on = True
    response = {"status_code": 200, "body": b'{"Items": [{"K": '}
    custom: dict[str, Any] = {}
    store._parse_raw(response, custom)
    assert custom == {} and response["body"] == b'{"Items": [{"K": '
    good = {"status_code": 200, "body": b'{"Count": 0, "Items": []}'}
    store._parse_raw(good, custom)
    assert custom == {"Count": 0, "Items": []} and good["body"] == b"{}"


def test_close_takes_the_hook_off_a_shared_client(table: tuple[Any, str]) -> None:
    client, name = table
    store = DynamoStore(client, concurrency=1)
    store.close()
    store._raw.on = True  # were the hook still registered, this thread's next read would be raw
    page = client.scan(TableName=name, Limit=2)
    assert isinstance(page["Items"][0]["K"]["B"], bytes)
