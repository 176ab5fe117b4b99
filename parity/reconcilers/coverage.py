"""What a reconcile could not compare, counted by reason with a sample of keys.

Coverage is a figure, not a log: per table, rows compared + rows not compared = rows in Postgres,
and items compared + items not compared = items routed to the table. A reason is the mapping
error's message without its row-specific part (the value, a size), so one cause is one line
with a count however many rows have it; the sample names the rows by primary key (redacted key
columns masked) and, on the DynamoDB side, by the item's key.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import uuid
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from parity.core.config import TableMapping

SAMPLE = 10
REDACTED = "<redacted>"
UNROUTABLE = "fits no mapping (no table's key templates and discriminator match the item)"
PG_ROW_UNMAPPABLE = "its Postgres row does not map to an item: "

# Row-specific parts of MappingError messages (parity/core/mapping.py, values.py): the value of a
# number DynamoDB cannot hold, an item's size, and the text of a Python exception, which may quote
# the value (a redacted column's value must never reach a report).
_RULES = (
    (re.compile(r"\bnumber \S+ (does not fit|cannot be stored)"), r"number <value> \1"),
    (re.compile(r"\bitem is \d+ bytes"), "item is <n> bytes"),
    (re.compile(r"(cannot format column '[^']*' with '[^']*'): .*$", re.DOTALL), r"\1"),
    (re.compile(r"(: [A-Z]\w*(?:Error|Exception|Operation|Overflow|Underflow|Inexact|Rounded)\w*): .*$",
                re.DOTALL), r"\1"),
)


def reason_of(message: str) -> str:
    """The error message without its row-specific part (module docstring)."""
    for pattern, replacement in _RULES:
        message = pattern.sub(replacement, message)
    return message


def json_value(value: Any) -> Any:
    """A key value as JSON keeps its type: integers (and integral decimals) are JSON numbers,
    other numbers too when a double holds them exactly; everything else is its text."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
        if value.is_finite() and Decimal(repr(float(value))) == value:
            return float(value)
        return str(value)
    if isinstance(value, float):
        return value
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")  # as key templates render binary
    return str(value)


def primary_key_json(mapping: TableMapping, row: Mapping[str, Any]) -> dict[str, Any]:
    """A row's primary key for a report: typed values, redacted columns masked."""
    return {
        c: REDACTED if mapping.rule(c).redact else json_value(row.get(c))
        for c in mapping.primary_key
    }


NUMERIC_TYPE_OIDS = frozenset({20, 21, 23, 26, 700, 701, 1700})  # int8 int2 int4 oid float4 float8 numeric


def typed_primary_key(mapping: TableMapping, texts: Mapping[str, str] | None,
                      numeric: Iterable[str]) -> dict[str, Any] | None:
    """Primary-key texts parsed back from a DynamoDB key, with numeric columns as JSON numbers."""
    if texts is None:
        return None
    numeric = set(numeric)
    out: dict[str, Any] = {}
    for column, text in texts.items():
        if mapping.rule(column).redact:
            out[column] = REDACTED
        elif column in numeric:
            try:
                out[column] = json_value(Decimal(text))
            except ArithmeticError:
                out[column] = text
        else:
            out[column] = text
    return out


class NotCompared:
    """Counts by reason, each with the first SAMPLE keys (mergeable, picklable)."""

    def __init__(self) -> None:
        self.groups: dict[str, list[Any]] = {}  # reason -> [count, [sample...]]

    @property
    def total(self) -> int:
        return sum(g[0] for g in self.groups.values())

    def add(self, reason: str, sample: Any, count: int = 1) -> None:
        group = self.groups.setdefault(reason, [0, []])
        group[0] += count
        if sample is not None and len(group[1]) < SAMPLE:
            group[1].append(sample)

    def remove(self, reason: str, sample: Any) -> None:
        """Take one back (an item the drill-down attributed to a table after all)."""
        group = self.groups.get(reason)
        if group is None:
            return
        group[0] -= 1
        if sample in group[1]:
            group[1].remove(sample)
        if group[0] <= 0:
            del self.groups[reason]

    def merge(self, other: NotCompared) -> None:
        for reason, (count, sample) in other.groups.items():
            group = self.groups.setdefault(reason, [0, []])
            group[0] += count
            group[1].extend(sample[: max(0, SAMPLE - len(group[1]))])

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {"reason": reason, "count": count, "sample": list(sample)}
            for reason, (count, sample) in sorted(self.groups.items(), key=lambda kv: (-kv[1][0], kv[0]))
        ]
