"""Canonical encoding, row hash, bucket of a key, and mergeable bucket digests.

The reconciler buckets rows by a stable hash of their DynamoDB key (scan segments do not follow
key order) and sums row hashes per bucket mod 2^64, so a digest is the same in any read order
and partial digests merge by addition. Python's `hash()` is never used: it changes per process.

`encode_item` is injective: no two different items encode alike (no "ab"+"c" == "a"+"bc", no
"1" the string == 1 the number). Two encodings, chosen by the item's content alone, so equal items
always take the same one:
- items of strings, numbers, booleans, NULL, lists and maps (nearly all): compact JSON with
  sorted keys written by orjson, numbers as their canonical text; strings are quoted and numbers
  are not, so the types stay apart. About ten times faster than the tagged encoding.
- items holding binary or sets (JSON has neither): the length-prefixed, type-tagged encoding.
The JSON form starts with a marker that a tagged encoding (a 4-byte count below 2^31) never
starts with, so the two cannot collide.
"""

from __future__ import annotations

import contextlib
import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import orjson

from parity.core.errors import MappingError
from parity.core.values import Value, number

if TYPE_CHECKING:
    from parity.core.mapping import ItemMapper

__all__ = ["BucketDigest", "digest_item", "encode_item", "key_bucket", "row_hash"]

MASK: Final = (1 << 64) - 1
_LEN = struct.Struct(">I")
_HEAD = struct.Struct(">cI")  # type tag + byte length
_ROW_PERSON = b"parity-row"
_KEY_PERSON = b"parity-key"


def _text(tag: bytes, data: bytes, out: list[bytes]) -> None:
    out.append(_HEAD.pack(tag, len(data)))
    out.append(data)


def _encode(value: Value, out: list[bytes]) -> None:
    v: Any = value  # dispatch on the exact type; mypy cannot narrow by `type(x) is`
    t = type(v)
    if t is str:
        _text(b"S", v.encode("utf-8"), out)
    elif t is Decimal:
        with contextlib.suppress(MappingError):  # an out-of-range number encodes by its own text
            v = number(v)
        _text(b"N", str(v).encode("ascii"), out)
    elif t is bool:
        out.append(b"T" if v else b"F")
    elif v is None:
        out.append(b"0")
    elif t is bytes:
        _text(b"B", v, out)
    elif t is list:
        out.append(b"L")
        out.append(_LEN.pack(len(v)))
        for x in v:
            _encode(x, out)
    elif t is dict:
        out.append(b"M")
        _encode_map(v, out)
    elif t is frozenset:
        members = sorted(b"".join(_encoded(x)) for x in v)
        out.append(b"E")  # a set: members sorted by their encoding, so order never matters
        out.append(_LEN.pack(len(members)))
        out.extend(members)
    else:
        raise TypeError(f"{t.__name__} is not a DynamoDB value")


def _encoded(value: Value) -> list[bytes]:
    out: list[bytes] = []
    _encode(value, out)
    return out


def _encode_map(item: Mapping[str, Value], out: list[bytes]) -> None:
    out.append(_LEN.pack(len(item)))
    head = _HEAD.pack
    for name in sorted(item):
        data = name.encode("utf-8")
        out.append(head(b"K", len(data)))
        out.append(data)
        value = item[name]
        if type(value) is str:  # the common case, inlined: this runs for every attribute of every row
            data = value.encode("utf-8")
            out.append(head(b"S", len(data)))
            out.append(data)
        else:
            _encode(value, out)


_JSON_MARK = b"\xffJ"


def _number_text(value: Any) -> orjson.Fragment:
    # orjson's hook for types it does not write itself: numbers become their canonical text;
    # anything else (bytes, sets, ...) raises and sends the item to the tagged encoding.
    if type(value) is not Decimal:
        raise TypeError
    with contextlib.suppress(MappingError):  # an out-of-range number encodes by its own text
        value = number(value)
    return orjson.Fragment(str(value))


def encode_item(item: Mapping[str, Value]) -> bytes:
    try:
        return _JSON_MARK + orjson.dumps(item, default=_number_text, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        out: list[bytes] = []
        _encode_map(item, out)
        return b"".join(out)


def row_hash(item: Mapping[str, Value]) -> int:
    """64-bit hash of a (comparable) item."""
    digest = hashlib.blake2b(encode_item(item), digest_size=8, person=_ROW_PERSON).digest()
    return int.from_bytes(digest, "big")


def key_bucket(key: Mapping[str, Value], buckets: int) -> int:
    """Stable bucket in [0, buckets) of a DynamoDB primary key."""
    digest = hashlib.blake2b(encode_item(key), digest_size=8, person=_KEY_PERSON).digest()
    return int.from_bytes(digest, "big") % buckets


@dataclass(slots=True)
class BucketDigest:
    """(count, sum of row hashes mod 2^64) of one bucket: order independent, merges by addition."""

    count: int = 0
    total: int = 0

    def add(self, h: int) -> None:
        self.count += 1
        self.total = (self.total + h) & MASK

    def merge(self, other: BucketDigest) -> None:
        self.count += other.count
        self.total = (self.total + other.total) & MASK

    def __add__(self, other: BucketDigest) -> BucketDigest:
        return BucketDigest(self.count + other.count, (self.total + other.total) & MASK)


def digest_item(mapper: ItemMapper, item: Mapping[str, Value], buckets: int) -> tuple[int, int]:
    """(bucket, row hash) of an item from either side, over its comparable form.

    The bucket comes from the item's primary-key attributes; an item lacking them raises
    MappingError (it cannot belong to this mapping)."""
    try:
        key = {name: item[name] for name in mapper.key_attributes}
    except KeyError as exc:
        raise MappingError(f"item has no key attribute {exc.args[0]!r}") from None
    return key_bucket(key, buckets), row_hash(mapper.plan.comparable(item))
