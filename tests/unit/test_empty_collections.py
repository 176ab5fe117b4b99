"""Empty arrays in set columns (issue 16, defect 1): the expected item of a row holding '{}', the
DynamoDB item as DynamoDB stores it (written out by hand as wire JSON), and what compare and the
reconciler's row hash make of the pair. NULL vs empty stays apart exactly where the rules say so."""

from __future__ import annotations

from typing import Any

import pytest

from parity.core.compare import AttributeDiff, Match, Mismatch, MismatchKind, compare
from parity.core.digest import digest_item
from parity.core.mapping import ItemMapper
from parity.core.values import item_from_wire

from .mapping_helpers import mapper

pytestmark = pytest.mark.unit

ROW = {"id": 1, "name": "one"}
WIRE = {"PK": {"S": "T#1"}, "id": {"N": "1"}, "name": {"S": "one"}}


def _m(**rule: Any) -> ItemMapper:
    return mapper({"name": {}, "c": {"type": "string_set", **rule}})


def _stored(**attrs: Any) -> dict[str, Any]:
    return item_from_wire({**WIRE, **attrs})


def _same(m: ItemMapper, row_value: Any, stored: dict[str, Any]) -> bool:
    """compare and the reconciler's row hash must give the same answer; return it."""
    expected = m.item({**ROW, "c": row_value})
    matched = isinstance(compare(m, expected, stored), Match)
    assert matched == (digest_item(m, expected, 64) == digest_item(m, stored, 64))
    return matched


NULL = {"c": {"NULL": True}}
EMPTY_L = {"c": {"L": []}}
SET = {"c": {"SS": ["a"]}}

# (rule, Postgres value, stored attribute or {} for absent, same?)
CASES: list[tuple[dict[str, Any], Any, dict[str, Any], bool]] = [
    # the default: an empty array is no attribute, like NULL; both compare alike
    ({}, [], {}, True),
    ({}, [], NULL, True),
    ({}, None, {}, True),
    ({}, [], SET, False),
    ({}, [], EMPTY_L, False),  # the target holds an empty list, the rule says absent
    ({}, ["a"], {}, False),
    # null_as: null keeps NULL apart from the empty array (absent)
    ({"null_as": "null"}, None, NULL, True),
    ({"null_as": "null"}, None, {}, False),
    ({"null_as": "null"}, [], {}, True),
    ({"null_as": "null"}, [], NULL, False),
    # empty_set_as: null, the reverse
    ({"empty_set_as": "null"}, [], NULL, True),
    ({"empty_set_as": "null"}, [], {}, False),
    ({"empty_set_as": "null"}, None, {}, True),
    ({"empty_set_as": "null"}, None, NULL, False),
    # both NULL: the user asked for one representation, so NULL and absent fold again
    ({"empty_set_as": "null", "null_as": "null"}, [], {}, True),
    ({"empty_set_as": "null", "null_as": "null"}, None, NULL, True),
    # empty_list: an empty L, never mistaken for NULL or absent
    ({"empty_set_as": "empty_list"}, [], EMPTY_L, True),
    ({"empty_set_as": "empty_list"}, [], {}, False),
    ({"empty_set_as": "empty_list"}, [], NULL, False),
    ({"empty_set_as": "empty_list"}, None, {}, True),
    ({"empty_set_as": "empty_list"}, None, NULL, True),
    ({"empty_set_as": "empty_list"}, None, EMPTY_L, False),
]


@pytest.mark.parametrize(("rule", "value", "stored", "same"), CASES)
def test_verify_and_the_row_hash_agree_on_empty_arrays_per_rule(
    rule: dict[str, Any], value: Any, stored: dict[str, Any], same: bool
) -> None:
    assert _same(_m(**rule), value, _stored(**stored)) is same


@pytest.mark.parametrize("rule", [{}, {"null_as": "null"}, {"empty_set_as": "null"}, {"empty_set_as": "empty_list"}])
def test_drift_in_another_attribute_of_a_row_with_an_empty_array_is_found(rule: dict[str, Any]) -> None:
    m = _m(**rule)
    expected = m.item({**ROW, "c": []})
    stored = item_from_wire({**_wire_of(expected), "name": {"S": "drifted"}})
    assert compare(m, expected, stored) == Mismatch(
        MismatchKind.VALUE_MISMATCH, (AttributeDiff("name", '"one"', '"drifted"'),)
    )
    assert digest_item(m, expected, 64)[1] != digest_item(m, stored, 64)[1]


def _wire_of(expected: dict[str, Any]) -> dict[str, Any]:
    """The matching stored item, by hand: an empty array is written per the rule's representation."""
    c = expected.get("c", "absent")
    return {**WIRE, **({} if c == "absent" else {"c": {"NULL": True} if c is None else {"L": []}})}


def test_a_reported_null_versus_absent_shows_both_sides() -> None:
    m = _m(null_as="null")
    out = compare(m, m.item({**ROW, "c": None}), _stored())
    assert out == Mismatch(MismatchKind.VALUE_MISMATCH, (AttributeDiff("c", "null", "<absent>"),))
