"""Secrets in the configuration: DSNs validated at load time without echoing them, `${VAR}` inside a
DSN taken literally (a space or quote in a password does not break the DSN), secrets read from files,
Kafka secret options masked in every repr and log line, connection errors that never quote the DSN.
The real-stack side (a role with a hostile password, every output scanned) is tests/e2e/test_security.py."""

from __future__ import annotations

import io
import json
import urllib.parse
from pathlib import Path
from typing import Any

import psycopg
import pytest
import structlog

from parity.config_loader import load_config, parse_config
from parity.core.errors import ConfigError
from parity.devstack.process import free_port
from parity.logging import configure_logging, redact_text, redact_value

pytestmark = pytest.mark.unit

# Each run of letters and digits is distinctive, so a leak of any piece of it (a token a parser
# quoted) is found, not only of the whole.
HOSTILE = "Kx7Qm2 Rt5Wn8'Lp3Vz6\"Hj4Bc9%41Yd8Fs1#Gk5Nq3@Mw2Ep7=Tz9Ux4\\Sa6Dv1 Ünïcødé5Zq"


def pieces(secret: str) -> list[str]:
    """The secret and every piece of it between non-alphanumeric characters."""
    out, word = [secret], ""
    for ch in secret + " ":
        if ch.isalnum():
            word += ch
        else:
            if len(word) >= 5:
                out.append(word)
            word = ""
    return out


def leaked(text: str, secret: str) -> list[str]:
    return [p for p in pieces(secret) if p in text]


