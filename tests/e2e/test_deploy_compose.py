"""The whole docker-compose stack, where a Docker engine exists: the workload's injected drift must
reach Prometheus through Debezium, Kafka and both parity replicas. Skips at once elsewhere (no
engine on the development machines: see the team's STACK notes)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
UP_TIMEOUT_S = 900  # first run builds the image and pulls every pinned image
DRIFT_TIMEOUT_S = 300


def _no_engine() -> str | None:
    """Why the stack cannot run here, or None. Cheap checks first so a skip costs milliseconds."""
    docker = shutil.which("docker")
    if docker is None:
        return "no docker client"
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return "no Docker engine (no DOCKER_HOST and no /var/run/docker.sock)"
    try:
        info = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"],
                              capture_output=True, text=True, timeout=5)
    except subprocess.TimeoutExpired:
        return "docker info did not answer within 5 s"
    if info.returncode != 0:
        return f"docker info failed: {info.stderr.strip()[:200]}"
    return None


def _compose_command() -> list[str]:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, timeout=10).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy is None:
        pytest.skip("neither `docker compose` nor docker-compose is installed")
    return [legacy]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _query(base: str, promql: str) -> list[dict[str, object]]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 (loopback URL built here)
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    return list(body["data"]["result"])


@pytest.fixture(scope="module")
def stack() -> Iterator[str]:
    reason = _no_engine()
    if reason:
        pytest.skip(reason)
    compose = [*_compose_command(), "-f", str(ROOT / "docker-compose.yml"), "-p", f"parity-e2e-{uuid.uuid4().hex[:6]}"]
    prometheus_port = _free_port()
    env = {
        **os.environ,
        "PROMETHEUS_PORT": str(prometheus_port),
        "GRAFANA_PORT": str(_free_port()),
        "ALERTMANAGER_PORT": str(_free_port()),
        "WORKLOAD_RATE": "10",
        "WORKLOAD_DRIFT_RATE": "0.2",
    }
    try:
        subprocess.run([*compose, "up", "-d", "--build"], cwd=ROOT, env=env, check=True, timeout=UP_TIMEOUT_S)
        yield f"http://127.0.0.1:{prometheus_port}"
    finally:
        logs = subprocess.run([*compose, "logs", "--tail", "40"], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120)
        print(logs.stdout[-20_000:])
        subprocess.run([*compose, "down", "-v", "--remove-orphans"], cwd=ROOT, env=env, timeout=300)


def test_injected_drift_shows_up_in_prometheus_from_both_replicas(stack: str) -> None:
    deadline = time.monotonic() + DRIFT_TIMEOUT_S
    drift = 0.0
    up: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        try:
            up = _query(stack, 'up{job="parity"} == 1')
            result = _query(stack, "sum(parity_drift_total)")
            drift = float(result[0]["value"][1]) if result else 0.0  # type: ignore[index]
        except OSError:
            pass  # Prometheus still starting
        if drift > 0 and len(up) == 2:
            break
        time.sleep(5)
    assert len(up) == 2, f"expected both replicas up, got {up}"
    assert drift > 0, "no drift reached Prometheus although the workload injects it"
    # Each replica owns part of the partitions, so both reach verdicts (the series exist from
    # start-up at 0, hence the `> 0`).
    verdicts = _query(stack, "sum by (instance) (parity_verdicts_total) > 0")
    assert len(verdicts) == 2, verdicts
