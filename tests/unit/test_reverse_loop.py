"""The reverse loop over in-memory stores and a manual clock: late Postgres writes inside the grace
period, drift of each kind once, superseding, re-delivery after a restart, a failed step redone.

The stream here is a minimal in-memory `StreamSource` (a list per shard with a checkpoint),
enough for the loop's side of the port; the DynamoDB Streams adapter has its own contract tests."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from parity.adapters.state import StateStore
from parity.core.config import TableMapping
from parity.core.streams import StreamRecord
from parity.daemon.reverse import ReverseDaemon
from parity.daemon.reverse_rows import PostgresUnavailable
from tests.fakes import FakeDynamoStore
from tests.unit.mapping_helpers import config

pytestmark = pytest.mark.unit

TABLE = {
    "source": "app.account",
    "primary_key": ["id"],
    "target": "Accounts",
    "mode": "reverse",
    "keys": {"PK": "ACC#{id}"},
    "freshness_column": "version",
    "grace_period_s": 10,
    "recheck_schedule_s": [1, 3],
    "columns": {"id": {"type": "number"}, "status": {}, "version": {"type": "number"}},
}


class MemoryStream:
    """Records appended per shard; `poll` reads after the last position read; `commit` moves the
    checkpoint; `reopen` starts again after the checkpoint (a restart)."""

    def __init__(self) -> None:
        self.log: list[StreamRecord] = []
        self.checkpoint = -1
        self.read_to = -1
        self.commits: list[int] = []

    def append(self, event: str, item_id: int, new: dict[str, Any] | None, at: float) -> None:
        seq = len(self.log)
        self.log.append(
            StreamRecord("Accounts", "shard-0", str(seq), event, {"PK": f"ACC#{item_id}"},  # type: ignore[arg-type]
                         new, None, at)
        )

    def poll(self, max_records: int, timeout_s: float) -> list[StreamRecord]:
        out = self.log[self.read_to + 1 : self.read_to + 1 + max_records]
        self.read_to += len(out)
        return out

    def commit(self, records: Sequence[StreamRecord]) -> None:
        for r in records:
            self.checkpoint = max(self.checkpoint, int(r.sequence_number))
        self.commits.append(self.checkpoint)

    def lag_s(self) -> dict[str, float]:
        return {"shard-0": 0.0}

    def close(self) -> None:
        return None

    def reopen(self) -> None:
        self.read_to = self.checkpoint


class MemoryRows:
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.down = 0

    def row(self, mapping: TableMapping, primary_key: dict[str, str]) -> dict[str, Any] | None:
        if self.down:
            self.down -= 1
            raise PostgresUnavailable("Postgres: connection refused")
        return self.rows.get(primary_key["id"])

    def close(self) -> None:
        return None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def item(i: int, status: str, version: int) -> dict[str, Any]:
    return {"PK": f"ACC#{i}", "id": Decimal(i), "status": status, "version": Decimal(version)}


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.config = config(TABLE, daemon={"state_dir": str(tmp_path)})
        self.stream = MemoryStream()
        self.dynamo = FakeDynamoStore()
        self.dynamo.create_table("Accounts", ["PK"])
        self.rows = MemoryRows()
        self.clock = Clock()
        self.state = StateStore(tmp_path / "state.sqlite")
        self.daemon = self.start()

    def start(self) -> ReverseDaemon:
        return ReverseDaemon(
            self.config, source=self.stream, dynamo=self.dynamo, rows=self.rows, state=self.state,
            clock=self.clock, poll_timeout_s=0,
        )

    # The application: DynamoDB first (its stream record), Postgres maybe later.
    def put(self, i: int, status: str, version: int) -> None:
        self.dynamo.put("Accounts", item(i, status, version))
        self.stream.append("MODIFY", i, item(i, status, version), self.clock.now)

    def remove(self, i: int) -> None:
        self.dynamo.delete("Accounts", {"PK": f"ACC#{i}"})
        self.stream.append("REMOVE", i, None, self.clock.now)

    def pg(self, i: int, status: str, version: int) -> None:
        self.rows.rows[str(i)] = {"id": i, "status": status, "version": version}

    def run_until(self, t: float) -> None:
        while self.clock.now < t:
            self.daemon.step()
            self.clock.now += 0.5
        self.daemon.step()

    def outcomes(self) -> dict[str, int]:
        return self.state.outcome_counts().get("app.account", {})

    def drift(self) -> list[tuple[str, str]]:
        return sorted((r["key"]["PK"], r["kind"]) for r in self.state.drift_records("app.account"))


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_late_postgres_write_inside_the_grace_period_is_a_match(world: World) -> None:
    world.put(1, "open", 1)
    world.run_until(1004)  # two rechecks: row still missing
    assert world.outcomes() == {} and world.drift() == []
    world.pg(1, "open", 1)  # the application's late write, before the grace point (1010)
    world.run_until(1011)
    assert world.outcomes() == {"match": 1} and world.drift() == []
    assert world.stream.checkpoint == 0


def test_drift_of_each_kind_is_confirmed_once_after_the_grace_period(world: World) -> None:
    world.pg(2, "open", 1)
    world.pg(3, "open", 1)
    world.pg(4, "open", 1)
    world.put(1, "open", 1)  # row never written
    world.remove(2)  # row never deleted
    world.put(3, "closed", 1)  # same version, other value
    world.put(4, "closed", 2)  # Postgres kept the older version
    world.run_until(1009)
    assert world.drift() == [] and world.stream.checkpoint == -1  # all four within grace
    world.run_until(1020)
    assert world.drift() == [
        ("ACC#1", "missing_in_source"),
        ("ACC#2", "unexpected_in_source"),
        ("ACC#3", "value_mismatch"),
        ("ACC#4", "stale_in_source"),
    ]
    assert world.outcomes() == {"drift": 4}
    assert world.stream.checkpoint == 3
    world.run_until(1040)
    assert len(world.state.drift_records()) == 4  # once, not again at later steps


def test_a_newer_dynamodb_change_supersedes_the_pending_record(world: World) -> None:
    world.put(1, "open", 1)
    world.run_until(1002)
    world.put(1, "closed", 2)
    world.pg(1, "closed", 2)
    world.run_until(1015)
    assert world.outcomes() == {"superseded": 1, "match": 1} and world.drift() == []


def test_restart_redelivers_and_counts_nothing_twice(world: World, tmp_path: Path) -> None:
    world.put(1, "open", 1)  # seq 0: will drift
    world.put(2, "open", 1)  # seq 1: matches at once
    world.pg(2, "open", 1)
    world.run_until(1003)
    assert world.outcomes() == {"match": 1}
    assert world.stream.checkpoint == -1  # seq 0 pending holds the shard back
    # kill: a new daemon on the same state store, the stream resumes after its checkpoint
    world.stream.reopen()
    world.daemon = world.start()
    world.run_until(1020)
    assert world.outcomes() == {"match": 1, "duplicate": 1, "drift": 1}
    assert world.drift() == [("ACC#1", "missing_in_source")]
    assert world.stream.checkpoint == 1


def test_a_failed_step_is_redone_without_loss_or_double_counting(world: World) -> None:
    world.pg(1, "open", 1)
    world.put(1, "open", 1)
    world.put(2, "open", 1)
    world.rows.down = 1
    world.daemon.step()
    assert not world.daemon.ready() and world.outcomes() == {}
    world.pg(2, "open", 1)
    world.run_until(1002)
    assert world.daemon.ready()
    assert world.outcomes() == {"match": 2} and world.stream.checkpoint == 1


def test_unmapped_items_are_counted_as_skipped(world: World) -> None:
    world.stream.log.append(StreamRecord("Accounts", "shard-0", "0", "INSERT", {"PK": "OTHER#1"},
                                         {"PK": "OTHER#1"}, None, 1000.0))
    world.run_until(1001)
    assert world.state.outcome_counts() == {"<unmapped>": {"skipped": 1}}
    assert world.stream.checkpoint == 0


def test_status_shows_both_directions_and_the_reverse_stream(tmp_path: Path) -> None:
    from parity.daemon.status import collect_status

    forward = {**TABLE, "source": "app.orders", "mode": "verify", "target": "Orders", "keys": {"PK": "ORD#{id}"}}
    cfg = config(TABLE, forward, daemon={"state_dir": str(tmp_path)})
    w = World(tmp_path)
    w.pg(1, "open", 1)
    w.put(1, "open", 1)
    w.put(2, "open", 1)  # stays pending: no row
    w.run_until(1001)
    status = collect_status(cfg, w.state, now=w.clock.now)
    assert status["tables"]["app.account"]["direction"] == "reverse"
    assert status["tables"]["app.orders"]["direction"] == "forward"
    assert status["directions"]["reverse"] == {
        "tables": ["app.account"], "consumed": 2, "verified": 1, "drift": 0, "drift_open": 0, "pending_rechecks": 1}
    reverse = status["reverse_stream"]
    assert reverse["daemon_live"] and reverse["pending_rechecks"] == 1 and not reverse["drained"]
    assert status["totals"]["consumed"] == 2


def test_reverse_telemetry_counts_under_the_reverse_direction(world: World) -> None:
    from prometheus_client import CollectorRegistry

    from parity.daemon.telemetry import PrometheusTelemetry
    from parity.metrics.catalog import Metrics

    registry = CollectorRegistry()
    metrics = Metrics(registry, tables=["app.account"], directions={"app.account": "reverse"})
    world.daemon.telemetry = PrometheusTelemetry(metrics, direction="reverse")
    world.pg(1, "open", 1)
    world.put(1, "open", 1)
    world.put(2, "open", 1)
    world.run_until(1012)
    labels = {"table": "app.account", "direction": "reverse"}
    assert registry.get_sample_value("parity_verdicts_total", {**labels, "outcome": "match"}) == 1
    assert registry.get_sample_value("parity_drift_total", {**labels, "kind": "missing_in_source"}) == 1
    assert registry.get_sample_value("parity_events_total", {**labels, "op": "u", "outcome": "drift"}) == 1
    assert registry.get_sample_value("parity_verdicts_total", {**labels, "direction": "forward", "outcome": "match"}) \
        is None
    assert registry.get_sample_value("parity_dynamodb_stream_lag_seconds", {"dynamodb_table": "Accounts"}) == 0
    with pytest.raises(ValueError, match="direction"):
        metrics.event("app.account", "c", "match", direction="sideways")
