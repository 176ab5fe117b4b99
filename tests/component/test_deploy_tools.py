"""The deployment files pass the real tools that consume them: docker-compose's static validation,
promtool and amtool, the connector registration against a Kafka Connect REST stand-in, and the
container healthcheck command against the daemon's real HTTP server."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.component

ROOT = Path(__file__).resolve().parents[2]
REGISTER = ROOT / "debezium" / "register_connector.py"


def _compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail("docker-compose is not installed: run `make prereqs` (Debian package docker-compose)")
    return subprocess.run(
        [exe, "-f", str(ROOT / "docker-compose.yml"), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})},
    )


def test_docker_compose_validates_the_file() -> None:
    result = _compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_docker_compose_resolves_parity_containers_to_non_root_and_read_only() -> None:
    """As docker-compose resolves the anchors: every service of the parity image keeps user,
    read_only and the /tmp tmpfs (a service that overrides the anchor would lose them)."""
    result = _compose("config")
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    built = {n: s for n, s in services.items() if str(s.get("image", "")).startswith("parity:")}
    assert {"parity-1", "parity-2", "workload", "connect-init", "dynamodb-init"} <= set(built)
    for name, service in built.items():
        assert service.get("read_only") is True, name
        assert str(service.get("user")) == "10001:10001", name
        assert "/tmp" in service.get("tmpfs", []), name


def test_credentials_come_from_the_env_file_named_at_run_time(tmp_path: Path) -> None:
    example = (ROOT / ".env.example").read_text()
    env_file = tmp_path / "prod.env"
    env_file.write_text(example.replace("POSTGRES_PASSWORD=demo-only-change-me", "POSTGRES_PASSWORD=s3cr3t-from-file"))
    result = _compose("config", env={"PARITY_ENV_FILE": str(env_file)})
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    for name in ("postgres", "connect", "parity-1", "parity-2", "workload"):
        assert services[name]["environment"]["POSTGRES_PASSWORD"] == "s3cr3t-from-file", name
    assert "s3cr3t-from-file" not in (ROOT / "docker-compose.yml").read_text()


def _tool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        pytest.skip(f"{name} is not installed (Debian packages prometheus / prometheus-alertmanager)")
    return exe


def test_promtool_accepts_the_compose_prometheus_config_with_the_alert_rules(tmp_path: Path) -> None:
    # Laid out as the container sees it: the rules next to the configuration.
    shutil.copy(ROOT / "compose" / "prometheus.yml", tmp_path / "prometheus.yml")
    shutil.copy(ROOT / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
    result = subprocess.run([_tool("promtool"), "check", "config", str(tmp_path / "prometheus.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"SUCCESS: \d+ rules found", result.stdout + result.stderr)


def test_amtool_accepts_the_alertmanager_config() -> None:
    result = subprocess.run([_tool("amtool"), "check-config", str(ROOT / "compose" / "alertmanager.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# --- connector registration against a Kafka Connect REST stand-in -----------------------------------


@dataclass
class FakeConnect:
    """Answers the three Connect REST calls the script makes; `task_state` is what status reports."""

    task_state: str = "RUNNING"
    configs: dict[str, dict[str, str]] = field(default_factory=dict)
    puts: int = 0
    url: str = ""


@pytest.fixture
def connect() -> Iterator[FakeConnect]:
    fake = FakeConnect()

    class Handler(BaseHTTPRequestHandler):
        def _send(self, code: int, body: Any) -> None:
            raw = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            parts = self.path.strip("/").split("/")
            if parts == ["connectors"]:
                self._send(200, sorted(fake.configs))
            elif len(parts) == 3 and parts[2] == "status" and parts[1] in fake.configs:
                task = {"id": 0, "state": fake.task_state, "worker_id": "connect:8083"}
                if fake.task_state == "FAILED":
                    task["trace"] = "org.postgresql.util.PSQLException: password authentication failed"
                self._send(200, {"name": parts[1], "connector": {"state": "RUNNING"}, "tasks": [task]})
            else:
                self._send(404, {"error_code": 404, "message": "not found"})

        def do_PUT(self) -> None:
            parts = self.path.strip("/").split("/")
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            created = parts[1] not in fake.configs
            fake.configs[parts[1]] = body
            fake.puts += 1
            self._send(201 if created else 200, {"name": parts[1], "config": body, "tasks": []})

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


def _register(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REGISTER), *args], capture_output=True, text=True, timeout=60)


def test_registration_puts_the_merged_config_and_waits_for_running(connect: FakeConnect) -> None:
    first = _register("--connect-url", connect.url, "--timeout", "20")
    assert first.returncode == 0, first.stderr
    assert "created" in first.stdout and "RUNNING" in first.stdout
    settings = json.loads((ROOT / "debezium" / "connector-settings.json").read_text())
    deployment = json.loads((ROOT / "debezium" / "connector.json").read_text())
    sent = connect.configs[deployment["name"]]
    for key, value in settings.items():
        assert sent[key] == (str(value).lower() if isinstance(value, bool) else str(value)), key
    for key, value in deployment["config"].items():
        assert sent[key] == value, key
    assert set(sent) == set(settings) | set(deployment["config"])
    again = _register("--connect-url", connect.url, "--timeout", "20")  # idempotent: an update
    assert again.returncode == 0 and "updated" in again.stdout
    assert connect.puts == 2 and len(connect.configs) == 1


def test_a_failed_task_fails_the_init_service_with_its_trace(connect: FakeConnect) -> None:
    connect.task_state = "FAILED"
    result = _register("--connect-url", connect.url, "--timeout", "20")
    assert result.returncode == 1
    assert "password authentication failed" in result.stderr


def test_inconsistent_connector_files_are_refused_before_any_request(tmp_path: Path, connect: FakeConnect) -> None:
    deployment = json.loads((ROOT / "debezium" / "connector.json").read_text())
    deployment["config"]["time.precision.mode"] = "connect"
    bad = tmp_path / "connector.json"
    bad.write_text(json.dumps(deployment))
    result = _register("--connect-url", connect.url, "--deployment", str(bad))
    assert result.returncode == 2 and "time.precision.mode" in result.stderr
    assert connect.puts == 0


def test_print_shows_the_merged_connector_for_an_existing_connect_cluster() -> None:
    result = _register("--print")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["name"] and doc["config"]["connector.class"].endswith("PostgresConnector")


# --- the container healthcheck against the daemon's HTTP server --------------------------------------


def _dockerfile_healthcheck() -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    line = next(ln for ln in text.splitlines() if ln.startswith("HEALTHCHECK"))
    return list(json.loads(line[line.index("CMD") + 3:].strip()))


def test_the_image_healthcheck_passes_on_a_live_daemon_and_fails_without_one() -> None:
    from prometheus_client import CollectorRegistry

    from parity.core.config import HttpConfig
    from parity.metrics.server import MetricsServer

    command = _dockerfile_healthcheck()
    assert command[0] == "python"
    command[0] = sys.executable
    server = MetricsServer(CollectorRegistry(), HttpConfig(host="127.0.0.1", port=0)).start()
    port = server.port
    try:
        ok = subprocess.run(command, env={**os.environ, "PARITY_HTTP_PORT": str(port)},
                            capture_output=True, timeout=30)
        assert ok.returncode == 0, ok.stderr
    finally:
        server.stop()
    down = subprocess.run(command, env={**os.environ, "PARITY_HTTP_PORT": str(port)},
                          capture_output=True, timeout=30)
    assert down.returncode != 0
