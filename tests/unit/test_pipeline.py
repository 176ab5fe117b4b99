"""The verify pipeline's decisions with a manual clock and the in-memory DynamoDB fake: when a
mismatch becomes drift, what supersedes what, what may be committed, what is dead-lettered."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest

from parity.adapters.kafka import Record
from parity.daemon.batch import BatchResult
from parity.daemon.pipeline import Pipeline
from tests import debezium
from tests.fakes import FakeDynamoStore
from tests.unit.mapping_helpers import config

pytestmark = pytest.mark.unit

TOPIC = "cdc.public.accounts"
TP = (TOPIC, 0)


def _config(**table: Any) -> Any:
    capacity = table.pop("capacity", 100)
    return config(
        {
            "source": "public.accounts",
            "primary_key": ["id"],
            "target": "Accounts",
            "keys": {"PK": "ACC#{id}"},
            "grace_period_s": 10,
            "recheck_schedule_s": [1, 2, 5, 10],
            "columns": {"id": {"name": "Id"}, "balance": {"name": "Balance"}, "owner": {"name": "Owner"}},
            **table,
        },
        daemon={"recheck_capacity": capacity},
    )


class Harness:
    def __init__(self, **table: Any) -> None:
        self.config = _config(**table)
        self.store = FakeDynamoStore()
        self.store.create_table("Accounts", ["PK"])
        self.pipeline = Pipeline(self.config, self.store)
        self.offset = 0
        self.lsn = 1000
        self.now = 1_000.0
        self.results: list[BatchResult] = []

    def record(
        self, op: str, row: dict[str, Any] | None, *, id_: int, lsn: int | None = None, raw: bytes | None = None
    ) -> Record:
        if lsn is None:
            self.lsn += 10
            lsn = self.lsn
        at_ms = int(self.now * 1000)
        source = debezium.source_block("accounts", lsn=lsn, ts_ms=at_ms)
        value = raw if raw is not None else debezium.value(debezium.row_change(op, row, source))
        rec = Record(TOPIC, 0, self.offset, debezium.key({"id": id_}), value, at_ms)
        self.offset += 1
        return rec

    def process(self, *records: Record) -> BatchResult:
        result = self.pipeline.process(list(records), self.now)
        self.pipeline.recheck_due(self.now, result)
        self.results.append(result)
        return result

    def tick(self, seconds: float) -> BatchResult:
        self.now += seconds
        return self.process()

    def outcomes(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for r in self.results:
            for (_, outcome), n in r.outcomes.items():
                total[outcome] = total.get(outcome, 0) + n
        return total

    def drift(self) -> list[Any]:
        return [d for r in self.results for d in r.drift]


def _row(id_: int, balance: str = "10.50", owner: str = "ada") -> dict[str, Any]:
    return {"id": id_, "balance": balance, "owner": owner}


def _item(id_: int, balance: str = "10.50", owner: str = "ada") -> dict[str, Any]:
    return {"PK": f"ACC#{id_}", "Id": Decimal(id_), "Balance": balance, "Owner": owner}


def test_a_matching_event_is_verified_at_once_and_its_offset_is_committable() -> None:
    h = Harness()
    h.store.put("Accounts", _item(1, balance="10.50"))
    h.process(h.record("c", _row(1), id_=1))
    assert h.outcomes() == {"match": 1}
    assert h.pipeline.ledger.committable() == {TP: 1}


def test_a_late_write_within_the_grace_period_is_not_drift() -> None:
    h = Harness()
    h.process(h.record("c", _row(1), id_=1))
    assert h.outcomes() == {}  # pending: no verdict yet
    assert h.pipeline.ledger.committable() == {TP: 0}  # held back while pending
    h.tick(1.0)
    h.store.put("Accounts", _item(1, balance="10.50"))  # the dual write lands 1.5 s late
    h.tick(1.0)
    assert h.outcomes() == {"match": 1}
    assert h.drift() == []
    assert h.pipeline.ledger.committable() == {TP: 1}


def test_a_mismatch_that_persists_past_the_grace_period_is_drift_once() -> None:
    h = Harness()
    h.store.put("Accounts", _item(1, owner="eve"))
    h.process(h.record("c", _row(1), id_=1))
    h.pipeline.caught_up = lambda tp: True
    for _ in range(30):
        h.tick(1.0)
    drift = h.drift()
    assert len(drift) == 1
    assert drift[0].kind == "value_mismatch"
    assert drift[0].diffs == [{"attribute": "Owner", "expected": '"ada"', "actual": '"eve"'}]
    assert h.outcomes() == {"drift": 1}
    assert h.pipeline.ledger.committable() == {TP: 1}


def test_drift_waits_until_the_stream_has_passed_the_grace_period() -> None:
    """A lagging consumer must not call the target drifted for being ahead of the stream."""
    h = Harness()
    h.store.put("Accounts", _item(1, owner="eve"))
    h.process(h.record("c", _row(1), id_=1))
    for _ in range(20):
        h.tick(1.0)  # the partition has no newer events and is not known to be caught up
    assert h.drift() == []
    h.pipeline.caught_up = lambda tp: True
    h.tick(5.0)
    assert len(h.drift()) == 1


def test_a_target_ahead_of_the_event_waits_a_second_grace_period_even_when_caught_up() -> None:
    """An old event reached after its grace ran out, with the next change already in DynamoDB but
    not yet in Kafka: "caught up" must not confirm drift at once, and the newer event, when it
    arrives, supersedes the check (no false drift)."""
    h = Harness(freshness_column="updated_at",
                columns={"id": {"name": "Id"}, "owner": {"name": "Owner"}, "updated_at": {}})
    h.pipeline.caught_up = lambda tp: True
    h.store.put("Accounts", {"PK": "ACC#1", "Id": Decimal(1), "Owner": "bob", "updated_at": "2026-01-02"})
    old = h.record("u", {"id": 1, "owner": "ada", "updated_at": "2026-01-01"}, id_=1)
    h.now += 30.0  # the daemon reaches the event long after it happened (throttling, a backlog)
    h.process(old)
    for _ in range(15):
        h.tick(1.0)  # within first_seen + 2 x grace: still pending
    assert h.drift() == []
    h.process(h.record("u", {"id": 1, "owner": "bob", "updated_at": "2026-01-02"}, id_=1))
    assert h.drift() == []
    assert h.outcomes() == {"superseded": 1, "match": 1}


def test_a_target_ahead_with_no_newer_event_is_drift_after_the_second_grace_period() -> None:
    h = Harness(freshness_column="updated_at",
                columns={"id": {"name": "Id"}, "owner": {"name": "Owner"}, "updated_at": {}})
    h.pipeline.caught_up = lambda tp: True
    h.store.put("Accounts", {"PK": "ACC#1", "Id": Decimal(1), "Owner": "bob", "updated_at": "2026-01-02"})
    h.process(h.record("u", {"id": 1, "owner": "ada", "updated_at": "2026-01-01"}, id_=1))
    for _ in range(25):
        h.tick(1.0)
    assert [d.kind for d in h.drift()] == ["value_mismatch"]  # reported, ~2 x grace after first seen


def test_a_newer_event_supersedes_a_pending_check() -> None:
    h = Harness()
    h.process(h.record("c", _row(1, owner="ada"), id_=1))
    h.store.put("Accounts", _item(1, owner="bob"))
    h.tick(0.5)
    h.process(h.record("u", _row(1, owner="bob"), id_=1))
    assert h.outcomes() == {"superseded": 1, "match": 1}
    assert h.pipeline.ledger.committable() == {TP: 2}


def test_events_for_one_key_in_one_batch_collapse_to_the_newest() -> None:
    h = Harness()
    h.store.put("Accounts", _item(1, owner="carol"))
    h.process(
        h.record("c", _row(1, owner="ada"), id_=1),
        h.record("u", _row(1, owner="bob"), id_=1),
        h.record("u", _row(1, owner="carol"), id_=1),
    )
    assert h.outcomes() == {"superseded": 2, "match": 1}
    assert h.store.reads == 1


def test_a_redelivered_event_is_a_duplicate_and_never_counts_twice() -> None:
    h = Harness()
    h.store.put("Accounts", _item(1, owner="eve"))
    first = h.record("c", _row(1), id_=1, lsn=5000)
    again = h.record("c", _row(1), id_=1, lsn=5000)
    h.process(first)
    h.pipeline.caught_up = lambda tp: True
    h.process(again)
    for _ in range(15):
        h.tick(1.0)
    assert h.outcomes() == {"duplicate": 1, "drift": 1}
    assert len(h.drift()) == 1


def test_bad_records_are_dead_lettered_with_a_reason_and_the_stream_goes_on() -> None:
    h = Harness()
    h.store.put("Accounts", _item(2, balance="10.50"))
    bad_json = h.record("c", None, id_=1, raw=b"{nope")
    no_after = h.record(
        "c",
        None,
        id_=1,
        raw=debezium.value(debezium.envelope("c", debezium.source_block("accounts"), after=None)),
    )
    unknown_topic = Record("cdc.public.other", 0, 0, None, b"{}", None)
    good = h.record("c", _row(2), id_=2)
    result = h.process(bad_json, no_after, unknown_topic, good)
    reasons = [d.reason for d in result.dead_letters]
    assert len(reasons) == 3
    assert reasons[0].startswith("undecodable:")
    assert "after" in reasons[1]
    assert "not mapped" in reasons[2]
    assert h.outcomes() == {"dead_letter": 3, "match": 1}


def test_a_deleted_row_that_reappears_within_the_grace_period_is_unexpected_in_target() -> None:
    """The application's late write of the create lands after the delete was first checked."""
    h = Harness()
    h.pipeline.caught_up = lambda tp: True
    h.process(h.record("d", _row(1), id_=1))
    assert h.outcomes() == {}  # confirmation pending
    h.tick(3.0)
    h.store.put("Accounts", _item(1))
    for _ in range(10):
        h.tick(1.0)
    assert [d.kind for d in h.drift()] == ["unexpected_in_target"]


