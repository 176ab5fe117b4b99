"""`parity doctor`: preflight checks against the real systems, each with the reason and the fix.

    parity doctor --config FILE [--json] [--sample N]

Exit 0 when nothing fails (warnings allowed), 1 when a check fails, 2 for a bad configuration.
Clients are built here and only here (`run_doctor`, `reachability`); the probes in `checks_*` get
them passed in. `reachability(config)` is the cheap subset the daemon's /readyz can reuse.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from parity.core.config import ParityConfig
from parity.core.errors import ConfigError
from parity.doctor.checks_postgres import DEFAULT_MAX_RETAINED_WAL, PostgresFindings
from parity.doctor.report import Check, Report, Status, fail

__all__ = ["Check", "Report", "Status", "diagnose", "reachability", "register", "run_doctor"]

_TIMEOUT_S = 10.0


def diagnose(config: ParityConfig, *, pg_connect: Callable[[], Any], dynamodb: Any, kafka_admin: Any,
             kafka_consumer: Any, sample: int = 100, max_retained_wal: int = DEFAULT_MAX_RETAINED_WAL,
             timeout_s: float = _TIMEOUT_S) -> Report:
    """Every check, in the order postgres, dynamodb, kafka, mapping; a system that cannot be reached
    gets one failing line instead of a cascade of consequential failures."""
    import psycopg
    from botocore.exceptions import BotoCoreError, ClientError

    from parity.doctor import checks_dynamodb, checks_kafka, checks_mapping, checks_postgres, checks_transport
    from parity.waits import announced

    report = Report()
    # From the configuration alone: warnings for clear-text transport, before any connection.
    report.extend(checks_transport.transport(config))
    pg = PostgresFindings()
    try:
        with pg_connect() as conn:
            report.checks.append(checks_postgres.reachable(conn))
            try:
                pg = checks_postgres.probe_postgres(conn, config, sample=sample, max_retained_wal=max_retained_wal)
            except psycopg.Error as exc:
                pg.checks.append(fail("postgres", "probe", f"stopped by {type(exc).__name__}: {_first_line(exc)}",
                                      "grant the configured user access to pg_catalog and the mapped tables"))
            report.extend(pg.checks)
    except psycopg.Error as exc:
        report.checks.append(fail("postgres", "reachable", f"{type(exc).__name__}: {_first_line(exc)}",
                                  "check postgres.dsn (host, port, database, user, sslmode) and pg_hba.conf"))

    try:
        with announced(f"DynamoDB {config.dynamodb.endpoint or config.dynamodb.region} to answer",
                       gives_up_after=f"{config.dynamodb.timeout_s:g} s, dynamodb.timeout_s"):
            report.checks.append(checks_dynamodb.reachable(dynamodb, config))
        report.extend(checks_dynamodb.probe_dynamodb(dynamodb, config, pg.tables))
    except (BotoCoreError, ClientError) as exc:
        from parity.aws_credentials import find_no_credentials, missing_credentials_message

        fix = (missing_credentials_message(config.dynamodb.endpoint, config.dynamodb.region)
               if find_no_credentials(exc) else
               "check dynamodb.endpoint / region and the AWS credentials in the environment")
        report.checks.append(fail("dynamodb", "reachable", f"{type(exc).__name__}: {_first_line(exc)}", fix))

    with announced(f"Kafka brokers {config.kafka.bootstrap_servers} to answer", gives_up_after=f"{timeout_s:g} s"):
        reach, md = checks_kafka.metadata(kafka_admin, timeout_s)
    report.checks.append(reach)
    if md is not None:
        report.extend(checks_kafka.probe_kafka(md, kafka_consumer, config, timeout_s))

    samples = [(m, pg.tables[m.source].sample) for m in config.tables
               if m.source in pg.tables and pg.tables[m.source].exists]
    report.extend(checks_mapping.round_trip(m, rows) for m, rows in samples)
    report.extend(checks_mapping.duplicate_keys(samples))
    return report


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- clients: built here only -------------------------------------------------------------------------


def _pg_connect(config: ParityConfig, timeout_s: float | None = None, *, session: bool = True) -> Any:
    from parity.adapters.clients import connect_postgres

    def connect() -> Any:
        # The password goes apart from the DSN, and a failure is parity's one line, never libpq's.
        conn = connect_postgres(config.postgres, autocommit=True,
                                connect_timeout=max(1, round(timeout_s or config.postgres.connect_timeout_s)),
                                application_name="parity-doctor")
        if session:
            # The doctor only reads; a statement timeout bounds the NULL counts on a big table.
            conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            conn.execute("SET statement_timeout = '60s'")
        return conn

    return connect


def _kafka_conf(config: ParityConfig) -> dict[str, Any]:
    from parity.kafka_auth import client_options

    return {"bootstrap.servers": config.kafka.bootstrap_servers, "log_level": 0, **client_options(config.kafka)}


@contextmanager
def _kafka_clients(config: ParityConfig) -> Iterator[tuple[Any, Any]]:
    from confluent_kafka import Consumer
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(_kafka_conf(config))
    consumer = Consumer({**_kafka_conf(config), "group.id": config.kafka.group_id, "enable.auto.commit": False})
    try:
        yield admin, consumer
    finally:
        consumer.close()


def run_doctor(config: ParityConfig, *, sample: int = 100, max_retained_wal: int = DEFAULT_MAX_RETAINED_WAL,
               timeout_s: float = _TIMEOUT_S) -> Report:
    from parity.adapters.clients import dynamodb_client

    with _kafka_clients(config) as (admin, consumer):
        return diagnose(config, pg_connect=_pg_connect(config), dynamodb=dynamodb_client(config.dynamodb),
                        kafka_admin=admin, kafka_consumer=consumer, sample=sample,
                        max_retained_wal=max_retained_wal, timeout_s=timeout_s)


def reachability(config: ParityConfig, timeout_s: float = 3.0) -> list[tuple[str, bool, str]]:
    """(system, reachable, detail) for postgres, dynamodb and kafka, with short timeouts: for /readyz."""
    import psycopg
    from botocore.exceptions import BotoCoreError, ClientError
    from confluent_kafka.admin import AdminClient

    from parity.adapters.clients import dynamodb_client
    from parity.doctor import checks_dynamodb, checks_kafka

    out: list[tuple[str, bool, str]] = []
    try:
        with _pg_connect(config, timeout_s, session=False)() as conn:
            conn.execute("SELECT 1")
        out.append(("postgres", True, ""))
    except psycopg.Error as exc:
        out.append(("postgres", False, f"{type(exc).__name__}: {_first_line(exc)}"))
    try:
        quick = config.dynamodb.model_copy(update={"timeout_s": timeout_s})
        check = checks_dynamodb.reachable(dynamodb_client(quick), config)
        out.append(("dynamodb", True, check.reason))
    except (BotoCoreError, ClientError) as exc:
        out.append(("dynamodb", False, f"{type(exc).__name__}: {_first_line(exc)}"))
    check, _md = checks_kafka.metadata(AdminClient(_kafka_conf(config)), timeout_s)
    out.append(("kafka", check.status is Status.OK, check.reason))
    return out


# --- the command --------------------------------------------------------------------------------------------

_STYLE = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "bold red"}


def render(report: Report, *, as_json: bool, colour: bool) -> str | None:
    """The JSON or plain text; with colour, prints through rich itself and returns None."""
    if as_json:
        return json.dumps(report.to_dict(), indent=2, default=str)
    if not colour:
        return report.to_text()
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    for system, checks in report.by_system():
        console.print(f"[bold]{system}[/bold]")
        for c in checks:
            where = f" [dim]\\[{escape(c.subject)}][/dim]" if c.subject else ""
            fix = f"\n       [cyan]fix:[/cyan] {escape(c.fix)}" if c.fix and c.status is not Status.OK else ""
            console.print(f"  [{_STYLE[c.status]}]{c.status.value:<4}[/] {c.name}{where}: {escape(c.reason)}{fix}")
    console.print(report.summary())
    return None


def register(app: typer.Typer) -> None:
    @app.command("doctor")
    def doctor(
        config: Annotated[Path, typer.Option("--config", "-c", help="parity YAML configuration file.")],
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
        sample: Annotated[int, typer.Option("--sample", min=0, help="Rows per table for the mapping round trip "
                                                                  "and the duplicate-key check.")] = 100,
        max_retained_wal_mb: Annotated[int, typer.Option(help="Warn when a replication slot retains more WAL.")]
        = DEFAULT_MAX_RETAINED_WAL >> 20,
    ) -> None:
        """Preflight checks of Postgres, DynamoDB, Kafka and the mapping: ok / warn / fail, each with the fix.
        Exit 0 when nothing fails, 1 when something fails, 2 for a bad configuration."""
        from parity.config_loader import load_config

        try:
            cfg = load_config(config)
        except ConfigError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        report = run_doctor(cfg, sample=sample, max_retained_wal=max_retained_wal_mb << 20)
        text = render(report, as_json=as_json, colour=sys.stdout.isatty())
        if text is not None:
            typer.echo(text)
        raise typer.Exit(report.exit_code())
