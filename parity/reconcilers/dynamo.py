"""DynamoDB side of a reconcile: one segment of a parallel Scan -> records and bucket digests.

Every page passes `Limit` (DynamoDB Local spends time proportional to the rest of the table on
a page without it), an optional `ConsistentRead`, and waits on a shared read-rate limiter (RCU/s)
fed by the capacity each page reports. Items are decoded with `parity.core.values` (plain type
dispatch) and routed through the `TargetRouter`: a single-table design holds items of several
Postgres tables, and items that fit no mapping are counted as unmapped with a sample of keys (and spilled with their
fingerprint, like items of mappings this run does not check, for the drill-down's ownership rule).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from parity.adapters.dynamodb import DynamoStore
from parity.core.digest import row_hash
from parity.core.errors import MappingError
from parity.core.mapping import ItemMapper, TargetRouter
from parity.core.readbudget import ReadLimiter
from parity.core.values import Item, item_from_wire, item_to_wire
from parity.reconcilers.tally import (
    OTHER_TABLE,
    UNMAPPED,
    SideTally,
    SpillWriter,
    key_bytes,
    key_fingerprint,
    key_to_json,
)

# (segment, LastEvaluatedKey as JSON-ready wire or None when finished, spill offset, items in page)
PageCallback = Callable[[int, dict[str, Any] | None, int, int], None]


def consumed_units(response: Mapping[str, Any], items: int, consistent: bool) -> float:
    """Capacity a Scan page used: as reported, else an estimate (half a unit per item, eventual)."""
    capacity = response.get("ConsumedCapacity") or {}
    units = capacity.get("CapacityUnits")
    if isinstance(units, (int, float)) and units > 0:
        return float(units)
    return max(1.0, math.ceil(items * (1.0 if consistent else 0.5)))


class SegmentScanner:
    """Scans segments of one DynamoDB table for the selected mappings of a router."""

    def __init__(
        self,
        store: DynamoStore,
        table: str,
        router: TargetRouter,
        selected: Sequence[ItemMapper],
        *,
        page_limit: int,
        consistent: bool,
        limiter: ReadLimiter | None = None,
    ) -> None:
        self.store = store
        self.table = table
        self.router = router
        # Routing uses the router's own mapper objects; match them to the selection by source.
        by_source = {m.mapping.source: i for i, m in enumerate(selected)}
        self.route_index = {id(m): by_source[m.mapping.source] for m in router.mappers if m.mapping.source in by_source}
        self.key_names = tuple(router.mappers[0].key_attributes)
        self.page_limit = page_limit
        self.consistent = consistent
        self.limiter = limiter

    def scan(
        self,
        segment: int,
        total_segments: int,
        tally: SideTally,
        lock: threading.Lock,
        writer: SpillWriter,
        *,
        start_key: Item | None = None,
        on_page: PageCallback | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> int:
        """Scan one segment to its end (or until `should_stop`); returns the items read."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Segment": segment,
            "TotalSegments": total_segments,
            "Limit": self.page_limit,
            "ConsistentRead": self.consistent,
            "ReturnConsumedCapacity": "TOTAL",
        }
        if start_key is not None:
            kwargs["ExclusiveStartKey"] = item_to_wire(start_key)
        items_read = 0
        while not should_stop():
            response = self.store.call("Scan", **kwargs)
            page = response.get("Items", [])
            self._page(page, tally, lock, writer)
            items_read += len(page)
            last = response.get("LastEvaluatedKey")
            offset = writer.flush()
            if on_page is not None:
                on_page(segment, _lek_json(last), offset, len(page))
            if self.limiter is not None:
                self.limiter.acquire(consumed_units(response, len(page), self.consistent))
            if not last:
                break
            kwargs["ExclusiveStartKey"] = last
        return items_read

    def _page(self, page: list[dict[str, Any]], tally: SideTally, lock: threading.Lock, writer: SpillWriter) -> None:
        records: list[tuple[int, int, int]] = []
        unmapped: list[bytes] = []
        other_tables = 0
        route = self.router.mapper_for
        route_index = self.route_index
        write = writer.write
        for wire in page:
            item = item_from_wire(wire)
            mapper = route(item)
            if mapper is None:
                # With its fingerprint: the drill-down finds it if a Postgres row maps to its key
                # (then the row's table owns it, whatever the item's discriminator says).
                key = {n: item[n] for n in self.key_names if n in item}
                kb = key_bytes(key)
                write(UNMAPPED, key_fingerprint(key), 0, kb)
                unmapped.append(kb)
                continue
            index = route_index.get(id(mapper))
            if index is None:  # belongs to a mapping this run does not check (--table)
                key = {n: item[n] for n in self.key_names if n in item}
                write(OTHER_TABLE, key_fingerprint(key), 0, key_bytes(key))
                other_tables += 1
                continue
            try:
                key = {n: item[n] for n in mapper.key_attributes}
            except KeyError:  # pragma: no cover - routing already parsed the key
                raise MappingError("routed item without key") from None
            fp = key_fingerprint(key)
            h = row_hash(mapper.plan.comparable(item))
            write(index, fp, h, key_bytes(key))
            records.append((index, fp, h))
        with lock:
            for index, fp, h in records:
                tally.add(index, fp, h)
            for kb in unmapped:
                tally.add_unmapped(kb)
            tally.other_tables += other_tables


def _lek_json(last: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not last:
        return None
    return key_to_json(item_from_wire(last))
