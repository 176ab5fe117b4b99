"""The fast canonical-JSON path (orjson) and the reference path (Decimal parse) agree.

`canonical_json` and `canonical_json_text` take the orjson path when it is exact and the
reference path otherwise; these properties drive both with generated documents and texts,
including the inputs the fast path must hand over (long numbers, big ints, NaN, odd escapes)."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parity.core.errors import MappingError
from parity.core.values import _dump, _json_ready, canonical_json, canonical_json_text, parse_json

pytestmark = pytest.mark.unit

numbers = st.one_of(
    st.integers(min_value=-(10**25), max_value=10**25),
    st.floats(allow_nan=False, allow_infinity=False),
    st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(lambda d: abs(d.adjusted()) < 120),
)
scalars = st.one_of(st.none(), st.booleans(), st.text(), numbers)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=12,
)


def reference(value: Any) -> str | type[Exception]:
    try:
        return _dump(_json_ready(value))
    except MappingError:
        return MappingError


def outcome(fn: Any, value: Any) -> str | type[Exception]:
    try:
        return str(fn(value))
    except MappingError:
        return MappingError


@given(documents)
def test_canonical_json_of_a_document_matches_the_reference(doc: Any) -> None:
    assert outcome(canonical_json, doc) == reference(doc)


number_texts = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.decimals(allow_nan=False, allow_infinity=False, places=None).map(str),
    st.sampled_from(["1E2", "1e-5", "-0", "-0.0", "1e400", "1e-400", "0.1000000000000000055511", "NaN",
                     "18446744073709551617", "-9223372036854775809", "1.0", "2.50e+3"]),
)


def _text_of(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False, default=str, allow_nan=True)


@given(st.recursive(
    st.one_of(st.none(), st.booleans(), st.text(), number_texts.map(lambda t: ("#num", t))),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=12,
), st.booleans())
def test_canonical_json_text_matches_the_reference(tree: Any, spaced: bool) -> None:
    text = _render(tree, ", " if spaced else ",")

    def ref() -> str | type[Exception]:
        try:
            return reference(parse_json(text))
        except ValueError:
            return ValueError

    try:
        fast: str | type[Exception] = canonical_json_text(text)
    except MappingError:
        fast = MappingError
    except ValueError:
        fast = ValueError
    assert fast == ref()


def _render(tree: Any, sep: str) -> str:
    if isinstance(tree, tuple):
        return tree[1]  # a number's text, written as is
    if isinstance(tree, list):
        return "[" + sep.join(_render(x, sep) for x in tree) + "]"
    if isinstance(tree, dict):
        return "{" + sep.join(json.dumps(k, ensure_ascii=False) + ":" + _render(v, sep) for k, v in tree.items()) + "}"
    return json.dumps(tree, ensure_ascii=False)


@pytest.mark.parametrize(
    "text",
    ['{"a":1,"a":2}', '"\\ud800"', '{"x": 1e400}', '{"x": 1e-400}', "[18446744073709551617]",
     '{"b": 0.10000000000000000001, "a": "\\u001f\\u007f\\u2028"}', "NaN", "not json", "-0.0", "[1E2, 2.50]"],
)
def test_edge_texts_match_the_reference(text: str) -> None:
    try:
        expected: Any = reference(parse_json(text))
    except ValueError:
        with pytest.raises(ValueError):
            canonical_json_text(text)
        return
    if expected is MappingError:
        with pytest.raises(MappingError):
            canonical_json_text(text)
    else:
        assert canonical_json_text(text) == expected


def test_float_cache_keeps_negative_zero_canonical() -> None:
    assert canonical_json([0.0, -0.0, math.copysign(0.0, -1)]) == "[0,0,0]"
    assert canonical_json({"d": Decimal("-0.00")}) == '{"d":0}'
