"""Structured JSON logs and secret redaction."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from parity.logging import configure_logging, redact_dsn, redact_text, redact_value

pytestmark = pytest.mark.unit

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # AWS's documented example key


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("postgresql://parity:hunter2@db:5432/app", "postgresql://parity:***@db:5432/app"),
        ("postgres://u:p%40ss@h/db?sslmode=require", "postgres://u:***@h/db?sslmode=require"),
        ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),  # unescaped @ in the password
        ("postgresql://u@h/db", "postgresql://u@h/db"),  # no password: unchanged
        ("postgresql://h:5432/db", "postgresql://h:5432/db"),  # a port is not a password
        ("host=db user=u password=hunter2 dbname=app", "host=db user=u password=*** dbname=app"),
        ("host=db password='a b c' dbname=app", "host=db password=*** dbname=app"),
        ("host=db PASSWORD = x dbname=app", "host=db PASSWORD = *** dbname=app"),
        (
            "postgresql://h/db?user=u&password=pw&sslmode=require",
            "postgresql://h/db?user=u&password=***&sslmode=require",
        ),
    ],
)
def test_redact_dsn(dsn: str, expected: str) -> None:
    assert redact_dsn(dsn) == expected


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abc.DEF-123_xyz", "abc.DEF-123_xyz"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
        (f"aws_secret_access_key={AWS_SECRET}", AWS_SECRET),
        (f"credentials {AWS_SECRET} were rejected", AWS_SECRET),
        ("AWS_SESSION_TOKEN: FQoGZXIvYXdzEJr", "FQoGZXIvYXdzEJr"),
        ("key id AKIAIOSFODNN7EXAMPLE", "IOSFODNN7EXAMPLE"),
        ('{"token": "tok-123"}', "tok-123"),
    ],
)
def test_redact_text_masks_known_secret_shapes(text: str, secret: str) -> None:
    redacted = redact_text(text)
    assert secret not in redacted
    assert "***" in redacted


@pytest.mark.parametrize(
    "text",
    [
        "commit 3f786850e387550fdab836ed7e6dc881de23001b",  # 40 hex chars: not an AWS secret
        "BAN#42 SUB#7 drifted: value_mismatch",
        "https://example.invalid/path?x=1",
        "token bucket refilled",
    ],
)
def test_redact_text_leaves_ordinary_text_alone(text: str) -> None:
    assert redact_text(text) == text


def test_redact_value_by_field_name_and_recursively() -> None:
    doc: dict[str, Any] = {
        "password": "plain",
        "bearer_token": "abc",
        "aws_secret_access_key": "whatever-shape",
        "nested": {"dsn": "postgresql://u:pw@h/db", "items": ["Bearer zzz", 3, None]},
        "count": 5,
        "token_count": 7,  # a name that merely contains "token" is not a secret
    }
    out = redact_value(doc)
    assert out["password"] == "***"
    assert out["bearer_token"] == "***"
    assert out["aws_secret_access_key"] == "***"
    assert out["nested"] == {"dsn": "postgresql://u:***@h/db", "items": ["Bearer ***", 3, None]}
    assert out["count"] == 5
    assert out["token_count"] == 7


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    before_handlers, before_level = list(root.handlers), root.level
    yield stream
    for handler in list(root.handlers):
        if handler not in before_handlers:
            root.removeHandler(handler)
    root.setLevel(before_level)
    structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_lines_with_level_timestamp_and_fields(log_stream: io.StringIO) -> None:
    configure_logging("info", json=True, stream=log_stream)
    structlog.get_logger("parity.test").info("batch_verified", table="public.subscriber", events=42)
    [record] = lines(log_stream)
    assert record["event"] == "batch_verified"
    assert record["level"] == "info"
    assert record["table"] == "public.subscriber"
    assert record["events"] == 42
    assert record["timestamp"].endswith("Z")


def test_levels_below_the_configured_one_are_dropped(log_stream: io.StringIO) -> None:
    configure_logging("warning", stream=log_stream)
    log = structlog.get_logger("parity.test")
    log.info("quiet")
    log.warning("loud")
    assert [r["event"] for r in lines(log_stream)] == ["loud"]


def test_unknown_level_is_refused(log_stream: io.StringIO) -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("chatty", stream=log_stream)


def test_secrets_are_redacted_from_fields_messages_and_tracebacks(log_stream: io.StringIO) -> None:
    configure_logging("debug", stream=log_stream)
    log = structlog.get_logger("parity.test")
    log.info(
        "connecting",
        dsn="postgresql://parity:hunter2@db/app",
        password="hunter2",
        headers={"Authorization": "Bearer t0k"},
    )
    try:
        raise ConnectionError("could not connect to postgresql://parity:hunter2@db/app")
    except ConnectionError:
        log.exception("connect_failed")
    # A library logging through the standard library goes through the same redaction.
    logging.getLogger("psycopg").warning("connection failed: host=db password=hunter2")
    out = log_stream.getvalue()
    assert "hunter2" not in out
    assert "t0k" not in out
    records = lines(log_stream)
    assert records[0]["dsn"] == "postgresql://parity:***@db/app"
    assert "ConnectionError" in records[1]["exception"]
    assert records[2]["logger"] == "psycopg"
    assert records[2]["event"] == "connection failed: host=db password=***"


def test_console_format_when_json_is_off(log_stream: io.StringIO) -> None:
    configure_logging("info", json=False, stream=log_stream)
    structlog.get_logger("parity.test").info("hello", dsn="postgresql://u:pw@h/db")
    out = log_stream.getvalue()
    assert "hello" in out and "u:***@h" in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out.splitlines()[0])


def test_configuring_twice_does_not_duplicate_lines(log_stream: io.StringIO) -> None:
    configure_logging("info", stream=log_stream)
    configure_logging("info", stream=log_stream)
    structlog.get_logger("parity.test").info("once")
    assert len(lines(log_stream)) == 1


def test_the_console_format_shows_a_key_document_as_drift_jsonl_has_it() -> None:
    import io
    from decimal import Decimal

    from parity.core.keys import key_fragment

    buf = io.StringIO()
    configure_logging("info", json=False, stream=buf)
    structlog.get_logger("t").warning("drift", key=key_fragment({"id": Decimal("210")}))
    line = buf.getvalue()
    assert '{"id":210}' in line
    assert "Fragment" not in line
