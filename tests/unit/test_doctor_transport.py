"""`parity doctor` warns on insecure transport, from the configuration alone, never showing the DSN."""

from __future__ import annotations

from typing import Any

import pytest

from parity.config_loader import parse_config
from parity.doctor.checks_transport import transport
from parity.doctor.report import Status

pytestmark = pytest.mark.unit

PASSWORD = "Pw-9s8d7f6g"


def _config(dsn: str, *, protocol: str | None = None, endpoint: str | None = None) -> Any:
    kafka: dict[str, Any] = {"bootstrap_servers": "b:9092", "topic_prefix": "cdc"}
    if protocol is not None:
        kafka["options"] = {"security.protocol": protocol}
    return parse_config(
        {
            "postgres": {"dsn": dsn},
            "kafka": kafka,
            "dynamodb": {"endpoint": endpoint},
            "tables": [{"source": "public.t", "primary_key": ["id"], "target": "T", "keys": {"PK": "{id}"},
                        "columns": {"id": {}}}],
        },
        env={},
    )


def _status(config: Any, system: str, env: dict[str, str] | None = None) -> tuple[Status, str]:
    [check] = [c for c in transport(config, env or {}) if c.system == system]
    assert check.name == "transport"
    assert PASSWORD not in check.reason + check.fix
    return check.status, check.reason


@pytest.mark.parametrize(
    ("dsn", "env", "expected"),
    [
        (f"host=db.example port=5432 user=u password={PASSWORD} sslmode=verify-full", {}, Status.OK),
        (f"postgresql://u:{PASSWORD}@db.example/app?sslmode=verify-ca", {}, Status.OK),
        (f"host=db.example user=u password={PASSWORD} sslmode=require", {}, Status.WARN),
        (f"host=db.example user=u password={PASSWORD} sslmode=disable", {}, Status.WARN),
        (f"postgresql://u:{PASSWORD}@db.example/app", {}, Status.WARN),  # libpq's default: prefer
        (f"postgresql://u:{PASSWORD}@db.example/app", {"PGSSLMODE": "verify-full"}, Status.OK),
        (f"host=db.example user=u password={PASSWORD} sslmode=allow", {"PGSSLMODE": "verify-full"}, Status.WARN),
        (f"host=/var/run/postgresql user=u password={PASSWORD}", {}, Status.OK),  # Unix socket
    ],
)
def test_postgres_sslmode_other_than_verify_warns(dsn: str, env: dict[str, str], expected: Status) -> None:
    status, reason = _status(_config(dsn), "postgres", env)
    assert status is expected, reason


@pytest.mark.parametrize(
    ("protocol", "expected"),
    [(None, Status.WARN), ("PLAINTEXT", Status.WARN), ("sasl_plaintext", Status.WARN),
     ("SSL", Status.OK), ("SASL_SSL", Status.OK)],
)
def test_kafka_plaintext_protocols_warn(protocol: str | None, expected: Status) -> None:
    status, reason = _status(_config("host=/tmp", protocol=protocol), "kafka")
    assert status is expected, reason


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [(None, Status.OK), ("https://dynamodb.eu-west-1.amazonaws.com", Status.OK),
     ("http://127.0.0.1:8000", Status.OK), ("http://localhost:8000", Status.OK), ("http://[::1]:8000", Status.OK),
     ("http://dynamodb:8000", Status.WARN), ("http://10.0.0.7:8000", Status.WARN)],
)
def test_dynamodb_plain_http_off_loopback_warns(endpoint: str | None, expected: Status) -> None:
    status, reason = _status(_config("host=/tmp", endpoint=endpoint), "dynamodb")
    assert status is expected, reason


def test_an_unparsable_dsn_never_reaches_the_doctor_and_is_not_echoed() -> None:
    # The configuration refuses it at load time (parity.adapters.clients.parse_dsn), so no check sees it.
    from parity.core.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        _config(f"host=db password={PASSWORD} 'unterminated")
    assert "not a valid connection string" in str(caught.value)
    assert PASSWORD not in str(caught.value)
