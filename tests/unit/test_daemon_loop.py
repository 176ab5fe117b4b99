"""The daemon loop itself (poll -> verify -> persist -> commit), on in-memory adapters: what it
commits while a check is pending, and how it recovers from a failed dependency."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from parity.adapters.state import StateStore
from parity.daemon.run import Daemon, Telemetry
from tests.fakes import FakeDynamoStore, FakeSource
from tests.unit.test_pipeline import _config

pytestmark = pytest.mark.unit

TOPIC = "cdc.public.accounts"
SRC = "public.accounts"
P0, P1 = (TOPIC, 0), (TOPIC, 1)
START = 1_000.0


class Messages:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, bytes]] = []

    def send(self, messages: Sequence[tuple[bytes | None, bytes]]) -> None:
        self.sent.extend(messages)

    def flush(self) -> None:
        return None


class Lines:
    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def write(self, lines: Sequence[bytes]) -> None:
        self.lines.extend(lines)


class Failures(Telemetry):
    def __init__(self) -> None:
        self.kinds: list[str] = []

    def failure(self, kind: str) -> None:
        self.kinds.append(kind)


class Loop:
    """A Daemon on a FakeSource, a FakeDynamoStore and a real StateStore, with a manual clock."""

    def __init__(self, tmp_path: Path, partitions: int = 1) -> None:
        self.now = START
        self.lsn = 1000
        self.source = FakeSource(TOPIC, partitions)
        self.store = FakeDynamoStore()
        self.store.create_table("Accounts", ["PK"])
        self.state = StateStore(tmp_path / "state.sqlite")
        self.telemetry = Failures()
        self.sleeps: list[float] = []
        self.drift_log = Lines()
        self.daemon = Daemon(
            _config(),  # verify mode, 10 s grace, re-checks after 1, 2, 5, 10 s
            source=self.source,
            dynamo=self.store,
            state=self.state,
            dead_letters=Messages(),
            drift_topic=None,
            drift_file=self.drift_log,
            telemetry=self.telemetry,
            clock=lambda: self.now,
            sleep=self.sleeps.append,
        )

    def insert(self, id_: int, partition: int = 0, owner: str = "ada") -> None:
        """A Debezium create event of public.accounts, as the connector writes it."""
        self.lsn += 10
        ts = int(self.now * 1000)
        value = {
            "before": None,
            "after": {"id": id_, "balance": "10.50", "owner": owner},
            "source": {"schema": "public", "table": "accounts", "lsn": self.lsn, "txId": 1, "ts_ms": ts,
                       "snapshot": "false"},
            "op": "c",
            "ts_ms": ts,
        }
        self.source.append(partition, orjson.dumps({"id": id_}), orjson.dumps(value), ts)

    def target(self, id_: int, owner: str = "ada") -> None:
        """The item the application's dual write puts into DynamoDB."""
        self.store.put("Accounts", {"PK": f"ACC#{id_}", "Id": Decimal(id_), "Balance": "10.50", "Owner": owner})

    def step(self, seconds: float = 0.0) -> Any:
        self.now += seconds
        return self.daemon.step()

    def outcomes(self) -> dict[str, int]:
        return self.state.outcome_counts().get(SRC, {})


@pytest.fixture
def loop(tmp_path: Path) -> Any:
    loop = Loop(tmp_path, partitions=2)
    yield loop
    loop.state.close()


def test_a_pending_check_holds_its_partitions_commit_until_it_resolves(loop: Loop) -> None:
    loop.target(1, owner="eve")  # the dual write has not landed yet: DynamoDB still has the old owner
    loop.target(2)
    loop.target(3)
    loop.target(4)
    loop.insert(1)  # partition 0, offset 0: pending
    loop.insert(2)  # partition 0, offset 1: matches at once
    loop.insert(3)  # partition 0, offset 2: matches at once
    loop.insert(4, partition=1)  # partition 1, offset 0: matches at once

    loop.step()
    assert loop.outcomes() == {"match": 3}
    # Partition 0 is committed up to the pending record (Kafka's "next to read": 0), not past it.
    assert loop.source.committed == {P0: 0, P1: 1}

    for _ in range(5):  # re-checks inside the grace period: still the old owner
        loop.step(1.0)
    assert loop.outcomes() == {"match": 3}
    assert loop.source.committed[P0] == 0
    assert loop.daemon.ready()

    loop.target(1)  # the late dual write lands
    for _ in range(5):
        loop.step(1.0)
    assert loop.outcomes() == {"match": 4}
    assert loop.source.committed == {P0: 3, P1: 1}
    assert loop.source.rewinds == []


