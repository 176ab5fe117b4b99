"""Expected item vs actual item -> Match | Mismatch(kind, attribute diffs).

A mismatch is a value, never an exception: `compare` does not raise for any data. Both sides go
through `normalize.comparable_item` first, so representation-only differences (1.50 vs 1.5, JSON
key order, timestamp precision within the rule, "" vs absent with the rule) are not reported.

The mapping's rules say which attributes are compared. Given `known` (see `known_attributes`),
an expected attribute the mapping does not account for is compared too, as a plain value: a
column added by schema drift under the `compare` rule is expected in the target as it is.
"""

from __future__ import annotations

import base64
import enum
import unicodedata
from collections.abc import Callable, Collection
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from parity.core.normalize import DROP
from parity.core.values import Item, Value, number_text

if TYPE_CHECKING:
    from parity.core.mapping import ItemMapper

__all__ = [
    "AttributeDiff",
    "Match",
    "Mismatch",
    "MismatchKind",
    "compare",
    "display",
    "display_pair",
    "known_attributes",
]

ABSENT: Final = "<absent>"
REDACTED: Final = "<redacted>"
_MAX_DISPLAY = 200
_CONTEXT = 40  # characters shown either side of the first difference of two long strings
_SHORT_ESCAPES: Final = {"\\": "\\\\", '"': '\\"', "\t": "\\t", "\n": "\\n", "\r": "\\r"}


class MismatchKind(enum.StrEnum):
    MISSING_IN_TARGET = "missing_in_target"
    UNEXPECTED_IN_TARGET = "unexpected_in_target"
    VALUE_MISMATCH = "value_mismatch"
    STALE_IN_TARGET = "stale_in_target"


@dataclass(frozen=True, slots=True)
class AttributeDiff:
    attribute: str
    expected: str  # display text, "<absent>" or "<redacted>"
    actual: str


@dataclass(frozen=True, slots=True)
class Match:
    pass


@dataclass(frozen=True, slots=True)
class Mismatch:
    kind: MismatchKind
    diffs: tuple[AttributeDiff, ...] = ()
    # The target's freshness column is newer than the expected item's: most likely a newer change
    # whose event has not arrived yet, rather than drift (the verifier waits longer for it).
    target_ahead: bool = False


MATCH: Final = Match()


