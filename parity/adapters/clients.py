"""Building real clients from configuration: the one place that does. Adapters receive them.

Postgres: the DSN is parsed once into a `PostgresTarget`, the connection string without its
password plus the password apart; repr() and str() of a target show user@host:port/db only.
`connect_postgres` maps every connection failure to `PostgresConnectionError`, one line in parity's
own words: libpq's messages can quote the connection string (a parse error quotes the offending
token, which may be a piece of the password), so a driver's text is never passed on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from parity.core.config import DynamoConfig, KafkaConfig, PostgresConfig, StreamsConfig
from parity.kafka_auth import client_options

INVALID_DSN = "not a valid connection string (value not shown)"


class PostgresConnectionError(psycopg.OperationalError):
    """Postgres could not be reached or refused the login. A psycopg error, so every existing
    `except psycopg.Error` handles it; its text names user, host, port and database, never more."""


def parse_dsn(text: str) -> dict[str, Any] | None:
    """The DSN's parameters, or None when it is not a valid connection string (the reason libpq
    gives is dropped: it quotes the offending token)."""
    try:
        parsed = conninfo_to_dict(text)
    except psycopg.Error:
        return None
    # An unescaped '@' in a URL password leaves the rest of the password in the host name, where
    # every connection error would show it.
    if "@" in str(parsed.get("host") or ""):
        return None
    return parsed


@dataclass(frozen=True, slots=True)
class PostgresTarget:
    """Where to connect (`conninfo`, without a password) and the password, kept apart."""

    conninfo: str
    password: str | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        p = conninfo_to_dict(self.conninfo)
        host = str(p.get("host") or p.get("hostaddr") or "localhost")
        return f"{p.get('user') or '(default user)'}@{host}:{p.get('port') or 5432}/{p.get('dbname') or '(default db)'}"

    def __str__(self) -> str:
        return self.where


# What a Postgres connection can be made from: the config, a parsed target, or a DSN (tests, demo).
PostgresSource = PostgresConfig | PostgresTarget | str


def postgres_target(source: PostgresSource) -> PostgresTarget:
    """A target from the config (its connect_timeout_s applies unless the DSN sets one) or a DSN."""
    if isinstance(source, PostgresTarget):
        return source
    dsn = source if isinstance(source, str) else source.dsn.get_secret_value()
    params = parse_dsn(dsn)
    if params is None:
        raise PostgresConnectionError(f"postgres.dsn: {INVALID_DSN}")
    password = params.pop("password", None)
    if isinstance(source, PostgresConfig) and "connect_timeout" not in params:
        params["connect_timeout"] = max(1, round(source.connect_timeout_s))
    return PostgresTarget(make_conninfo("", **params), None if password is None else str(password))


def with_statement_timeout(target: PostgresTarget, seconds: float) -> PostgresTarget:
    """The target with `statement_timeout` set for every session it opens (libpq `options`, so it
    holds from the first statement, inside snapshot transactions and in worker processes alike;
    each FETCH of a server-side cursor is a statement of its own). Options of the DSN are kept."""
    params = conninfo_to_dict(target.conninfo)
    ms = max(1, round(seconds * 1000))
    params["options"] = f"{params.get('options') or ''} -c statement_timeout={ms}".strip()
    return PostgresTarget(make_conninfo("", **params), target.password)


def connect_postgres(target: PostgresSource, **kwargs: Any) -> psycopg.Connection[Any]:
    """psycopg.connect with the password passed as its own parameter, and failures in one line."""
    t = postgres_target(target)
    if t.password is not None:
        kwargs["password"] = t.password
    from parity.waits import announced

    timeout = kwargs.get("connect_timeout") or conninfo_to_dict(t.conninfo).get("connect_timeout")
    try:
        with announced(f"Postgres {t.where} to answer",
                       gives_up_after=f"{timeout} s, postgres.connect_timeout_s" if timeout else ""):
            return psycopg.connect(t.conninfo, **kwargs)
    except psycopg.OperationalError as exc:
        reason = connection_failure(str(exc), conninfo_to_dict(t.conninfo))
        raise PostgresConnectionError(f"cannot connect to Postgres {t.where}: {reason}") from None


# libpq's connection failures, recognised by a phrase of their text and said again in parity's
# words (the server's FATAL messages are in English unless lc_messages says otherwise).
_FAILURES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("password authentication failed",), "password authentication failed for user {user}"),
    (("no password supplied", "fe_sendauth"), "the server asks for a password and none was given"),
    (("no pg_hba.conf entry",), "no pg_hba.conf entry allows this host, user, database and SSL mode"),
    (('fatal:  role "', "does not exist"), "role {user} does not exist"),
    (('fatal:  database "', "does not exist"), "database {dbname} does not exist"),
    (("connection refused",), "connection refused"),
    (("timeout expired",), "connection timed out"),
    (("could not translate host name",), "unknown host name"),
    (("name or service not known",), "unknown host name"),
    (("no route to host",), "no route to host"),
    (("network is unreachable",), "network is unreachable"),
    (("too many",), "the server has no free connection slots"),
    (("remaining connection slots",), "the server has no free connection slots"),
    (("starting up",), "the server is starting up"),
    (("shutting down",), "the server is shutting down"),
    (("permission denied",), "permission denied (the role needs CONNECT on the database)"),
    (("ssl",), "SSL negotiation failed (check sslmode, sslrootcert and the server certificate)"),
    (("certificate",), "SSL negotiation failed (check sslmode, sslrootcert and the server certificate)"),
    (("server closed the connection",), "the server closed the connection"),
    (("invalid port",), "invalid port"),
    (("invalid integer value",), "a numeric parameter of postgres.dsn is not a number"),
)


def connection_failure(message: str, params: dict[str, Any]) -> str:
    """The reason of a failed connection, from the driver's text, in words that cannot quote it."""
    text = message.lower()
    values = {"user": params.get("user") or "(default user)", "dbname": params.get("dbname") or "(default db)"}
    for phrases, reason in _FAILURES:
        if all(p in text for p in phrases):
            return reason.format(**values)
    return "connection failed (the driver's message is not shown: it can quote the connection string)"


