"""Postgres row <-> DynamoDB item: attribute rules, key templates, single-table routing.

A row is a dict of plain Python values as psycopg 3 returns them (see `parity.core.events`).
`ItemMapper.item(row)` builds the item the target should hold; everything a mapping needs per
row is compiled once in `__init__`, because the daemon calls it for every change event.

Canonical rendering of a value inside a key template (no format spec) and for `type: string`:
  str as is · bool `true`/`false` · numbers in plain digits without exponent (1.50 -> 1.5) ·
  UUID lower case · date/time ISO · aware datetime in UTC with `Z` (2024-03-01T12:00:00Z),
  naive datetime ISO without zone · bytes base64 · timedelta seconds · json compact, sorted keys.
With a spec, dates and datetimes use it as a strftime format (aware ones converted to UTC
first) and other values use it as a Python format spec: `{payment_date:%Y-%m-%d}`, `{n:08d}`.

A template that is exactly one bare field (`{customer_id}`) gives the key attribute the column's
*typed* value by its rule, so an integer column becomes an N key; any other template is an S.
An index (GSI) template whose column is NULL leaves that attribute out: a sparse index.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import string
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from parity.core.columns import compared_columns, missing_columns
from parity.core.config import SET_TYPES, ColumnRule, TableMapping
from parity.core.errors import MappingError
from parity.core.events import UNAVAILABLE
from parity.core.normalize import ComparisonPlan
from parity.core.values import (
    MAX_ITEM_BYTES,
    Item,
    Value,
    canonical_json,
    canonical_json_text,
    item_size,
    number,
    number_from,
    parse_json,
    value_size,
)

__all__ = ["Item", "ItemMapper", "TargetRouter", "canonical_json", "render"]

_UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=_UTC)
MAX_PARTITION_KEY_BYTES: Final = 2048
MAX_SORT_KEY_BYTES: Final = 1024

Converter = Callable[[Any], Value]


# --- rendering Python values as text -------------------------------------------------------------


def _utc_naive(value: dt.datetime) -> dt.datetime:
    return value.astimezone(_UTC).replace(tzinfo=None) if value.tzinfo is not None else value


def iso_datetime(value: dt.datetime) -> str:
    if value.tzinfo is None:
        return value.isoformat()
    if value.tzinfo is not _UTC:
        value = value.astimezone(_UTC)
    return value.isoformat()[:-6] + "Z"  # "+00:00" -> "Z"


def _plain_number(value: Decimal) -> str:
    return format(number(value), "f")


def _seconds(value: dt.timedelta) -> Decimal:
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    return number(Decimal(micros).scaleb(-6))


def render(value: Any) -> str:
    """The canonical text of a row value (module docstring)."""
    fn = _RENDER.get(type(value))
    if fn is not None:
        return fn(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (int, float, Decimal)):
        return _plain_number(number_from(value))
    raise MappingError(f"cannot render {type(value).__name__} as text")


_RENDER: dict[type, Callable[[Any], str]] = {
    str: lambda v: v,
    bool: lambda v: "true" if v else "false",
    int: str,
    Decimal: _plain_number,
    float: lambda v: _plain_number(number_from(v)),
    uuid.UUID: str,
    dt.datetime: iso_datetime,
    dt.date: dt.date.isoformat,
    dt.time: dt.time.isoformat,
    dt.timedelta: lambda v: _plain_number(_seconds(v)),
    bytes: lambda v: base64.b64encode(v).decode("ascii"),
    dict: canonical_json,
    list: canonical_json,
}


# --- converting row values to DynamoDB values ----------------------------------------------------


def _json_value(value: Any) -> Value:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float, Decimal)):
        return number_from(value)
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    raise MappingError(f"{type(value).__name__} is not a JSON value")


def _auto(value: Any) -> Value:
    fn = _AUTO.get(type(value))
    if fn is not None:
        return fn(value)
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (int, float, Decimal)):
        return number_from(value)
    if isinstance(value, tuple):
        return [None if v is None else _auto(v) for v in value]
    raise MappingError(f"{type(value).__name__} has no DynamoDB type; give the column a type rule")


_AUTO: dict[type, Converter] = {
    str: lambda v: v,
    bool: lambda v: v,
    int: lambda v: number(Decimal(v)),
    Decimal: number,
    float: number_from,
    bytes: lambda v: v,
    uuid.UUID: str,
    dict: _json_value,
    list: lambda v: [None if x is None else _auto(x) for x in v],
    dt.datetime: iso_datetime,
    dt.date: dt.date.isoformat,
    dt.time: dt.time.isoformat,
    dt.timedelta: _seconds,
}


def _to_number(value: Any) -> Value:
    if isinstance(value, bool):
        raise MappingError("a boolean is not a number")
    if isinstance(value, str):
        try:
            return number(Decimal(value.strip()))
        except InvalidOperation:
            raise MappingError("text is not a number") from None
    if isinstance(value, dt.timedelta):
        return _seconds(value)
    return number_from(value)


_TRUE = frozenset({"t", "true", "1", "yes", "y", "on"})
_FALSE = frozenset({"f", "false", "0", "no", "n", "off"})


def _to_bool(value: Any) -> Value:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise MappingError(f"{type(value).__name__} is not a boolean")


def _to_binary(value: Any) -> Value:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise MappingError(f"{type(value).__name__} is not binary")


def _as_datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise MappingError("text is not an ISO timestamp") from None
    raise MappingError(f"{type(value).__name__} is not a timestamp")


def _epoch(scale: int) -> Converter:
    def convert(value: Any) -> Value:
        moment = _as_datetime(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=_UTC)  # naive timestamps are taken as UTC
        delta = moment - _EPOCH
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        return number(Decimal(micros).scaleb(scale - 6))

    return convert


def _to_date_iso(value: Any) -> Value:
    if isinstance(value, dt.datetime):
        return _utc_naive(value).date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            raise MappingError("text is not an ISO date") from None
    raise MappingError(f"{type(value).__name__} is not a date")


def _json_document(value: Any) -> Any:
    # A str is JSON text (a text column holding JSON); if it does not parse, it is the JSON
    # string scalar that psycopg returns for a json column holding "..." .
    if isinstance(value, str):
        try:
            return parse_json(value)
        except ValueError:
            return value
    return value


def _json_string(value: Any) -> str:
    if isinstance(value, str):
        try:
            return canonical_json_text(value)
        except ValueError:
            return canonical_json(value)  # the JSON string scalar (see _json_document)
    return canonical_json(value)


def _members(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple, set, frozenset)):
        members = list(value)
    elif isinstance(value, str):
        members = list(_json_document(value)) if value.strip().startswith("[") else [value]
    else:
        raise MappingError(f"{type(value).__name__} is not a list")
    if any(m is None for m in members):
        raise MappingError("a DynamoDB set cannot hold NULL")
    return members  # empty: an empty frozenset, written by the column's empty_set_as


def _to_list(value: Any) -> Value:
    if isinstance(value, (list, tuple, set, frozenset)):
        return [None if v is None else _auto(v) for v in value]
    raise MappingError(f"{type(value).__name__} is not a list")


_CONVERTERS: dict[str, Converter] = {
    "auto": _auto,
    "number": _to_number,
    "string": render,
    "bool": _to_bool,
    "binary": _to_binary,
    "timestamp_iso": lambda v: iso_datetime(_as_datetime(v)),
    "timestamp_epoch_s": _epoch(0),
    "timestamp_epoch_ms": _epoch(3),
    "date_iso": _to_date_iso,
    "json_map": lambda v: _json_value(_json_document(v)),
    "json_string": _json_string,
    "list": _to_list,
    "string_set": lambda v: frozenset(render(m) for m in _members(v)),
    "number_set": lambda v: frozenset(number_from(_to_number(m)) for m in _members(v)),  # type: ignore[arg-type]
}


_UNIT_MICROS: Final = {"s": 1_000_000, "ms": 1_000, "us": 1}
_TIMESPEC: Final = {"s": "seconds", "ms": "milliseconds", "us": "microseconds"}


def _truncated(moment: dt.datetime, unit: str) -> dt.datetime:
    step = _UNIT_MICROS[unit]
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % step)


def _iso_at(unit: str) -> Callable[[dt.datetime], str]:
    timespec = _TIMESPEC[unit]

    # isoformat(timespec=...) truncates the excess digits (it never rounds), which is exactly
    # `_truncated`; and an aware datetime already in UTC renders "+00:00", replaced by "Z" as
    # text instead of building two more datetimes per value (the hot path of every timestamp).
    def convert(value: dt.datetime) -> str:
        tz = value.tzinfo
        if tz is None:
            return value.isoformat(timespec=timespec)
        if tz is not _UTC:
            value = value.astimezone(_UTC)
        return value.isoformat(timespec=timespec)[:-6] + "Z"

    return convert


def _at_precision(rule: ColumnRule, unit: str) -> Converter:
    """A timestamp written as the mapping describes it: truncated to `precision` (as normalize
    compares it) and, for ISO text, always with that many fraction digits, so that what the daemon
    applies and what repair writes is what the target is said to hold (not microseconds, nor a
    bare seconds form when the fraction happens to be zero)."""
    iso = _iso_at(unit)
    if rule.type == "timestamp_iso":
        return lambda v: iso(_as_datetime(v))
    if rule.type in ("timestamp_epoch_s", "timestamp_epoch_ms"):
        epoch = _epoch(3 if rule.type == "timestamp_epoch_ms" else 0)
        return lambda v: epoch(_truncated(_as_datetime(v), unit))
    auto = _CONVERTERS[rule.type]
    return lambda v: iso(v) if isinstance(v, dt.datetime) else auto(v)


def converter(rule: ColumnRule) -> Converter:
    if rule.precision is not None and (rule.type.startswith("timestamp_") or rule.type == "auto"):
        return _at_precision(rule, rule.precision)
    return _CONVERTERS[rule.type]


# --- key templates ---------------------------------------------------------------------------------


class _Missing(Exception):
    """A template column is NULL or UNAVAILABLE (carries the column and which)."""

    def __init__(self, column: str, why: str) -> None:
        super().__init__(column, why)
        self.column = column
        self.why = why


def _key_column_value(row: Mapping[str, Any], column: str) -> Any:
    """The column's value in `row`, for a key template: raises _Missing when it has none."""
    value = row.get(column, UNAVAILABLE)
    if value is None:
        raise _Missing(column, "NULL")
    if value is UNAVAILABLE:
        raise _Missing(column, "not in the event")
    return value


