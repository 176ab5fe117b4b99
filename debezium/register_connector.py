#!/usr/bin/env python3
"""Register (or update) the Debezium connector with a Kafka Connect worker through its REST API.

The connector's configuration is assembled from two files, so that the Kafka Connect deployment
and the local Debezium bridge (`parity.devstack`) decode and name events identically:

- `connector-settings.json`: the settings both paths share (converters and `schemas.enable`,
  decimal and time precision modes, tombstones, topic prefix, plugin). ONE source of truth.
- `connector.json`: `{"name": ..., "config": {...}}` with deployment-only keys (hosts, database,
  slot, table list, topic creation). Secrets are Kafka Connect config-provider placeholders such
  as `${env:POSTGRES_PASSWORD}`, resolved inside the Connect worker, so they never pass through
  this script nor show up in `GET /connectors/<name>/config`.

A deployment key that repeats a shared key with a different value is an error, not an override:
that is exactly the divergence this split exists to prevent.

    python debezium/register_connector.py --connect-url http://connect:8083      # PUT + wait RUNNING
    python debezium/register_connector.py --print                                # merged JSON only

Standard library only: it runs in the parity image or any stock Python image. Exit codes: 0 the
connector and its tasks are RUNNING, 1 registration or start failed, 2 the files are inconsistent.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SETTINGS_FILE = HERE / "connector-settings.json"
DEPLOYMENT_FILE = HERE / "connector.json"


class ConnectorConfigError(ValueError):
    """The two connector files do not combine into one consistent configuration."""


def _text(value: object) -> str:
    # Kafka Connect configs are string maps; JSON booleans and numbers become their text.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _object(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ConnectorConfigError(f"{path.name}: expected a JSON object")
    return data


def merge(settings: Mapping[str, object], deployment: Mapping[str, object]) -> dict[str, str]:
    """Shared settings plus deployment keys; a conflicting repeat of a shared key is an error."""
    merged = {str(k): _text(v) for k, v in settings.items()}
    for key, value in deployment.items():
        text = _text(value)
        if key in merged and merged[key] != text:
            raise ConnectorConfigError(
                f"connector.json sets {key}={text!r} but connector-settings.json has {merged[key]!r}: "
                "change the shared file (both the bridge and Kafka Connect read it) instead"
            )
        merged[str(key)] = text
    return merged


def load(settings_file: Path = SETTINGS_FILE, deployment_file: Path = DEPLOYMENT_FILE) -> tuple[str, dict[str, str]]:
    """(connector name, full connector config) from the two files."""
    deployment = _object(deployment_file)
    name = deployment.get("name")
    config = deployment.get("config")
    if not isinstance(name, str) or not name or not isinstance(config, dict):
        raise ConnectorConfigError(f"{deployment_file.name}: expected {{\"name\": str, \"config\": {{...}}}}")
    return name, merge(_object(settings_file), config)


def _request(method: str, url: str, body: object | None = None, timeout: float = 10.0) -> tuple[int, Any]:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url}")
    data = None if body is None else json.dumps(body).encode("utf-8")
    headers = {"Content-Type": "application/json"}
    req = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 (scheme checked)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (scheme checked above)
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw) if raw else None
        except ValueError:
            return exc.code, raw.decode("utf-8", "replace")


def wait_for_connect(base: str, deadline: float, sleep_s: float = 2.0) -> None:
    while True:
        try:
            status, _ = _request("GET", f"{base}/connectors", timeout=5)
            if status == 200:
                return
        except (OSError, ValueError):
            pass  # not listening yet, or a proxy answering with HTML during start-up
        if time.monotonic() > deadline:
            raise TimeoutError(f"Kafka Connect at {base} did not answer GET /connectors in time")
        time.sleep(sleep_s)


def register(base: str, name: str, config: Mapping[str, str]) -> int:
    """PUT /connectors/<name>/config: creates or updates, so running it again is harmless."""
    quoted = urllib.parse.quote(name, safe="")
    status, body = _request("PUT", f"{base}/connectors/{quoted}/config", dict(config), timeout=30)
    if status not in (200, 201):
        raise RuntimeError(f"Kafka Connect refused connector {name}: HTTP {status}: {body}")
    return status


def wait_running(base: str, name: str, deadline: float, sleep_s: float = 2.0) -> dict[str, Any]:
    """Poll the connector's status until it and every task run; a FAILED task ends the wait."""
    quoted = urllib.parse.quote(name, safe="")
    last: Any = None
    while True:
        status, body = _request("GET", f"{base}/connectors/{quoted}/status", timeout=5)
        if status == 200 and isinstance(body, dict):
            last = body
            states = [body.get("connector", {}).get("state")] + [t.get("state") for t in body.get("tasks", [])]
            if "FAILED" in states:
                traces = [t.get("trace", "")[:2000] for t in body.get("tasks", []) if t.get("state") == "FAILED"]
                raise RuntimeError(f"connector {name} FAILED: {traces or body}")
            if body.get("tasks") and all(s == "RUNNING" for s in states):
                return body
        if time.monotonic() > deadline:
            raise TimeoutError(f"connector {name} not RUNNING in time; last status: {last}")
        time.sleep(sleep_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connect-url", default="http://connect:8083", help="Kafka Connect REST base URL")
    parser.add_argument("--settings", type=Path, default=SETTINGS_FILE)
    parser.add_argument("--deployment", type=Path, default=DEPLOYMENT_FILE)
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for Connect and RUNNING")
    parser.add_argument("--print", action="store_true", help="print the merged connector JSON and exit")
    args = parser.parse_args(argv)
    try:
        name, config = load(args.settings, args.deployment)
    except (ConnectorConfigError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.print:
        print(json.dumps({"name": name, "config": config}, indent=2, sort_keys=True))
        return 0
    base = args.connect_url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        print(f"error: --connect-url must be an http(s) URL, got {base!r}", file=sys.stderr)
        return 2
    deadline = time.monotonic() + args.timeout
    try:
        wait_for_connect(base, deadline)
        code = register(base, name, config)
        print(f"connector {name}: {'created' if code == 201 else 'updated'}", flush=True)
        status = wait_running(base, name, deadline)
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    workers = sorted({t.get("worker_id", "?") for t in status.get("tasks", [])})
    print(f"connector {name}: RUNNING with {len(status.get('tasks', []))} task(s) on {', '.join(workers)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
