"""Drift has a lifecycle (issue 16, defect 8): confirmed drift is open until the key is found
healed (a newer matching event, a re-read, a repair, a reconcile that finds it clean), and the
state store, the drift sinks' `resolved` records and `parity status` say what is wrong *now*
while keeping the history."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from parity.adapters.state import DriftRecord, Resolution, StateStore, key_json
from tests.unit.test_pipeline import Harness, _item, _row

pytestmark = pytest.mark.unit

SRC = "public.accounts"


def _drift(id_: int, lsn: int, at: float, kind: str = "value_mismatch") -> DriftRecord:
    return DriftRecord(
        source=SRC,
        target="Accounts",
        key={"PK": f"ACC#{id_}"},
        kind=kind,
        diffs=[],
        lsn=lsn,
        first_seen=at - 10,
        confirmed_at=at,
        op="u",
        expected=_item(id_),
        unavailable=(),
    )


def _resolution(id_: int, how: str, at: float) -> Resolution:
    return Resolution(source=SRC, target="Accounts", key={"PK": f"ACC#{id_}"}, how=how, at=at)


@pytest.fixture
def state(tmp_path: Path) -> Any:
    s = StateStore(tmp_path / "state.sqlite")
    yield s
    s.close()


def test_resolved_drift_is_no_longer_open_but_stays_in_the_history(state: StateStore) -> None:
    state.record_batch({(SRC, "drift"): 2}, [_drift(1, 10, 100.0), _drift(2, 20, 100.0)])
    assert state.open_drift_counts() == {SRC: 2}
    closed = state.resolve_drift([_resolution(1, "newer_event", 150.0), _resolution(3, "reread", 150.0)])
    assert [r.key for r in closed] == [{"PK": "ACC#1"}]  # key 3 had no open drift: nothing to close
    assert state.open_drift_counts() == {SRC: 1}
    life = state.drift_lifecycle()[SRC]
    assert life == {"drift_open": 1, "drift_resolved": 1, "drift_resolved_by": {"newer_event": 1}}
    assert len(state.drift_records()) == 2  # the history keeps both
    assert state.drift_by_kind() == {SRC: {"value_mismatch": 2}}
    [(_id, key, record)] = state.unemitted_resolutions()
    assert key == key_json({"PK": "ACC#1"})
    import orjson

    data = orjson.loads(record)
    assert data["event"] == "resolved"
    assert (data["table"], data["key"], data["how"], data["lsn"], data["kind"]) == (
        SRC, {"PK": "ACC#1"}, "newer_event", 10, "value_mismatch"
    )
    assert data["confirmed_at"] == 100.0 and data["resolved_at"] == 150.0
    state.mark_resolutions_emitted([_id])
    assert state.unemitted_resolutions() == []


def test_a_newer_drift_record_of_the_key_supersedes_the_older_one(state: StateStore) -> None:
    state.record_batch({}, [_drift(1, 10, 100.0)])
    state.record_batch({}, [_drift(1, 30, 200.0, kind="missing_in_target")])
    assert state.open_drift_counts() == {SRC: 1}  # one key, still wrong
    assert state.drift_lifecycle()[SRC]["drift_resolved_by"] == {"superseded": 1}
    assert state.drift_lifecycle()[SRC]["drift_resolved"] == 0
    assert state.unemitted_resolutions() == []  # the newer drift record says it all
    state.resolve_drift([_resolution(1, "reread", 300.0)])
    assert state.open_drift_counts() == {}


def test_a_reconcile_resolves_clean_keys_and_opens_keys_it_found_drifted(state: StateStore) -> None:
    state.record_batch({}, [_drift(1, 10, 100.0), _drift(2, 20, 100.0), _drift(3, 30, 500.0)])
    res = state.reconciled(
        SRC,
        "Accounts",
        started_at=400.0,
        drifted={
            key_json({"PK": "ACC#2"}): ("value_mismatch", {"PK": "ACC#2"}),
            key_json({"PK": "ACC#9"}): ("missing_in_target", {"PK": "ACC#9"}),
        },
        at=600.0,
    )
    # 1: clean -> resolved. 2: still drifted -> open. 3: confirmed after the reconcile began (its
    # read of the key may be older than the drift) -> left open. 9: found only by the reconcile.
    assert res == {"resolved": 1, "opened": 1}
    assert state.open_drift_counts() == {SRC: 3}
    assert state.drift_lifecycle()[SRC]["drift_resolved_by"] == {"reconcile": 1}
    # Reconcile-found drift is open drift, not stream drift: not in the stream's history or sinks.
    assert len(state.drift_records()) == 3
    assert state.unemitted() and all(r[1] != key_json({"PK": "ACC#9"}) for r in state.unemitted())
    assert [orjson_loads(r[2])["how"] for r in state.unemitted_resolutions()] == ["reconcile"]
    # A later clean reconcile closes the reconcile-found key too, and it is never re-read.
    assert all(key_json({"PK": "ACC#9"}) != r[2] for r in state.reread_candidates(limit=10, older_than=1e9))
    state.reconciled(SRC, "Accounts", started_at=700.0, drifted={}, at=800.0)
    assert state.open_drift_counts() == {}


def orjson_loads(raw: bytes) -> Any:
    import orjson

    return orjson.loads(raw)


def test_a_repair_closes_the_keys_it_wrote(state: StateStore) -> None:
    state.record_batch({}, [_drift(1, 10, 100.0)])
    assert state.resolve_keys(SRC, [key_json({"PK": "ACC#1"}), key_json({"PK": "ACC#7"})], "repair", 200.0) == 1
    assert state.open_drift_counts() == {}
    assert state.drift_lifecycle()[SRC]["drift_resolved_by"] == {"repair": 1}


def test_open_drift_keeps_what_a_re_read_needs(state: StateStore) -> None:
    from parity.adapters.state import reread_item

    state.record_batch({}, [_drift(1, 10, 100.0)])
    [(rowid, source, key, text, lsn)] = state.reread_candidates(limit=10, older_than=100.0)
    assert lsn == 10
    assert (source, key) == (SRC, key_json({"PK": "ACC#1"}))
    target, item_key, expected, unavailable = reread_item(text)
    assert (target, item_key, expected, unavailable) == ("Accounts", {"PK": "ACC#1"}, _item(1), ())
    state.touch_reread([rowid], 150.0)
    assert state.reread_candidates(limit=10, older_than=140.0) == []  # re-read recently: not yet again


def test_a_state_file_from_before_the_lifecycle_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE drift (source TEXT NOT NULL, key TEXT NOT NULL, lsn INTEGER NOT NULL, kind TEXT NOT NULL, "
        "record TEXT NOT NULL, emitted INTEGER NOT NULL DEFAULT 0, confirmed_at REAL NOT NULL, "
        "PRIMARY KEY (source, key, lsn))"
    )
    db.execute("INSERT INTO drift VALUES (?, ?, 5, 'value_mismatch', '{}', 1, 10.0)", (SRC, '{"PK":"ACC#1"}'))
    db.commit()
    db.close()
    state = StateStore(path)
    try:
        assert state.open_drift_counts() == {SRC: 1}  # old drift is open drift
        assert state.drift_by_kind() == {SRC: {"value_mismatch": 1}}
    finally:
        state.close()


# -- the pipeline side ----------------------------------------------------------------------------


def test_a_newer_event_that_matches_resolves_the_keys_open_drift() -> None:
    h = Harness()
    h.pipeline.caught_up = lambda tp: True
    h.store.put("Accounts", _item(1, owner="eve"))
    h.process(h.record("u", _row(1), id_=1))
    for _ in range(11):
        h.tick(1.0)
    assert [d.kind for d in h.drift()] == ["value_mismatch"]
    assert h.drift()[0].expected == _item(1)  # kept for re-reads
    h.process(h.record("u", _row(1, owner="eve"), id_=1))  # the source now agrees with the target
    resolved = [r for res in h.results for r in res.resolved]
    assert [(r.key, r.how) for r in resolved] == [({"PK": "ACC#1"}, "newer_event")]
    assert h.pipeline.open_drift == {}


def test_a_re_read_resolves_open_drift_once_the_late_write_has_landed() -> None:
    h = Harness()
    h.pipeline.caught_up = lambda tp: True
    h.process(h.record("c", _row(1), id_=1))
    for _ in range(11):
        h.tick(1.0)
    [d] = h.drift()
    entry = (d.source, d.target, d.key, d.expected, d.unavailable, d.lsn)
    still = h.tick(1.0)
    h.pipeline.reread_open([entry], h.now, still)
    assert still.resolved == []  # still missing: stays open
    h.store.put("Accounts", _item(1))  # the late write lands after confirmation
    healed = h.tick(1.0)
    h.pipeline.reread_open([entry], h.now, healed)
    assert [(r.key, r.how) for r in healed.resolved] == [({"PK": "ACC#1"}, "reread")]


def test_a_re_read_leaves_a_key_with_a_pending_check_to_that_check() -> None:
    h = Harness()
    h.store.put("Accounts", _item(1, balance=Decimal("3")))
    h.process(h.record("u", _row(1), id_=1))  # pending
    result = h.tick(0.1)
    h.pipeline.reread_open([(SRC, "Accounts", {"PK": "ACC#1"}, _item(1, balance=Decimal("3")), (), 1)], h.now, result)
    assert result.resolved == []


# -- the reconcile schedule and the metrics ---------------------------------------------------------


def test_a_reconcile_in_the_daemon_is_reflected_in_open_drift(state: StateStore) -> None:
    import datetime as dt

    from parity.reconcilers.schedule import ReconcileSchedule
    from tests.unit.test_pipeline import _config

    state.record_batch({}, [_drift(1, 10, 100.0), _drift(2, 20, 100.0)])
    started = dt.datetime.fromtimestamp(200.0, dt.UTC).isoformat()
    report = {
        "run_id": "r1",
        "started_at": started,
        "tables": {SRC: {"target": "Accounts", "drift": [{"kind": "value_mismatch", "key": {"PK": {"S": "ACC#2"}}}]}},
    }
    ReconcileSchedule(_config())._reflect_in_open_drift(state, report)
    assert state.open_drift_counts() == {SRC: 1}  # key 1 was clean, key 2 still drifted
    assert state.drift_lifecycle()[SRC]["drift_resolved_by"] == {"reconcile": 1}


def test_open_drift_gauge_and_resolution_counter() -> None:
    from prometheus_client import CollectorRegistry

    from parity.daemon.telemetry import PrometheusTelemetry
    from parity.metrics.catalog import Metrics

    registry = CollectorRegistry()
    telemetry = PrometheusTelemetry(Metrics(registry, tables=[SRC]))
    assert registry.get_sample_value("parity_drift_open_keys", {"table": SRC}) == 0
    telemetry.drift_open({SRC: 3})
    assert registry.get_sample_value("parity_drift_open_keys", {"table": SRC}) == 3
    telemetry.drift_open({})  # all resolved: back to zero, not left at 3
    assert registry.get_sample_value("parity_drift_open_keys", {"table": SRC}) == 0
    telemetry.drift_resolved(SRC, "reread", 2)
    assert registry.get_sample_value("parity_drift_resolved_total", {"table": SRC, "reason": "reread"}) == 2
    with pytest.raises(ValueError):
        telemetry.drift_resolved(SRC, "magic", 1)


def test_a_resolution_closes_only_drift_up_to_its_lsn(state: StateStore) -> None:
    """A replayed older event (after a rewind) that matches must not close newer drift."""
    state.record_batch({}, [_drift(1, 50, 100.0)])
    older = Resolution(source=SRC, target="Accounts", key={"PK": "ACC#1"}, how="newer_event", at=150.0, lsn=40)
    assert state.resolve_drift([older]) == []
    assert state.open_drift_counts() == {SRC: 1}
    newer = Resolution(source=SRC, target="Accounts", key={"PK": "ACC#1"}, how="newer_event", at=160.0, lsn=60)
    assert state.resolve_drift([newer]) == [newer]
    assert state.open_drift_counts() == {}


def test_the_daemon_re_reads_open_drift_from_its_state_and_logs_the_resolution(tmp_path: Path) -> None:
    """After a restart: open drift is loaded from the state store, re-read (bounded), and a key
    whose late write has landed is resolved, with a `resolved` record in the drift log."""
    from types import SimpleNamespace

    import orjson

    from parity.adapters.sinks import JsonLinesFile
    from parity.daemon.batch import BatchResult
    from parity.daemon.run import Daemon, Telemetry
    from tests.fakes import FakeDynamoStore
    from tests.unit.test_pipeline import _config

    class Seen(Telemetry):
        def __init__(self) -> None:
            self.open: dict[str, int] | None = None
            self.resolved: list[tuple[str, str, int]] = []

        def drift_open(self, counts: dict[str, int]) -> None:
            self.open = counts

        def drift_resolved(self, source: str, how: str, n: int) -> None:
            self.resolved.append((source, how, n))

    state = StateStore(tmp_path / "state.sqlite")
    state.record_batch({}, [_drift(1, 10, 100.0), _drift(2, 20, 100.0)])
    store = FakeDynamoStore()
    store.create_table("Accounts", ["PK"])
    store.put("Accounts", _item(1))  # key 1's late write has landed; key 2 is still missing
    log = JsonLinesFile(tmp_path / "drift.jsonl")
    telemetry = Seen()
    daemon = Daemon(
        _config(),
        source=SimpleNamespace(),
        dynamo=store,
        state=state,
        dead_letters=SimpleNamespace(),
        drift_topic=None,
        drift_file=log,
        telemetry=telemetry,
    )
    try:
        result = BatchResult()
        rows = daemon._reread_open_drift(105.0, result)
        assert rows == []  # confirmed at 100: not due for a re-read before 110
        assert set(daemon.pipeline.open_drift.values()) == {(SRC, 10), (SRC, 20)}
        assert len(daemon.pipeline.open_drift) == 2
        result = BatchResult()
        rows = daemon._reread_open_drift(115.0, result)
        assert len(rows) == 2
        assert [(r.key, r.how) for r in result.resolved] == [({"PK": "ACC#1"}, "reread")]
        daemon._persist(result)
        state.touch_reread(rows, 115.0)
        assert state.open_drift_counts() == {SRC: 1}
        assert telemetry.open == {SRC: 1}
        assert telemetry.resolved == [(SRC, "reread", 1)]
        lines = [orjson.loads(x) for x in (tmp_path / "drift.jsonl").read_text().splitlines()]
        # The outbox emits the two (not yet emitted) drift records first, then the resolution.
        assert [x.get("event", "drift") for x in lines] == ["drift", "drift", "resolved"]
        assert (lines[2]["how"], lines[2]["key"], lines[2]["lsn"]) == ("reread", {"PK": "ACC#1"}, 10)
        assert daemon._reread_open_drift(118.0, BatchResult()) == []  # bounded: once per interval
    finally:
        state.close()