def test_a_full_recheck_store_reports_unverified_instead_of_dropping() -> None:
    h = Harness(capacity=1)
    h.process(h.record("c", _row(1), id_=1), h.record("c", _row(2), id_=2))
    assert h.outcomes() == {"unverified": 1}
    assert len(h.pipeline.rechecks) == 1


def test_schema_drift_compare_expects_a_new_column_in_the_target() -> None:
    h = Harness(schema_drift="compare")
    h.pipeline.caught_up = lambda tp: True
    h.store.put("Accounts", _item(1))  # no `nickname` attribute
    h.process(h.record("c", {**_row(1), "nickname": "ace"}, id_=1))
    for _ in range(12):
        h.tick(1.0)
    assert [d.kind for d in h.drift()] == ["value_mismatch"]
    assert h.drift()[0].diffs[0]["attribute"] == "nickname"
    assert h.pipeline.schema_drift() == {"public.accounts": ["nickname"]}


def test_schema_drift_ignore_leaves_new_columns_out() -> None:
    h = Harness(schema_drift="ignore")
    h.store.put("Accounts", _item(1, balance="10.50"))
    h.process(h.record("c", {**_row(1), "nickname": "ace"}, id_=1))
    assert h.outcomes() == {"match": 1}
    assert h.pipeline.schema_drift() == {"public.accounts": ["nickname"]}


