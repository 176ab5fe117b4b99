"""compare(..., known=...): expected attributes the mapping does not account for (columns added by
schema drift under `schema_drift: compare`) are compared as plain values, after the rules."""

from __future__ import annotations

from decimal import Decimal

import pytest

from parity.core.compare import AttributeDiff, Match, Mismatch, MismatchKind, compare, known_attributes
from tests.unit.mapping_helpers import mapper

pytestmark = pytest.mark.unit
D = Decimal


def test_known_attributes_are_the_rules_the_ignored_and_the_version() -> None:
    m = mapper({"owner": {"name": "Owner"}, "secret": {"exclude": True}}, ignore_attributes=["ttl"])
    known = known_attributes(m)
    assert {"PK", "id", "Owner", "ttl", "_parity_version"} <= known
    assert "nickname" not in known


def test_an_unknown_expected_attribute_is_compared_as_a_plain_value() -> None:
    m = mapper({"owner": {}})
    known = known_attributes(m)
    expected = {"PK": "T#1", "id": D(1), "owner": "ada", "nickname": "ace"}
    actual = {"PK": "T#1", "id": D(1), "owner": "ada"}
    assert compare(m, expected, actual) == Match()  # without `known`, the rules alone
    assert compare(m, expected, actual, known=known) == Mismatch(
        MismatchKind.VALUE_MISMATCH, (AttributeDiff("nickname", '"ace"', "<absent>"),)
    )
    assert compare(m, expected, {**actual, "nickname": "bob"}, known=known) == Mismatch(
        MismatchKind.VALUE_MISMATCH, (AttributeDiff("nickname", '"ace"', '"bob"'),)
    )
    assert compare(m, expected, {**actual, "nickname": "ace"}, known=known) == Match()


def test_a_plain_value_tells_types_apart() -> None:
    m = mapper()
    expected = {"PK": "T#1", "id": D(1), "flag": True}
    actual = {"PK": "T#1", "id": D(1), "flag": D(1)}  # Python says True == 1; DynamoDB does not
    assert isinstance(compare(m, expected, actual, known=known_attributes(m)), Mismatch)


def test_a_mismatch_by_the_rules_is_reported_alone() -> None:
    m = mapper({"owner": {}})
    expected = {"PK": "T#1", "id": D(1), "owner": "ada", "nickname": "ace"}
    verdict = compare(m, expected, {"PK": "T#1", "id": D(1), "owner": "eve"}, known=known_attributes(m))
    assert isinstance(verdict, Mismatch)
    assert [d.attribute for d in verdict.diffs] == ["owner"]


def test_attributes_only_the_target_has_are_not_differences() -> None:
    m = mapper()
    actual = {"PK": "T#1", "id": D(1), "written_by_someone_else": "x"}
    assert compare(m, {"PK": "T#1", "id": D(1)}, actual, known=known_attributes(m)) == Match()
