"""compare(): kinds, diffs, redaction, and what is not a difference."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from parity.core.compare import AttributeDiff, Match, Mismatch, MismatchKind, compare, display, display_pair

from .mapping_helpers import mapper

pytestmark = pytest.mark.unit
D = Decimal
UTC = dt.UTC


def payments() -> Any:
    return mapper(
        {
            "amount": {"name": "Amount", "type": "number"},
            "status": {"name": "Status"},
            "card": {"name": "Card", "redact": True},
            "doc": {"name": "Doc", "type": "json_string"},
            "meta": {"name": "Meta", "type": "json_map"},
            "note": {"name": "Note", "empty_string_as_null": True},
            "rate": {"name": "Rate", "tolerance": 0.001},
            "updated_at": {"name": "UpdatedAt", "type": "timestamp_iso", "precision": "ms"},
        },
        freshness_column="updated_at",
        ignore_attributes=["ExpiresAt"],
    )


ROW = {
    "id": 1,
    "amount": D("10.50"),
    "status": "SETTLED",
    "card": "4111-1111",
    "doc": {"b": 1, "a": [1, 2]},
    "meta": {"x": 1.5},
    "note": None,
    "rate": 0.25,
    "updated_at": dt.datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
}


@pytest.fixture
def m() -> Any:
    return payments()


@pytest.fixture
def expected(m: Any) -> dict[str, Any]:
    return m.item(ROW)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"Amount": D("10.5")}, "same number, other scale"),
        ({"Doc": '{ "a" : [1,2], "b" : 1.0 }'}, "JSON key order and whitespace"),
        ({"Meta": {"x": D("1.50")}}, "map numbers"),
        ({"UpdatedAt": "2024-03-01T12:00:00.123Z"}, "timestamp precision within the rule"),
        ({"UpdatedAt": "2024-03-01T14:00:00.123999+02:00"}, "another zone, same instant"),
        ({"Note": ""}, "empty string is NULL by the rule"),
        ({"Rate": D("0.2509")}, "within the tolerance"),
        ({"ExpiresAt": D(1), "_parity_version": D(77), "Brand": "new attribute"}, "ignored and target-only"),
    ],
)
def test_representation_only_differences_match(
    m: Any, expected: dict[str, Any], change: dict[str, Any], why: str
) -> None:
    assert compare(m, expected, {**expected, **change}) == Match(), why


def test_kinds(m: Any, expected: dict[str, Any]) -> None:
    assert compare(m, None, None) == Match()
    assert compare(m, expected, None) == Mismatch(MismatchKind.MISSING_IN_TARGET)
    assert compare(m, None, expected) == Mismatch(MismatchKind.UNEXPECTED_IN_TARGET)
    assert compare(m, expected, dict(expected)) == Match()


def test_value_mismatch_lists_each_differing_attribute(m: Any, expected: dict[str, Any]) -> None:
    actual = {**expected, "Amount": D("10.51"), "Status": "PENDING"}
    del actual["Meta"]
    result = compare(m, expected, actual)
    assert result == Mismatch(
        MismatchKind.VALUE_MISMATCH,
        (
            AttributeDiff("Amount", "10.5", "10.51"),
            AttributeDiff("Status", '"SETTLED"', '"PENDING"'),
            AttributeDiff("Meta", "{x: 1.5}", "<absent>"),
        ),
    )


def test_type_differences_are_mismatches(m: Any, expected: dict[str, Any]) -> None:
    result = compare(m, expected, {**expected, "Amount": "10.5"})
    assert result == Mismatch(MismatchKind.VALUE_MISMATCH, (AttributeDiff("Amount", "10.5", '"10.5"'),))
    flag = mapper({"f": {}})
    assert isinstance(compare(flag, {"f": True}, {"f": D(1)}), Mismatch)
    assert isinstance(compare(flag, {"f": [True]}, {"f": [D(1)]}), Mismatch)


def test_redacted_values_are_never_shown(m: Any, expected: dict[str, Any]) -> None:
    result = compare(m, expected, {**expected, "Card": "4000-0000"})
    assert result == Mismatch(MismatchKind.VALUE_MISMATCH, (AttributeDiff("Card", "<redacted>", "<redacted>"),))
    missing = compare(m, expected, {k: v for k, v in expected.items() if k != "Card"})
    assert missing == Mismatch(MismatchKind.VALUE_MISMATCH, (AttributeDiff("Card", "<redacted>", "<absent>"),))
    assert "4111" not in repr(result) + repr(missing)


def test_key_attributes_built_from_redacted_columns_are_redacted() -> None:
    m = mapper({"ssn": {"redact": True}}, indexes={"GSI1PK": "SSN#{ssn}"})
    result = compare(m, m.item({"id": 1, "ssn": "123"}), m.item({"id": 1, "ssn": "456"}))
    assert isinstance(result, Mismatch)
    assert {d.attribute for d in result.diffs} == {"ssn", "GSI1PK"}
    assert "123" not in repr(result)


def test_older_freshness_value_in_the_target_is_stale(m: Any, expected: dict[str, Any]) -> None:
    older = {**expected, "Status": "PENDING", "UpdatedAt": "2024-03-01T11:59:59.000Z"}
    assert compare(m, expected, older).kind == MismatchKind.STALE_IN_TARGET  # type: ignore[union-attr]
    newer = {**expected, "Status": "PENDING", "UpdatedAt": "2024-03-01T12:00:01.000Z"}
    assert compare(m, expected, newer).kind == MismatchKind.VALUE_MISMATCH  # type: ignore[union-attr]
    same_time = {**expected, "Status": "PENDING"}
    assert compare(m, expected, same_time).kind == MismatchKind.VALUE_MISMATCH  # type: ignore[union-attr]


def test_unavailable_attributes_are_not_compared(m: Any) -> None:
    from parity.core.events import UNAVAILABLE

    row = {**ROW, "doc": UNAVAILABLE}
    expected = m.item(row)
    actual = {**m.item(ROW), "Doc": '{"stale": true}'}
    assert compare(m, expected, actual, unavailable=m.unavailable(row)) == Match()
    assert isinstance(compare(m, expected, actual), Mismatch)


def test_outside_tolerance_is_a_mismatch(m: Any, expected: dict[str, Any]) -> None:
    result = compare(m, expected, {**expected, "Rate": D("0.252")})
    assert result == Mismatch(MismatchKind.VALUE_MISMATCH, (AttributeDiff("Rate", "0.25", "0.252"),))


def test_compare_never_raises_for_odd_data(m: Any, expected: dict[str, Any]) -> None:
    odd = {
        **expected,
        "Amount": D("NaN"),
        "Rate": D("sNaN"),
        "UpdatedAt": D("1E+400"),
        "Doc": b"\x00",
        "Meta": frozenset({"a"}),
        "Status": 7,
    }
    result = compare(m, expected, odd)
    assert isinstance(result, Mismatch)
    assert {d.attribute for d in result.diffs} == {"Amount", "Rate", "UpdatedAt", "Doc", "Meta", "Status"}
    stale_nan = compare(m, {**expected, "UpdatedAt": D("NaN")}, {**expected, "UpdatedAt": D("1")})
    assert isinstance(stale_nan, Mismatch)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "null"),
        (True, "true"),
        ('say "hi"', '"say \\"hi\\""'),
        (D("1E+2"), "100"),  # plain digits, as key documents and DynamoDB show numbers
        (D("1.5E-7"), "1.5E-7"),
        (b"\x01", "b64:AQ=="),
        ([D(1), "a"], '[1, "a"]'),
        (frozenset({"b", "a"}), '<<"a", "b">>'),
        ("x" * 500, '"' + "x" * 196 + "..."),
    ],
)
def test_display(value: Any, text: str) -> None:
    assert display(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("a\tb", '"a\\tb"'),
        ("line\n", '"line\\n"'),
        ("zero\u200bwidth", '"zero\\u200bwidth"'),
        ("bom\ufeff", '"bom\\ufeff"'),
        ("nb\u00a0sp", '"nb\\u00a0sp"'),
        ("Jose\u0301", '"Jose\\u0301"'),  # a combining mark prints on the letter before it
        ("Jos\u00e9", '"Jos\u00e9"'),  # a precomposed letter is visible as itself
        ("\x00", '"\\u0000"'),
        ("\U0001d400", '"\U0001d400"'),  # a visible letter beyond the BMP
        ("\U000e0001", '"\\U000e0001"'),  # an invisible tag character
    ],
)
def test_display_escapes_what_prints_as_nothing(value: str, text: str) -> None:
    assert display(value) == text


@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        ("Jos\u00e9", "Jose\u0301"),  # NFC vs NFD
        ("abc", "abc "),  # trailing space
        ("a\tb", "a    b"),  # tab vs spaces
        ("ab", "a\u200bb"),  # zero-width space
        ("\u0430bc", "abc"),  # Cyrillic a vs Latin a
    ],
)
def test_a_pair_that_prints_alike_is_shown_differently(expected: str, actual: str) -> None:
    shown_expected, shown_actual = display_pair(expected, actual)
    assert shown_expected != shown_actual
    assert shown_expected.isascii() and shown_actual.isascii()


def test_nfc_and_nfd_show_their_code_points_on_both_sides() -> None:
    assert display_pair("Jos\u00e9", "Jose\u0301") == ('"Jos\\u00e9"', '"Jose\\u0301"')


def test_a_pair_differing_in_ascii_keeps_readable_letters() -> None:
    assert display_pair("Jos\u00e9 A", "Jos\u00e9 B") == ('"Jos\u00e9 A"', '"Jos\u00e9 B"')


def test_long_strings_show_lengths_and_the_first_difference_with_context() -> None:
    common = "x" * 4000
    expected, actual = display_pair(common + "A" + "y" * 999, common + "B" + "y" * 10)
    assert expected == '…"' + "x" * 40 + "A" + "y" * 39 + '"… (5000 chars, first difference at offset 4000)'
    assert actual == '…"' + "x" * 40 + "B" + "y" * 10 + '" (4011 chars, first difference at offset 4000)'


def test_a_long_string_that_is_a_prefix_of_the_other() -> None:
    expected, actual = display_pair("z" * 300, "z" * 300 + "\u200b")
    assert expected.endswith('"zzzz" (300 chars, first difference at offset 300)'.replace("zzzz", "z" * 40))
    assert actual.endswith('\\u200b" (301 chars, first difference at offset 300)')


def test_long_lists_are_not_cut_to_the_same_prefix() -> None:
    a = [D(i) for i in range(200)]
    b = [*a[:150], D(-1), *a[151:]]
    shown_a, shown_b = display_pair(a, b)
    assert shown_a != shown_b
    assert "150" in shown_a and "-1" in shown_b


def test_compare_shows_nfc_vs_nfd_as_code_points(m: Any, expected: dict[str, Any]) -> None:
    result = compare(m, {**expected, "Status": "Jos\u00e9"}, {**expected, "Status": "Jose\u0301"})
    assert result == Mismatch(
        MismatchKind.VALUE_MISMATCH, (AttributeDiff("Status", '"Jos\\u00e9"', '"Jose\\u0301"'),)
    )


def test_a_redacted_column_shows_neither_value_nor_length(m: Any, expected: dict[str, Any]) -> None:
    long_a, long_b = "4111" * 100, "4111" * 100 + "\u200b"
    result = compare(m, {**expected, "Card": long_a}, {**expected, "Card": long_b})
    assert result == Mismatch(MismatchKind.VALUE_MISMATCH, (AttributeDiff("Card", "<redacted>", "<redacted>"),))
    missing = compare(m, {**expected, "Card": long_a}, {k: v for k, v in expected.items() if k != "Card"})
    assert missing == Mismatch(MismatchKind.VALUE_MISMATCH, (AttributeDiff("Card", "<redacted>", "<absent>"),))
