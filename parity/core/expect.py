"""What the target should hold after one change event: its key, the expected item (None for a
delete: absence is expected), and the facts the daemon reports about the event's columns.

- `unavailable`: attributes whose value is not in the event (an unchanged TOASTed column):
  compare skips them for this one event, and `carry_toast` fills them from an older event of the
  same batch that did carry the value.
- `missing`: mapped columns the event does not carry at all (see parity.core.columns): the
  event cannot be compared or applied, it is `not_compared`.
- `unmapped`: source columns the mapping does not name (schema drift). Under the table's
  `schema_drift: compare` they are expected in the target under their own name, typed by value.

An event that cannot become an item is `Unmappable`, a value like a mismatch, never an
exception: the daemon dead-letters it with the reason. A value nested deeper than DynamoDB
allows is unmappable too, including one nested so deep that converting it exhausts Python's
recursion limit (a poison pill that would otherwise crash the daemon on every restart). An
`Unmappable` found after the columns were looked at still carries `missing` and `unmapped`, so
the daemon reports them whatever became of the event.

Pure: no I/O, no logging; the daemon logs the facts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from parity.core.config import ColumnRule, TableMapping
from parity.core.errors import MappingError
from parity.core.events import UNAVAILABLE, ChangeEvent, Op
from parity.core.mapping import ItemMapper, converter
from parity.core.values import Item

__all__ = [
    "MAX_NESTING",
    "Expectation",
    "Unmappable",
    "carry_toast",
    "expect",
    "finish",
    "too_deep",
    "unmapped_columns",
]

MAX_NESTING: Final = 32  # DynamoDB's limit on nested maps and lists
TOO_DEEP: Final = f"a value is nested deeper than DynamoDB's {MAX_NESTING} levels"
# A column the mapping does not name has no rule: it is typed by its value alone.
_AUTO: Final = converter(ColumnRule())


@dataclass(frozen=True, slots=True)
class Expectation:
    key: Item
    expected: Item | None  # None: the row is gone, absence is expected
    unavailable: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    unmapped: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Unmappable:
    reason: str  # the dead-letter reason is "unmappable: <reason>"
    missing: tuple[str, ...] = ()
    unmapped: tuple[str, ...] = ()


def expect(mapper: ItemMapper, event: ChangeEvent) -> Expectation | Unmappable:
    """The expectation for `event` of `mapper`'s table (module docstring). Not for a TRUNCATE."""
    row = event.row
    if row is None:
        return _deleted(mapper, event)
    try:
        expected, key, unavailable_list = mapper.expected_parts(row)
    except MappingError as exc:
        return Unmappable(str(exc))
    except RecursionError:
        return Unmappable(TOO_DEEP)
    return finish(mapper, row, expected, key, unavailable_list)


def finish(
    mapper: ItemMapper,
    row: Mapping[str, Any],
    expected: Item,
    key: Item,
    unavailable_list: list[str],
    *,
    nested: bool = True,
) -> Expectation | Unmappable:
    """The rest of `expect` once the row's item, key and TOAST list are built (by
    `ItemMapper.expected_parts` or by a compiled plan, parity.core.plan): the column facts,
    schema-drift attributes and the nesting check. `nested=False`: the caller knows no value of
    `expected` is a map or a list, so only drift attributes added here can nest."""
    unavailable = tuple(unavailable_list)
    missing = mapper.missing(row)
    unmapped = unmapped_columns(mapper.mapping, row)
    try:
        if unmapped and mapper.mapping.schema_drift == "compare":
            for col in unmapped:
                value = row[col]
                if value is not None and value is not UNAVAILABLE:
                    expected[col] = _AUTO(value)
                    nested = True
        if nested and too_deep(expected):
            return Unmappable(TOO_DEEP, missing, unmapped)
    except MappingError as exc:
        return Unmappable(str(exc), missing, unmapped)
    except RecursionError:
        return Unmappable(TOO_DEEP, missing, unmapped)
    return Expectation(key, expected, unavailable, missing, unmapped)


def _deleted(mapper: ItemMapper, event: ChangeEvent) -> Expectation | Unmappable:
    if event.op is Op.CREATE or event.op is Op.UPDATE or event.op is Op.READ:
        return Unmappable(f"{event.op.value} event without 'after'")
    # The key is built from the old row, or from the record key when the old row is not sent.
    source_row = event.before if event.before else event.key
    absent = [c for c in mapper.key_columns if c not in source_row]
    if absent:
        # With REPLICA IDENTITY DEFAULT a delete carries only the primary key; a DynamoDB key
        # built from other columns cannot be known from it.
        return Unmappable(
            f"delete of {mapper.mapping.source} carries only {sorted(source_row)}; the DynamoDB key needs "
            f"{sorted(absent)}: set REPLICA IDENTITY FULL on the table"
        )
    try:
        return Expectation(mapper.key(source_row), None)
    except MappingError as exc:
        return Unmappable(str(exc))
    except RecursionError:
        return Unmappable(TOO_DEEP)


def unmapped_columns(mapping: TableMapping, row: Mapping[str, Any]) -> tuple[str, ...]:
    """The columns of `row` the mapping does not name, in the row's order."""
    columns = mapping.columns
    if row.keys() <= columns.keys():  # the per-event common case, as one set operation in C
        return ()
    return tuple(c for c in row if c not in columns)


def too_deep(item: Item) -> bool:
    """True when a map or list nests deeper than DynamoDB allows (iterative: no recursion limit)."""
    for v in item.values():  # most items hold scalars only: no stack built for them
        if type(v) is dict or type(v) is list or isinstance(v, dict | list):
            break
    else:
        return False
    stack: list[tuple[Any, int]] = [(v, 1) for v in item.values() if isinstance(v, dict | list)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_NESTING:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def carry_toast(older: Expectation, newer: Expectation) -> Expectation:
    """`newer` with the values of its unavailable attributes that `older` (an earlier event of the
    same key in the same batch) carried: an unchanged TOASTed column is absent from the newer
    event, and the older event's value is then still the current one."""
    if not newer.unavailable or older.expected is None or newer.expected is None:
        return newer
    expected = dict(newer.expected)
    still: list[str] = []
    for attr in newer.unavailable:
        if attr in older.expected and attr not in older.unavailable:
            expected[attr] = older.expected[attr]
        else:
            still.append(attr)
    return replace(newer, expected=expected, unavailable=tuple(still))
