"""How DaemonApp composes the two directions (built, not started: nothing connects)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from parity.daemon.app import DaemonApp, readiness
from tests.unit.mapping_helpers import config

pytestmark = pytest.mark.unit

REVERSE: dict[str, Any] = {"source": "app.account", "primary_key": ["id"], "target": "Accounts", "mode": "reverse",
                           "keys": {"PK": "ACC#{id}"}, "columns": {"id": {}}}
FORWARD: dict[str, Any] = {"source": "app.orders", "primary_key": ["id"], "target": "Orders",
                           "keys": {"PK": "ORD#{id}"}, "columns": {"id": {}}}


def _app(tmp_path: Path, *tables: dict[str, Any]) -> DaemonApp:
    cfg = config(*tables, daemon={"state_dir": str(tmp_path), "http": {"port": 0}},
                 dynamodb={"endpoint": "http://127.0.0.1:1"})
    return DaemonApp(cfg, probe_interval_s=None, http=False, reconcile_schedule=False)


def test_mixed_configuration_runs_forward_tables_from_kafka_and_reverse_tables_from_their_stream(
    tmp_path: Path,
) -> None:
    app = _app(tmp_path, REVERSE, FORWARD)
    try:
        assert app.daemon is not None and app.reverse is not None
        # The Kafka loop never subscribes to a reverse table's topic, nor rechecks or re-reads it.
        assert [t.source for t in app.daemon.config.tables] == ["app.orders"]
        assert list(app.daemon.source.topics) == ["cdc.app.orders"]
        assert app.daemon.state is app.state and app.reverse.state is app.state  # one state store
        assert [c.name for c in readiness(app.daemon, None, app.reverse)] == [
            "group_joined", "pipeline", "reverse_stream", "stores_writable"]
        get = app.registry.get_sample_value
        assert get("parity_verdicts_total", {"table": "app.account", "outcome": "match", "direction": "reverse"}) == 0
        assert get("parity_verdicts_total", {"table": "app.orders", "outcome": "match", "direction": "forward"}) == 0
    finally:
        app.stop()


def test_reverse_only_configuration_has_no_kafka_loop(tmp_path: Path) -> None:
    app = _app(tmp_path, REVERSE)
    try:
        assert app.daemon is None and app.reverse is not None
        with pytest.raises(RuntimeError, match="no Kafka loop"):
            _ = app.forward
        assert [c.name for c in readiness(app.daemon, None, app.reverse)] == ["reverse_stream", "stores_writable"]
    finally:
        app.stop()
