"""In-memory stand-ins for unit tests of pure-ish logic. Each fake passes the same contract tests
as the real adapter (tests/contract/)."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

from parity.adapters.dynamodb import key_tuple

Item = dict[str, Any]


class FakeDynamoStore:
    """The read side of `parity.adapters.dynamodb.DynamoStore`, over dicts."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[tuple[Any, ...], Item]] = {}
        self.key_names: dict[str, tuple[str, ...]] = {}
        self.reads = 0

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