def test_a_mismatch_past_its_grace_period_is_drift_and_releases_the_commit(loop: Loop) -> None:
    loop.target(1, owner="eve")
    loop.target(2)
    loop.insert(1)
    loop.insert(2)
    loop.step()
    assert loop.source.committed == {P0: 0}
    for _ in range(12):
        loop.step(1.0)
    assert loop.outcomes() == {"match": 1, "drift": 1}
    assert loop.source.committed == {P0: 2}
    [line] = loop.drift_log.lines
    assert orjson.loads(line)["key"] == {"PK": "ACC#1"}


def test_after_dynamodb_fails_the_loop_rewinds_and_every_record_ends_in_one_outcome(loop: Loop) -> None:
    for id_ in (1, 2, 3):
        loop.target(id_)
        loop.insert(id_)
    loop.store.outages = 1

    assert loop.step() is None  # the batch failed
    assert not loop.daemon.ready()
    assert loop.daemon.health.last_error is not None
    assert loop.daemon.health.last_error.startswith("DynamoUnavailable: ")
    assert loop.telemetry.kinds == ["DynamoUnavailable"]
    assert loop.source.rewinds == [[P0, P1]]
    assert loop.source.commits == []
    assert loop.outcomes() == {}
    assert len(loop.sleeps) == 1  # backed off once

    loop.step(1.0)  # redone from the committed offsets
    assert loop.daemon.ready()
    assert loop.outcomes() == {"match": 3}
    assert loop.source.committed == {P0: 3}


def test_after_a_commit_fails_the_loop_rewinds_and_redoes_the_uncommitted_records(loop: Loop) -> None:
    loop.target(1)
    loop.insert(1)
    loop.step()
    assert loop.source.committed == {P0: 1}
    for id_ in (2, 3):
        loop.target(id_)
        loop.insert(id_)
    loop.source.failing_commits = 1

    assert loop.step(1.0) is None
    assert not loop.daemon.ready()
    assert loop.telemetry.kinds == ["KafkaException"]  # the name logs and /readyz have always shown
    assert loop.source.rewinds == [[P0, P1]]
    assert loop.source.committed == {P0: 1}
    assert loop.outcomes() == {"match": 3}  # persisted just before the commit failed

    loop.step(1.0)  # offsets 1 and 2 again, from the committed offset
    assert loop.daemon.ready()
    assert loop.source.committed == {P0: 3}
    assert loop.source.commits == [{P0: 1}, {P0: 3}]


def test_a_batch_redone_after_a_failed_commit_is_counted_once_per_reading(loop: Loop) -> None:
    """Delivery is at-least-once (parity.daemon.status): a batch persisted before its commit failed
    is read and counted again, so `consumed` counts readings, and each reading has one outcome."""
    for id_ in (1, 2):
        loop.target(id_)
        loop.insert(id_)
    loop.source.failing_commits = 1
    loop.step()
    assert loop.outcomes() == {"match": 2}
    loop.step(1.0)
    assert loop.source.committed == {P0: 2}
    assert loop.outcomes() == {"match": 4}  # two records, each read twice



def test_the_first_commit_after_start_is_logged_once_with_the_join_first_records_and_commit(loop: Loop) -> None:
    from structlog.testing import capture_logs

    loop.source.joined = False  # the group has not answered yet
    with capture_logs() as logs:
        assert loop.step() is not None  # nothing to read, not in the group
        loop.source.joined = True
        assert loop.step() is not None  # in the group, nothing to read yet
        loop.target(1)
        loop.insert(1)
        loop.step()  # the first records, matched and committed
        loop.target(2)
        loop.insert(2)
        loop.step()
    back = [e for e in logs if e["event"] == "back at work"]
    assert len(back) == 1
    startup = loop.daemon.startup
    assert set(startup) == {"joined_s", "first_records_s", "first_commit_s"}
    assert startup["joined_s"] <= startup["first_records_s"] <= startup["first_commit_s"]
    assert {k: back[0][k] for k in startup} == startup
    assert loop.source.commits  # what was logged as committed was committed


def test_the_loop_raises_the_collector_threshold_while_it_runs_and_restores_it() -> None:
    import gc

    from parity.daemon.run import LOOP_GC_THRESHOLD, loop_gc

    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        with pytest.raises(RuntimeError), loop_gc():
            assert gc.get_threshold() == (LOOP_GC_THRESHOLD, 10, 10)
            raise RuntimeError("the loop failed")
        assert gc.get_threshold() == (700, 10, 10)
        gc.set_threshold(2 * LOOP_GC_THRESHOLD, 10, 10)
        with loop_gc():  # a process tuned higher already keeps its own setting
            assert gc.get_threshold() == (2 * LOOP_GC_THRESHOLD, 10, 10)
    finally:
        gc.set_threshold(*before)
