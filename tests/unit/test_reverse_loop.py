"""The reverse loop over in-memory stores and a manual clock: late Postgres writes inside the grace
period, drift of each kind once, superseding, re-delivery after a restart, a failed step redone.

The stream is `tests.fakes.FakeStreamSource`, which passes the same contract tests as the real
DynamoDB Streams source (tests/contract/test_stream_source_contract.py)."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from parity.adapters.state import StateStore
from parity.core.config import TableMapping
from parity.daemon.reverse import ReverseDaemon
from parity.daemon.reverse_rows import PostgresUnavailable
from tests.fakes import FakeDynamoStore, FakeStream, FakeStreamSource
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
    """Manual time, starting at the wall clock: the fake stream stamps its records with the wall
    clock (ApproximateCreationDateTime). The tests name instants as 1000 + seconds from the start."""

    def __init__(self) -> None:
        self.base = time.time()
        self.now = self.base

    def __call__(self) -> float:
        return self.now

    def at(self, t: float) -> float:
        return self.base + (t - 1000.0)


def item(i: int, status: str, version: int) -> dict[str, Any]:
    return {"PK": f"ACC#{i}", "id": Decimal(i), "status": status, "version": Decimal(version)}


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.config = config(TABLE, daemon={"state_dir": str(tmp_path)})
        self.clock = Clock()
        self.stream = FakeStream("Accounts", ["PK"], clock=self.clock)
        self.dynamo = FakeDynamoStore()
        self.dynamo.create_table("Accounts", ["PK"])
        self.rows = MemoryRows()
        self.state = StateStore(tmp_path / "state.sqlite")
        self.daemon = self.start()

    def start(self) -> ReverseDaemon:
        """A daemon (again, after a kill: same owner, so it takes its lease back at once)."""
        source = FakeStreamSource(self.stream, sleep=lambda s: None)
        return ReverseDaemon(
            self.config, source=source, dynamo=self.dynamo, rows=self.rows, state=self.state,
            clock=self.clock, poll_timeout_s=0,
        )

    # The application: DynamoDB first (its stream record), Postgres maybe later.
    def put(self, i: int, status: str, version: int) -> None:
        self.dynamo.put("Accounts", item(i, status, version))
        self.stream.put(item(i, status, version))

    def remove(self, i: int) -> None:
        self.dynamo.delete("Accounts", {"PK": f"ACC#{i}"})
        self.stream.delete({"PK": f"ACC#{i}"})

    def checkpoint(self) -> int:
        """The stream's checkpoint: the number of the last record committed (records count from 1)."""
        seq = self.stream.checkpoints.get(self.stream.open_shard)
        return int(seq) if seq is not None else 0

    def pg(self, i: int, status: str, version: int) -> None:
        self.rows.rows[str(i)] = {"id": i, "status": status, "version": version}

    def run_until(self, t: float) -> None:
        t = self.clock.at(t)
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
    assert world.checkpoint() == 1


def test_drift_of_each_kind_is_confirmed_once_after_the_grace_period(world: World) -> None:
    for i in (2, 3, 4):  # in both stores before
        world.put(i, "open", 1)
        world.pg(i, "open", 1)
    world.put(1, "open", 1)  # row never written
    world.remove(2)  # row never deleted
    world.put(3, "closed", 1)  # same version, other value
    world.put(4, "closed", 2)  # Postgres kept the older version
    world.run_until(1009)
    assert world.drift() == [] and world.checkpoint() == 3  # the superseded; the four wait out their grace
    world.run_until(1020)
    assert world.drift() == [
        ("ACC#1", "missing_in_source"),
        ("ACC#2", "unexpected_in_source"),
        ("ACC#3", "value_mismatch"),
        ("ACC#4", "stale_in_source"),
    ]
    assert world.outcomes() == {"superseded": 3, "drift": 4}  # the first writes of 2-4, same batch
    assert world.checkpoint() == 7
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
    world.put(1, "open", 1)  # record 1: will drift
    world.put(2, "open", 1)  # record 2: matches at once
    world.pg(2, "open", 1)
    world.run_until(1003)
    assert world.outcomes() == {"match": 1}
    assert world.checkpoint() == 0  # record 1 pending holds the shard back
    # kill: a new daemon on the same state store, the stream resumes after its checkpoint
    world.daemon = world.start()
    world.run_until(1020)
    assert world.outcomes() == {"match": 1, "duplicate": 1, "drift": 1}
    assert world.drift() == [("ACC#1", "missing_in_source")]
    assert world.checkpoint() == 2


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
    assert world.outcomes() == {"match": 2} and world.checkpoint() == 2


