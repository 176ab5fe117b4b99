"""The `parity` command line. Exit codes (`parity.exit_codes`): 0 ok, 1 the check found a problem,
2 usage or configuration error, 3 a dependency unreachable / a run could not finish, 4 a local
environment problem (port in use, directory not writable). A failure a command does not handle is
one line from `_ParityGroup.invoke`; PARITY_DEBUG=1 adds the traceback."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer import _click as click  # typer vendors click: its exception classes are these
from typer.core import TyperGroup

from parity.core.errors import ConfigError


class _ParityGroup(TyperGroup):
    """The top-level seam: an exception a command did not handle becomes one line and its code.
    `parity --debug <command>` (or PARITY_DEBUG=1) prints the traceback as well."""

    def invoke(self, ctx: click.Context) -> object:
        from parity.logging import configure_cli_logging

        configure_cli_logging()  # log lines on stderr, never into a command's (JSON) stdout
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, click.ClickException):
            raise
        except Exception as exc:
            from parity.exit_codes import report

            code = report(exc, lambda line: typer.echo(line, err=True))
            raise typer.Exit(code) from None


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def _log_level(value: str) -> str:
    if value.lower() not in LOG_LEVELS:
        raise typer.BadParameter(f"{value!r} is not a log level; use one of {', '.join(LOG_LEVELS)}")
    return value.lower()


app = typer.Typer(
    cls=_ParityGroup,
    help="parity: continuous verification and CDC-driven sync of PostgreSQL -> DynamoDB migrations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


config_app = typer.Typer(help="Configuration files.", no_args_is_help=True)
app.add_typer(config_app, name="config")

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="parity YAML configuration file.")]


def _print_version(value: bool) -> None:
    if value:
        from parity.daemon.app import parity_version

        typer.echo(f"parity {parity_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="On an error, print the traceback as well "
                                        "(same as PARITY_DEBUG=1).")] = False,
) -> None:
    """parity: continuous verification and CDC-driven sync of PostgreSQL -> DynamoDB migrations."""
    if debug:
        from parity.exit_codes import DEBUG_ENV

        os.environ[DEBUG_ENV] = "1"


def config_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the configuration file, generated from the pydantic models
    the loader validates with, so the two cannot disagree on keys and types. (Checks that span
    fields, such as a key template naming a mapped column, are the loader's alone.)"""
    from parity.core.config import ParityConfig

    schema = ParityConfig.model_json_schema()
    # `column:` with nothing after it is YAML null, which the loader takes as the default rule.
    columns = schema["$defs"]["TableMapping"]["properties"]["columns"]
    columns["additionalProperties"] = {"anyOf": [columns["additionalProperties"], {"type": "null"}]}
    # `defaults` is merged under every table before validation: it takes any table key, and a key
    # it sets is no longer required in each table.
    table = schema["$defs"]["TableMapping"]
    schema["$defs"]["TableDefaults"] = {**{k: v for k, v in table.items() if k != "required"},
                                        "title": "TableDefaults"}
    schema["properties"]["defaults"] = {"$ref": "#/$defs/TableDefaults",
                                        "description": "applied under every table (a table's own value wins)"}
    required = table.pop("required", [])
    schema["allOf"] = [
        {"if": {"not": {"required": ["defaults"], "properties": {"defaults": {"required": [key]}}}},
         "then": {"properties": {"tables": {"items": {"required": [key]}}}}}
        for key in required
    ]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema,
            "title": "parity configuration"}


def _load(path: Path):  # type: ignore[no-untyped-def]
    from parity.config_loader import load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@config_app.command("check")
