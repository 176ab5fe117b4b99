"""The mapping from a failure to its exit code and one line (parity.exit_codes)."""

from __future__ import annotations

import errno

import psycopg
import pytest
from botocore.exceptions import EndpointConnectionError, NoCredentialsError, NoRegionError, ReadTimeoutError

from parity.adapters.clients import PostgresConnectionError
from parity.core.errors import ConfigError, LocalEnvironmentError, StoreError
from parity.exit_codes import classify

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("exc", "code", "words"), [
    (ConfigError("empty", source="f.yaml", path="postgres.dsn"), 2, "f.yaml: postgres.dsn: empty"),
    (NoCredentialsError(), 2, "AWS credentials missing"),
    (NoRegionError(), 2, "dynamodb.region"),
    (PostgresConnectionError("cannot connect to Postgres u@h:5432/db: connection refused"), 3, "postgres.dsn"),
    (psycopg.errors.QueryCanceled("canceling statement due to statement timeout"), 3,
     "reconcile.statement_timeout_s"),
    (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), 3, "dynamodb.endpoint"),
    (ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), 3, "dynamodb.timeout_s"),
    (LocalEnvironmentError("daemon.http: cannot listen on 127.0.0.1:9108: in use"), 4, "daemon.http"),
    (StoreError("state store /x/state.sqlite: disk I/O error"), 4, "daemon.state_dir"),
    (OSError(errno.EADDRINUSE, "Address already in use"), 4, "in use"),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/r/reports"), 4, "/r/reports"),
    (RuntimeError("boom"), 3, "PARITY_DEBUG=1"),
])
def test_each_failure_has_its_code_and_one_line(exc: BaseException, code: int, words: str) -> None:
    got, line = classify(exc)
    assert got == code
    assert words in line and "\n" not in line


def test_the_line_never_shows_a_password() -> None:
    _code, line = classify(RuntimeError("postgresql://u:hunter2@h/db failed"))
    assert "hunter2" not in line


def test_kafka_failures_are_unreachable() -> None:
    from confluent_kafka import KafkaError, KafkaException

    code, line = classify(KafkaException(KafkaError(KafkaError._TRANSPORT)))
    assert code == 3 and "kafka.bootstrap_servers" in line
