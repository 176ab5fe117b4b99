"""Mapped columns the source does not have: in one event, or in the table itself.

Two different things look alike once decoded, and only one of them is legitimate:
- the column is in the event with Debezium's TOAST placeholder (`UNAVAILABLE`): an unchanged
  out-of-line value, skipped by compare for that one event;
- the column is not in the event at all: Debezium's schema (or, without JSON schemas, the
  payload) has no such field, because the column was dropped or the mapping misspells it. Then
  the attribute can never be compared, for any event of the table, and saying `match` would be
  a lie. Those events are `not_compared` with the reason `column_missing`.

Debezium writes every column of the table into `after`, NULLs included, so a key missing from
the row is a column missing from the table as Debezium sees it. Only `after` (the row) is looked
at: deletes carry only the key or the old row, and with REPLICA IDENTITY DEFAULT updates have no
`before`, so neither says anything about the table's columns.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Final

from parity.core.config import TableMapping

COLUMN_MISSING: Final = "column_missing"  # the reason label of outcome `not_compared`


def compared_columns(mapping: TableMapping, index_columns: Iterable[str] = ()) -> tuple[str, ...]:
    """The source columns an event must carry for its item to be compared: every mapped column
    that is not excluded, and the columns of index (GSI) templates. Key-template columns are
    left to the key builder, which already refuses a row without them."""
    names = [c for c, rule in mapping.columns.items() if not rule.exclude]
    names += [c for c in index_columns if c not in names]
    return tuple(names)


def missing_columns(columns: tuple[str, ...], row: Mapping[str, Any]) -> tuple[str, ...]:
    """The `columns` not in `row` at all (a TOAST placeholder is *in* the row)."""
    return tuple(c for c in columns if c not in row)


def suggestion(name: str, existing: Iterable[str]) -> str | None:
    """The existing column `name` most likely meant (a typo), if one is close enough."""
    close = difflib.get_close_matches(name, list(existing), n=1, cutoff=0.6)
    return close[0] if close else None


def absent_column_errors(
    mapping: TableMapping, index: int, existing: Collection[str], *, where: str
) -> list[str]:
    """One message per column the mapping names that the table does not have, with the field's
    path in the configuration file (`where` is the file's name), e.g.
    `payments.yaml: tables[0].columns.amont: column does not exist in public.payments (did you
    mean 'amount'?)`. Excluded columns count too: a misspelt exclusion is still a wrong name."""
    errors = []
    for column in mapping.columns:
        if column in existing:
            continue
        hint = suggestion(column, [c for c in existing if c not in mapping.columns])
        near = f" (did you mean {hint!r}?)" if hint else ""
        errors.append(f"{where}: tables[{index}].columns.{column}: column does not exist in {mapping.source}{near}")
    return errors
