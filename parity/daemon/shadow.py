"""Shadow mode: apply each change event to DynamoDB (CDC-driven sync during dual writes).

Every write carries the event's WAL position (LSN) in the table's version attribute and is
conditional on the stored version being older, so an older event never overwrites newer state
and a replayed event is a no-op (`ConditionalCheckFailed` -> `stale_skipped`). Deletes leave the
LSN in the local graveyard, because a deleted item has no attribute left to compare against:
without it, replaying an old create would resurrect the row.

Writes are UpdateItem, not PutItem: attributes only the target has (a TTL, another writer's
fields) survive, and an unchanged TOASTed column (absent from the event) is simply not touched.
Batches arrive collapsed to one event per key, so writes of one batch run in parallel without
reordering any key.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from parity.core.config import ParityConfig, TableMapping
from parity.core.events import Op
from parity.core.ratelimit import TokenBucket
from parity.core.values import item_to_wire, to_wire
from parity.daemon.dynamo import DynamoStore
from parity.daemon.state import StateStore, key_json
from parity.daemon.steps import BatchResult, DeadLetter, Work


@dataclass(frozen=True, slots=True)
class Rejected:
    """A write DynamoDB refuses for good (item too large, bad value): dead-lettered, counted `failed`."""

    reason: str


def key_text(key: dict[str, Any]) -> str:
    return key_json(key)


class _Limiter:
    def __init__(self, rate: float) -> None:
        self._bucket = TokenBucket(rate)
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            wait = self._bucket.reserve(time.monotonic())
        if wait > 0:
            time.sleep(wait)


class ShadowApplier:
    def __init__(self, config: ParityConfig, dynamo: DynamoStore, state: StateStore) -> None:
        self.config = config
        self.dynamo = dynamo
        self.state = state
        self.limiters = {t.source: _Limiter(t.write_rate_limit) for t in config.tables if t.write_rate_limit}
        self._attrs: dict[str, list[str]] = {}
        for t in config.tables:
            # Everything this mapping writes besides the key: a column (or sparse index attribute)
            # that is NULL in the new row must be removed from the stored item.
            self._attrs[t.source] = [r.attribute(c) for c, r in t.columns.items() if not r.exclude] + [
                a for a in t.indexes if a not in t.keys
            ]

    def apply(self, works: list[Work], now: float, result: BatchResult) -> None:
        by_target: dict[str, list[Work]] = {}
        for w in works:
            by_target.setdefault(w.target, []).append(w)
        graves: dict[tuple[str, str], int] = {}
        for target, ws in by_target.items():
            texts = [key_text(w.key) for w in ws]
            for k, lsn in self.state.graveyard_lsns(target, texts).items():
                graves[(target, k)] = lsn
        outcomes = self.dynamo.map_parallel(lambda w: self._apply_one(w, graves), works)
        buried: list[tuple[str, str, int]] = []
        revived: list[tuple[str, str]] = []
        for w, (outcome, extra) in zip(works, outcomes, strict=True):
            if isinstance(outcome, Rejected):
                # DynamoDB refused the write itself (not a condition): retrying cannot help.
                result.dead_letters.append(DeadLetter(w.record, f"rejected by DynamoDB: {outcome.reason}",
                                                      w.mapping.source, "other"))
                result.count(w.mapping.source, "failed", op=w.event.op.value)
                continue
            result.count(w.mapping.source, outcome, op=w.event.op.value)
            if outcome == "applied":
                result.verdict_latency.append((w.mapping.source, max(0.0, now - w.event_ts)))
                result.shadow_writes += 1
            if w.expected is None and outcome in ("applied", "stale_skipped"):
                buried.append((w.target, key_text(w.key), w.lsn))
            elif outcome == "applied" and (w.target, key_text(w.key)) in graves:
                revived.append((w.target, key_text(w.key)))
            if extra is not None:
                buried.append(extra)
        if buried or revived:
            self.state.bury(buried, revived)

    def _apply_one(
        self, w: Work, graves: dict[tuple[str, str], int]
    ) -> tuple[str | Rejected, tuple[str, str, int] | None]:
        limiter = self.limiters.get(w.mapping.source)
        if limiter:
            limiter.acquire()
        m = w.mapping
        extra: tuple[str, str, int] | None = None
        try:
            # Deleted at this LSN or later: nothing to write (a replayed delete included).
            grave = graves.get((w.target, key_text(w.key)))
            if grave is not None and grave >= w.lsn:
                return "stale_skipped", None
            if w.expected is None:
                self._delete(m, w.target, w.key, w.lsn)
                return "applied", None
            # A change of a key column that is not the primary key moves the item.
            before = w.event.before
            if w.event.op is Op.UPDATE and before and all(c in before for c in w.mapper.key_columns):
                old_key = w.mapper.key(before)
                if old_key != w.key:
                    self._delete(m, w.target, old_key, w.lsn)
                    extra = (w.target, key_text(old_key), w.lsn)
            self._update(m, w)
            return "applied", extra
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") == "ConditionalCheckFailedException":
                return "stale_skipped", extra
            if error.get("Code") == "ValidationException":
                return Rejected(f"{error.get('Code')}: {error.get('Message', '')}"), extra
            raise

    def _condition(self, m: TableMapping, lsn: int) -> dict[str, Any]:
        return {
            "ConditionExpression": "attribute_not_exists(#v) OR #v < :v",
            "ExpressionAttributeNames": {"#v": m.version_attribute},
            "ExpressionAttributeValues": {":v": {"N": str(lsn)}},
        }

    def _delete(self, m: TableMapping, target: str, key: dict[str, Any], lsn: int) -> None:
        self.dynamo.call("DeleteItem", TableName=target, Key=item_to_wire(key), **self._condition(m, lsn))

    def _update(self, m: TableMapping, w: Work) -> None:
        assert w.expected is not None
        cond = self._condition(m, w.lsn)
        names: dict[str, str] = dict(cond["ExpressionAttributeNames"])
        values: dict[str, Any] = dict(cond["ExpressionAttributeValues"])
        sets = ["#v = :v"]
        removes: list[str] = []
        key_names = set(m.keys)
        i = 0
        for attr, value in w.expected.items():
            if attr in key_names:
                continue
            names[f"#a{i}"] = attr
            values[f":a{i}"] = to_wire(value)
            sets.append(f"#a{i} = :a{i}")
            i += 1
        skip = set(w.unavailable) | set(w.expected)
        for attr in self._attrs[m.source]:
            if attr not in skip and attr not in key_names:
                names[f"#a{i}"] = attr
                removes.append(f"#a{i}")
                i += 1
        expr = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        self.dynamo.call(
            "UpdateItem",
            TableName=w.target,
            Key=item_to_wire(w.key),
            UpdateExpression=expr,
            ConditionExpression=cond["ConditionExpression"],
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