def _format_field(value: Any, spec: str) -> str:
    if not spec:
        return render(value)
    if isinstance(value, dt.datetime):
        return _utc_naive(value).strftime(spec)
    if isinstance(value, (dt.date, dt.time)):
        return value.strftime(spec)
    if isinstance(value, float):
        value = number_from(value)
    return format(value, spec)


@dataclass(frozen=True, slots=True)
class KeyTemplate:
    """One compiled `keys`/`indexes` template."""

    attribute: str
    text: str
    parts: tuple[str | tuple[str, str], ...]  # literal text or (column, spec)
    columns: tuple[str, ...]  # one per field, in order
    pattern: re.Pattern[str]  # the reverse: one group per field
    bare: bool  # exactly `{column}`: the typed value, not text
    literal_chars: int  # how specific the pattern is, for routing ties

    @classmethod
    def compile(cls, attribute: str, text: str) -> KeyTemplate:
        parts: list[str | tuple[str, str]] = []
        regex = ["^"]
        literal_chars = 0
        for literal, field, spec, _conv in _parse(text):
            if literal:
                parts.append(literal)
                regex.append(re.escape(literal))
                literal_chars += len(literal)
            if field is not None:
                parts.append((field, spec or ""))
                regex.append("(.+?)")
        regex.append("$")
        fields = [p for p in parts if isinstance(p, tuple)]
        return cls(
            attribute=attribute,
            text=text,
            parts=tuple(parts),
            columns=tuple(c for c, _ in fields),
            pattern=re.compile("".join(regex), re.DOTALL),
            bare=len(parts) == 1 and len(fields) == 1 and not fields[0][1],
            literal_chars=literal_chars,
        )

    def render(self, row: Mapping[str, Any]) -> str:
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            column, spec = part
            value = _key_column_value(row, column)
            try:
                out.append(_format_field(value, spec) if spec else render(value))
            except (ValueError, TypeError) as exc:
                raise MappingError(
                    f"{self.attribute}: cannot format column {column!r} with {spec!r}: {exc}"
                ) from None
        return "".join(out)

    def parse(self, value: Value) -> dict[str, str] | None:
        """Column texts recovered from an attribute value; None if it does not fit the template."""
        if isinstance(value, str):
            text = value
        elif isinstance(value, Decimal) and not isinstance(value, bool):
            text = format(value, "f")
        else:
            return None
        m = self.pattern.match(text)
        if m is None:
            return None
        found: dict[str, str] = {}
        for column, group in zip(self.columns, m.groups(), strict=True):
            if found.setdefault(column, group) != group:
                return None
        return found