def dynamodb_client(cfg: DynamoConfig) -> Any:
    import boto3
    from botocore.config import Config

    # parity retries throttling itself (with jitter, counted in metrics); botocore's own retries
    # would multiply the attempts and hide throttles from the metrics.
    botocfg = Config(
        region_name=cfg.region,
        retries={"max_attempts": 1, "mode": "standard"},
        max_pool_connections=cfg.max_pool_connections,
        connect_timeout=cfg.timeout_s,
        read_timeout=cfg.timeout_s,
        tcp_keepalive=True,
    )
    return boto3.session.Session().client("dynamodb", endpoint_url=cfg.endpoint or None, config=botocfg)


def dynamodb_streams_client(cfg: DynamoConfig, streams: StreamsConfig) -> Any:
    """A boto3 `dynamodbstreams` client with the DynamoDB client's settings (no botocore retries:
    DynamoStore retries). Its endpoint: `streams.endpoint`, else `dynamodb.endpoint` (DynamoDB
    Local serves both APIs on one port), else AWS's streams endpoint of the region."""
    import boto3
    from botocore.config import Config

    botocfg = Config(
        region_name=cfg.region,
        retries={"max_attempts": 1, "mode": "standard"},
        max_pool_connections=4,  # one GetRecords at a time per source
        connect_timeout=cfg.timeout_s,
        read_timeout=cfg.timeout_s,
        tcp_keepalive=True,
    )
    endpoint = streams.endpoint or cfg.endpoint or None
    return boto3.session.Session().client("dynamodbstreams", endpoint_url=endpoint, config=botocfg)


def kafka_producer(cfg: KafkaConfig) -> Any:
    from confluent_kafka import Producer

    from parity.adapters.kafka import KAFKA_TIMEOUTS
    from parity.logging import kafka_client_logger

    return Producer(
        {
            "logger": kafka_client_logger(),  # served by flush()/poll(): see parity.logging
            **KAFKA_TIMEOUTS,
            "bootstrap.servers": cfg.bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "partitioner": "murmur2_random",
            **client_options(cfg),
        }
    )
