"""`parity replay --dlq` logic with the in-memory DynamoDB fake and a real (SQLite) state store:
each dead letter ends in one named outcome, and replaying twice never counts a record twice."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from parity.adapters.kafka import Record
from parity.adapters.state import StateStore
from parity.daemon.batch import DeadLetter
from parity.daemon.replay import REPLAYED_FACT, DeadLetterRef, Replayer, summary
from tests import debezium
from tests.fakes import FakeDynamoStore
from tests.unit.mapping_helpers import config, table_spec

pytestmark = pytest.mark.unit

TOPIC = "cdc.public.t"


def _record(offset: int, id_: int, owner: str) -> Record:
    src = debezium.source_block("t", lsn=100 + offset, ts_ms=1_000)
    value = debezium.value(debezium.row_change("c", {"id": id_, "owner": owner}, src))
    return Record(TOPIC, 0, offset, debezium.key({"id": id_}), value, 1_000)


def _letter(rec: Record, reason: str = "unmappable: column 'owner' ...") -> DeadLetterRef:
    # Through the dead-letter topic's own message format.
    return DeadLetterRef.parse(DeadLetter(rec, reason, "public.t", "mapping").to_json())


class Stack:
    def __init__(self, tmp_path: Path, **table: Any) -> None:
        self.config = config(table_spec({"owner": {"name": "Owner"}}, **table))
        self.store = FakeDynamoStore()
        self.store.create_table("T", ["PK"])
        self.state = StateStore(tmp_path / "state.db")
        self.kafka: dict[tuple[str, int, int], Record] = {}

    def replayer(self) -> Replayer:
        clock = [10_000.0]

        def sleep(seconds: float) -> None:
            clock[0] += seconds

        return Replayer(self.config, self.store, self.state, clock=lambda: clock[0], sleep=sleep,
                        settle_timeout_s=60)

    def fetch(self, topic: str, partition: int, offset: int) -> Record | None:
        return self.kafka.get((topic, partition, offset))


def test_each_dead_letter_ends_in_its_new_outcome_and_a_second_replay_counts_none_again(tmp_path: Path) -> None:
    s = Stack(tmp_path)
    good, drifted, gone = _record(3, 1, "ada"), _record(4, 2, "bob"), _record(5, 3, "cy")
    s.kafka.update({(r.topic, r.partition, r.offset): r for r in (good, drifted)})  # offset 5: retention
    s.store.put("T", {"PK": "T#1", "id": Decimal(1), "Owner": "ada"})
    s.store.put("T", {"PK": "T#2", "id": Decimal(2), "Owner": "eve"})
    malformed = DeadLetterRef.parse(b'{"reason": "x"}')
    letters = [_letter(good), _letter(drifted), _letter(gone), malformed]

    first = s.replayer().run(letters, s.fetch)
    assert [(r.letter.offset, r.outcome, r.table) for r in first] == [
        (3, "match", "public.t"), (4, "drift", "public.t"), (5, "source_gone", None), (None, "malformed", None)]
    assert first[1].drift == [{"kind": "value_mismatch", "attributes": ["Owner"]}]  # names, never values
    assert set(s.state.facts()[REPLAYED_FACT]) == {f"{TOPIC}[0]@3", f"{TOPIC}[0]@4", f"{TOPIC}[0]@5"}

    second = s.replayer().run(letters, s.fetch)
    assert summary(second) == {"already_replayed": 3, "malformed": 1}
    again = s.replayer().run(letters[:1], s.fetch, again=True)
    assert [r.outcome for r in again] == ["match"]
    assert s.state.outcome_counts() == {}  # the daemon's counters are never touched
    from parity.daemon.status import collect_status

    shown = collect_status(s.config, s.state, now=10_000.0)
    assert shown["dlq_replayed"] == {"drift": 1, "match": 1, "source_gone": 1}
    assert shown["totals"]["consumed"] == 0


def test_a_record_that_still_cannot_be_mapped_is_a_dead_letter_again_with_its_reason(tmp_path: Path) -> None:
    s = Stack(tmp_path)
    bad = Record(TOPIC, 0, 7, debezium.key({"id": 9}), b"{not json", 1_000)
    s.kafka[(TOPIC, 0, 7)] = bad
    [result] = s.replayer().run([_letter(bad, "undecodable: ...")], s.fetch)
    assert result.outcome == "dead_letter" and result.detail.startswith("undecodable: value is not valid JSON")


def test_a_dead_letter_message_names_the_position_and_never_the_value() -> None:
    rec = Record(TOPIC, 2, 41, b'{"id": 1}', b'{"secret": "TX-1"}', 5)
    raw = DeadLetter(rec, "undecodable: x", "public.t").to_json()
    assert b"TX-1" not in raw
    ref = DeadLetterRef.parse(raw)
    assert (ref.topic, ref.partition, ref.offset, ref.table) == (TOPIC, 2, 41, "public.t")
    assert ref.position == f"{TOPIC}[2]@41"
