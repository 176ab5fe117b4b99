"""The demo's schemas and its parity configuration, from the examples in `examples/`.

payments (verify: the application dual-writes) and billing (shadow: parity applies the changes)
share one daemon, so one configuration file holds both; the daemon and the reconciler read it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from parity.config_loader import load_config
from parity.core.config import ParityConfig

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TOPIC_PREFIX = "demo"


@dataclass(frozen=True)
class DemoSettings:
    rows: int = 1000
    duration_s: float = 30.0
    drift_rate: float = 0.02
    lag_ms: float = 1000.0
    grace_s: float = 8.0
    payments_rate: float = 20.0  # application operations per second
    billing_rate: float = 10.0
    prometheus: bool = True
    state_dir: Path = Path(".parity/demo")

    @property
    def recheck_schedule(self) -> list[float]:
        return [s for s in (1.0, 2.0, 4.0) if s < self.grace_s] + [self.grace_s]


def example_sql() -> str:
    return (EXAMPLES / "payments.sql").read_text() + "\n" + (EXAMPLES / "billing-single-table.sql").read_text()


def dynamodb_tables() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name in ("payments", "billing-single-table"):
        out.extend(json.loads((EXAMPLES / f"{name}.dynamodb.json").read_text()))
    return out


def create_schemas(dsn: str, dynamo: Any) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(example_sql())  # our own file, several statements
    for request in dynamodb_tables():
        dynamo.create_table(**request)


def demo_config(settings: DemoSettings, *, dsn: str, bootstrap: str, dynamodb: str, http_port: int) -> dict[str, Any]:
    """One raw configuration: the billing example (its defaults: shadow mode, one target table)
    plus the payments table, which names its own target and mode."""
    state = settings.state_dir.resolve()
    billing = yaml.safe_load((EXAMPLES / "billing-single-table.yaml").read_text())
    payments = yaml.safe_load((EXAMPLES / "payments.yaml").read_text())
    table = payments["tables"][0]
    # Late dual writes land within lag_ms; a short grace lets the demo finish quickly.
    table.update({"grace_period_s": settings.grace_s, "recheck_schedule_s": settings.recheck_schedule})
    return {
        "postgres": {"dsn": dsn},
        "kafka": {
            "bootstrap_servers": bootstrap,
            "topic_prefix": TOPIC_PREFIX,
            "group_id": "parity-demo",
            "session_timeout_ms": 6000,  # tansu: a group join waits half of it
            "drift_topic": "parity.demo.drift",
            "dead_letter_topic": "parity.demo.dlq",
        },
        "dynamodb": {"endpoint": dynamodb, "region": "us-east-1"},
        "daemon": {
            "state_dir": str(state / "daemon"),
            "drift_log": str(state / "daemon" / "drift.jsonl"),
            "batch_max_wait_ms": 100,
            "drift_window_s": 30,  # a window the length of a demo, so the ratio moves visibly
            "http": {"port": http_port},
        },
        "reconcile": {"report_dir": str(state / "reports"), "grace_period_s": 1, "segments": 2, "workers": 2},
        "defaults": billing["defaults"],
        "tables": [table, *billing["tables"]],
    }


def write_config(raw: dict[str, Any], path: Path) -> ParityConfig:
    """Write the YAML a user can pass to `parity run|status|reconcile --config`, and load it back
    through the same loader they would use."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_config(path)
