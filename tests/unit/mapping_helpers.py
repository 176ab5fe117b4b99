"""Small builders shared by the mapping, normalize, compare and digest unit tests."""

from __future__ import annotations

from typing import Any

from parity.core.config import TableMapping
from parity.core.mapping import ItemMapper


def table(columns: dict[str, dict[str, Any]] | None = None, **overrides: Any) -> TableMapping:
    """A one-table mapping keyed by `id` (PK `T#{id}`), with the given extra column rules."""
    spec: dict[str, Any] = {
        "source": "public.t",
        "primary_key": ["id"],
        "target": "T",
        "keys": {"PK": "T#{id}"},
        "columns": {"id": {}, **(columns or {})},
    }
    spec.update(overrides)
    return TableMapping.model_validate(spec)


def mapper(columns: dict[str, dict[str, Any]] | None = None, **overrides: Any) -> ItemMapper:
    return ItemMapper(table(columns, **overrides))
