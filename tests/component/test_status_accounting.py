"""`parity status` from a real state store: counts add up, including unconfigured tables, and the
stream snapshot says whether everything consumed is verified."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from parity.adapters.state import StateStore
from parity.config_loader import parse_config
from parity.core.config import ParityConfig
from parity.daemon.run import STREAM_FACT, state_path
from parity.daemon.status import LIVE_WITHIN_S, collect_status

pytestmark = pytest.mark.component

ROOT = Path(__file__).resolve().parents[2]
T = "public.payments"
NOW = 1_000_000.0


@pytest.fixture
def config(tmp_path: Path) -> ParityConfig:
    raw = yaml.safe_load((ROOT / "examples" / "payments.yaml").read_text())
    raw.setdefault("daemon", {})["state_dir"] = str(tmp_path)
    env = {"PARITY_PG_DSN": "host=localhost dbname=x", "PARITY_KAFKA_BOOTSTRAP": "x:1"}
    return parse_config(raw, source="payments.yaml", env=env)


def _snapshot(**over: Any) -> dict[str, Any]:
    snap: dict[str, Any] = {
        "written_at": NOW - 1,
        "started_at": NOW - 100,
        "stopped_at": None,
        "last_event_at": NOW - 2,
        "pending_rechecks": {},
        "partitions": {"parity.public.payments[0]": {"committed": 10, "position": 10, "high_watermark": 10, "lag": 0}},
    }
    snap.update(over)
    return snap


def test_totals_count_every_consumed_event_including_unconfigured_tables(config: ParityConfig) -> None:
    store = StateStore(state_path(config))
    store.record_batch(
        {(T, "match"): 7, (T, "drift"): 1, ("public.other", "dead_letter"): 3, ("<unknown>", "dead_letter"): 2},
        [],
        {STREAM_FACT: _snapshot(pending_rechecks={T: 2})},
    )
    status = collect_status(config, store, now=NOW)
    assert status["tables"]["public.other"] == {
        **status["tables"]["public.other"],
        "configured": False,
        "consumed": 3,
        "dead_letters": 3,
    }
    assert status["tables"]["<unknown>"]["consumed"] == 2
    assert status["tables"][T]["consumed"] == 7 + 1 + 2
    assert status["tables"][T]["pending_rechecks"] == 2
    totals = status["totals"]
    assert totals["consumed"] == 15 == totals["resolved"] + totals["pending_rechecks"]
    assert totals["outcomes"] == {"dead_letter": 5, "drift": 1, "match": 7}
    assert sum(row["consumed"] for row in status["tables"].values()) == totals["consumed"]
    assert status["stream"]["drained"] is False
    assert status["stream"]["not_drained_because"] == ["2 pending rechecks"]


def test_drained_only_when_live_nothing_pending_and_no_lag(config: ParityConfig) -> None:
    store = StateStore(state_path(config))
    store.set_fact(STREAM_FACT, _snapshot())
    stream = collect_status(config, store, now=NOW)["stream"]
    assert (stream["drained"], stream["daemon_live"], stream["snapshot_age_s"]) == (True, True, 1.0)

    lagging = _snapshot(partitions={"t[0]": {"lag": 0}, "t[1]": {"lag": 4}, "t[2]": {"lag": None}})
    stream = collect_status(config, store, now=NOW, stream=lagging)["stream"]
    assert stream["drained"] is False
    assert stream["not_drained_because"] == ["lag unknown on t[2]", "lag on t[1]: 4"]

    old = collect_status(config, store, now=NOW + LIVE_WITHIN_S + 5)["stream"]
    assert (old["drained"], old["daemon_live"]) == (False, False)

    stopped = collect_status(config, store, now=NOW, stream=_snapshot(stopped_at=NOW - 1))["stream"]
    assert (stopped["drained"], stopped["not_drained_because"]) == (False, ["the daemon stopped"])

    idle = collect_status(config, store, now=NOW, stream=_snapshot(partitions={}))["stream"]
    assert idle["not_drained_because"] == ["no partitions assigned"]


def test_a_state_store_the_daemon_never_wrote_is_not_drained(config: ParityConfig) -> None:
    status = collect_status(config, now=NOW)
    assert status["totals"]["consumed"] == 0
    assert status["stream"]["drained"] is False
    # The same fields as a written snapshot, so a polling script never meets a missing key.
    store = StateStore(state_path(config))
    store.set_fact(STREAM_FACT, _snapshot())
    assert set(status["stream"]) == set(collect_status(config, store, now=NOW)["stream"])


class _Source:
    """What the daemon reads of its Kafka source for the stream snapshot."""

    def __init__(self) -> None:
        self.assigned = {("parity.public.payments", 0), ("parity.public.payments", 1)}
        self.positions = {("parity.public.payments", 0): 12}
        self.high_watermarks = {("parity.public.payments", 0): 15, ("parity.public.payments", 1): 4}
        self.topics = ["parity.public.payments"]
        self.on_revoke = None


def test_the_daemon_writes_its_snapshot_with_each_batch_and_as_a_heartbeat_when_idle(
    config: ParityConfig,
) -> None:
    from types import SimpleNamespace

    from parity.daemon.batch import BatchResult
    from parity.daemon.run import STREAM_HEARTBEAT_S, Daemon

    store = StateStore(state_path(config))
    daemon = Daemon(
        config,
        source=_Source(),  # type: ignore[arg-type]
        dynamo=SimpleNamespace(on_unreachable=None),  # type: ignore[arg-type]
        state=store,
        dead_letters=None,  # type: ignore[arg-type]
        drift_topic=None,
        drift_file=None,
        clock=lambda: NOW,
    )
    lag = {("parity.public.payments", 0): 3, ("parity.public.payments", 1): 0}
    snap = daemon.stream_snapshot(NOW, lag)
    assert snap["partitions"] == {
        "parity.public.payments[0]": {"committed": None, "position": 12, "high_watermark": 15, "lag": 3},
        # No record read since assignment: the position is the high watermark minus the lag.
        "parity.public.payments[1]": {"committed": None, "position": 4, "high_watermark": 4, "lag": 0},
    }
    counted = BatchResult()
    counted.count(T, "match")
    assert STREAM_FACT in daemon._stream_facts(NOW, lag, counted)
    idle = BatchResult()
    assert daemon._stream_facts(NOW + 1, lag, idle) == {}  # nothing changed: no write, no fsync
    caught_up = {**lag, ("parity.public.payments", 0): 0}
    assert STREAM_FACT in daemon._stream_facts(NOW + 1, caught_up, idle)  # the picture changed
    assert daemon._stream_facts(NOW + 2, caught_up, idle) == {}
    assert STREAM_FACT in daemon._stream_facts(NOW + 1 + STREAM_HEARTBEAT_S, caught_up, idle)  # heartbeat