def _parse(text: str) -> Iterable[tuple[str, str | None, str | None, str | None]]:
    return string.Formatter().parse(text)


# --- the mapper --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ColumnPlan:
    column: str
    attribute: str
    convert: Converter
    null_as_null: bool
    empty_as_null: bool
    empty_set_as: str | None  # a set column's ColumnRule.empty_set_as; None for other columns


class ItemMapper:
    """Compiled mapping of one source table (see the module docstring)."""

    def __init__(self, mapping: TableMapping) -> None:
        self.mapping = mapping
        self._columns = tuple(
            _ColumnPlan(
                col,
                rule.attribute(col),
                converter(rule),
                rule.null_as == "null",
                rule.empty_string_as_null,
                rule.empty_set_as if rule.type in SET_TYPES else None,
            )
            for col, rule in mapping.columns.items()
            if not rule.exclude
        )
        self._keys = tuple(KeyTemplate.compile(a, t) for a, t in mapping.keys.items())
        self._indexes = tuple(KeyTemplate.compile(a, t) for a, t in mapping.indexes.items())
        self.constants: dict[str, Value] = {name: _constant(v) for name, v in mapping.constants.items()}
        self._converters = {col: converter(mapping.rule(col)) for col in mapping.columns}
        self.key_columns: frozenset[str] = frozenset(c for t in self._keys for c in t.columns)
        self.key_attributes: tuple[str, ...] = tuple(mapping.keys)
        self.compared_columns = compared_columns(mapping, (c for t in self._indexes for c in t.columns))
        self._compared_set = frozenset(self.compared_columns)
        self.plan = ComparisonPlan(mapping)

    def __repr__(self) -> str:
        return f"ItemMapper({self.mapping.source} -> {self.mapping.target})"

    # The expected item -------------------------------------------------------------------------

    def item(self, row: Mapping[str, Any]) -> Item:
        """The item the target should hold for `row`.

        A column that is UNAVAILABLE (TOAST) or not in `row` at all is left out and reported by
        `unavailable(row)`; compare skips those attributes. MappingError names the column."""
        return self.item_and_key(row)[0]

    def item_and_key(self, row: Mapping[str, Any]) -> tuple[Item, Item]:
        """`(item(row), key(row))`, the key rendered once (the verifier needs both per event)."""
        item, key, _unavailable = self.expected_parts(row)
        return item, key

    def expected_parts(self, row: Mapping[str, Any]) -> tuple[Item, Item, list[str]]:
        """`(item(row), key(row), unavailable(row))` in one walk of the columns (per event)."""
        item: Item = {}
        unavailable: list[str] = []
        for plan in self._columns:
            value = row.get(plan.column, UNAVAILABLE)
            if value is UNAVAILABLE:
                unavailable.append(plan.attribute)  # TOAST or not in the event: not compared
                continue
            if value is None or (plan.empty_as_null and value == ""):
                if plan.null_as_null:
                    item[plan.attribute] = None
                continue
            try:
                converted = plan.convert(value)
            except MappingError as exc:
                raise MappingError(f"column {plan.column!r} (attribute {plan.attribute!r}): {exc}") from None
            except (ValueError, TypeError, ArithmeticError) as exc:
                raise MappingError(
                    f"column {plan.column!r} (attribute {plan.attribute!r}): {type(exc).__name__}: {exc}"
                ) from None
            if plan.empty_set_as is not None and not converted:
                # DynamoDB cannot store an empty set: absent (its own convention), NULL or L [].
                if plan.empty_set_as == "null":
                    item[plan.attribute] = None
                elif plan.empty_set_as == "empty_list":
                    item[plan.attribute] = []
                continue
            item[plan.attribute] = converted
        key = self.key(row)
        item.update(key)
        for template in self._indexes:
            try:
                value = self._key_value(template, row)
            except _Missing:
                continue  # sparse index: no GSI entry for this row
            if value == "" or value == b"":
                continue  # DynamoDB refuses empty index keys: no GSI entry either
            if not isinstance(value, str | bytes | Decimal):
                raise MappingError(f"index attribute {template.attribute!r} must be a string, number or binary")
            item[template.attribute] = value
        item.update(self.constants)
        if _size_bound(item) > MAX_ITEM_BYTES and (size := item_size(item)) > MAX_ITEM_BYTES:
            raise MappingError(f"item is {size} bytes, over DynamoDB's {MAX_ITEM_BYTES} byte limit")
        if self._indexes:
            for template in self._indexes:
                if any(row.get(c, UNAVAILABLE) is UNAVAILABLE for c in template.columns):
                    unavailable.append(template.attribute)
        return item, key, unavailable

    def missing(self, row: Mapping[str, Any]) -> tuple[str, ...]:
        """Columns the mapping compares that `row` does not carry at all (not even as TOAST):
        the table has no such column (see `parity.core.columns`)."""
        if row.keys() >= self._compared_set:  # the per-event common case, as one set operation in C
            return ()
        return missing_columns(self.compared_columns, row)

    def unavailable(self, row: Mapping[str, Any]) -> list[str]:
        """Attributes whose value is not in the event (TOAST), so cannot be verified from it."""
        names = [p.attribute for p in self._columns if row.get(p.column, UNAVAILABLE) is UNAVAILABLE]
        for template in self._indexes:
            if any(row.get(c, UNAVAILABLE) is UNAVAILABLE for c in template.columns):
                names.append(template.attribute)
        return names

    def key(self, row: Mapping[str, Any]) -> Item:
        """The DynamoDB primary key (partition [+ sort]); needs only the key-template columns."""
        key: Item = {}
        for i, template in enumerate(self._keys):
            try:
                value = self._key_value(template, row)
            except _Missing as exc:
                raise MappingError(
                    f"key attribute {template.attribute!r}: column {exc.column!r} is {exc.why}"
                ) from None
            limit = MAX_PARTITION_KEY_BYTES if i == 0 else MAX_SORT_KEY_BYTES
            if isinstance(value, str):
                if not value:
                    raise MappingError(f"key attribute {template.attribute!r} is an empty string")
                if len(value.encode("utf-8")) > limit:
                    raise MappingError(f"key attribute {template.attribute!r} is over {limit} bytes")
            elif isinstance(value, bytes):
                if not value:
                    raise MappingError(f"key attribute {template.attribute!r} is empty binary")
            elif not isinstance(value, Decimal) or isinstance(value, bool):
                raise MappingError(f"key attribute {template.attribute!r} must be a string, number or binary")
            key[template.attribute] = value
        return key

    def _key_value(self, template: KeyTemplate, row: Mapping[str, Any]) -> Value:
        if not template.bare:
            return template.render(row)
        column = template.columns[0]
        value = _key_column_value(row, column)
        try:
            return self._converters[column](value)
        except MappingError as exc:
            raise MappingError(f"{template.attribute}: column {column!r}: {exc}") from None

    # The reverse --------------------------------------------------------------------------------

    def matches_key(self, item: Mapping[str, Value]) -> bool:
        return self.primary_key_from_item(item) is not None

    def primary_key_from_item(self, item: Mapping[str, Value]) -> dict[str, str] | None:
        """The Postgres primary-key values (as text) parsed back from the item's key attributes,
        for re-reading the row; None when the key does not fit this mapping's templates. A column
        rendered with a format spec comes back in that format."""
        found: dict[str, str] = {}
        for template in self._keys:
            if template.attribute not in item:
                return None
            parsed = template.parse(item[template.attribute])
            if parsed is None:
                return None
            for column, text in parsed.items():
                if found.setdefault(column, text) != text:
                    return None
        try:
            return {c: found[c] for c in self.mapping.primary_key}
        except KeyError:
            return None

    def specificity(self) -> int:
        return sum(t.literal_chars for t in self._keys)


