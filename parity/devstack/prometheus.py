"""Prometheus and Alertmanager (Debian packages), on private ports, scraping given targets."""

from __future__ import annotations

import json
import shutil
import signal
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from parity.devstack.prereqs import program
from parity.devstack.process import LocalService, ManagedProcess, free_port


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback URL we built
        return bool(response.status == 200)


@dataclass
class HttpService(LocalService):
    """A Prometheus or Alertmanager process answering on `url`."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        return _http_ok(f"{self.url}/-/ready")

    def start(self) -> None:
        self.process.start()
        self.startup_seconds = self.until_ready(60, self.process.name)


class PrometheusService(HttpService):
    def query(self, promql: str) -> list[dict[str, object]]:
        """Instant query; returns the `data.result` list."""
        from urllib.parse import urlencode

        with urllib.request.urlopen(f"{self.url}/api/v1/query?{urlencode({'query': promql})}",  # noqa: S310
                                    timeout=5) as response:
            body = json.loads(response.read())
        result: list[dict[str, object]] = body["data"]["result"]
        return result


class AlertmanagerService(HttpService):
    pass


_Service = TypeVar("_Service", bound=HttpService)


def _yaml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"  # JSON strings are valid YAML


def start_prometheus(state_dir: Path, scrape_targets: list[str], rule_files: list[Path] | None = None,
                     alertmanager_url: str | None = None, scrape_interval: str = "1s",
                     port: int | None = None, bearer_token: str | None = None) -> PrometheusService:
    """Prometheus scraping `scrape_targets` (host:port, path /metrics) with `rule_files` loaded;
    with `bearer_token`, sending it the way prometheus/prometheus.yml documents (credentials_file)."""
    state_dir = Path(state_dir).resolve()  # services run with another cwd
    binary = program("prometheus", "prometheus")
    base = state_dir / "prometheus"
    (base / "rules").mkdir(parents=True, exist_ok=True)
    rules: list[str] = []
    for i, rule in enumerate(rule_files or []):
        copy = base / "rules" / f"{i:02d}-{rule.name}"
        shutil.copyfile(rule, copy)
        rules.append(str(copy))
    alerting = ""
    if alertmanager_url:
        host = alertmanager_url.split("://", 1)[-1].rstrip("/")
        alerting = ("alerting:\n  alertmanagers:\n    - static_configs:\n"
                    f"        - targets: [{json.dumps(host)}]\n")
    auth = ""
    if bearer_token is not None:
        token_file = base / "parity-token"
        token_file.touch(mode=0o600)
        token_file.write_text(bearer_token)
        auth = f"    authorization:\n      type: Bearer\n      credentials_file: {json.dumps(str(token_file))}\n"
    config = base / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: {scrape_interval}\n  evaluation_interval: {scrape_interval}\n"
        f"rule_files: {_yaml_list(rules)}\n{alerting}"
        f"scrape_configs:\n  - job_name: parity\n{auth}    static_configs:\n"
        f"      - targets: {_yaml_list(scrape_targets)}\n"
    )
    return _start(PrometheusService, "prometheus", state_dir, binary, config, port,
                  f"--storage.tsdb.path={base / 'data'}", "--web.enable-lifecycle")


def start_alertmanager(state_dir: Path, webhook_url: str | None = None,
                       port: int | None = None) -> AlertmanagerService:
    """Alertmanager with one receiver (a webhook when given), gossip disabled."""
    state_dir = Path(state_dir).resolve()  # services run with another cwd
    binary = program("prometheus-alertmanager", "prometheus-alertmanager")
    base = state_dir / "alertmanager"
    base.mkdir(parents=True, exist_ok=True)
    receiver = "  - name: default\n"
    if webhook_url:
        receiver += f"    webhook_configs:\n      - url: {json.dumps(webhook_url)}\n"
    config = base / "alertmanager.yml"
    config.write_text(
        "route:\n  receiver: default\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n"
        f"receivers:\n{receiver}"
    )
    return _start(AlertmanagerService, "alertmanager", state_dir, binary, config, port,
                  f"--storage.path={base / 'data'}", "--cluster.listen-address=")


def _start(kind: type[_Service], name: str, state_dir: Path, binary: str, config: Path, port: int | None,
           *flags: str) -> _Service:
    """Prometheus and Alertmanager take their config file and listen address the same way."""
    port = port or free_port()
    process = ManagedProcess(
        name=name, state_dir=state_dir, stop_signal=signal.SIGTERM,
        argv=[binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}", *flags],
    )
    service = kind(port=port, process=process)
    service.start()
    return service
