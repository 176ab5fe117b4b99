"""The canonical DynamoDB value model and the low-level wire shape.

An item is `dict[str, Value]`. Numbers are always `Decimal` in canonical form (normalized, no
trailing zeros, no negative zero): a float never enters an item, so 0.1 stays 0.1 and equal
numbers reached from Postgres and from DynamoDB are equal Python objects.

`to_wire` / `from_wire` convert to and from the boto3 *low-level client* shape ({"N": "1.5"}).
They are plain type dispatch, several times faster than boto3's TypeSerializer, and they enforce
DynamoDB's number limits instead of letting the service reject a whole batch.
"""

from __future__ import annotations

import base64
import binascii
import decimal
import functools
import json
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, TypeAlias

import orjson

from parity.core.errors import MappingError

Value: TypeAlias = (
    "str | Decimal | bool | bytes | list[Value] | dict[str, Value]"
    " | frozenset[str] | frozenset[Decimal] | frozenset[bytes] | None"
)
Item: TypeAlias = dict[str, Value]
WireValue: TypeAlias = dict[str, Any]
WireItem: TypeAlias = dict[str, WireValue]

# DynamoDB numbers: up to 38 significant digits, magnitude 1E-130 .. 9.99..E+125. With this
# context `normalize` strips trailing zeros and signals exactly the values DynamoDB refuses.
_DYNAMO = decimal.Context(
    prec=38,
    Emax=125,
    Emin=-130,
    rounding=decimal.ROUND_HALF_EVEN,
    traps=[decimal.InvalidOperation, decimal.Overflow, decimal.Inexact, decimal.Subnormal, decimal.Underflow],
)
_ZERO = Decimal(0)


def number(value: Decimal) -> Decimal:
    """`value` in canonical form (1.50 -> 1.5, -0 -> 0, 100 -> 1E+2), or MappingError."""
    if not value.is_finite():
        raise MappingError(f"number {value} cannot be stored in DynamoDB")
    if not value:
        return _ZERO
    try:
        return value.normalize(_DYNAMO)
    except decimal.DecimalException:
        raise MappingError(
            f"number {value} does not fit DynamoDB (38 significant digits, magnitude 1E-130..9.99E+125)"
        ) from None


def number_from(value: int | float | Decimal) -> Decimal:
    """A canonical number from an int, a float (by its shortest repr, never its binary value) or a Decimal."""
    if type(value) is int:
        return number(Decimal(value))
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise MappingError(f"number {value} cannot be stored in DynamoDB")
        return number(Decimal(repr(value)))
    if isinstance(value, Decimal):
        return number(value)
    if isinstance(value, int):  # int subclasses other than bool
        return number(Decimal(int(value)))
    raise MappingError(f"{type(value).__name__} is not a number")


def number_text(value: Decimal) -> str:
    """Wire text of a canonical number: plain digits when short, exponent form otherwise."""
    exp = value.as_tuple().exponent
    if isinstance(exp, int) and 0 < exp <= 20:
        return format(value, "f")
    return str(value)


def _set_wire(value: frozenset[Any]) -> WireValue:
    if not value:
        raise MappingError("DynamoDB cannot store an empty set")
    first = next(iter(value))
    if isinstance(first, str):
        return {"SS": sorted(value)}
    if isinstance(first, Decimal):
        return {"NS": [number_text(number(v)) for v in value]}
    if isinstance(first, bytes):
        return {"BS": list(value)}
    raise MappingError(f"a set of {type(first).__name__} is not a DynamoDB set")


def to_wire(value: Value) -> WireValue:
    """One canonical value -> the low-level wire shape."""
    fn = _TO_WIRE.get(type(value))
    if fn is None:
        raise MappingError(f"{type(value).__name__} is not a DynamoDB value")
    return fn(value)


_TO_WIRE: dict[type, Callable[[Any], WireValue]] = {
    str: lambda v: {"S": v},
    Decimal: lambda v: {"N": number_text(number(v))},
    bool: lambda v: {"BOOL": v},
    bytes: lambda v: {"B": v},
    type(None): lambda v: {"NULL": True},
    list: lambda v: {"L": [to_wire(x) for x in v]},
    dict: lambda v: {"M": {k: to_wire(x) for k, x in v.items()}},
    frozenset: _set_wire,
}


def item_to_wire(item: Mapping[str, Value]) -> WireItem:
    return {name: to_wire(value) for name, value in item.items()}


def _bytes(v: Any) -> bytes:
    # botocore hands binary over as bytes; a response decoded straight from the wire JSON (the
    # store's fast read path) carries it base64-encoded, as DynamoDB sends it.
    if type(v) is bytes:
        return v
    if isinstance(v, str):
        try:
            return base64.b64decode(v, validate=True)
        except binascii.Error:
            raise MappingError("binary value is not base64") from None
    return bytes(v)


_FROM_WIRE: dict[str, Callable[[Any], Value]] = {
    "S": lambda v: v,
    "N": lambda v: number(Decimal(v)),
    "BOOL": bool,
    "B": _bytes,
    "NULL": lambda v: None,
    "L": lambda v: [from_wire(x) for x in v],
    "M": lambda v: {k: from_wire(x) for k, x in v.items()},
    "SS": frozenset,
    "NS": lambda v: frozenset(number(Decimal(x)) for x in v),
    "BS": lambda v: frozenset(_bytes(x) for x in v),
}


def from_wire(av: Mapping[str, Any]) -> Value:
    """The low-level wire shape -> one canonical value."""
    if len(av) != 1:
        raise MappingError(f"not a DynamoDB attribute value: {sorted(av)}")
    ((tag, raw),) = av.items()
    fn = _FROM_WIRE.get(tag)
    if fn is None:
        raise MappingError(f"unknown DynamoDB type {tag!r}")
    try:
        return fn(raw)
    except decimal.DecimalException:
        raise MappingError(f"bad DynamoDB number {raw!r}") from None


