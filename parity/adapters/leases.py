"""The lease table: one item per (stream, shard) saying which replica reads that shard.

Item: `stream` (partition key, the stream ARN), `shard` (sort key), `owner` (absent once
released), `version` (bumped by every write of the owner, so others can tell a live lease from a
dead one: parity.core.leases), `expires_at` (epoch seconds, for people reading the table; no
decision uses it), `checkpoint` (the highest committed sequence number, so a replica taking over
resumes where the last owner stopped even with its own state store), `finished`.

Every write is conditional: created only if absent, taken only at the version read, renewed,
checkpointed and released only while the owner is still us. A failed condition means the lease
is someone else's now (returned as False, never raised).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from parity.adapters.dynamodb import DynamoStore
from parity.core.errors import DynamoUnavailable
from parity.core.leases import LeaseView


class LeaseTable:
    def __init__(self, store: DynamoStore, table: str, owner: str, duration_s: float,
                 *, wall: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> None:
        if not owner:
            raise ValueError("lease owner id must not be empty")
        self.store = store
        self.table = table
        self.owner = owner
        self.duration_s = duration_s
        self._wall = wall
        self._sleep = sleep
        self.versions: dict[tuple[str, str], int] = {}  # our version of each lease we hold

    # -- the table -----------------------------------------------------------------------------

    def ensure_table(self, timeout_s: float = 60.0) -> None:
        """Create the lease table if it is missing (on-demand capacity) and wait until ACTIVE."""
        try:
            status = self.store.call("DescribeTable", TableName=self.table)["Table"]["TableStatus"]
        except DynamoUnavailable:
            raise
        except Exception as exc:
            if _code(exc) != "ResourceNotFoundException":
                raise
            try:
                self.store.call(
                    "CreateTable",
                    TableName=self.table,
                    BillingMode="PAY_PER_REQUEST",
                    AttributeDefinitions=[{"AttributeName": "stream", "AttributeType": "S"},
                                          {"AttributeName": "shard", "AttributeType": "S"}],
                    KeySchema=[{"AttributeName": "stream", "KeyType": "HASH"},
                               {"AttributeName": "shard", "KeyType": "RANGE"}],
                )
            except Exception as create_exc:
                if _code(create_exc) != "ResourceInUseException":  # another replica created it first
                    raise
            status = "CREATING"
        deadline = time.monotonic() + timeout_s
        while status != "ACTIVE":
            if time.monotonic() > deadline:
                raise DynamoUnavailable(f"lease table {self.table} not ACTIVE after {timeout_s:.0f} s ({status})")
            self._sleep(0.5)
            status = self.store.call("DescribeTable", TableName=self.table)["Table"]["TableStatus"]

    # -- reads ---------------------------------------------------------------------------------

    def leases(self, stream: str) -> dict[str, LeaseView]:
        """Every lease of `stream`, consistently read."""
        out: dict[str, LeaseView] = {}
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "#s = :s",
            "ExpressionAttributeNames": {"#s": "stream"},
            "ExpressionAttributeValues": {":s": {"S": stream}},
            "ConsistentRead": True,
        }
        while True:
            resp = self.store.call("Query", **kwargs)
            for item in resp.get("Items", []):
                view = _view(item)
                out[view.shard_id] = view
            last = resp.get("LastEvaluatedKey")
            if not last:
                return out
            kwargs["ExclusiveStartKey"] = last

    # -- conditional writes ----------------------------------------------------------------------

    def create(self, stream: str, shard: str) -> bool:
        with _conditional() as outcome:
            self.store.call(
                "PutItem",
                TableName=self.table,
                Item={"stream": {"S": stream}, "shard": {"S": shard}, "owner": {"S": self.owner},
                      "version": {"N": "1"}, "expires_at": {"N": self._expires()}},
                ConditionExpression="attribute_not_exists(#k)",
                ExpressionAttributeNames={"#k": "shard"},
            )
        ok = outcome.ok
        if ok:
            self.versions[(stream, shard)] = 1
        return ok

    def take(self, stream: str, lease: LeaseView) -> bool:
        """Take a released, expired or formerly-ours lease, if still at the version read."""
        ok = self._update(stream, lease.shard_id, "SET #o = :me, version = :next, expires_at = :exp",
                          "version = :v", {":v": {"N": str(lease.version)}, ":next": {"N": str(lease.version + 1)}})
        if ok:
            self.versions[(stream, lease.shard_id)] = lease.version + 1
        return ok

    def renew(self, stream: str, shard: str, checkpoint: str | None = None, finished: bool = False) -> bool:
        """Bump our lease's version (and store a checkpoint or the finished mark with it)."""
        mine = self.versions.get((stream, shard))
        if mine is None:
            return False
        sets = ["version = :next", "expires_at = :exp"]
        values: dict[str, Any] = {":v": {"N": str(mine)}, ":next": {"N": str(mine + 1)}}
        if checkpoint is not None:
            sets.append("checkpoint = :cp")
            values[":cp"] = {"S": checkpoint}
        if finished:
            sets.append("finished = :t")
            values[":t"] = {"BOOL": True}
        ok = self._update(stream, shard, "SET " + ", ".join(sets), "#o = :me AND version = :v", values)
        if ok:
            self.versions[(stream, shard)] = mine + 1
        else:
            self.versions.pop((stream, shard), None)
        return ok

    def release(self, stream: str, shard: str) -> bool:
        mine = self.versions.pop((stream, shard), None)
        if mine is None:
            return False
        return self._update(stream, shard, "REMOVE #o SET version = :next", "#o = :me AND version = :v",
                            {":v": {"N": str(mine)}, ":next": {"N": str(mine + 1)}}, expires=False)

    def _update(self, stream: str, shard: str, update: str, condition: str, values: dict[str, Any],
                *, expires: bool = True) -> bool:
        values = {**values, ":me": {"S": self.owner}} if ":me" in update + condition else dict(values)
        if expires and ":exp" in update:
            values[":exp"] = {"N": self._expires()}
        with _conditional() as outcome:
            self.store.call(
                "UpdateItem",
                TableName=self.table,
                Key={"stream": {"S": stream}, "shard": {"S": shard}},
                UpdateExpression=update,
                ConditionExpression=f"attribute_exists(#k) AND {condition}",
                ExpressionAttributeNames={"#o": "owner", "#k": "shard"} if "#o" in update + condition
                else {"#k": "shard"},
                ExpressionAttributeValues=values,
            )
        return outcome.ok

    def _expires(self) -> str:
        return f"{self._wall() + self.duration_s:.3f}"


class _Outcome:
    ok = True


@contextmanager
def _conditional() -> Iterator[_Outcome]:
    """A conditional write: a failed condition is an answer (`ok` False), not an error."""
    outcome = _Outcome()
    try:
        yield outcome
    except DynamoUnavailable:
        raise
    except Exception as exc:
        if _code(exc) != "ConditionalCheckFailedException":
            raise
        outcome.ok = False


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _view(item: dict[str, Any]) -> LeaseView:
    owner = item.get("owner", {}).get("S")
    checkpoint = item.get("checkpoint", {}).get("S")
    return LeaseView(
        shard_id=item["shard"]["S"],
        owner=owner or None,
        version=int(item.get("version", {}).get("N", "0")),
        checkpoint=checkpoint,
        finished=bool(item.get("finished", {}).get("BOOL", False)),
    )