def same(a: Value, b: Value) -> bool:
    """Equality that also tells types apart: Python says True == Decimal(1), DynamoDB does not."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(v, b[k]) for k, v in a.items())
    return a == b


def _same_or_false(a: Value, b: Value) -> bool:
    try:
        return same(a, b)
    except ArithmeticError:
        return False


def display(value: Value) -> str:
    """Short, unambiguous text of a value for reports: strings are quoted, numbers are not, and
    characters that print as nothing or as something else (controls, zero-width and format
    characters, combining marks, non-ASCII spaces) are escaped as code points."""
    text = _display(value)
    return text if len(text) <= _MAX_DISPLAY else text[: _MAX_DISPLAY - 3] + "..."


def display_pair(expected: Value, actual: Value) -> tuple[str, str]:
    """Expected and actual text of one differing attribute, made so that the difference shows.

    Two strings that differ first at a non-ASCII character (NFC vs NFD, a Cyrillic 'а' for a
    Latin 'a') show every non-ASCII character as a code point on both sides. Long values are not
    cut to the same prefix (which would look equal): each side shows its length, the offset of the
    first difference and the text around it."""
    if isinstance(expected, str) and isinstance(actual, str):
        return _string_pair(expected, actual)
    a, b = _display(expected), _display(actual)
    if len(a) <= _MAX_DISPLAY and len(b) <= _MAX_DISPLAY:
        return a, b
    at = _first_difference(a, b)
    return _window(a, at, _raw), _window(b, at, _raw)


def _string_pair(a: str, b: str) -> tuple[str, str]:
    at = _first_difference(a, b)
    ascii_only = not (a[at : at + 1].isascii() and b[at : at + 1].isascii())
    ea, eb = _quoted(a, ascii_only), _quoted(b, ascii_only)
    if len(ea) <= _MAX_DISPLAY and len(eb) <= _MAX_DISPLAY:
        return ea, eb

    def part(text: str) -> str:
        return '"' + _escaped(text, ascii_only) + '"'

    return _window(a, at, part), _window(b, at, part)


def _first_difference(a: str, b: str) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _raw(text: str) -> str:
    return text


def _window(text: str, at: int, render: Callable[[str], str]) -> str:
    start = max(0, at - _CONTEXT)
    end = min(len(text), at + _CONTEXT)
    shown = ("…" if start else "") + render(text[start:end]) + ("…" if end < len(text) else "")
    return f"{shown} ({len(text)} chars, first difference at offset {at})"


def _quoted(text: str, ascii_only: bool = False) -> str:
    return '"' + _escaped(text, ascii_only) + '"'


def _escaped(text: str, ascii_only: bool) -> str:
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return text  # the common case: nothing to escape
    return "".join(_escape_char(ch, ascii_only) for ch in text)


def _escape_char(ch: str, ascii_only: bool) -> str:
    short = _SHORT_ESCAPES.get(ch)
    if short is not None:
        return short
    code = ord(ch)
    if 0x20 <= code < 0x7F:
        return ch
    # Letters, digits, punctuation and symbols print as themselves; controls, format characters
    # (zero-width space, BOM), combining marks and separators other than ' ' do not.
    if code >= 0x80 and not ascii_only and unicodedata.category(ch)[0] in "LNPS":
        return ch
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _display(value: Value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _quoted(value)
    if isinstance(value, Decimal):
        # Plain digits as in the key documents and DynamoDB's own text (210, not 2.1E+2).
        return number_text(value) if value.is_finite() else str(value)
    if isinstance(value, bytes):
        return "b64:" + base64.b64encode(value).decode("ascii")
    if isinstance(value, list):
        return "[" + ", ".join(_display(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_display(v)}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, frozenset):
        return "<<" + ", ".join(sorted(_display(v) for v in value)) + ">>"
    return repr(value)


def _within(tolerance: Decimal, a: Value, b: Value) -> bool:
    if not (isinstance(a, Decimal) and isinstance(b, Decimal) and a.is_finite() and b.is_finite()):
        return False
    return abs(a - b) <= tolerance


def _is_stale(expected: object, actual: object) -> bool:
    if isinstance(expected, str) and isinstance(actual, str):
        return actual < expected  # canonical ISO timestamps of one precision sort as time does
    if isinstance(expected, Decimal) and isinstance(actual, Decimal):
        return expected.is_finite() and actual.is_finite() and actual < expected
    return False


def compare(
    mapper: ItemMapper,
    expected: Item | None,
    actual: Item | None,
    *,
    unavailable: Collection[str] = (),
    known: frozenset[str] | None = None,
) -> Match | Mismatch:
    """`expected` None means the row is deleted: the target should hold nothing. With `known`,
    expected attributes outside it are compared as plain values (module docstring)."""
    if expected is None:
        return MATCH if actual is None else Mismatch(MismatchKind.UNEXPECTED_IN_TARGET)
    if actual is None:
        return Mismatch(MismatchKind.MISSING_IN_TARGET)
    plan = mapper.plan
    diffs: list[AttributeDiff] = []
    expected_fresh: Value | _Nothing = _NOTHING
    actual_fresh: Value | _Nothing = _NOTHING
    # Only attributes whose raw values differ are normalized: normalizing is deterministic, so
    # equal raw values are equal normalized values, and most compares are matches.
    for name, rule in plan.rules.items():
        if unavailable and name in unavailable:
            continue
        ev = expected.get(name, _NOTHING)
        av = actual.get(name, _NOTHING)
        if ev is av:
            continue
        t = type(ev)
        try:
            if t is type(av) and (t is str or t is Decimal or t is bool) and ev == av:
                continue
        except ArithmeticError:
            pass  # a signaling NaN cannot even be compared: it is a difference
        en = _NOTHING if ev is _NOTHING else rule.normalize(ev)  # type: ignore[arg-type]
        an = _NOTHING if av is _NOTHING else rule.normalize(av)  # type: ignore[arg-type]
        if en is DROP:
            en = _NOTHING
        if an is DROP:
            an = _NOTHING
        if rule.is_freshness:
            expected_fresh, actual_fresh = en, an  # type: ignore[assignment]
        if en is an or (en is not _NOTHING and an is not _NOTHING and _same_or_false(en, an)):  # type: ignore[arg-type]
            continue
        if rule.tolerance is not None and _within(rule.tolerance, ev, av):  # type: ignore[arg-type]
            continue  # raw values within the tolerance
        diffs.append(_diff(name, en, an, rule.redact))
    if not diffs:
        return MATCH if known is None else _unknown_attributes(expected, actual, known)
    kind = MismatchKind.VALUE_MISMATCH
    if _is_stale(expected_fresh, actual_fresh):
        kind = MismatchKind.STALE_IN_TARGET
    return Mismatch(kind, tuple(diffs), target_ahead=_is_stale(actual_fresh, expected_fresh))


def known_attributes(mapper: ItemMapper) -> frozenset[str]:
    """The attributes the mapping accounts for: compared by a rule, ignored, or shadow mode's version."""
    mapping = mapper.mapping
    return frozenset(mapper.plan.rules) | frozenset(mapping.ignore_attributes) | {mapping.version_attribute}


def _unknown_attributes(expected: Item, actual: Item, known: frozenset[str]) -> Match | Mismatch:
    if known.issuperset(expected):  # the common case, as one set operation in C
        return MATCH
    diffs = tuple(
        AttributeDiff(a, *display_pair(v, actual[a])) if a in actual else AttributeDiff(a, display(v), ABSENT)
        for a, v in expected.items()
        if a not in known and (a not in actual or not _same_or_false(v, actual[a]))
    )
    return Mismatch(MismatchKind.VALUE_MISMATCH, diffs) if diffs else MATCH


class _Nothing:
    pass


_NOTHING: Final = _Nothing()


def _diff(name: str, expected: object, actual: object, redact: bool) -> AttributeDiff:
    if redact:
        # Nothing of a redacted value is shown, not even its length or where it differs.
        return AttributeDiff(
            name, ABSENT if expected is _NOTHING else REDACTED, ABSENT if actual is _NOTHING else REDACTED
        )
    if expected is _NOTHING or actual is _NOTHING:
        return AttributeDiff(
            name,
            ABSENT if expected is _NOTHING else display(expected),  # type: ignore[arg-type]
            ABSENT if actual is _NOTHING else display(actual),  # type: ignore[arg-type]
        )
    shown_expected, shown_actual = display_pair(expected, actual)  # type: ignore[arg-type]
    return AttributeDiff(name, shown_expected, shown_actual)