def _size_bound(item: Item) -> int:
    """A cheap upper bound of `item_size`: exact sizes are only computed for big items."""
    bound = 0
    for name, value in item.items():
        t = type(value)
        if t is str or t is bytes:
            bound += 4 * (len(name) + len(value))  # type: ignore[arg-type]
        elif t is Decimal or t is bool or value is None:
            bound += 4 * len(name) + 21
        else:
            bound += 4 * len(name) + value_size(value)
    return bound


def _same_scalar(a: object, b: object) -> bool:
    return type(a) is type(b) and a == b  # True == Decimal(1) in Python, not in DynamoDB


def _constant(value: str | int | bool) -> Value:
    if isinstance(value, bool | str):
        return value
    return number(Decimal(value))


class TargetRouter:
    """Which mapping an item of a shared (single-table design) DynamoDB table belongs to."""

    def __init__(self, mappings: Sequence[TableMapping]) -> None:
        targets = {m.target for m in mappings}
        if len(targets) > 1:
            raise ValueError(f"a router serves one DynamoDB table, got {sorted(targets)}")
        self.mappers = tuple(ItemMapper(m) for m in mappings)
        self._constant_names = frozenset(n for m in mappings for n in m.constants)

    def route(self, item: Mapping[str, Value]) -> TableMapping | None:
        """The mapping `item` belongs to judged by the item alone; None = unmapped.

        When the item carries a constant attribute of these mappings (EntityType), the constants
        decide (an unknown EntityType is unmapped); otherwise, or to break a tie, the key
        templates do: every key attribute must fit, and the most literal template wins.

        This is the whole rule only where no Postgres row is at hand. Where one is (the
        reconciler's drill-down and recheck), the row comes first: a key that a Postgres row
        maps to belongs to that row's table whatever the item's discriminator says, so an item
        with one entity's key and another's EntityType is one value_mismatch of the row's table,
        not also an unexpected item of the other (docs/reconciler.md, "One key, one finding")."""
        mapper = self.mapper_for(item)
        return mapper.mapping if mapper is not None else None

    def mapper_for(self, item: Mapping[str, Value]) -> ItemMapper | None:
        if self._constant_names and any(n in item for n in self._constant_names):
            by_constants = [
                m
                for m in self.mappers
                if m.mapping.constants and all(_same_scalar(item.get(n), c) for n, c in m.constants.items())
            ]
            if len(by_constants) <= 1:
                return by_constants[0] if by_constants else None
            candidates = by_constants
        else:
            candidates = list(self.mappers)
        matching = [m for m in candidates if m.matches_key(item)]
        if not matching:
            return None
        return max(matching, key=ItemMapper.specificity)
