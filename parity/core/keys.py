"""How a DynamoDB key is shown to people and tools: one rendering for drift.jsonl, the drift topic,
log lines and reports, so a key found in one can be grepped in the others.

`key_document` keeps the key's types: a number is a JSON number in plain digits (key 210 is `210`,
never `"210"` nor `2.1E+2`), a string a JSON string, binary `"b64:<base64>"` (as `compare.display`
shows it). Attributes are sorted and the text is compact, exactly as orjson writes it, so a key
embedded in a JSON line (see `key_fragment`) is the same bytes as the key on its own.

This is the *display* form. The state store keeps its own identity text for a key (drift dedupe,
the shadow graveyard): changing that text would change which rows count as the same key.

`canonical_key` is the in-memory identity of a key (the daemon's recheck store, LSN dedupe and
open drift): two keys with the same attributes and values are the same key, whatever their order.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import orjson

from parity.core.values import number_text

__all__ = ["canonical_key", "key_document", "key_fragment"]


def canonical_key(key: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The key as a hashable value, independent of attribute order (module docstring)."""
    return tuple(sorted(key.items()))


def key_document(key: Mapping[str, Any]) -> str:
    """The key as compact JSON text with sorted attributes and typed values (module docstring)."""
    return orjson.dumps(dict(key), default=_typed, option=orjson.OPT_SORT_KEYS).decode()


def key_fragment(key: Mapping[str, Any]) -> orjson.Fragment:
    """`key_document` ready to embed in a document written with orjson (no re-encoding)."""
    return orjson.Fragment(key_document(key))


def _typed(value: Any) -> Any:
    if isinstance(value, Decimal):
        # Canonical numbers (values.number) are finite; anything else has no JSON number form.
        return orjson.Fragment(number_text(value)) if value.is_finite() else str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "b64:" + base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, frozenset | set):
        return sorted(value, key=str)
    return str(value)
