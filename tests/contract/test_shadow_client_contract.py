"""The DynamoDB client fake of the shadow-mode unit tests (tests/unit/test_shadow.py) against
DynamoDB Local: the same shadow-mode history must leave the same items, and the same writes must
be refused, on both. If the fake drifts from DynamoDB's conditional-write semantics, this fails."""

from __future__ import annotations

from typing import Any

import pytest

from parity.adapters.dynamodb import DynamoStore
from parity.adapters.state import StateStore
from parity.daemon.pipeline import Pipeline
from parity.daemon.shadow import ShadowApplier
from tests.conftest import unique
from tests.unit.test_shadow import TABLE, FakeClient, FakeTable, Harness, _config, _row

pytestmark = pytest.mark.component


def _real_client(dynamodb: Any, table: str) -> Any:
    client = dynamodb.client()
    client.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
    )
    return client


def _scan(client: Any, table: str) -> dict[str, dict[str, Any]]:
    items = client.scan(TableName=table, ConsistentRead=True)["Items"]
    return {i["PK"]["S"]: i for i in items}


@pytest.fixture(
    params=[
        ("fake", "transactions"),
        ("fake", "single"),
        ("dynamodb-local", "transactions"),
        ("dynamodb-local", "single"),
    ],
    ids=lambda p: "-".join(p),
)
def harness(request: pytest.FixtureRequest) -> tuple[Harness, Any, str]:
    kind, writes = request.param
    table = TABLE if kind == "fake" else unique("ShadowContract")
    h = Harness(_config(target=table, truncate="apply", shadow_writes=writes))
    if kind == "fake":
        client: Any = FakeClient(FakeTable())
    else:
        client = _real_client(request.getfixturevalue("dynamodb"), table)
    h.client = client
    # Single writes run wider than transactions (daemon.shadow_write_concurrency, capped here to 8).
    h.store = DynamoStore(client, concurrency=2, write_concurrency=8, max_attempts=4, base_delay_s=0.01)
    h.state = StateStore(":memory:")
    h.pipeline = Pipeline(h.config, h.store, shadow=ShadowApplier(h.config, h.store, h.state))
    return h, client, table


def _history(h: Harness) -> list[dict[str, Any]]:
    outcomes = []
    batches = [
        [h.record("c", 100, after=_row(i)) for i in range(1, 8)],
        [h.record("u", 200, after=_row(1, name="new", grp=None)), h.record("d", 210, before=_row(2))],
        [h.record("u", 150, after=_row(1, name="older"))],  # stale
        [h.record("c", 90, after=_row(2))],  # a replay of an old create after the delete
        [h.record("u", 300, after=_row(3, big="__debezium_unavailable_value", name="toast"))],
    ]
    for batch in batches:
        # A fresh pipeline per batch, as after a restart: stale events must be stopped by
        # DynamoDB's conditions and the graveyard, not by the in-memory de-duplication.
        h.pipeline = Pipeline(h.config, h.store, shadow=ShadowApplier(h.config, h.store, h.state))
        result = h.process(batch)
        outcomes.append({o: n for (_, o), n in sorted(result.outcomes.items())})
    return outcomes


def test_a_shadow_history_ends_in_the_same_items_and_outcomes(harness: tuple[Harness, Any, str]) -> None:
    h, client, table = harness
    outcomes = _history(h)
    items = (
        _scan(client, table)
        if not isinstance(client, FakeClient)
        else {i["PK"]["S"]: i for i in client.table.items.values()}
    )
    assert outcomes == [
        {"applied": 7},
        {"applied": 2},
        {"stale_skipped": 1},
        {"stale_skipped": 1},
        {"applied": 1},
    ]
    assert sorted(items) == ["A#1", "A#3", "A#4", "A#5", "A#6", "A#7"]
    assert items["A#1"]["name"] == {"S": "new"}
    assert "GSI1PK" not in items["A#1"]  # the sparse index attribute of a NULL column is removed
    assert items["A#1"]["_parity_version"] == {"N": "200"}
    assert items["A#3"]["big"] == {"S": "B" * 50}  # the unchanged TOAST column is untouched
    assert items["A#3"]["name"] == {"S": "toast"}
