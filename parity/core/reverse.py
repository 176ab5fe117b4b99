"""The reverse direction's verdicts: DynamoDB (after cutover, the source of truth) against the
Postgres row it should have been copied to (the rollback copy).

The forward mapping stays the one description of both stores. A stream record's item is routed
to its source table by the same rules the reconciler uses (`TargetRouter`: the discriminator
constants first, then the key templates), its primary-key columns are parsed back from the key
templates (`ItemMapper.primary_key_from_item`), and the Postgres row read by that key is mapped
*forward* with the same mapper and compared with the item by `parity.core.compare.compare`. So
"attribute names and types back to columns" follows from the one mapping and the one
normalization, instead of a second, inverse mapping that could disagree with it.

Only the attributes the mapping accounts for are compared: an attribute the application writes
to DynamoDB that no column maps to has no place in Postgres to be checked against.

The kinds name Postgres as the side that is wrong:
  missing_in_source     the item exists, the row does not
  unexpected_in_source  the item was removed, the row is still there
  value_mismatch        both exist and differ
  stale_in_source       they differ and the row's freshness column is older than the item's

Pure: no I/O, time is passed in by the callers.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from parity.core.compare import AttributeDiff, Match, Mismatch, MismatchKind, compare
from parity.core.config import TableMapping
from parity.core.mapping import ItemMapper, TargetRouter
from parity.core.streams import StreamRecord
from parity.core.values import Item, Value

__all__ = [
    "OP_OF_EVENT",
    "ReverseKind",
    "ReverseMismatch",
    "ReverseRouter",
    "Routed",
    "reverse_verdict",
]


class ReverseKind(enum.StrEnum):
    MISSING_IN_SOURCE = "missing_in_source"
    UNEXPECTED_IN_SOURCE = "unexpected_in_source"
    VALUE_MISMATCH = "value_mismatch"
    STALE_IN_SOURCE = "stale_in_source"


# The forward kinds say what the target (DynamoDB) lacks; here the copy being checked is Postgres.
_KIND: Final = {
    MismatchKind.MISSING_IN_TARGET: ReverseKind.MISSING_IN_SOURCE,
    MismatchKind.UNEXPECTED_IN_TARGET: ReverseKind.UNEXPECTED_IN_SOURCE,
    MismatchKind.VALUE_MISMATCH: ReverseKind.VALUE_MISMATCH,
    MismatchKind.STALE_IN_TARGET: ReverseKind.STALE_IN_SOURCE,
}

# A stream record's event name as the Debezium op code the metrics' `op` label already knows.
OP_OF_EVENT: Final = {"INSERT": "c", "MODIFY": "u", "REMOVE": "d"}


@dataclass(frozen=True, slots=True)
class ReverseMismatch:
    kind: ReverseKind
    # `expected` is DynamoDB's value, `actual` Postgres' (mapped forward).
    diffs: tuple[AttributeDiff, ...] = ()
    # The row's freshness column is newer than the item's: Postgres holds a later change than this
    # item (its DynamoDB write is still to come in the stream, or was lost), not a stale copy.
    source_ahead: bool = False


def reverse_verdict(mapper: ItemMapper, item: Item | None, row_item: Item | None) -> Match | ReverseMismatch:
    """`item`: DynamoDB's state (None: removed). `row_item`: the Postgres row mapped forward by
    `mapper` (None: no row). Compared with the forward direction's normalization."""
    verdict = compare(mapper, item, row_item)
    if isinstance(verdict, Match):
        return verdict
    return _reverse(verdict)


def _reverse(m: Mismatch) -> ReverseMismatch:
    return ReverseMismatch(_KIND[m.kind], m.diffs, source_ahead=m.target_ahead)


@dataclass(frozen=True, slots=True)
class Routed:
    """Where a stream record belongs: its source table's mapper and the row's primary key."""

    mapper: ItemMapper
    primary_key: dict[str, str]  # column -> text, as parsed back from the key templates
    key: Item  # the DynamoDB primary key

    @property
    def source(self) -> str:
        return self.mapper.mapping.source


class ReverseRouter:
    """Routes stream records of the DynamoDB tables whose mappings are in reverse mode."""

    def __init__(self, mappings: Sequence[TableMapping]) -> None:
        by_target: dict[str, list[TableMapping]] = {}
        for m in mappings:
            by_target.setdefault(m.target, []).append(m)
        self._routers = {target: TargetRouter(group) for target, group in by_target.items()}

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(self._routers)

    def route(self, record: StreamRecord) -> Routed | None:
        """None: the item belongs to no reverse mapping (another entity of a shared table)."""
        router = self._routers.get(record.table)
        if router is None:
            return None
        # The fullest image decides (its discriminator); a REMOVE without an old image has the key only.
        item: Mapping[str, Value] = record.new_image or record.old_image or record.keys
        mapper = router.mapper_for(item)
        if mapper is None:
            return None
        key = {a: record.keys[a] for a in mapper.key_attributes if a in record.keys}
        if len(key) != len(mapper.key_attributes):
            return None
        pk = mapper.primary_key_from_item(key)
        if pk is None:
            return None
        return Routed(mapper, pk, key)
