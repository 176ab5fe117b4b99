"""Shadow mode's write logic, against a fake DynamoDB that evaluates parity's own expressions.

The fake keeps items in wire format and honours the version condition
`attribute_not_exists(#v) OR #v < :v`, SET and REMOVE, so the tests check the resulting state
(replays, TOAST, deletes, key moves) and not only the requests sent.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import pytest
from botocore.exceptions import ClientError

from parity.adapters.dynamodb import DynamoStore
from parity.adapters.kafka import Record
from parity.adapters.state import StateStore
from parity.core.config import ParityConfig
from parity.core.errors import ConfigError, DynamoUnavailable
from parity.core.types import PLACEHOLDER
from parity.daemon.batch import BatchResult
from parity.daemon.pipeline import Pipeline
from parity.daemon.shadow import ShadowApplier
from tests import debezium
from tests.unit.mapping_helpers import config

pytestmark = pytest.mark.unit

SOURCE = "public.acct"
TABLE = "Accounts"


def _config(**table: Any) -> ParityConfig:
    spec: dict[str, Any] = {
        "source": SOURCE,
        "primary_key": ["id"],
        "target": TABLE,
        "mode": "shadow",
        "keys": {"PK": "A#{id}"},
        "indexes": {"GSI1PK": "G#{grp}"},
        "columns": {"id": {}, "name": {}, "grp": {}, "big": {}, "secret": {"exclude": True}},
        **table,
    }
    return config(spec, source="t.yaml")


def _err(code: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "Op")


class FakeTable:
    """A DynamoDB table in wire format with parity's condition, SET and REMOVE semantics."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @staticmethod
    def _id(key: dict[str, Any]) -> str:
        return orjson.dumps(key, option=orjson.OPT_SORT_KEYS).decode()

    def _check(self, item: dict[str, Any] | None, kw: dict[str, Any]) -> None:
        assert kw["ConditionExpression"] == "attribute_not_exists(#v) OR #v < :v"
        version = kw["ExpressionAttributeNames"]["#v"]
        new = int(kw["ExpressionAttributeValues"][":v"]["N"])
        if item is not None and version in item and int(item[version]["N"]) >= new:
            raise _err("ConditionalCheckFailedException")

    def update_item(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(("UpdateItem", kw))
        key = self._id(kw["Key"])
        current = self.items.get(key)
        self._check(current, kw)
        item = dict(current or kw["Key"])
        names, values = kw["ExpressionAttributeNames"], kw["ExpressionAttributeValues"]
        m = re.fullmatch(r"SET (.+?)(?: REMOVE (.+))?", kw["UpdateExpression"])
        assert m is not None, kw["UpdateExpression"]
        for assignment in m.group(1).split(", "):
            name, value = assignment.split(" = ")
            item[names[name]] = values[value]
        for name in (m.group(2) or "").split(", ") if m.group(2) else []:
            item.pop(names[name], None)
        self.items[key] = item
        return {}

    def delete_item(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(("DeleteItem", kw))
        key = self._id(kw["Key"])
        self._check(self.items.get(key), kw)
        self.items.pop(key, None)
        return {}

    def transact_write_items(self, TransactItems: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(("TransactWriteItems", {"TransactItems": TransactItems}))
        reasons: list[dict[str, str]] = []
        for op in TransactItems:
            [(kind, kw)] = op.items()
            try:
                self._check(self.items.get(self._id(kw["Key"])), kw)
                reasons.append({"Code": "None"})
            except ClientError:
                reasons.append({"Code": "ConditionalCheckFailed"})
        if any(r["Code"] != "None" for r in reasons):
            exc = _err("TransactionCanceledException")
            exc.response["CancellationReasons"] = reasons  # type: ignore[typeddict-unknown-key]
            raise exc
        for op in TransactItems:
            [(kind, kw)] = op.items()
            if kind == "Update":
                self.update_item(**kw)
            else:
                self.delete_item(**kw)
            self.calls.pop()  # recorded as part of the transaction
        return {}

    def scan(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(("Scan", kw))
        return {"Items": [dict(i) for i in self.items.values()]}  # one page: the fake is small

    def get(self, pk: str) -> dict[str, Any] | None:
        return self.items.get(self._id({"PK": {"S": pk}}))


class FakeClient:
    """Routes calls to a FakeTable; `faults` are raised (in order) before a call reaches it."""

    def __init__(self, table: FakeTable) -> None:
        self.table = table
        self.faults: list[Exception] = []
        self.attempts = 0

    def _maybe_fail(self) -> None:
        self.attempts += 1
        if self.faults:
            raise self.faults.pop(0)

    def update_item(self, **kw: Any) -> dict[str, Any]:
        self._maybe_fail()
        return self.table.update_item(**kw)

    def delete_item(self, **kw: Any) -> dict[str, Any]:
        self._maybe_fail()
        return self.table.delete_item(**kw)

    def transact_write_items(self, **kw: Any) -> dict[str, Any]:
        self._maybe_fail()
        return self.table.transact_write_items(**kw)

    def scan(self, **kw: Any) -> dict[str, Any]:
        self._maybe_fail()
        return self.table.scan(**kw)


class Harness:
    def __init__(self, config: ParityConfig | None = None, sleep: Callable[[float], None] | None = None) -> None:
        self.config = config or _config()
        self.table = FakeTable()
        self.client = FakeClient(self.table)
        self.sleeps: list[float] = []
        self.store = DynamoStore(self.client, concurrency=2, max_attempts=4, base_delay_s=0.01,
                                 sleep=sleep or self.sleeps.append)
        self.state = StateStore(":memory:")
        self.pipeline = Pipeline(self.config, self.store, shadow=ShadowApplier(self.config, self.store, self.state))
        self.topic = self.config.kafka.topic_for(SOURCE)
        self.offset = 0

    def record(self, op: str, lsn: int, after: dict[str, Any] | None = None,
               before: dict[str, Any] | None = None, snapshot: bool = False) -> Record:
        row = after or before or {}
        source = debezium.source_block("acct", lsn=lsn, snapshot=snapshot)
        value = debezium.value(debezium.envelope(op, source, before=before, after=after))
        self.offset += 1
        return Record(self.topic, 0, self.offset, debezium.key({"id": row["id"]}), value, None)

    def process(self, records: Sequence[Record]) -> BatchResult:
        return self.pipeline.process(records, 1.0)

    def fresh_pipeline(self) -> None:
        """A restarted daemon: same DynamoDB and state store, no in-memory de-duplication."""
        self.pipeline = Pipeline(self.config, self.store, shadow=ShadowApplier(self.config, self.store, self.state))


def _row(id_: int = 1, **over: Any) -> dict[str, Any]:
    return {"id": id_, "name": "ann", "grp": "a", "big": "B" * 50, "secret": "s", **over}


def _last_update(h: Harness) -> dict[str, Any]:
    op, kw = h.table.calls[-1]
    if op == "TransactWriteItems":
        [single] = kw["TransactItems"]
        kw = single["Update"]
    return kw


def _outcomes(result: BatchResult) -> dict[str, int]:
    return {outcome: n for (_, outcome), n in result.outcomes.items()}


def test_a_create_is_one_conditional_update_with_the_lsn_as_version() -> None:
    h = Harness()
    result = h.process([h.record("c", 100, after=_row())])
    assert _outcomes(result) == {"applied": 1}
    [(op, tx)] = h.table.calls
    assert op == "TransactWriteItems"
    [single] = tx["TransactItems"]
    kw = single["Update"]
    assert kw["Key"] == {"PK": {"S": "A#1"}}
    assert kw["ConditionExpression"] == "attribute_not_exists(#v) OR #v < :v"
    assert kw["ExpressionAttributeNames"]["#v"] == "_parity_version"
    assert kw["ExpressionAttributeValues"][":v"] == {"N": "100"}
    # The key is not SET (UpdateItem refuses it) and an excluded column never leaves Postgres.
    set_names = set(kw["ExpressionAttributeNames"].values())
    assert "PK" not in set_names and "secret" not in set_names
    assert h.table.get("A#1") == {
        "PK": {"S": "A#1"}, "id": {"N": "1"}, "name": {"S": "ann"}, "grp": {"S": "a"},
        "big": {"S": "B" * 50}, "GSI1PK": {"S": "G#a"}, "_parity_version": {"N": "100"},
    }


def test_an_older_event_after_a_newer_one_is_stale_skipped_and_changes_nothing() -> None:
    h = Harness()
    h.process([h.record("c", 100, after=_row())])
    h.process([h.record("u", 300, after=_row(name="new"))])
    h.fresh_pipeline()  # in-memory de-duplication would otherwise catch it first
    result = h.process([h.record("u", 200, after=_row(name="old"))])
    assert _outcomes(result) == {"stale_skipped": 1}
    item = h.table.get("A#1")
    assert item is not None and item["name"] == {"S": "new"} and item["_parity_version"] == {"N": "300"}


def test_an_unavailable_toast_value_is_neither_set_nor_removed() -> None:
    h = Harness()
    h.process([h.record("c", 100, after=_row(big="X" * 9000))])
    h.process([h.record("u", 200, after=_row(name="renamed", big=PLACEHOLDER))])
    kw = _last_update(h)
    assert "big" not in kw["ExpressionAttributeNames"].values()
    item = h.table.get("A#1")
    assert item is not None and item["big"] == {"S": "X" * 9000} and item["name"] == {"S": "renamed"}


def test_a_null_column_and_its_sparse_index_attribute_are_removed() -> None:
    h = Harness()
    h.process([h.record("c", 100, after=_row())])
    h.process([h.record("u", 200, after=_row(name=None, grp=None))])
    kw = _last_update(h)
    assert " REMOVE " in kw["UpdateExpression"]
    item = h.table.get("A#1")
    assert item is not None
    assert "name" not in item and "grp" not in item and "GSI1PK" not in item
    assert item["big"] == {"S": "B" * 50}


def test_a_delete_leaves_a_grave_that_stops_an_old_create_from_resurrecting_the_item() -> None:
    h = Harness()
    h.process([h.record("c", 100, after=_row())])
    result = h.process([h.record("d", 200, before={"id": 1})])
    assert _outcomes(result) == {"applied": 1}
    assert h.table.get("A#1") is None
    assert h.state.graveyard_lsns(TABLE, ['{"PK":"A#1"}']) == {'{"PK":"A#1"}': 200}
    h.fresh_pipeline()
    calls = len(h.table.calls)
    replay = h.process([h.record("c", 100, after=_row())])
    assert _outcomes(replay) == {"stale_skipped": 1}
    assert h.table.get("A#1") is None
    assert len(h.table.calls) == calls  # decided from the graveyard, no write sent
    # A genuinely newer create brings the key back and clears its grave.
    again = h.process([h.record("c", 300, after=_row(name="back"))])
    assert _outcomes(again) == {"applied": 1}
    item = h.table.get("A#1")
    assert item is not None and item["name"] == {"S": "back"}
    assert h.state.graveyard_lsns(TABLE, ['{"PK":"A#1"}']) == {}


def test_replaying_the_whole_history_onto_the_final_state_changes_nothing() -> None:
    h = Harness()
    history = [
        h.record("r", 50, after=_row(1), snapshot=True),
        h.record("r", 50, after=_row(2), snapshot=True),
        h.record("u", 100, after=_row(1, name="b")),
        h.record("c", 110, after=_row(3)),
        h.record("d", 120, before={"id": 2}),
        h.record("u", 130, after=_row(3, big=PLACEHOLDER, grp=None)),
        h.record("d", 140, before={"id": 3}),
        h.record("c", 150, after=_row(3, name="reborn")),
    ]
    for rec in history:  # one event per batch: every step is really written
        h.process([rec])
    final = {k: dict(v) for k, v in h.table.items.items()}
    h.fresh_pipeline()
    outcomes: dict[str, int] = {}
    for i in range(0, len(history), 3):
        for k, n in _outcomes(h.process(history[i : i + 3])).items():
            outcomes[k] = outcomes.get(k, 0) + n
    assert h.table.items == final
    assert outcomes.get("applied", 0) == 0
    assert outcomes["stale_skipped"] >= 3
    assert sum(outcomes.values()) == len(history)


def test_a_change_of_a_non_primary_key_key_column_moves_the_item() -> None:
    config = _config(keys={"PK": "A#{id}", "SK": "G#{grp}"}, indexes={})
    h = Harness(config)
    h.process([h.record("c", 100, after=_row(grp="a"))])
    result = h.process([h.record("u", 200, before=_row(grp="a"), after=_row(grp="b"))])
    assert _outcomes(result) == {"applied": 1}
    keys = sorted(orjson.loads(k)["SK"]["S"] for k in h.table.items)
    assert keys == ["G#b"]
    old = '{"PK":"A#1","SK":"G#a"}'
    assert h.state.graveyard_lsns(TABLE, [old]) == {old: 200}


def test_a_write_dynamodb_refuses_is_dead_lettered_as_failed_not_retried_forever() -> None:
    h = Harness()
    # Refused in the transaction, then again when written alone: dead-lettered, not retried.
    h.client.faults += [_err("ValidationException"), _err("ValidationException")]
    result = h.process([h.record("c", 100, after=_row())])
    assert _outcomes(result) == {"failed": 1}
    [dl] = result.dead_letters
    assert dl.reason.startswith("rejected by DynamoDB: ValidationException")
    assert h.client.attempts == 2
    assert h.table.items == {}


def test_throttling_is_retried_with_jittered_backoff_and_nothing_is_lost() -> None:
    h = Harness()
    h.client.faults += [_err("ProvisionedThroughputExceededException"), _err("ThrottlingException")]
    result = h.process([h.record("c", 100, after=_row())])
    assert _outcomes(result) == {"applied": 1}
    assert h.table.get("A#1") is not None
    assert len(h.sleeps) == 2
    # Full jitter under an exponential cap: attempt n waits at most base * 2**n.
    assert 0 <= h.sleeps[0] <= 0.01 and 0 <= h.sleeps[1] <= 0.02


def test_throttling_that_outlasts_the_retries_fails_the_batch_so_it_is_redelivered() -> None:
    h = Harness()
    h.client.faults += [_err("ThrottlingException")] * 4
    with pytest.raises(DynamoUnavailable):
        h.process([h.record("c", 100, after=_row())])
    assert h.table.items == {}
    # The daemon rewinds and processes the record again: this time it lands.
    h.fresh_pipeline()
    assert _outcomes(h.process([h.record("c", 100, after=_row())])) == {"applied": 1}


def test_a_table_without_a_primary_key_is_refused_at_config_check() -> None:
    with pytest.raises(ConfigError, match=r"tables\[0\]\.primary_key: table public.acct has no primary key"):
        _config(primary_key=[])


def test_a_batch_is_written_as_transactions_and_a_cancelled_one_is_decided_per_item() -> None:
    h = Harness()
    h.process([h.record("c", 500, after=_row(1, name="newest"))])
    h.fresh_pipeline()
    h.table.calls.clear()
    # Item 1 already holds a newer version; items 2..9 are new. Concurrency 2: two transactions.
    batch = [h.record("u", 400, after=_row(1, name="older"))]
    batch += [h.record("c", 400, after=_row(i)) for i in range(2, 10)]
    result = h.process(batch)
    assert _outcomes(result) == {"stale_skipped": 1, "applied": 8}
    ops = [op for op, _ in h.table.calls]
    assert ops.count("TransactWriteItems") == 2
    # The cancelled transaction's other items were written one by one; nothing else was.
    assert ops.count("UpdateItem") == 4
    item = h.table.get("A#1")
    assert item is not None and item["name"] == {"S": "newest"}
    assert all(h.table.get(f"A#{i}") is not None for i in range(2, 10))


def test_a_replayed_batch_is_decided_by_one_cancelled_transaction_per_chunk() -> None:
    h = Harness()
    batch = [h.record("r", 50, after=_row(i), snapshot=True) for i in range(1, 7)]
    h.process(batch)
    h.fresh_pipeline()
    h.table.calls.clear()
    assert _outcomes(h.process(batch)) == {"stale_skipped": 6}
    assert [op for op, _ in h.table.calls] == ["TransactWriteItems", "TransactWriteItems"]


def test_the_write_rate_limit_paces_writes_per_table() -> None:
    h = Harness(_config(write_rate_limit=40))
    started = time.monotonic()
    result = h.process([h.record("c", 100, after=_row(i)) for i in range(1, 61)])
    took = time.monotonic() - started
    assert _outcomes(result) == {"applied": 60}
    # A burst of 40 tokens, then 20 more writes at 40/s: at least half a second.
    assert took >= 0.45


def test_single_writes_mode_sends_one_conditional_update_per_event_and_no_transaction() -> None:
    h = Harness(_config(shadow_writes="single"))
    h.process([h.record("c", 500, after=_row(1, name="newest"))])
    h.fresh_pipeline()
    h.table.calls.clear()
    batch = [h.record("u", 400, after=_row(1, name="older"))]
    batch += [h.record("c", 400, after=_row(i)) for i in range(2, 6)]
    assert _outcomes(h.process(batch)) == {"stale_skipped": 1, "applied": 4}
    assert sorted(op for op, _ in h.table.calls) == ["UpdateItem"] * 5
    item = h.table.get("A#1")
    assert item is not None and item["name"] == {"S": "newest"}


class _InFlight:
    """Wraps a FakeClient's UpdateItem: counts the most calls running at once."""

    def __init__(self, client: FakeClient) -> None:
        self.client, self.running, self.peak = client, 0, 0
        self.lock = threading.Lock()
        self.inner = client.update_item

    def update_item(self, **kw: Any) -> dict[str, Any]:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        time.sleep(0.005)  # a round trip, so the calls overlap
        try:
            with self.lock:  # the fake table itself is not thread-safe
                return self.inner(**kw)
        finally:
            with self.lock:
                self.running -= 1


@pytest.mark.parametrize(("writes", "peak"), [("single", 6), ("transactions", 2)])
def test_single_writes_run_shadow_write_concurrency_in_flight(writes: str, peak: int) -> None:
    h = Harness(_config(shadow_writes=writes))
    h.store = DynamoStore(h.client, concurrency=2, write_concurrency=6)
    h.fresh_pipeline()
    watch = _InFlight(h.client)
    h.client.update_item = watch.update_item  # type: ignore[method-assign]
    if writes == "transactions":
        # Every transaction cancelled by a conflict: its items are retried one by one, and in
        # transactions mode those single writes stay at `dynamo_concurrency`, as before.
        def conflict(TransactItems: list[dict[str, Any]]) -> dict[str, Any]:
            exc = _err("TransactionCanceledException")
            exc.response["CancellationReasons"] = [
                {"Code": "TransactionConflict"} for _ in TransactItems
            ]
            raise exc

        h.client.transact_write_items = conflict  # type: ignore[method-assign,assignment]
    try:
        result = h.process([h.record("c", 100, after=_row(i)) for i in range(1, 31)])
    finally:
        h.store.close()
    assert _outcomes(result) == {"applied": 30}
    assert watch.peak == peak


def test_truncate_apply_deletes_the_tables_items_in_stream_order_and_buries_them() -> None:
    h = Harness(_config(truncate="apply"))
    h.process([h.record("c", 100, after=_row(i)) for i in range(1, 5)])
    foreign = {"PK": {"S": "OTHER#1"}, "_parity_version": {"N": "1"}}  # not this mapping's key shape
    h.table.items[h.table._id({"PK": foreign["PK"]})] = foreign
    truncated = debezium.envelope("t", debezium.source_block("acct", lsn=200))
    truncate = Record(h.topic, 0, 99, None, debezium.value(truncated), None)
    # One batch: a change before the truncate is applied (then deleted), one after it survives.
    result = h.process([h.record("u", 150, after=_row(1, name="x")), truncate, h.record("c", 300, after=_row(9))])
    assert result.truncate_deleted == {SOURCE: 4}
    assert [k for k in h.table.items if "A#" in k] == [h.table._id({"PK": {"S": "A#9"}})]
    assert h.table._id({"PK": {"S": "OTHER#1"}}) in h.table.items
    # A replayed create from before the truncate cannot resurrect its item.
    h.fresh_pipeline()
    assert _outcomes(h.process([h.record("c", 100, after=_row(2))])) == {"stale_skipped": 1}
    assert h.table.get("A#2") is None


def test_truncate_apply_is_refused_outside_shadow_mode() -> None:
    with pytest.raises(ConfigError, match="truncate"):
        _config(truncate="apply", mode="verify")


def test_an_event_without_a_mapped_column_is_not_applied_but_counted_not_compared() -> None:
    """A partial write would leave the attribute silently stale in the shadow copy: not applied."""
    h = Harness()
    h.process([h.record("c", 100, after=_row())])
    calls = len(h.table.calls)
    row = _row(name="new")
    del row["big"]  # the column was dropped from the table (or the mapping misspells it)
    result = h.process([h.record("u", 200, after=row)])
    assert _outcomes(result) == {"not_compared": 1}
    assert result.not_compared == {(SOURCE, "big", "column_missing"): 1}
    assert len(h.table.calls) == calls  # nothing written
    item = h.table.get("A#1")
    assert item is not None and item["name"] == {"S": "ann"} and item["_parity_version"] == {"N": "100"}
