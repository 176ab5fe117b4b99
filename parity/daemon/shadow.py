"""Shadow mode: apply each change event to DynamoDB (CDC-driven sync during dual writes).

Every write carries the event's WAL position (LSN) in the table's version attribute and is
conditional on the stored version being older, so an older event never overwrites newer state
and a replayed event is a no-op (`ConditionalCheckFailed` -> `stale_skipped`). Deletes leave the
LSN in the local graveyard, because a deleted item has no attribute left to compare against:
without it, replaying an old create would resurrect the row.

Writes are UpdateItem, not PutItem: attributes only the target has (a TTL, another writer's
fields) survive, and an unchanged TOASTed column (absent from the event) is simply not touched.
Batches arrive collapsed to one event per key, so writes of one batch run in parallel without
reordering any key. Conditional writes cannot use BatchWriteItem, so they are grouped into
TransactWriteItems of up to 100 (one round trip each, like a batch): a cancelled transaction says
per item which condition failed; the rest of it is retried item by item. (On provisioned
DynamoDB a transactional write costs twice the write capacity of a plain one.)
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from parity.adapters.dynamodb import DynamoStore
from parity.adapters.state import StateStore, key_json
from parity.core.config import ParityConfig, TableMapping
from parity.core.errors import MappingError
from parity.core.events import Op
from parity.core.mapping import TargetRouter
from parity.core.outcomes import Outcome
from parity.core.ratelimit import Pacer
from parity.core.update import OwnedAttributes, item_update
from parity.core.values import item_from_wire, item_to_wire
from parity.daemon.batch import BatchResult, DeadLetter, Work


@dataclass(frozen=True, slots=True)
class Rejected:
    """A write DynamoDB refuses for good (item too large, bad value): dead-lettered, counted `failed`."""

    reason: str


TRANSACTION_LIMIT = 100  # DynamoDB's limit of items per TransactWriteItems

# (applied | stale_skipped | Rejected, the old key buried by a key move)
Written = tuple["Outcome | Rejected", "tuple[str, str, int] | None"]


class ShadowApplier:
    def __init__(self, config: ParityConfig, dynamo: DynamoStore, state: StateStore) -> None:
        self.config = config
        self.dynamo = dynamo
        self.state = state
        self.limiters = {
            t.source: Pacer(t.write_rate_limit, clock=time.monotonic, sleep=time.sleep, lock=threading.Lock())
            for t in config.tables
            if t.write_rate_limit
        }
        self._owned = {t.source: OwnedAttributes.of(t) for t in config.tables}

    def apply(self, works: list[Work], now: float, result: BatchResult) -> None:
        by_target: dict[str, list[Work]] = {}
        for w in works:
            by_target.setdefault(w.target, []).append(w)
        graves: dict[tuple[str, str], int] = {}
        for target, ws in by_target.items():
            texts = [key_json(w.key) for w in ws]
            for k, lsn in self.state.graveyard_lsns(target, texts).items():
                graves[(target, k)] = lsn
        outcomes: list[Written | None] = [None] * len(works)
        grouped: list[int] = []
        singles: list[int] = []
        for i, w in enumerate(works):
            grave = graves.get((w.target, key_json(w.key)))
            if grave is not None and grave >= w.lsn:
                # Deleted at this LSN or later: nothing to write (a replayed delete included).
                outcomes[i] = (Outcome.STALE_SKIPPED, None)
            elif self._old_key(w) is not None or w.mapping.shadow_writes == "single":
                singles.append(i)  # a key move is two writes: kept out of the transactions
            else:
                grouped.append(i)
        # Conditional writes cannot use BatchWriteItem; a transaction of up to 100 conditional
        # writes costs one round trip like a batch does. Spread the batch over the pool first.
        size = max(1, min(TRANSACTION_LIMIT, -(-len(grouped) // self.dynamo.concurrency)))
        chunks = [grouped[i : i + size] for i in range(0, len(grouped), size)]
        for decided, retry in self.dynamo.map_parallel(lambda c: self._transact(works, c), chunks):
            for i, outcome in decided.items():
                outcomes[i] = outcome
            singles += retry
        # Whatever a transaction could not decide (and key moves) is written one by one, after
        # the transactions, so no key has two writes in flight. A table in `shadow_writes: single`
        # gets `daemon.shadow_write_concurrency` in flight: one item per request needs more
        # requests in flight than transactions of 100 to keep DynamoDB as busy.
        wide = any(works[i].mapping.shadow_writes == "single" for i in singles)
        width = self.config.shadow_write_width if wide else self.dynamo.concurrency
        for i, outcome in zip(
            singles,
            self.dynamo.map_parallel(lambda i: self._apply_one(works[i]), singles, width=width),
            strict=True,
        ):
            outcomes[i] = outcome
        self._account(works, outcomes, graves, now, result)

    def _account(
        self,
        works: list[Work],
        outcomes: list[Written | None],
        graves: dict[tuple[str, str], int],
        now: float,
        result: BatchResult,
    ) -> None:
        buried: list[tuple[str, str, int]] = []
        revived: list[tuple[str, str]] = []
        for w, decided in zip(works, outcomes, strict=True):
            assert decided is not None
            outcome, extra = decided
            if isinstance(outcome, Rejected):
                # DynamoDB refused the write itself (not a condition): retrying cannot help.
                result.dead_letters.append(
                    DeadLetter(w.record, f"rejected by DynamoDB: {outcome.reason}", w.mapping.source, "other")
                )
                result.count(w.mapping.source, Outcome.FAILED, op=w.event.op.value)
                continue
            result.count(w.mapping.source, outcome, op=w.event.op.value)
            if outcome == Outcome.APPLIED:
                result.verdict_latency.append((w.mapping.source, max(0.0, now - w.event_ts)))
                result.shadow_writes += 1
            if w.expected is None and outcome in (Outcome.APPLIED, Outcome.STALE_SKIPPED):
                buried.append((w.target, key_json(w.key), w.lsn))
            elif outcome == Outcome.APPLIED and (w.target, key_json(w.key)) in graves:
                revived.append((w.target, key_json(w.key)))
            if extra is not None:
                buried.append(extra)
        if buried or revived:
            self.state.bury(buried, revived)

    def truncate(self, mapping: TableMapping, lsn: int, result: BatchResult) -> int:
        """Apply a TRUNCATE: delete every item of `mapping` in its target, each conditional on an
        older version, and bury the keys so a replayed older create cannot bring one back. Items
        of other mappings in a single-table design are routed away and left alone."""
        target = mapping.write_table
        router = TargetRouter([t for t in self.config.tables if t.write_table == target])
        deleted = 0
        start: dict[str, Any] | None = None
        while True:
            page = self.dynamo.call(
                "Scan",
                TableName=target,
                Limit=1000,
                ConsistentRead=True,
                **({"ExclusiveStartKey": start} if start else {}),
            )
            graves: list[tuple[str, str, int]] = []
            for wire in page.get("Items", []):
                item = item_from_wire(wire)
                routed = router.route(item)
                if routed is None or routed.source != mapping.source:
                    continue
                key = {k: item[k] for k in mapping.keys}
                try:
                    self.dynamo.call("DeleteItem", **self._delete_request(mapping, target, key, lsn))
                    deleted += 1
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                        raise
                graves.append((target, key_json(key), lsn))
            if graves:
                self.state.bury(graves)
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        result.truncate_deleted[mapping.source] = result.truncate_deleted.get(mapping.source, 0) + deleted
        return deleted

    def _transact(self, works: list[Work], chunk: list[int]) -> tuple[dict[int, Written], list[int]]:
        """One TransactWriteItems of conditional writes: (decided outcomes, indexes to retry alone).

        A cancelled transaction writes nothing and says per item why: a failed condition is a
        stale event; anything else (a conflict, throttling, an invalid item) is retried alone."""
        if not chunk:
            return {}, []
        for i in chunk:
            limiter = self.limiters.get(works[i].mapping.source)
            if limiter:
                limiter.acquire()
        ops = [self._write_op(works[i]) for i in chunk]
        try:
            self.dynamo.call("TransactWriteItems", TransactItems=ops)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                return {}, list(chunk)  # e.g. over the 4 MB transaction limit: one by one
            reasons = exc.response.get("CancellationReasons") or []
            if len(reasons) != len(chunk):
                return {}, list(chunk)
            decided: dict[int, Written] = {}
            retry: list[int] = []
            for i, reason in zip(chunk, reasons, strict=True):
                if reason.get("Code") == "ConditionalCheckFailed":
                    decided[i] = (Outcome.STALE_SKIPPED, None)
                else:
                    retry.append(i)
            return decided, retry
        return {i: (Outcome.APPLIED, None) for i in chunk}, []

    def _write_op(self, w: Work) -> dict[str, Any]:
        if w.expected is None:
            return {"Delete": self._delete_request(w.mapping, w.target, w.key, w.lsn)}
        return {"Update": self._update_request(w.mapping, w)}

    def _old_key(self, w: Work) -> dict[str, Any] | None:
        """The item's previous key when an update changed a key column that is not the primary key."""
        before = w.event.before
        if w.expected is None or w.event.op is not Op.UPDATE or not before:
            return None
        if not all(c in before for c in w.mapper.key_columns):
            return None
        try:
            old_key = w.mapper.key(before)
        except MappingError:  # the old row's key cannot be built (a NULL): nothing to move
            return None
        return old_key if old_key != w.key else None

    def _apply_one(self, w: Work) -> Written:
        limiter = self.limiters.get(w.mapping.source)
        if limiter:
            limiter.acquire()
        m = w.mapping
        extra: tuple[str, str, int] | None = None
        try:
            if w.expected is None:
                self.dynamo.call("DeleteItem", **self._delete_request(m, w.target, w.key, w.lsn))
                return Outcome.APPLIED, None
            old_key = self._old_key(w)
            if old_key is not None:
                # A change of a key column that is not the primary key moves the item.
                try:
                    self.dynamo.call("DeleteItem", **self._delete_request(m, w.target, old_key, w.lsn))
                    extra = (w.target, key_json(old_key), w.lsn)
                except ClientError as exc:
                    # The old key already holds a newer row: leave it, still write the new key.
                    if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                        raise
            self.dynamo.call("UpdateItem", **self._update_request(m, w))
            return Outcome.APPLIED, extra
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") == "ConditionalCheckFailedException":
                return Outcome.STALE_SKIPPED, extra
            if error.get("Code") == "ValidationException":
                return Rejected(f"{error.get('Code')}: {error.get('Message', '')}"), extra
            raise

    def _condition(self, m: TableMapping, lsn: int) -> dict[str, Any]:
        return {
            "ConditionExpression": "attribute_not_exists(#v) OR #v < :v",
            "ExpressionAttributeNames": {"#v": m.version_attribute},
            "ExpressionAttributeValues": {":v": {"N": str(lsn)}},
        }

    def _delete_request(self, m: TableMapping, target: str, key: dict[str, Any], lsn: int) -> dict[str, Any]:
        return {"TableName": target, "Key": item_to_wire(key), **self._condition(m, lsn)}

    def _update_request(self, m: TableMapping, w: Work) -> dict[str, Any]:
        assert w.expected is not None
        update = item_update(
            self._owned[m.source], w.expected, unavailable=w.unavailable, version=(m.version_attribute, w.lsn)
        )
        assert update is not None  # the version is always set
        cond = self._condition(m, w.lsn)  # names #v and :v as the update's version does
        return {
            "TableName": w.target,
            "Key": item_to_wire(w.key),
            "UpdateExpression": update.expression,
            "ConditionExpression": cond["ConditionExpression"],
            "ExpressionAttributeNames": {**cond["ExpressionAttributeNames"], **update.names},
            "ExpressionAttributeValues": {**cond["ExpressionAttributeValues"], **update.values},
        }
