"""Canonical values, so that equal data compares (and hashes) equal on both sides.

The expected item (from a Postgres row) and the actual item (from DynamoDB) both pass through
`comparable_item`; compare and digest only ever see its output, so the streaming verifier and
the reconciler cannot disagree about what "equal" means.

Per attribute, by the column rule:
- absent == NULL (a NULL attribute is dropped), except on a set column whose NULL and empty array
  are written as different ones of the two (`ColumnRule.null_and_empty_apart`): there NULL is a
  value, so NULL vs empty stays verified; "" == absent with `empty_string_as_null`;
- numbers canonical (1.50 -> 1.5, -0 -> 0, 1E+2 == 100);
- timestamps (type timestamp_*, or a `precision`, or pg_type timestamp/timestamptz): an ISO
  string or an epoch number becomes `YYYY-MM-DDTHH:MM:SS[.fff[fff]]Z` in UTC truncated to the
  precision (default us); naive timestamps are taken as UTC on both sides;
- json_string: parsed and re-serialized canonically (key order, whitespace, 1.0 vs 1);
- tolerance: numbers rounded to the nearest multiple of the tolerance (digests); compare then
  also accepts any two numbers within the tolerance;
- attributes the mapping does not produce (target-only, ignore_attributes, version_attribute)
  are dropped.
A value that does not parse as its rule expects is kept as it is, so it shows up as a mismatch
instead of an exception.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from parity.core.config import ColumnRule, TableMapping, template_fields
from parity.core.errors import MappingError
from parity.core.values import Item, Value, canonical_json_text, number

if TYPE_CHECKING:
    from parity.core.mapping import ItemMapper

__all__ = ["AttributeRule", "ComparisonPlan", "comparable_item", "normalize_value"]


class _Drop:
    """Returned by a normalizer when the attribute counts as absent."""


DROP: Final = _Drop()
Normalizer = Callable[[Value], "Value | _Drop"]
_UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1)
_TIMESTAMP_TYPES = frozenset({"timestamp_iso", "timestamp_epoch_s", "timestamp_epoch_ms"})


def normalize_value(value: Value) -> Value:
    """Canonical form of any value (numbers, recursively); never raises."""
    v: Any = value  # dispatch on the exact type; mypy cannot narrow by `type(x) is`
    t = type(v)
    if t is str or t is bool or t is bytes or v is None:
        return value
    if t is Decimal:
        try:
            return number(v)
        except MappingError:
            return value
    if t is list:
        return [normalize_value(x) for x in v]
    if t is dict:
        return {k: normalize_value(x) for k, x in v.items()}
    if t is frozenset:
        members: Any = frozenset(normalize_value(x) for x in v)
        return members  # type: ignore[no-any-return]
    return value


def _default(value: Value) -> Value | _Drop:
    if value is None:
        return DROP
    return normalize_value(value)


def _null_is_a_value(value: Value) -> Value | _Drop:
    # A set column that writes NULL for one of NULL / empty array and nothing for the other: a
    # NULL attribute and an absent one mean different rows (config.py, "NULL and empty collections").
    return normalize_value(value)


def _empty_is_null(value: Value) -> Value | _Drop:
    if value is None or value == "":
        return DROP
    return normalize_value(value)


def _iso_utc(text: str) -> dt.datetime | None:
    """ISO 8601 text (surrounding blanks allowed) as a naive UTC datetime (naive text taken as
    UTC), or None if it is not one."""
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(_UTC).replace(tzinfo=None)
    return moment


def _parse_moment(value: Value, epoch_scale: int) -> dt.datetime | None:
    """The instant as a naive UTC datetime (naive input taken as UTC), or None if not a timestamp."""
    if isinstance(value, str):
        return _iso_utc(value)
    if isinstance(value, Decimal) and value.is_finite():
        try:
            micros = int(value.scaleb(6 - epoch_scale).to_integral_value(rounding=decimal.ROUND_FLOOR))
            return _EPOCH + dt.timedelta(microseconds=micros)
        except (decimal.DecimalException, OverflowError):
            return None
    return None


_UNIT_MICROS = {"s": 1_000_000, "ms": 1_000, "us": 1}
_TIMESPEC = {"s": "seconds", "ms": "milliseconds", "us": "microseconds"}


# Already canonical at each precision. Safe without a full parse: a string of this shape either is
# a valid instant, which parses and renders back to itself, or is not, and then the slow path keeps
# it unchanged as well.
_CANONICAL = {
    unit: re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d" + fraction + "Z", re.ASCII)
    for unit, fraction in (("s", ""), ("ms", r"\.\d{3}"), ("us", r"\.\d{6}"))
}


def _timestamp(rule: ColumnRule) -> Normalizer:
    epoch_scale = 3 if rule.type == "timestamp_epoch_ms" else 0
    unit = rule.precision or "us"
    step = _UNIT_MICROS[unit]
    timespec = _TIMESPEC[unit]
    empty_null = rule.empty_string_as_null

    canonical = _CANONICAL[unit].fullmatch

    def normalize(value: Value) -> Value | _Drop:
        if value is None or (empty_null and value == ""):
            return DROP
        if type(value) is str and canonical(value):
            return value  # already YYYY-MM-DDTHH:MM:SS[.fff[fff]]Z: parsing would give it back
        moment = _parse_moment(value, epoch_scale)
        if moment is None:
            return normalize_value(value)
        if step > 1 and moment.microsecond % step:
            moment = moment.replace(microsecond=moment.microsecond - moment.microsecond % step)
        return moment.isoformat(timespec=timespec) + "Z"

    return normalize


def _date(value: Value) -> Value | _Drop:
    if value is None:
        return DROP
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            moment = _iso_utc(value)
            return value if moment is None else moment.date().isoformat()
    return normalize_value(value)


def _json_text(empty_null: bool) -> Normalizer:
    def normalize(value: Value) -> Value | _Drop:
        if value is None or (empty_null and value == ""):
            return DROP
        if isinstance(value, str):
            try:
                return canonical_json_text(value)
            except (ValueError, MappingError):
                return value
        return normalize_value(value)

    return normalize


def _rounded(tolerance: Decimal, inner: Normalizer) -> Normalizer:
    def normalize(value: Value) -> Value | _Drop:
        value_ = inner(value)
        if isinstance(value_, Decimal) and tolerance:
            try:
                steps = (value_ / tolerance).to_integral_value(rounding=decimal.ROUND_HALF_EVEN)
                return number(steps * tolerance)
            except (decimal.DecimalException, MappingError):
                return value_
        return value_

    return normalize


def _is_timestamp(rule: ColumnRule) -> bool:
    if rule.type in _TIMESTAMP_TYPES:
        return True
    hinted = rule.precision is not None or rule.pg_type in ("timestamp", "timestamptz")
    return rule.type == "auto" and hinted


def _normalizer(rule: ColumnRule) -> Normalizer:
    if _is_timestamp(rule):
        inner = _timestamp(rule)
    elif rule.type == "date_iso":
        inner = _date
    elif rule.type == "json_string":
        inner = _json_text(rule.empty_string_as_null)
    elif rule.null_and_empty_apart:
        inner = _null_is_a_value
    elif rule.empty_string_as_null:
        inner = _empty_is_null
    else:
        inner = _default
    if rule.tolerance is not None:
        return _rounded(Decimal(repr(rule.tolerance)), inner)
    return inner


@dataclass(frozen=True, slots=True)
class AttributeRule:
    """How one target attribute is normalized, compared and shown."""

    normalize: Normalizer
    redact: bool = False
    tolerance: Decimal | None = None
    is_freshness: bool = False


_GENERIC = AttributeRule(_default)


class ComparisonPlan:
    """Per-mapping table: attribute name -> AttributeRule, for the attributes that are compared."""

    def __init__(self, mapping: TableMapping) -> None:
        ignored = {*mapping.ignore_attributes, mapping.version_attribute}
        rules: dict[str, AttributeRule] = {}
        redacted_columns = {c for c, r in mapping.columns.items() if r.redact}
        for column, rule in mapping.columns.items():
            if rule.exclude:
                continue
            tolerance = Decimal(repr(rule.tolerance)) if rule.tolerance is not None else None
            rules[rule.attribute(column)] = AttributeRule(
                _normalizer(rule), rule.redact, tolerance, column == mapping.freshness_column
            )
        for attribute, template in {**mapping.keys, **mapping.indexes}.items():
            redact = any(c in redacted_columns for c, _ in template_fields(template))
            rules[attribute] = AttributeRule(_default, redact) if redact else _GENERIC
        for attribute in mapping.constants:
            rules[attribute] = _GENERIC
        for attribute in ignored:
            rules.pop(attribute, None)
        self.rules: Mapping[str, AttributeRule] = rules
        self.freshness_attribute: str | None = (
            mapping.rule(mapping.freshness_column).attribute(mapping.freshness_column)
            if mapping.freshness_column is not None and not mapping.rule(mapping.freshness_column).exclude
            else None
        )
        self.tolerances: Mapping[str, Decimal] = {a: r.tolerance for a, r in rules.items() if r.tolerance}
        self.redacted: frozenset[str] = frozenset(a for a, r in rules.items() if r.redact)
        self._normalizers = {a: r.normalize for a, r in rules.items()}

    def comparable(self, item: Mapping[str, Value]) -> Item:
        normalizers = self._normalizers
        out: Item = {}
        for name, value in item.items():
            normalize = normalizers.get(name)
            if normalize is None:
                continue  # not produced by this mapping: ignored, version or target-only
            if type(value) is str and normalize is _default:
                out[name] = value
                continue
            result = normalize(value)
            if result is not DROP:
                out[name] = result  # type: ignore[assignment]
        return out


def comparable_item(mapper_or_mapping: ItemMapper | TableMapping, item: Mapping[str, Value]) -> Item:
    """The item as compare and digest see it (module docstring). Pass the ItemMapper when you can:
    with a bare TableMapping the per-mapping plan is rebuilt on every call."""
    if isinstance(mapper_or_mapping, TableMapping):
        return ComparisonPlan(mapper_or_mapping).comparable(item)
    return mapper_or_mapping.plan.comparable(item)
