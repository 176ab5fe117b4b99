"""Small builders shared by the unit tests: a table mapping, its mapper, a whole config."""

from __future__ import annotations

from typing import Any

from parity.config_loader import parse_config
from parity.core.config import ParityConfig, TableMapping
from parity.core.mapping import ItemMapper


def table_spec(columns: dict[str, dict[str, Any]] | None = None, **overrides: Any) -> dict[str, Any]:
    """A table of public.t keyed by `id` (PK `T#{id}`), with the given extra column rules, as YAML holds it."""
    spec: dict[str, Any] = {
        "source": "public.t",
        "primary_key": ["id"],
        "target": "T",
        "keys": {"PK": "T#{id}"},
        "columns": {"id": {}, **(columns or {})},
    }
    spec.update(overrides)
    return spec


def table(columns: dict[str, dict[str, Any]] | None = None, **overrides: Any) -> TableMapping:
    return TableMapping.model_validate(table_spec(columns, **overrides))


def mapper(columns: dict[str, dict[str, Any]] | None = None, **overrides: Any) -> ItemMapper:
    return ItemMapper(table(columns, **overrides))


def config_doc(*tables: dict[str, Any], **sections: Any) -> dict[str, Any]:
    """A config document as YAML would hold it, for `tables`; `sections` add or replace top-level
    sections. Its endpoints are ports nothing listens on: a unit test must not reach a service."""
    return {
        "postgres": {"dsn": "postgresql://u@127.0.0.1:1/db"},
        "kafka": {"bootstrap_servers": "127.0.0.1:1", "topic_prefix": "cdc"},
        "tables": list(tables),
        **sections,
    }


def config(*tables: dict[str, Any], source: str = "parity.yaml", **sections: Any) -> ParityConfig:
    """`config_doc`, parsed as `parity run` would, without the environment."""
    return parse_config(config_doc(*tables, **sections), source=source, env={})