# -- issue 16: every delete gets its end-of-grace read; grace runs from the source commit ---------


def test_a_delete_that_lands_late_and_is_then_resurrected_is_still_confirmed_at_the_grace_point() -> None:
    """Defect 3: the first read still sees the item (the DynamoDB delete lands 1.5 s late), a later
    re-read matches, and then the application's late write of the old row puts it back. The
    match before the grace point must not end the check: the end-of-grace read reports it."""
    h = Harness()
    h.pipeline.caught_up = lambda tp: True
    h.store.put("Accounts", _item(1))
    h.process(h.record("d", _row(1), id_=1))  # first read: the item is still there (mismatch)
    h.tick(1.0)
    h.store.delete("Accounts", {"PK": "ACC#1"})  # the delete lands late
    h.tick(1.0)  # re-read at +2 s: absent, as expected
    assert h.outcomes() == {}  # not final: a delete is confirmed at the end of the grace period
    h.tick(1.0)
    h.store.put("Accounts", _item(1))  # the late write of the old row resurrects it
    for _ in range(10):
        h.tick(1.0)
    assert [d.kind for d in h.drift()] == ["unexpected_in_target"]
    assert h.outcomes() == {"drift": 1}


def test_a_late_delete_that_stays_deleted_is_a_match_at_the_grace_point() -> None:
    h = Harness()
    h.pipeline.caught_up = lambda tp: True
    h.store.put("Accounts", _item(1))
    h.process(h.record("d", _row(1), id_=1))
    h.tick(1.0)
    h.store.delete("Accounts", {"PK": "ACC#1"})
    for _ in range(8):
        h.tick(1.0)
    assert h.outcomes() == {}  # still waiting for the read at the grace point (source commit + 10 s)
    h.tick(1.0)
    assert h.outcomes() == {"match": 1}
    assert h.pipeline.ledger.committable() == {TP: 1}


