"""The payments example (examples/payments.*) on the real stack, as the verifier, re-check and
fault tests use it: deployed under unique names, its Debezium bridge started when the test says,
and settled once every change event has an outcome."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from parity.core.keys import key_document
from parity.daemon.run import Daemon
from parity.workload import PaymentsApp
from tests.conftest import unique
from tests.integration.verify_harness import deploy_example, settle

FAST_GRACE = {"grace_period_s": 8, "recheck_schedule_s": [1, 2, 4, 8]}


class PaymentsStack:
    """examples/payments deployed on the session's services (or a test's own), one source table."""

    def __init__(self, pg: Any, kafka: Any, dynamodb: Any, tmp_path: Path, *, tag: str, **deploy: Any) -> None:
        """`deploy`: `deploy_example`'s `table_overrides` and `overrides`."""
        self.pg, self.kafka, self.dynamodb = pg, kafka, dynamodb
        self.suffix = unique(tag)  # ends every name: tables, topics, consumer group
        self.dep = deploy_example(
            "payments", pg=pg, dynamodb=dynamodb, kafka=kafka, suffix=self.suffix, state_dir=tmp_path / "state",
            **deploy,
        )
        self.config = self.dep.config
        self.mapping = self.config.tables[0]
        self.bridge: Any = None

    def start_cdc(self, bridge_factory: Any) -> Any:
        """Start Debezium on the table: rows already in Postgres become its snapshot."""
        self.bridge = bridge_factory([self.mapping.source], topic_prefix=self.config.kafka.topic_prefix)
        return self.bridge

    @property
    def topics(self) -> list[str]:
        return list(self.bridge.topics)

    def settle(self, daemon: Daemon | None = None, *, at_least: int = 0, timeout: float = 120) -> int:
        return settle(self.config, self.kafka.bootstrap, self.topics, daemon, at_least=at_least, timeout=timeout)


def expected_drift(app: PaymentsApp) -> list[tuple[str, str, str]]:
    """The workload's injected drift as `drift_set` lists it: (table, key text, kind)."""
    return sorted(
        (d.source, json.dumps(json.loads(key_document(d.key)), sort_keys=True), d.reported_kind) for d in app.injected
    )
