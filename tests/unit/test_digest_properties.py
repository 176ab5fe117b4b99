"""Properties of the canonical encoding and of bucket digests (hypothesis)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parity.core.compare import same
from parity.core.digest import MASK, BucketDigest, encode_item, row_hash
from parity.core.normalize import normalize_value

pytestmark = pytest.mark.unit

names = st.text(max_size=4)
numbers = st.decimals(allow_nan=False, allow_infinity=False, places=6, min_value=-(10**20), max_value=10**20)
scalars = st.one_of(
    st.text(max_size=6),
    numbers,
    st.booleans(),
    st.binary(max_size=4),
    st.none(),
    st.frozensets(st.text(max_size=3), min_size=1, max_size=3),
    st.frozensets(st.integers(-50, 50).map(Decimal), min_size=1, max_size=3),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(names, inner, max_size=3)),
    max_leaves=8,
)
items = st.dictionaries(names, values, max_size=5)


def _canonical(item: dict[str, Any]) -> dict[str, Any]:
    return {k: normalize_value(v) for k, v in item.items()}


@settings(deadline=None)  # wall-clock deadlines flake on a busy machine
@given(items, items)
def test_equal_encodings_only_for_equal_items(one: dict[str, Any], other: dict[str, Any]) -> None:
    a, b = _canonical(one), _canonical(other)
    equal = a.keys() == b.keys() and all(same(v, b[k]) for k, v in a.items())
    assert (encode_item(one) == encode_item(other)) == equal


@settings(deadline=None)  # wall-clock deadlines flake on a busy machine
@given(items)
def test_encoding_does_not_depend_on_attribute_order(item: dict[str, Any]) -> None:
    assert encode_item(dict(reversed(list(item.items())))) == encode_item(item)


@settings(deadline=None)  # wall-clock deadlines flake on a busy machine
@given(st.lists(st.integers(0, MASK), max_size=30), st.randoms(use_true_random=False), st.integers(0, 30))
def test_bucket_digests_ignore_order_and_merge_by_addition(hashes: list[int], rnd: Any, cut: int) -> None:
    whole = BucketDigest()
    for h in hashes:
        whole.add(h)
    shuffled = list(hashes)
    rnd.shuffle(shuffled)
    left, right = BucketDigest(), BucketDigest()
    for h in shuffled[:cut]:
        left.add(h)
    for h in shuffled[cut:]:
        right.add(h)
    assert left + right == whole
    assert (whole.count, whole.total) == (len(hashes), sum(hashes) % (MASK + 1))


@settings(deadline=None)  # wall-clock deadlines flake on a busy machine
@given(items)
def test_row_hash_is_64_bit(item: dict[str, Any]) -> None:
    assert 0 <= row_hash(item) <= MASK
