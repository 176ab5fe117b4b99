"""Exit codes of every `parity` command, and the one place that turns a failure into one line.

| code | meaning |
|---|---|
| 0 | ok |
| 1 | the check found a problem: drift, something not compared, a failed doctor check, a failed repair write |
| 2 | usage or configuration error (bad option, invalid config file, missing credentials / region) |
| 3 | a dependency is unreachable or a run could not finish (Postgres, Kafka, DynamoDB, a timeout) |
| 4 | local environment problem (HTTP port in use, state or report directory not writable) |

An operational failure never exits 1: 1 is reserved for "the data has a problem". The CLI's group
(`parity.cli`) catches what a command raises and prints `error: <what failed>: <what to do>`;
`PARITY_DEBUG=1` adds the traceback.
"""

from __future__ import annotations

import errno
import os
import traceback
from typing import Any

from parity.core.errors import (
    BrokerUnavailable,
    ConfigError,
    DynamoUnavailable,
    LocalEnvironmentError,
    ParityError,
    StoreError,
    UnreachableError,
)

OK = 0
FOUND_PROBLEM = 1
USAGE = 2
UNREACHABLE = 3
LOCAL_ENVIRONMENT = 4

DEBUG_ENV = "PARITY_DEBUG"


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def classify(exc: BaseException) -> tuple[int, str]:
    """(exit code, one line) for a failure a command did not handle itself."""
    from parity.logging import redact_text

    code, line = _classify(exc)
    return code, redact_text(line)


def _classify(exc: BaseException) -> tuple[int, str]:
    if isinstance(exc, ConfigError):
        return USAGE, str(exc)
    if isinstance(exc, LocalEnvironmentError):
        return LOCAL_ENVIRONMENT, _first_line(exc)
    if isinstance(exc, StoreError):
        return LOCAL_ENVIRONMENT, (f"{_first_line(exc)}: check that daemon.state_dir exists or can be created, "
                                   "is writable by this user and has free space")
    if isinstance(exc, UnreachableError):
        return UNREACHABLE, _first_line(exc)
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        psycopg = None  # type: ignore[assignment]
    if psycopg is not None and isinstance(exc, psycopg.Error):
        from parity.adapters.clients import PostgresConnectionError

        if isinstance(exc, PostgresConnectionError):
            return UNREACHABLE, f"{_first_line(exc)}: check postgres.dsn and that the server is up"
        if isinstance(exc, psycopg.errors.QueryCanceled):
            return UNREACHABLE, ("Postgres query cancelled by statement_timeout: raise reconcile.statement_timeout_s "
                                 "or reconcile fewer rows per run (--table)")
        return UNREACHABLE, f"Postgres failed: {type(exc).__name__}: {_first_line(exc)}"
    aws = _botocore(exc)
    if aws is not None:
        return aws
    # confluent-kafka's KafkaException lives in module `cimpl`; the Kafka adapters raise it as BrokerUnavailable.
    if isinstance(exc, BrokerUnavailable) or type(exc).__module__.startswith(("confluent_kafka", "cimpl")):
        return UNREACHABLE, f"Kafka failed: {_first_line(exc)}: check kafka.bootstrap_servers and the brokers"
    if isinstance(exc, OSError):
        if exc.errno == errno.EADDRINUSE:
            return LOCAL_ENVIRONMENT, f"address already in use: {_first_line(exc)}"
        if exc.filename is not None or isinstance(exc, PermissionError) or exc.errno in (
                errno.EACCES, errno.EROFS, errno.ENOSPC, errno.ENOTDIR):
            # A file or directory of this machine (a report or state directory), not a dependency.
            where = f" {exc.filename}" if exc.filename else ""
            return LOCAL_ENVIRONMENT, (f"cannot use{where}: {exc.strerror or exc}: check the directory "
                                       "settings (daemon.state_dir, reconcile.report_dir) and free space")
    if isinstance(exc, ParityError):
        return UNREACHABLE, _first_line(exc)
    return UNREACHABLE, (f"unexpected {type(exc).__name__}: {_first_line(exc)} "
                         f"(set {DEBUG_ENV}=1 for the traceback)")


def _botocore(exc: BaseException) -> tuple[int, str] | None:
    try:
        from botocore import exceptions as bce
    except ImportError:  # pragma: no cover
        return None
    if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError):
        from parity.aws_credentials import generic_missing_credentials_message

        return USAGE, generic_missing_credentials_message()  # one wording, wherever it surfaces
    if isinstance(exc, bce.NoRegionError):
        return USAGE, "AWS region missing: set dynamodb.region"
    if isinstance(exc, bce.ConnectTimeoutError | bce.ReadTimeoutError):
        return UNREACHABLE, (f"DynamoDB timed out ({_first_line(exc)}): check dynamodb.endpoint / region, "
                             "or raise dynamodb.timeout_s")
    if isinstance(exc, bce.EndpointConnectionError):
        return UNREACHABLE, f"DynamoDB unreachable: {_first_line(exc)}: check dynamodb.endpoint / region"
    if isinstance(exc, bce.ClientError):
        err: Any = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        if code in ("UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException",
                    "AccessDeniedException"):
            return USAGE, f"DynamoDB refused the credentials ({code}): check the AWS credentials and their policy"
        return UNREACHABLE, f"DynamoDB failed: {_first_line(exc)}"
    if isinstance(exc, bce.BotoCoreError):
        return UNREACHABLE, f"DynamoDB failed: {_first_line(exc)}"
    if isinstance(exc, DynamoUnavailable):
        return UNREACHABLE, f"DynamoDB unreachable: {_first_line(exc)}"
    return None


def report(exc: BaseException, echo: Any) -> int:
    """Print the failure (one line; with PARITY_DEBUG the traceback first) and return its code."""
    code, line = classify(exc)
    if debug_enabled():
        echo("".join(traceback.format_exception(exc)).rstrip())
    echo(f"error: {line}")
    return code