def item_from_wire(wire_item: Mapping[str, Mapping[str, Any]]) -> Item:
    return {name: from_wire(av) for name, av in wire_item.items()}


# DynamoDB item size (AWS "Item sizes and formats"): attribute name bytes + value bytes; numbers
# take about one byte per two significant digits plus one; containers 3 bytes plus 1 per element.
MAX_ITEM_BYTES = 400 * 1024


def value_size(value: Value) -> int:
    v: Any = value  # dispatch on the exact type; mypy cannot narrow by `type(x) is`
    t = type(v)
    if t is str:
        return len(v) if v.isascii() else len(v.encode("utf-8"))
    if t is Decimal:
        return (len(v.as_tuple().digits) + 1) // 2 + 1
    if t is bool or v is None:
        return 1
    if t is bytes:
        return len(v)
    if t is list:
        return 3 + sum(value_size(x) + 1 for x in v)
    if t is dict:
        return 3 + sum(len(k.encode("utf-8")) + value_size(x) + 1 for k, x in v.items())
    if t is frozenset:
        return sum(value_size(x) for x in v)
    raise MappingError(f"{t.__name__} is not a DynamoDB value")


def item_size(item: Mapping[str, Value]) -> int:
    return sum(len(name.encode("utf-8")) + value_size(v) for name, v in item.items())


# --- canonical JSON text (json_string attributes, json inside key templates) ---
#
# Two paths with one result. The reference path (`_json_ready` + `_dump`) parses numbers as
# Decimal and writes every token from Python; it is exact for any input and slow (a json_string
# attribute cost ~40% of a reconcile's CPU). The fast path lets orjson parse and write, and hands
# it each float as a pre-rendered canonical number (`orjson.Fragment`). orjson parses numbers as
# doubles, which is exact only for short numbers, so text holding any run of 16+ digits/dots or a
# 3-digit exponent, and anything orjson refuses (NaN, lone surrogates, ints beyond 64 bits), takes
# the reference path. tests/unit/test_canonical_json_paths.py checks both paths agree on generated
# documents and texts.

_LONG_NUMBER = re.compile(r"\d[\d.]{15}|[eE][+-]?\d{3}")
_FLOAT_TOKEN = re.compile(rb"(?:^|[:,\[])-?\d+[.eE]")


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys and canonical numbers: equal documents, equal text."""
    try:
        return orjson.dumps(_fragmented(value), option=orjson.OPT_SORT_KEYS).decode()
    except (TypeError, MappingError):  # ints beyond 64 bits, lone surrogates, non-JSON types
        return _dump(_json_ready(value))


def canonical_json_text(text: str) -> str:
    """`canonical_json(parse_json(text))`; ValueError when `text` is not JSON."""
    if not _LONG_NUMBER.search(text):
        try:
            doc = orjson.loads(text)
            out = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
            if _FLOAT_TOKEN.search(out):
                out = orjson.dumps(_fragmented(doc), option=orjson.OPT_SORT_KEYS)
            return out.decode()
        except (orjson.JSONDecodeError, TypeError, MappingError):
            pass  # the reference path decides: a canonical text, ValueError or MappingError
    return canonical_json(parse_json(text))


def _fragmented(value: Any) -> Any:
    """`value` with every non-integer number replaced by its canonical text; the same type
    checks as `_json_ready` (MappingError for anything that is not JSON)."""
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return value
    if t is float:
        return _float_fragment(value)
    if t is dict:
        return {k if type(k) is str else str(k): _fragmented(v) for k, v in value.items()}
    if t is list or t is tuple:
        return [_fragmented(v) for v in value]
    if isinstance(value, Decimal):
        return orjson.Fragment(_plain_or_exp(number(value)))
    if isinstance(value, (str, bool)):
        return value
    if isinstance(value, (int, float)):
        return orjson.Fragment(_plain_or_exp(number_from(value)))
    if isinstance(value, Mapping):
        return {str(k): _fragmented(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_fragmented(v) for v in value]
    raise MappingError(f"{type(value).__name__} is not a JSON value")


@functools.lru_cache(maxsize=4096)
def _float_fragment(value: float) -> orjson.Fragment:
    # 0.0 and -0.0 share a cache slot; both are canonically 0, so that is correct.
    return orjson.Fragment(_plain_or_exp(number_from(value)))


def _json_ready(value: Any) -> Any:
    """JSON-able structure whose numbers are canonical texts marked for raw output."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float, Decimal)):
        return _RawNumber(_plain_or_exp(number_from(value)))
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    raise MappingError(f"{type(value).__name__} is not a JSON value")


class _RawNumber(str):
    """A number's text that the JSON encoder writes without quotes."""


def _plain_or_exp(value: Decimal) -> str:
    # Plain digits unless that would be absurdly long (1E+100): JSON accepts either.
    exp = value.as_tuple().exponent
    if isinstance(exp, int) and -30 <= exp <= 30:
        return format(value, "f")
    return str(value)


def _dump(node: Any) -> str:
    if isinstance(node, _RawNumber):
        return str.__str__(node)
    if isinstance(node, dict):
        fields = (json.dumps(k, ensure_ascii=False) + ":" + _dump(node[k]) for k in sorted(node))
        return "{" + ",".join(fields) + "}"
    if isinstance(node, list):
        return "[" + ",".join(_dump(v) for v in node) + "]"
    return json.dumps(node, ensure_ascii=False)


def parse_json(text: str) -> Any:
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)
