"""Canonical encoding, row hashes, key buckets and bucket digests."""

from __future__ import annotations

import hashlib
import itertools
import subprocess
import sys
from decimal import Decimal
from typing import Any

import pytest

from parity.core.digest import MASK, BucketDigest, digest_item, encode_item, key_bucket, row_hash
from parity.core.errors import MappingError

from .mapping_helpers import mapper

pytestmark = pytest.mark.unit
D = Decimal

# Pairs that a naive encoding (concatenation, str(), Python equality) would confuse.
CONFUSABLE: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"a": "bc"}, {"ab": "c"}),
    ({"a": "1"}, {"a": D(1)}),
    ({"a": True}, {"a": D(1)}),
    ({"a": False}, {"a": D(0)}),
    ({"a": None}, {}),
    ({"a": None}, {"a": ""}),
    ({"a": ""}, {"a": b""}),
    ({"a": ["x", "y"]}, {"a": ["xy"]}),
    ({"a": ["x"]}, {"a": frozenset({"x"})}),
    ({"a": {"k": "v"}}, {"a": ["k", "v"]}),
    ({"a": [["x"], "y"]}, {"a": [["x", "y"]]}),
    ({"a": {"k": "v", "l": "w"}}, {"a": {"k": "vl", "": "w"}}),
    ({"a": "x", "b": "y"}, {"a": "xb", "": "y"}),
]


@pytest.mark.parametrize(("one", "other"), CONFUSABLE)
def test_different_items_encode_differently(one: dict[str, Any], other: dict[str, Any]) -> None:
    assert encode_item(one) != encode_item(other)
    assert row_hash(one) != row_hash(other)


def test_encoding_is_canonical_for_equal_items() -> None:
    assert encode_item({"b": D("1.50"), "a": "x"}) == encode_item({"a": "x", "b": D("1.5")})
    assert encode_item({"n": D("1E+2")}) == encode_item({"n": D("100")})
    assert encode_item({"s": frozenset({"b", "a"})}) == encode_item({"s": frozenset({"a", "b"})})
    assert encode_item({"s": frozenset({D("2"), D("1.0")})}) == encode_item({"s": frozenset({D(1), D(2)})})


def test_row_hash_is_blake2b_of_the_encoding_not_pythons_hash() -> None:
    item = {"PK": "A#1", "n": D(3)}
    h = row_hash(item)
    assert 0 <= h <= MASK
    expected = hashlib.blake2b(encode_item(item), digest_size=8, person=b"parity-row").digest()
    assert h == int.from_bytes(expected, "big")


def test_hashes_are_stable_across_processes() -> None:
    code = (
        "from decimal import Decimal; from parity.core.digest import row_hash, key_bucket;"
        "print(row_hash({'PK': 'A#1', 'n': Decimal(3)}), key_bucket({'PK': 'A#1'}, 1024))"
    )
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            for _ in range(2)}
    assert runs == {f"{row_hash({'PK': 'A#1', 'n': D(3)})} {key_bucket({'PK': 'A#1'}, 1024)}\n"}


def test_key_buckets_are_in_range_and_spread() -> None:
    buckets = [key_bucket({"PK": f"T#{i}"}, 16) for i in range(1600)]
    assert all(0 <= b < 16 for b in buckets)
    counts = [buckets.count(b) for b in range(16)]
    assert min(counts) > 50  # 100 expected each; a broken hash piles them up


def test_bucket_digests_add_up_in_any_order_and_merge() -> None:
    hashes = [row_hash({"PK": f"T#{i}"}) for i in range(6)]
    digests = []
    for order in itertools.islice(itertools.permutations(hashes), 24):
        d = BucketDigest()
        for h in order:
            d.add(h)
        digests.append(d)
    assert len({(d.count, d.total) for d in digests}) == 1
    left, right = BucketDigest(), BucketDigest()
    for h in hashes[:2]:
        left.add(h)
    for h in hashes[2:]:
        right.add(h)
    assert left + right == digests[0]
    left.merge(right)
    assert left == digests[0]
    assert digests[0].total == sum(hashes) % (1 << 64)


def test_digest_item_agrees_for_both_sides_of_a_match() -> None:
    m = mapper({"amount": {"type": "number"}, "at": {"type": "timestamp_iso", "precision": "s"}})
    expected = m.item({"id": 1, "amount": D("10.50"), "at": "2024-01-01T00:00:00Z"})
    actual = {**expected, "amount": D("10.5"), "at": "2024-01-01T00:00:00.999Z", "_parity_version": D(9)}
    assert digest_item(m, expected, 64) == digest_item(m, actual, 64)
    changed = {**actual, "amount": D("10.49")}
    assert digest_item(m, changed, 64)[0] == digest_item(m, expected, 64)[0]
    assert digest_item(m, changed, 64)[1] != digest_item(m, expected, 64)[1]


def test_digest_item_needs_the_key_attributes() -> None:
    with pytest.raises(MappingError, match="no key attribute 'PK'"):
        digest_item(mapper(), {"id": D(1)}, 8)