def test_the_grace_period_runs_from_the_source_commit_not_from_the_first_read() -> None:
    """Defect 7: the event is consumed 3 s after its commit; the write lands 11.5 s after the
    commit, past a 10 s grace period. It is drift, whatever the consumer's lag was."""
    h = Harness()
    h.pipeline.caught_up = lambda tp: True
    rec = h.record("c", _row(1), id_=1)  # committed at 1000
    h.now += 3.0
    h.process(rec)
    for _ in range(8):
        h.tick(1.0)  # up to 1011: the grace point (1010) has passed
    h.store.put("Accounts", _item(1))  # lands 11.5 s after the commit
    for _ in range(10):
        h.tick(1.0)
    assert [d.kind for d in h.drift()] == ["missing_in_target"]


def test_the_verdict_does_not_depend_on_when_the_stream_condition_is_met() -> None:
    """Defect 7: at the grace point the target still differs but the partition is not known to be
    consumed past it; it is a moment later, and the late write lands right after. The verdict is
    the grace-point read's, confirmed as soon as the stream condition holds, not a later look."""
    for caught_up_after in (0.5, 1.0, 3.0, 7.0):
        h = Harness()
        h.store.put("Accounts", _item(1, owner="eve"))
        h.process(h.record("u", _row(1), id_=1))  # committed at 1000: grace point 1010
        while h.now < 1010.0:
            h.tick(0.5)
        h.now += caught_up_after
        h.pipeline.caught_up = lambda tp: True
        h.process()
        h.store.put("Accounts", _item(1))  # the late write lands
        for _ in range(20):
            h.tick(1.0)
        assert [d.kind for d in h.drift()] == ["value_mismatch"], caught_up_after
        assert h.drift()[0].confirmed_at == 1010.0 + caught_up_after


def test_an_event_consumed_after_its_grace_point_is_decided_by_its_first_read() -> None:
    """A backlog: consumed 20 s after the commit. The first read decides; "caught up" confirms it
    only a grace period later (a newer change may still be on its way through Debezium), and a
    write that lands meanwhile, 21 s after the commit, does not change the verdict."""
    h = Harness()
    h.pipeline.caught_up = lambda tp: True
    h.store.put("Accounts", _item(1, owner="eve"))
    rec = h.record("u", _row(1), id_=1)
    h.now += 20.0
    h.process(rec)
    h.tick(1.0)
    h.store.put("Accounts", _item(1))
    for _ in range(8):
        h.tick(1.0)
    assert h.drift() == []  # waiting for the stream, not reading again
    h.tick(1.0)
    assert [d.kind for d in h.drift()] == ["value_mismatch"]


def test_a_newer_event_still_on_its_way_supersedes_a_backlog_check() -> None:
    """kill -9 replay: an old create is read after its grace point and the row's later delete is
    already in DynamoDB but not yet consumed. The delete event, arriving within a grace period,
    supersedes the check: no false `missing_in_target`."""
    h = Harness()
    h.pipeline.caught_up = lambda tp: True
    create = h.record("c", _row(1), id_=1)
    h.now += 5.0
    delete = h.record("d", _row(1), id_=1)
    h.now += 20.0  # replayed long after both commits; the item is already deleted
    h.process(create)
    for _ in range(3):
        h.tick(1.0)
    h.process(delete)
    for _ in range(15):
        h.tick(1.0)
    assert h.drift() == []
    assert h.outcomes() == {"superseded": 1, "match": 1}