def config_check(
    files: Annotated[list[Path], typer.Argument(help="Configuration files to validate.")],
    live: Annotated[
        bool,
        typer.Option("--live", help="Also connect to Postgres (postgres.dsn) and check that every mapped "
                     "table and column exists."),
    ] = False,
) -> None:
    """Validate configuration files: one line per file, every error on a line of its own. An unset
    `${VAR}` is checked with a placeholder and noted, so a file checks without its environment (with
    --live it is an error: the database must be reached). Exit 2 if any file is invalid (with --live:
    also if a mapped table or column does not exist), 3 if Postgres cannot be reached."""
    from parity.config_loader import load_config

    failed = False
    unreachable = False
    for f in files:
        notes: list[str] | None = None if live else []
        try:
            cfg = load_config(f, notes=notes)
        except ConfigError as exc:
            for line in exc.lines:
                typer.echo(line, err=True)
            failed = True
            continue
        for note in notes or []:
            typer.echo(f"{f.name}: note: {note}")
        if live:
            errors, problem = _live_errors(cfg, f.name)
            if problem is not None:
                typer.echo(f"{f.name}: cannot check against the database: {problem}", err=True)
                unreachable = True
                continue
            if errors:
                for line in errors:
                    typer.echo(line, err=True)
                failed = True
                continue
        modes = ", ".join(f"{t.source}->{t.write_table} ({t.mode})" for t in cfg.tables)
        typer.echo(f"{f.name}: ok: {len(cfg.tables)} table(s): {modes}")
    if failed:
        raise typer.Exit(2)
    if unreachable:
        raise typer.Exit(3)


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of the configuration file, for editors (yaml-language-server) and CI
    validators. `${VAR}` references validate as strings; the loader resolves them."""
    import json

    typer.echo(json.dumps(config_json_schema(), indent=2))


def _live_errors(cfg, where: str) -> tuple[list[str], str | None]:  # type: ignore[no-untyped-def]
    """(errors, None), or ([], why the database could not be asked). Uses doctor's connection
    (read-only, timeouts) and column probe; the DSN and its password are never printed."""
    import psycopg

    from parity.doctor import _first_line, _pg_connect
    from parity.doctor.checks_postgres import live_column_errors

    try:
        with _pg_connect(cfg)() as conn:
            return live_column_errors(conn, cfg, where), None
    except psycopg.Error as exc:
        text = f"{type(exc).__name__}: {_first_line(exc)}"
        secret = cfg.postgres.dsn.get_secret_value()
        return [], text.replace(secret, "<postgres.dsn>") if secret else text


@app.command()
def run(
    config: ConfigOption,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error", callback=_log_level)] = "info",
) -> None:
    """Run the daemon: consume Debezium events, verify or shadow-apply them, serve metrics."""
    cfg = _load(config)
    from parity.aws_credentials import credentials_resolvable, missing_credentials_message

    # The daemon retries a failing DynamoDB for ever (an outage ends); missing credentials do not.
    if not credentials_resolvable():
        typer.echo(f"error: {missing_credentials_message(cfg.dynamodb.endpoint, cfg.dynamodb.region)}", err=True)
        raise typer.Exit(2)
    from parity.daemon.main import run_daemon

    sys.exit(run_daemon(cfg, log_level=log_level))


@app.command()
def status(
    config: ConfigOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Per-table verified / drift / pending counts from the daemon's state directory."""
    cfg = _load(config)
    from parity.daemon.status import print_status

    print_status(cfg, as_json=as_json)


@app.command()
def replay(
    config: ConfigOption,
    dlq: Annotated[bool, typer.Option("--dlq", help="Replay the dead letters (kafka.dead_letter_topic).")] = False,
    from_file: Annotated[Path | None, typer.Option("--from-file", help="Read the dead letters from this "
                                                   "JSON-lines file instead of the dead-letter topic.")] = None,
    again: Annotated[bool, typer.Option("--again", help="Replay dead letters replayed before too.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    timeout_s: Annotated[float, typer.Option("--timeout", help="Seconds a record may stay pending (its grace "
                                             "period not over yet) before it is reported unverified.")] = 120.0,
) -> None:
    """Re-read each dead-lettered record from Kafka (topic, partition, offset) and run it through
    decode, mapping and verify (or shadow) again, under the current configuration; print each
    record's new outcome. Exit 0 when every record is now fine, 1 otherwise (drift, still a dead
    letter, gone from Kafka), 3 when Kafka or DynamoDB cannot be reached. docs/debezium.md."""
    if not dlq:
        typer.echo("error: say what to replay: --dlq", err=True)
        raise typer.Exit(2)
    cfg = _load(config)
    from parity.daemon.replay_cli import run_replay

    raise typer.Exit(run_replay(cfg, from_file=from_file, again=again, as_json=as_json, timeout_s=timeout_s))


def _mount_subcommands() -> None:
    """Sub-commands living in their own modules; imported here, at start-up of the CLI only."""
    from parity import doctor
    from parity.reconcilers import cli as reconcile_cli

    reconcile_cli.register(app)
    doctor.register(app)
    # The container image leaves the local stack and the demo out (.dockerignore): mount them only
    # where they are installed. Any other import error still surfaces.
    try:
        from parity.devstack.cli import app as dev_app
    except ModuleNotFoundError as exc:
        if exc.name != "parity.devstack":
            raise
    else:
        app.add_typer(dev_app, name="dev")
    try:
        import parity.demo as demo
    except ModuleNotFoundError as exc:
        if exc.name != "parity.demo":
            raise
    else:
        demo.register(app)


_mount_subcommands()


def main() -> None:
    try:
        app()
    except Exception as exc:
        # Wherever botocore found no credentials, say how to provide them instead of a traceback.
        from parity.aws_credentials import find_no_credentials, generic_missing_credentials_message

        if find_no_credentials(exc) is None:
            raise
        typer.echo(f"error: {generic_missing_credentials_message()}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
