"""Mapping round trip on sample rows: every row must become a storable item, and no two rows the same key.

Pure: the rows come from the Postgres probe; `ItemMapper` is the same code the daemon runs, so a
row that fails here would fail (and be dead-lettered) in production.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from parity.core.config import TableMapping
from parity.core.errors import MappingError
from parity.core.keys import canonical_key
from parity.core.mapping import ItemMapper
from parity.core.values import MAX_ITEM_BYTES, Value, item_size
from parity.doctor.report import Check, fail, ok

SYSTEM = "mapping"
_EXAMPLES = 3


def row_key(m: TableMapping, row: Mapping[str, Any]) -> str:
    """The row's primary key as text for a report line; redacted columns stay hidden."""
    return ", ".join(f"{c}={'<redacted>' if m.rule(c).redact else row.get(c)!s}" for c in m.primary_key)


def round_trip(m: TableMapping, rows: Sequence[Mapping[str, Any]]) -> Check:
    subject = m.source
    if not rows:
        return ok(SYSTEM, "round_trip", "no rows sampled (an empty table, or --sample 0)", subject=subject)
    mapper = ItemMapper(m)
    errors: list[str] = []
    largest = 0
    for row in rows:
        try:
            item = mapper.item(row)
        except MappingError as exc:
            errors.append(f"({row_key(m, row)}): {exc}")
            continue
        largest = max(largest, item_size(item))
    if errors:
        more = f" (+{len(errors) - _EXAMPLES} more)" if len(errors) > _EXAMPLES else ""
        return fail(SYSTEM, "round_trip",
                    f"{len(errors)} of {len(rows)} sample rows cannot become items: "
                    + "; ".join(errors[:_EXAMPLES]) + more,
                    f"fix those rows, or the column rules (a `type:`, `exclude: true`; items must stay under "
                    f"{MAX_ITEM_BYTES} bytes, numbers within 38 digits, key strings non-empty)", subject=subject)
    return ok(SYSTEM, "round_trip", f"{len(rows)} sample rows map to items; largest {largest} bytes "
              f"(limit {MAX_ITEM_BYTES})", subject=subject)


def duplicate_keys(samples: Sequence[tuple[TableMapping, Sequence[Mapping[str, Any]]]]) -> list[Check]:
    """Two different rows whose templates give the same DynamoDB key would overwrite each other;
    across mappings that share a target table (single-table design) too."""
    by_target: dict[str, list[tuple[TableMapping, Sequence[Mapping[str, Any]]]]] = {}
    for m, rows in samples:
        by_target.setdefault(m.target, []).append((m, rows))
    checks = []
    for target, group in by_target.items():
        seen: dict[tuple[tuple[str, Value], ...], tuple[TableMapping, str]] = {}
        clashes: list[str] = []
        clashing: set[str] = set()
        total = 0
        for m, rows in group:
            mapper = ItemMapper(m)
            hidden = any(m.rule(c).redact for c in mapper.key_columns)
            for row in rows:
                try:
                    key = canonical_key(mapper.key(row))
                except MappingError:
                    continue  # reported by the NULL and round-trip checks
                total += 1
                this = (m, row_key(m, row))
                first = seen.setdefault(key, this)
                if first is not this:
                    clashes.append(f"{first[0].source} ({first[1]}) and {m.source} ({this[1]}) -> "
                                   + ", ".join(f"{a}={'<redacted>' if hidden else _shown(v)}" for a, v in key))
                    clashing.update({first[0].source, m.source})
        subject = target
        if clashes:
            more = f" (+{len(clashes) - _EXAMPLES} more)" if len(clashes) > _EXAMPLES else ""
            checks.append(fail(
                SYSTEM, "duplicate_keys",
                f"{len(clashes)} collision(s) among {total} sampled keys of {sorted(clashing)}: "
                + "; ".join(clashes[:_EXAMPLES]) + more + ": later rows would overwrite earlier items",
                "make the key templates unambiguous: a separator between fields ('{a}#{b}'), no lossy format "
                "specs, and a distinct literal prefix per table sharing a DynamoDB table", subject=subject))
        else:
            checks.append(ok(SYSTEM, "duplicate_keys", f"{total} sampled keys of "
                             f"{sorted(m.source for m, _ in group)} are distinct", subject=subject))
    return checks


def _shown(value: Value) -> str:
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."
