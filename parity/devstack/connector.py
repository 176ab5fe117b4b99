"""The Debezium connector settings, read from ONE file shared with the docker-compose Kafka Connect
deployment (`debezium/connector-settings.json`), so both paths decode and name events alike."""

from __future__ import annotations

import json
from pathlib import Path

SETTINGS_FILE = Path(__file__).resolve().parents[2] / "debezium" / "connector-settings.json"

# Kafka Connect worker settings: they choose the converter, not the connector. The bridge reads
# them to serialise exactly as a Connect worker would; the engine must not see them as-is.
CONVERTER_KEYS = ("key.converter", "value.converter")


def load_settings(path: Path | None = None) -> dict[str, str]:
    raw = json.loads((path or SETTINGS_FILE).read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{path or SETTINGS_FILE}: expected a JSON object of Debezium properties")
    return {str(k): _text(v) for k, v in raw.items()}


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def schemas_enabled(settings: dict[str, str]) -> bool:
    """`schemas.enable` of the JSON converters (Kafka Connect's default: true). The embedded
    engine configures one converter setting for key and value, so the two must agree."""
    key = settings.get("key.converter.schemas.enable", "true").lower() == "true"
    value = settings.get("value.converter.schemas.enable", "true").lower() == "true"
    if key != value:
        raise ValueError("the bridge needs key.converter.schemas.enable == value.converter.schemas.enable")
    return value


def topic_prefix(settings: dict[str, str]) -> str:
    return settings.get("topic.prefix", "parity")


def topic_name(prefix: str, table: str) -> str:
    """Debezium's topic for a table: `<prefix>.<schema>.<table>` (schema defaults to public)."""
    schema, _, name = table.rpartition(".")
    return f"{prefix}.{schema or 'public'}.{name}"
