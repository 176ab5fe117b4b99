"""The canonical DynamoDB value model and the low-level wire shape.

An item is `dict[str, Value]`. Numbers are always `Decimal` in canonical form (normalized, no
trailing zeros, no negative zero): a float never enters an item, so 0.1 stays 0.1 and equal
numbers reached from Postgres and from DynamoDB are equal Python objects.

`to_wire` / `from_wire` convert to and from the boto3 *low-level client* shape ({"N": "1.5"}).
They are plain type dispatch, several times faster than boto3's TypeSerializer, and they enforce
DynamoDB's number limits instead of letting the service reject a whole batch.
"""

from __future__ import annotations

import decimal
import json
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, TypeAlias

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
    return v if type(v) is bytes else bytes(v)


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


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys and canonical numbers: equal documents, equal text."""
    return _dump(_json_ready(value))


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