def test_a_replayed_older_event_does_not_resolve_newer_drift() -> None:
    h = Harness()
    h.pipeline.caught_up = lambda tp: True
    h.store.put("Accounts", _item(1, owner="eve"))
    h.process(h.record("u", _row(1), id_=1, lsn=5000))
    for _ in range(11):
        h.tick(1.0)
    assert len(h.drift()) == 1
    h.pipeline.revoke([TP])  # a rewind forgets the key's newest LSN
    h.process(h.record("u", _row(1, owner="eve"), id_=1, lsn=4000))  # an older event, matching
    assert [r for res in h.results for r in res.resolved] == []


def test_after_a_dynamodb_outage_the_grace_period_runs_from_its_end() -> None:
    """Writes queued behind the same outage land after it: the daemon's redo gives them a full
    grace period from the outage's end (the daemon sets `grace_floor`)."""
    h = Harness()
    h.pipeline.caught_up = lambda tp: True
    rec = h.record("c", _row(1), id_=1)
    h.now += 30.0
    h.pipeline.grace_floor = h.now  # DynamoDB came back now
    h.process(rec)
    h.tick(3.0)
    h.store.put("Accounts", _item(1))
    h.tick(1.0)
    assert h.drift() == []
    assert h.outcomes() == {"match": 1}


# -- what telemetry reads: the batch result, not the pipeline ------------------------------------


def test_the_result_carries_the_recheck_backlog_after_the_batch() -> None:
    h = Harness()
    first = h.process(h.record("c", _row(1), id_=1))  # not in the target yet: pending
    assert first.recheck_backlog == {"public.accounts": 1}
    assert first.recheck_oldest == {"public.accounts": 1000.0}
    h.tick(0.5)
    second = h.process(h.record("c", _row(2), id_=2))
    assert second.recheck_backlog == {"public.accounts": 2}
    assert second.recheck_oldest == {"public.accounts": 1000.0}  # the older of the two
    h.store.put("Accounts", _item(1))
    h.store.put("Accounts", _item(2))
    after = h.tick(1.0)
    assert h.outcomes() == {"match": 2}
    assert after.recheck_backlog == {"public.accounts": 0}  # a configured table is always there
    assert after.recheck_oldest == {}


def test_the_result_says_the_mode_of_tables_with_snapshot_rows() -> None:
    h = Harness()
    h.store.put("Accounts", _item(1))
    payload = {
        "before": None,
        "after": _row(1),
        "source": {"schema": "public", "table": "accounts", "lsn": 900, "ts_ms": 1_000_000,
                   "snapshot": "last_in_data_collection"},
        "op": "r",
        "ts_ms": 1_000_000,
    }
    result = h.process(h.record("r", None, id_=1, raw=orjson.dumps(payload)))
    assert result.snapshot_rows == {"public.accounts": 1}
    assert result.snapshot_done == {"public.accounts"}
    assert result.snapshot_mode == {"public.accounts": "verify"}
    assert h.pipeline.process([], h.now).snapshot_mode == {}


def test_telemetry_publishes_the_backlog_from_the_result() -> None:
    from prometheus_client import CollectorRegistry

    from parity.daemon.telemetry import PrometheusTelemetry
    from parity.metrics.catalog import Metrics

    h = Harness()
    registry = CollectorRegistry()
    telemetry = PrometheusTelemetry(Metrics(registry, tables=["public.accounts"]), clock=lambda: 100.0)
    where = {"table": "public.accounts"}
    telemetry.batch(h.process(h.record("c", _row(1), id_=1)))
    assert registry.get_sample_value("parity_recheck_pending_keys", where) == 1
    age = registry.get_sample_value("parity_recheck_oldest_pending_age_seconds", where)
    assert age is not None and age > 0  # wall time since first seen (the harness clock is at 1000 s)
    h.store.put("Accounts", _item(1))
    telemetry.batch(h.tick(1.0))
    assert registry.get_sample_value("parity_recheck_pending_keys", where) == 0
    assert registry.get_sample_value("parity_recheck_oldest_pending_age_seconds", where) == 0
