"""The ports: what the daemon, reconciler and repair need from each adapter, as Protocols.

A real adapter and its test fake both satisfy these (checked by mypy where a fake is passed, and
by the contract suites in tests/contract/, which run against the real service and the fake).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Protocol

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


class DynamoPort(DynamoReads, Protocol):
    """Reads plus any DynamoDB operation with parity's retries (writes, scans, transactions)."""

    # Told of every failed attempt that looks like an outage, before the retries run out.
    on_unreachable: Callable[[str], None] | None

    def call(self, operation: str, **kwargs: Any) -> dict[str, Any]: ...

    def map_parallel(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]: ...

    def close(self) -> None: ...
