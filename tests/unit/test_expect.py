"""parity.core.expect: the expected item of one change event, the facts about its columns, the
events that cannot become an item (unmappable), and TOAST values carried from an older event."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from parity.core.events import UNAVAILABLE, ChangeEvent, Op
from parity.core.expect import MAX_NESTING, Expectation, Unmappable, carry_toast, expect, too_deep, unmapped_columns
from tests.unit.mapping_helpers import mapper, table

pytestmark = pytest.mark.unit
D = Decimal


def _event(op: Op, *, after: dict[str, Any] | None = None, before: dict[str, Any] | None = None,
           key: dict[str, Any] | None = None) -> ChangeEvent:
    return ChangeEvent("public.t", op, key or {"id": 1}, before, after, 100, 1, 1_000, False)


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"x": value}
    return value


def test_a_row_becomes_its_key_and_item_with_toast_and_missing_columns_reported() -> None:
    m = mapper({"doc": {"name": "Doc"}, "owner": {"name": "Owner"}, "note": {}})
    found = expect(m, _event(Op.UPDATE, after={"id": 7, "doc": UNAVAILABLE, "owner": "ada"}))
    assert found == Expectation(
        key={"PK": "T#7"},
        expected={"id": D(7), "Owner": "ada", "PK": "T#7"},
        unavailable=("Doc", "note"),
        missing=("note",),  # not in the event at all, unlike the TOASTed doc
        unmapped=(),
    )


def test_unmapped_columns_are_reported_and_left_out_under_schema_drift_ignore() -> None:
    m = mapper({"owner": {}})
    found = expect(m, _event(Op.CREATE, after={"id": 1, "owner": "ada", "nickname": "ace", "age": 3}))
    assert isinstance(found, Expectation)
    assert found.unmapped == ("nickname", "age")
    assert found.expected == {"id": D(1), "owner": "ada", "PK": "T#1"}


def test_unmapped_columns_are_expected_typed_by_value_under_schema_drift_compare() -> None:
    m = mapper({"owner": {}}, schema_drift="compare")
    after = {"id": 1, "owner": "ada", "age": 3, "tags": {"a": [1, "b"]}, "gone": None, "big": UNAVAILABLE}
    found = expect(m, _event(Op.CREATE, after=after))
    assert isinstance(found, Expectation)
    assert found.unmapped == ("age", "tags", "gone", "big")
    # NULL and TOASTed values of new columns are not expected; the rest by their own type.
    assert found.expected == {"id": D(1), "owner": "ada", "PK": "T#1", "age": D(3), "tags": {"a": [D(1), "b"]}}


def test_a_delete_expects_absence_under_the_key_of_its_old_row() -> None:
    m = mapper({"owner": {}})
    assert expect(m, _event(Op.DELETE, before={"id": 4, "owner": "ada"})) == Expectation({"PK": "T#4"}, None)
    # Without the old row (REPLICA IDENTITY DEFAULT and no before), the record key.
    assert expect(m, _event(Op.DELETE, key={"id": 5})) == Expectation({"PK": "T#5"}, None)


def test_a_delete_without_the_columns_of_a_composite_key_names_replica_identity_full() -> None:
    m = mapper({"region": {}}, keys={"PK": "T#{id}", "SK": "R#{region}"})
    found = expect(m, _event(Op.DELETE, key={"id": 1}))
    assert isinstance(found, Unmappable)
    assert found.reason == (
        "delete of public.t carries only ['id']; the DynamoDB key needs ['region']: "
        "set REPLICA IDENTITY FULL on the table"
    )


def test_a_change_without_an_after_row_is_unmappable() -> None:
    found = expect(mapper(), _event(Op.CREATE, after=None))
    assert found == Unmappable("c event without 'after'")


def test_a_key_that_cannot_be_built_is_unmappable_with_the_mapping_error() -> None:
    found = expect(mapper(), _event(Op.CREATE, after={"id": None}))
    assert isinstance(found, Unmappable)
    assert "NULL" in found.reason and "PK" in found.reason


def test_a_value_nested_deeper_than_dynamodb_allows_is_unmappable_with_the_column_facts() -> None:
    m = mapper({"doc": {"type": "json_map"}, "note": {}}, schema_drift="compare")
    ok = expect(m, _event(Op.CREATE, after={"id": 1, "doc": _nested(MAX_NESTING), "note": None}))
    assert isinstance(ok, Expectation)
    deep = expect(m, _event(Op.CREATE, after={"id": 1, "doc": None, "extra": _nested(MAX_NESTING + 1)}))
    assert deep == Unmappable("a value is nested deeper than DynamoDB's 32 levels", ("note",), ("extra",))


@pytest.mark.parametrize("column", ["doc", "extra"])
def test_a_value_nested_past_pythons_recursion_limit_is_unmappable_not_a_crash(column: str) -> None:
    m = mapper({"doc": {"type": "json_map"}}, schema_drift="compare")
    found = expect(m, _event(Op.CREATE, after={"id": 1, "doc": None, column: _nested(100_000)}))
    assert isinstance(found, Unmappable)
    assert found.reason == "a value is nested deeper than DynamoDB's 32 levels"


def test_too_deep_counts_maps_and_lists_alike() -> None:
    assert not too_deep({"a": _nested(MAX_NESTING)})  # the attribute's own map is level 1
    assert too_deep({"a": _nested(MAX_NESTING + 1)})
    lists: Any = []
    for _ in range(MAX_NESTING - 1):
        lists = [lists]
    assert not too_deep({"a": lists})
    assert too_deep({"a": [lists]})
    assert too_deep({"a": {"b": lists}})
    assert not too_deep({"a": "flat", "b": D(1)})


def test_unmapped_columns_keep_the_rows_order() -> None:
    t = table({"owner": {}})
    assert unmapped_columns(t, {"id": 1, "owner": "x"}) == ()
    assert unmapped_columns(t, {"z": 1, "id": 1, "a": 2}) == ("z", "a")


def test_a_toasted_value_is_carried_from_an_older_event_of_the_batch() -> None:
    older = Expectation({"PK": "T#1"}, {"PK": "T#1", "Doc": "long text", "N": D(1)}, unavailable=("Blob",))
    newer = Expectation({"PK": "T#1"}, {"PK": "T#1", "N": D(2)}, unavailable=("Doc", "Blob"))
    carried = carry_toast(older, newer)
    assert carried.expected == {"PK": "T#1", "N": D(2), "Doc": "long text"}
    assert carried.unavailable == ("Blob",)  # the older event did not carry it either
    assert newer.expected == {"PK": "T#1", "N": D(2)}  # the inputs are left as they were


def test_nothing_is_carried_to_or_from_a_delete() -> None:
    deleted = Expectation({"PK": "T#1"}, None)
    newer = Expectation({"PK": "T#1"}, {"PK": "T#1"}, unavailable=("Doc",))
    assert carry_toast(deleted, newer) is newer
    older = Expectation({"PK": "T#1"}, {"PK": "T#1", "Doc": "x"})
    assert carry_toast(older, deleted) is deleted