def libpq_quoted(value: str) -> str:
    """A key=value DSN value as libpq reads it: single quotes, backslash escapes (built here, not by
    the code under test)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def config(dsn: str, **kafka_options: str) -> dict[str, Any]:
    return {
        "postgres": {"dsn": dsn},
        "kafka": {"bootstrap_servers": "127.0.0.1:1", "topic_prefix": "cdc", "options": kafka_options},
        "tables": [{"source": "public.t", "primary_key": ["id"], "target": "T", "keys": {"PK": "{id}"},
                    "columns": {"id": {}}}],
    }


def password_of(dsn: str) -> str | None:
    return psycopg.conninfo.conninfo_to_dict(dsn).get("password")  # type: ignore[return-value]


# ----- malformed DSNs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dsn",
    [
        "host=db port=5432 user=app password=Kx7Qm2 Rt5Wn8Lp3",  # key=value, unquoted space
        "postgresql://app:Kx7Qm2 Rt5Wn8Lp3@db:5432/app",  # URL, space
        "postgresql://app:Kx7Qm2%zzRt5Wn8Lp3@db:5432/app",  # URL, bad percent escape
        'host=db user=app password="Kx7Qm2 Rt5Wn8Lp3"',  # a double quote, as a shell user writes it
        "host=db user=app password='Kx7Qm2Rt5Wn8Lp3",  # an unterminated quote
        "postgresql://app:Kx7Qm2@Rt5Wn8Lp3@db:5432/app",  # an unescaped '@': the rest would be the host
    ],
)
def test_a_malformed_dsn_is_a_config_error_that_does_not_show_it(dsn: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(config(dsn), source="parity.yaml", env={})
    assert str(err.value) == "parity.yaml: postgres.dsn: not a valid connection string (value not shown)"
    assert leaked(repr(err.value) + str(err.value.__cause__) + str(err.value.__context__), "Kx7Qm2 Rt5Wn8Lp3") == []


def test_a_malformed_dsn_from_the_environment_is_refused_too() -> None:
    with pytest.raises(ConfigError, match=r"postgres\.dsn: not a valid connection string \(value not shown\)$"):
        parse_config(config("${PARITY_PG_DSN}"), env={"PARITY_PG_DSN": "postgresql://u:Kx7Qm2 Rt5Wn8@h/db"})


# ----- ${VAR} inside a DSN -----------------------------------------------------------------------------------


def test_an_interpolated_password_is_taken_literally_in_a_key_value_dsn() -> None:
    cfg = parse_config(config("host=db port=5432 dbname=app user=parity password=${PW} sslmode=${MODE:-disable}"),
                       env={"PW": HOSTILE})
    parsed = psycopg.conninfo.conninfo_to_dict(cfg.postgres.dsn.get_secret_value())
    assert parsed == {"host": "db", "port": "5432", "dbname": "app", "user": "parity", "password": HOSTILE,
                      "sslmode": "disable"}


def test_an_interpolated_password_is_taken_literally_in_a_url_dsn() -> None:
    # Not percent-decoded: the variable holds the password itself, as a Kubernetes secret does.
    cfg = parse_config(config("postgresql://parity:${PW}@db:5432/app?sslmode=require"), env={"PW": HOSTILE})
    parsed = psycopg.conninfo.conninfo_to_dict(cfg.postgres.dsn.get_secret_value())
    assert parsed == {"host": "db", "port": "5432", "dbname": "app", "user": "parity", "password": HOSTILE,
                      "sslmode": "require"}


def test_a_whole_dsn_from_one_variable_is_used_as_written() -> None:
    dsn = f"host=db dbname=app user=parity password={libpq_quoted(HOSTILE)}"
    cfg = parse_config(config("${PARITY_PG_DSN}"), env={"PARITY_PG_DSN": dsn})
    assert cfg.postgres.dsn.get_secret_value() == dsn
    assert password_of(cfg.postgres.dsn.get_secret_value()) == HOSTILE


def test_variables_that_make_up_the_dsn_structure_still_work() -> None:
    cfg = parse_config(config("host=${HOST} ${EXTRA}"), env={"HOST": "db", "EXTRA": "sslmode=require"})
    assert psycopg.conninfo.conninfo_to_dict(cfg.postgres.dsn.get_secret_value()) == {
        "host": "db", "sslmode": "require"}


def test_a_missing_variable_in_the_dsn_names_it() -> None:
    with pytest.raises(ConfigError, match=r"postgres\.dsn: environment variable PW is not set"):
        parse_config(config("host=db password=${PW}"), env={})


# ----- secrets from files ------------------------------------------------------------------------------------


def test_a_secret_from_a_file_in_the_dsn(tmp_path: Path) -> None:
    secret = tmp_path / "pg-password"
    secret.write_text(HOSTILE + "\n", encoding="utf-8")  # `echo ... > file` and Docker secrets end in a newline
    cfg = parse_config(config(f"host=db user=parity password=${{file:{secret}}}"), env={})
    assert password_of(cfg.postgres.dsn.get_secret_value()) == HOSTILE


def test_a_secret_from_a_file_anywhere_in_the_config(tmp_path: Path) -> None:
    secret = tmp_path / "sasl"
    secret.write_bytes(HOSTILE.encode() + b"\r\n")
    cfg = parse_config(config("host=db", **{"sasl.password": f"${{file:{secret}}}"}), env={})
    assert cfg.kafka.options["sasl.password"] == HOSTILE


def test_a_name_file_variable_stands_in_for_an_unset_variable(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text(HOSTILE, encoding="utf-8")
    cfg = parse_config(config("host=db password=${PG_PASSWORD}"), env={"PG_PASSWORD_FILE": str(secret)})
    assert password_of(cfg.postgres.dsn.get_secret_value()) == HOSTILE
    with pytest.raises(ConfigError, match=r"postgres\.dsn: both PG_PASSWORD and PG_PASSWORD_FILE are set"):
        parse_config(config("host=db password=${PG_PASSWORD}"),
                     env={"PG_PASSWORD_FILE": str(secret), "PG_PASSWORD": "x"})


def test_an_unreadable_secret_file_is_an_error_naming_the_path_only(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(config(f"host=db password=${{file:{tmp_path / 'absent'}}}"), env={})
    assert str(err.value).startswith(f"<config>: postgres.dsn: cannot read secret file {tmp_path / 'absent'}")
    not_text = tmp_path / "binary"
    not_text.write_bytes(b"\xff\xfe" + HOSTILE.encode())
    with pytest.raises(ConfigError) as err:
        parse_config(config(f"host=db password=${{file:{not_text}}}"), env={})
    assert "not UTF-8" in str(err.value) and leaked(str(err.value), HOSTILE) == []


def test_a_secret_file_through_load_config(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("Rt5Wn8Lp3\n", encoding="utf-8")
    path = tmp_path / "parity.yaml"
    path.write_text(json.dumps(config("postgresql://parity:${file:" + str(secret) + "}@db/app")))
    assert password_of(load_config(path, env={}).postgres.dsn.get_secret_value()) == "Rt5Wn8Lp3"


# ----- Kafka secret options ----------------------------------------------------------------------------------

KAFKA_SECRETS = {
    "sasl.password": "SaslPwZ7x9Q",
    "ssl.key.password": "SslKeyPwR4t6Y",
    "sasl.oauthbearer.client.secret": "OauthSecretU8i0P",
    "ssl.keystore.password": "KeystorePwA1s2D",
    "ssl.key.pem": "-----BEGIN PRIVATE KEY-----PemBodyF3g4H",
}


def test_kafka_secret_options_are_never_in_a_repr() -> None:
    cfg = parse_config(config("host=db", **KAFKA_SECRETS, **{"sasl.username": "parity"}), env={})
    for text in (repr(cfg), str(cfg), repr(cfg.kafka), str(cfg.kafka)):
        assert [v for v in KAFKA_SECRETS.values() if v in text] == [], text
        assert "parity" in text or "sasl.username" in text  # the rest is still shown
    assert dict(cfg.kafka.options) == {**KAFKA_SECRETS, "sasl.username": "parity"}  # the clients get them


def test_kafka_secret_options_are_masked_in_log_lines() -> None:
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    structlog.get_logger("parity.test").info("kafka client", options=dict(KAFKA_SECRETS), **KAFKA_SECRETS)
    out = stream.getvalue()
    assert [v for v in KAFKA_SECRETS.values() if v in out] == [], out
    text = " ".join(f"{k}={v}" for k, v in KAFKA_SECRETS.items() if "pem" not in k)
    masked = redact_text(text)
    assert [v for v in KAFKA_SECRETS.values() if v in masked] == [], masked
    assert redact_value({"ssl.key.pem": KAFKA_SECRETS["ssl.key.pem"]}) == {"ssl.key.pem": "***"}


# ----- connection errors ---------------------------------------------------------------------------------------


def test_a_connection_error_is_one_line_that_never_quotes_the_dsn() -> None:
    from parity.adapters.clients import PostgresConnectionError, connect_postgres

    port = free_port()
    dsn = f"host=127.0.0.1 port={port} dbname=app user=parity connect_timeout=2 password={libpq_quoted(HOSTILE)}"
    with pytest.raises(psycopg.OperationalError) as err:
        connect_postgres(dsn)
    assert isinstance(err.value, PostgresConnectionError)
    text = str(err.value)
    assert "\n" not in text and leaked(text + repr(err.value), HOSTILE) == []
    assert f"127.0.0.1:{port}" in text and "parity" in text and "connection refused" in text, text
    assert err.value.__cause__ is None and err.value.__suppress_context__  # the driver's text is not chained


def test_a_malformed_dsn_given_to_connect_is_not_echoed() -> None:
    from parity.adapters.clients import PostgresConnectionError, connect_postgres

    with pytest.raises(PostgresConnectionError) as err:
        connect_postgres("host=db password=Kx7Qm2 Rt5Wn8Lp3")
    assert str(err.value) == "postgres.dsn: not a valid connection string (value not shown)"


def test_the_password_is_kept_apart_from_the_connection_string() -> None:
    from parity.adapters.clients import postgres_target

    target = postgres_target(f"postgresql://parity:{urllib.parse.quote(HOSTILE, safe='')}@db:5/app")
    assert target.password == HOSTILE
    assert "password" not in target.conninfo and leaked(target.conninfo + repr(target) + str(target), HOSTILE) == []
    assert target.where == "parity@db:5/app"


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ('connection failed: connection to server at "127.0.0.1", port 5432 failed: FATAL:  password authentication '
         'failed for user "parity"', "password authentication failed for user parity"),
        ('connection to server at "db" (10.0.0.5), port 5432 failed: FATAL:  database "app" does not exist',
         "database app does not exist"),
        ('connection to server at "db", port 5432 failed: FATAL:  role "parity" does not exist',
         "role parity does not exist"),
        ("connection to server at \"db\", port 5432 failed: fe_sendauth: no password supplied",
         "the server asks for a password and none was given"),
        ("connection timeout expired", "connection timed out"),
        ('could not translate host name "db" to address: Name or service not known', "unknown host name"),
        # Unrecognised: nothing of the driver's text, which here quotes a DSN token.
        ('invalid connection option "Kx7Qm2 Rt5Wn8Lp3"',
         "connection failed (the driver's message is not shown: it can quote the connection string)"),
    ],
)
def test_connection_failures_are_said_in_parity_words(message: str, reason: str) -> None:
    from parity.adapters.clients import connection_failure

    assert connection_failure(message, {"user": "parity", "dbname": "app"}) == reason