def test_unmapped_items_are_counted_as_skipped(world: World) -> None:
    world.stream.put({"PK": "OTHER#1", "note": "not an account"})
    world.run_until(1001)
    assert world.state.outcome_counts() == {"<unmapped>": {"skipped": 1}}
    assert world.checkpoint() == 1


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
    assert registry.get_sample_value("parity_events_total", {**labels, "op": "c", "outcome": "drift"}) == 1
    assert registry.get_sample_value("parity_verdicts_total", {**labels, "direction": "forward", "outcome": "match"}) \
        is None
    assert registry.get_sample_value("parity_dynamodb_stream_lag_seconds", {"dynamodb_table": "Accounts"}) == 0.0
    with pytest.raises(ValueError, match="direction"):
        metrics.event("app.account", "c", "match", direction="sideways")


def test_open_drift_heals_by_reread_when_the_late_write_finally_lands(world: World) -> None:
    world.put(1, "open", 1)
    world.run_until(1012)
    assert world.drift() == [("ACC#1", "missing_in_source")]
    assert world.state.open_drift_counts() == {"app.account": 1}
    world.pg(1, "open", 1)  # the application's write, far too late
    world.run_until(1035)  # open drift is re-read every 10 s
    assert world.state.open_drift_counts() == {}
    assert [(r["how"], r["kind"]) for r in world.state.resolved_records()] == [("reread", "missing_in_source")]


def test_a_record_without_its_new_image_is_checked_against_the_current_item(world: World) -> None:
    from parity.core.streams import StreamRecord

    s = world.stream
    for i, status in ((1, "open"), (2, "closed")):  # a KEYS_ONLY stream: keys, no images
        world.dynamo.put("Accounts", item(i, status, 1))
        s._seq += 1
        s.records[s.open_shard].append(
            StreamRecord("Accounts", s.open_shard, f"{s._seq:021d}", "INSERT", {"PK": f"ACC#{i}"}, None, None,
                         time.time()))
        world.pg(i, "open", 1)
    world.run_until(1012)
    assert world.outcomes() == {"match": 1, "drift": 1}
    assert world.drift() == [("ACC#2", "value_mismatch")]


def test_shards_trimmed_before_they_were_read_stay_in_status_across_restarts(tmp_path: Path) -> None:
    """A shard trimmed away past retention holds changes nobody verified: `parity status` says so
    (never as part of "drained"), and a restarted daemon keeps the count."""
    from parity.daemon.status import collect_status

    w = World(tmp_path)
    w.pg(1, "open", 1)
    w.put(1, "open", 1)
    w.run_until(1001)
    assert collect_status(w.config, w.state, now=w.clock.now)["reverse_stream"]["never_verified"] == []
    w.daemon.source.counts["trimmed_shards"] = 1  # as the real source counts a shard gone past retention
    w.run_until(1003)
    w.daemon.shutdown()
    w.daemon = w.start()
    w.run_until(1005)
    reverse = collect_status(w.config, w.state, now=w.clock.now)["reverse_stream"]
    assert reverse["stream_events"]["trimmed_shards"] == 1
    assert len(reverse["never_verified"]) == 1 and "1 shards trimmed away" in reverse["never_verified"][0]
