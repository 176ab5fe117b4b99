"""`parity dev up | down | status`: the real local stack on loopback and free ports."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated

import typer

from parity.devstack.process import ServiceError
from parity.devstack.stack import OPTIONAL, Stack, default_state_dir

app = typer.Typer(help="Start, inspect and stop the local stack: PostgreSQL, Kafka (tansu), DynamoDB Local, "
                       "optionally the Debezium bridge, Prometheus and Alertmanager.",
                  no_args_is_help=True)

StateDir = Annotated[Path | None, typer.Option("--state-dir", help="state directory (default .parity/dev, "
                                                                 "or $PARITY_DEV_STATE)")]


def _stack(state_dir: Path | None) -> Stack:
    return Stack(state_dir or default_state_dir())


@app.command()
def up(
    state_dir: StateDir = None,
    with_: Annotated[list[str] | None,
                     typer.Option("--with", help=f"also start: {', '.join(OPTIONAL)}")] = None,
    metrics: Annotated[list[str] | None, typer.Option(help="host:port Prometheus scrapes")] = None,
    rules: Annotated[list[Path] | None, typer.Option(help="alert rule file for Prometheus")] = None,
    tables: Annotated[list[str] | None, typer.Option("--table", help="table the bridge captures")] = None,
    topic_prefix: Annotated[str | None,
                            typer.Option(help="Debezium topic.prefix (default: the shared settings)")] = None,
    persistent_kafka: Annotated[bool, typer.Option(help="s3-backed broker storage")] = False,
    timeout: Annotated[float | None,
                       typer.Option(min=1, help="hard cap in seconds on waiting for the bridge to stream; by "
                                    "default it is waited for as long as its snapshot progresses "
                                    "(and given up after 90 s without progress)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print endpoints as JSON")] = False,
) -> None:
    """Start whatever is not running yet (idempotent) and print the endpoints. A running bridge is
    restarted (offsets kept) when --table or --topic-prefix differ from what it runs with."""
    extras = set(with_ or [])
    unknown = extras - set(OPTIONAL)
    if unknown:
        raise typer.BadParameter(f"unknown component(s) {sorted(unknown)}; choose from {list(OPTIONAL)}")
    try:
        endpoints = _stack(state_dir).up(extras, persistent_kafka, metrics, rules, tables, topic_prefix,
                                         bridge_timeout=timeout)
    except ServiceError as e:
        typer.echo(f"parity dev up: {e}", err=True)
        raise typer.Exit(1) from e
    bridge_info = endpoints.get("bridge", {})
    if bridge_info.get("restarted_because"):
        typer.echo("parity dev up: the running bridge was restarted for the new settings, offsets kept: "
                   + "; ".join(bridge_info["restarted_because"]), err=True)
    if bridge_info.get("tables_added"):
        typer.echo(f"parity dev up: the bridge streams changes of {', '.join(bridge_info['tables_added'])} from "
                   "now on; rows already there are not snapshotted (the bridge's snapshot is done). For them "
                   "too, use a new --topic-prefix (its topics start with a snapshot of every table) or "
                   "`parity dev down` first", err=True)
    if as_json:
        typer.echo(json.dumps(endpoints, indent=2))
        return
    typer.echo(f"postgres     {endpoints['postgres']['dsn']}")
    typer.echo(f"kafka        {endpoints['kafka']['bootstrap']}")
    typer.echo(f"dynamodb     {endpoints['dynamodb']['endpoint']}")
    for name in ("prometheus", "alertmanager"):
        if name in endpoints:
            typer.echo(f"{name:<12} {endpoints[name]['url']}")
    if "bridge" in endpoints:
        bridge = endpoints["bridge"]
        typer.echo(f"bridge       pid {bridge['pid']} prefix {bridge['topic_prefix']}")
    typer.echo(f"state        {endpoints['state_dir']}")
    typer.echo(f"\n# for parity and the examples (DynamoDB Local needs some AWS credentials, any will do): "
               f'eval "$(parity dev env{_state_arg(state_dir)})"')
    for line in export_lines(endpoints["env"]):
        typer.echo(line)


def _state_arg(state_dir: Path | None) -> str:
    return f" --state-dir {shlex.quote(str(state_dir))}" if state_dir is not None else ""


def export_lines(env: dict[str, str]) -> list[str]:
    return [f"export {name}={shlex.quote(value)}" for name, value in env.items()]


@app.command("env")
def env_(state_dir: StateDir = None) -> None:
    """Print `export` lines for the running stack: eval "$(parity dev env)". Sets the DSN, bootstrap
    servers and endpoint the examples read, the bridge's topic prefix, and dummy AWS credentials
    (DynamoDB Local accepts any, but boto3 needs some). Exit 1 when the stack does not run."""
    stack = _stack(state_dir)
    env = stack.env()
    procs = stack.status()
    down = [name for name in ("postgres", "kafka", "dynamodb") if not procs.get(name, {}).get("running")]
    if not env or down:
        what = f"{', '.join(down)} not running" if env else "no local stack recorded"
        typer.echo(f"parity dev env: {what} in {stack.state_dir}; start it with `parity dev up"
                   f"{_state_arg(state_dir)}`", err=True)
        raise typer.Exit(1)
    for line in export_lines(env):
        typer.echo(line)


@app.command()
def status(state_dir: StateDir = None,
           as_json: Annotated[bool, typer.Option("--json", help="print as JSON")] = False) -> None:
    """Show each process of the stack and whether it runs; exit 1 if any recorded one is down."""
    stack = _stack(state_dir)
    procs = stack.status()
    if as_json:
        typer.echo(json.dumps({"processes": procs, "endpoints": stack.endpoints()}, indent=2))
    elif not procs:
        typer.echo("nothing running")
    for name, info in ({} if as_json else procs).items():
        typer.echo(f"{name:<22} pid {info['pid']:<8} {'running' if info['running'] else 'NOT RUNNING'}")
    if any(not p["running"] for p in procs.values()):
        raise typer.Exit(1)


@app.command()
def down(state_dir: StateDir = None) -> None:
    """Stop everything and drop the replication slots (idempotent)."""
    stopped = _stack(state_dir).down()
    typer.echo("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


if __name__ == "__main__":
    app()
