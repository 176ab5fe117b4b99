"""The canonical value model and the low-level wire shape."""

from __future__ import annotations

from decimal import Decimal

import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from parity.core.errors import MappingError
from parity.core.values import (
    MAX_ITEM_BYTES,
    canonical_json,
    from_wire,
    item_from_wire,
    item_size,
    item_to_wire,
    number,
    number_from,
    to_wire,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("1.50", "1.5"),
        ("-0", "0"),
        ("0.000", "0"),
        ("100", "1E+2"),
        ("1E+2", "1E+2"),
        ("123.4560", "123.456"),
        ("-7.25", "-7.25"),
        ("1E-130", "1E-130"),
        ("9.9999999999999999999999999999999999999E+125", "9.9999999999999999999999999999999999999E+125"),
        ("1" * 38, "1" * 38),
        ("1" * 38 + "000", "1.1111111111111111111111111111111111111E+40"),
    ],
)
def test_numbers_are_canonical(given: str, canonical: str) -> None:
    assert str(number(Decimal(given))) == canonical


@pytest.mark.parametrize(
    "bad", ["NaN", "Infinity", "-Infinity", "1" * 39, "1E-131", "1E+126", "0." + "0" * 140 + "1"]
)
def test_numbers_dynamodb_cannot_hold_are_mapping_errors(bad: str) -> None:
    with pytest.raises(MappingError):
        number(Decimal(bad))


def test_floats_enter_by_their_shortest_repr_never_their_binary_value() -> None:
    assert number_from(0.1) == Decimal("0.1")
    assert str(number_from(1e20)) == "1E+20"
    for bad in (float("nan"), float("inf")):
        with pytest.raises(MappingError):
            number_from(bad)


WIRE_CASES: list[tuple[object, dict[str, object]]] = [
    ("text", {"S": "text"}),
    ("", {"S": ""}),
    (Decimal("1.5"), {"N": "1.5"}),
    (Decimal("1E+2"), {"N": "100"}),
    (Decimal("-3"), {"N": "-3"}),
    (True, {"BOOL": True}),
    (False, {"BOOL": False}),
    (b"\x00\x01", {"B": b"\x00\x01"}),
    (None, {"NULL": True}),
    ([Decimal(1), "a", None], {"L": [{"N": "1"}, {"S": "a"}, {"NULL": True}]}),
    ({"k": {"n": Decimal("2")}}, {"M": {"k": {"M": {"n": {"N": "2"}}}}}),
    (frozenset({"b", "a"}), {"SS": ["a", "b"]}),
    (frozenset({b"x"}), {"BS": [b"x"]}),
]


@pytest.mark.parametrize(("value", "wire"), WIRE_CASES)
def test_to_wire_and_back(value: object, wire: dict[str, object]) -> None:
    assert to_wire(value) == wire  # type: ignore[arg-type]
    assert from_wire(wire) == value


def test_number_sets_round_trip() -> None:
    value = frozenset({Decimal("1.5"), Decimal("2")})
    wire = to_wire(value)
    assert sorted(wire["NS"]) == ["1.5", "2"]
    assert from_wire(wire) == value


def test_wire_numbers_come_back_canonical_and_never_float() -> None:
    value = from_wire({"N": "10.50"})
    assert type(value) is Decimal
    assert str(value) == "10.5"
    assert from_wire({"NS": ["1.0", "1.00"]}) == frozenset({Decimal(1)})


def test_wire_shape_matches_boto3s_own_serializer() -> None:
    item = {
        "s": "x",
        "n": Decimal("12.5"),
        "b": b"raw",
        "t": True,
        "z": None,
        "l": [Decimal(1), "two"],
        "m": {"inner": "v"},
        "ss": frozenset({"a", "b"}),
    }
    ours = item_to_wire(item)  # type: ignore[arg-type]
    theirs = {k: TypeSerializer().serialize(v if not isinstance(v, frozenset) else set(v)) for k, v in item.items()}
    theirs["b"] = {"B": b"raw"}  # boto3 wraps bytes in its Binary type
    ours["ss"]["SS"] = sorted(ours["ss"]["SS"])
    theirs["ss"]["SS"] = sorted(theirs["ss"]["SS"])
    assert ours == theirs
    back = {k: TypeDeserializer().deserialize(v) for k, v in ours.items() if k != "b"}
    assert item_from_wire(ours) == {**back, "b": b"raw", "ss": frozenset({"a", "b"})}


@pytest.mark.parametrize(
    ("value", "reason"),
    [(frozenset(), "empty set"), (1.5, "float"), (7, "int"), (object(), "object")],
)
def test_values_outside_the_model_are_refused(value: object, reason: str) -> None:
    with pytest.raises(MappingError, match=reason):
        to_wire(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("wire", [{}, {"S": "a", "N": "1"}, {"X": 1}, {"N": "abc"}])
def test_malformed_wire_values_are_mapping_errors(wire: dict[str, object]) -> None:
    with pytest.raises(MappingError):
        from_wire(wire)


def test_item_size_counts_names_and_values_per_aws_rules() -> None:
    assert item_size({"ab": "xyz"}) == 5
    assert item_size({"é": "é"}) == 4  # UTF-8 bytes
    assert item_size({"n": Decimal("12345")}) == 1 + 3 + 1  # 1 byte per two digits, plus 1
    assert item_size({"f": True, "z": None}) == 4
    assert item_size({"l": ["a", "b"]}) == 1 + 3 + 2 * 2
    assert item_size({"big": "x" * MAX_ITEM_BYTES}) > MAX_ITEM_BYTES


@pytest.mark.parametrize(
    ("document", "text"),
    [
        ({"b": 1, "a": [1.0, "x", None, True]}, '{"a":[1,"x",null,true],"b":1}'),
        ({"n": Decimal("1.50")}, '{"n":1.5}'),
        ({"ü": "é"}, '{"ü":"é"}'),
        ([], "[]"),
        ("plain", '"plain"'),
    ],
)
def test_canonical_json(document: object, text: str) -> None:
    assert canonical_json(document) == text
