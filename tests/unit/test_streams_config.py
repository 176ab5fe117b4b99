"""The `streams:` block (reading DynamoDB Streams in the reverse direction): defaults, limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from parity.config_loader import parse_config
from parity.core.errors import ConfigError

pytestmark = pytest.mark.unit

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ENV = {"PARITY_PG_DSN": "postgresql://parity@localhost:5432/app", "PARITY_KAFKA_BOOTSTRAP": "localhost:19092"}


def _payments(**streams: Any) -> dict[str, Any]:
    data = yaml.safe_load((EXAMPLES / "payments.yaml").read_text())
    if streams:
        data["streams"] = streams
    return dict(data)


def test_defaults_without_a_streams_block() -> None:
    cfg = parse_config(_payments(), env=ENV).streams
    assert cfg.lease_table == "parity-stream-leases"
    assert cfg.lease_duration_s == 20 and cfg.start_position == "TRIM_HORIZON"
    assert cfg.owner_id is None and cfg.endpoint is None and cfg.describe_interval_s == 10


def test_a_streams_block_is_read() -> None:
    cfg = parse_config(_payments(lease_table=None, start_position="LATEST", owner_id="parity-0",
                                 lease_duration_s=12.5), env=ENV).streams
    assert cfg.lease_table is None and cfg.start_position == "LATEST"
    assert cfg.owner_id == "parity-0" and cfg.lease_duration_s == 12.5


@pytest.mark.parametrize(("streams", "path"), [
    ({"start_position": "AT_SEQUENCE_NUMBER"}, "streams.start_position"),
    ({"lease_duration_s": 1}, "streams.lease_duration_s"),
    ({"lease_tabel": "x"}, "streams.lease_tabel"),
    ({"owner_id": ""}, "streams.owner_id"),
])
def test_a_bad_streams_setting_names_its_path(streams: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(_payments(**streams), env=ENV)
    assert path in str(raised.value)
