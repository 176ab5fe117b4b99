"""DynamoStreamSource over a multi-shard stream that DynamoDB Local cannot produce.

DynamoDB Local keeps one shard per stream (no split nor rotation seen in our runs; see
docs/reverse.md), so the source's lineage handling (children after committed parents, shards
found by a later DescribeStream, restarts in the middle of a lineage, a parent gone past
retention, an expired iterator, a trimmed position) runs here against a scripted client that
answers in the wire shapes of the dynamodbstreams API (including its error codes). Leases are
off here; tests/contract/test_stream_source_contract.py covers them on DynamoDB Local."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from parity.adapters.state import StateStore
from parity.adapters.streams import DynamoStreamSource
from parity.core.errors import ConfigError
from parity.core.streams import StreamRecord

pytestmark = pytest.mark.unit

ARN = "arn:aws:dynamodb:us-east-1:111122223333:table/T/stream/2026-01-01T00:00:00.000"


def _error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "scripted"}, "ResponseMetadata": {"HTTPStatusCode": 400}},
                       operation)


class ScriptedStreams:
    """Shards with parents and records; DescribeStream pages of 2 shards."""

    def __init__(self) -> None:
        self.shards: dict[str, dict[str, Any]] = {}
        self.seq = 0
        self.gone: set[str] = set()  # described, but GetShardIterator answers ResourceNotFound
        self.trim_horizon: dict[str, int] = {}  # shard -> records before this index are trimmed
        self.expire_next: set[str] = set()  # shards whose next GetRecords finds its iterator expired
        self.calls: list[tuple[str, str]] = []

    def add(self, shard: str, parent: str | None = None) -> None:
        self.shards[shard] = {"parent": parent, "records": [], "closed": False}

    def write(self, shard: str, n: int) -> None:
        for _ in range(n):
            self.seq += 1
            self.shards[shard]["records"].append({
                "eventName": "INSERT",
                "dynamodb": {"Keys": {"PK": {"S": f"k{self.seq}"}},
                             "NewImage": {"PK": {"S": f"k{self.seq}"}, "n": {"N": str(self.seq)}},
                             "SequenceNumber": f"{self.seq:021d}", "ApproximateCreationDateTime": time.time()},
            })

    def close(self, shard: str) -> None:
        self.shards[shard]["closed"] = True

    def describe_stream(self, StreamArn: str, ExclusiveStartShardId: str | None = None) -> dict[str, Any]:
        assert StreamArn == ARN
        ids = list(self.shards)
        start = ids.index(ExclusiveStartShardId) + 1 if ExclusiveStartShardId else 0
        page = ids[start:start + 2]
        out = []
        for sid in page:
            s = self.shards[sid]
            seq_range = {"StartingSequenceNumber": s["records"][0]["dynamodb"]["SequenceNumber"] if s["records"]
                         else f"{self.seq + 1:021d}"}
            if s["closed"]:
                seq_range["EndingSequenceNumber"] = s["records"][-1]["dynamodb"]["SequenceNumber"]
            out.append({"ShardId": sid, "SequenceNumberRange": seq_range,
                        **({"ParentShardId": s["parent"]} if s["parent"] else {})})
        desc: dict[str, Any] = {"StreamArn": ARN, "Shards": out}
        if start + 2 < len(ids):
            desc["LastEvaluatedShardId"] = page[-1]
        return {"StreamDescription": desc}

    def get_shard_iterator(self, StreamArn: str, ShardId: str, ShardIteratorType: str,
                           SequenceNumber: str | None = None) -> dict[str, Any]:
        self.calls.append((ShardId, f"{ShardIteratorType} {SequenceNumber or ''}".strip()))
        if ShardId in self.gone:
            raise _error("ResourceNotFoundException", "GetShardIterator")
        records = self.shards[ShardId]["records"]
        horizon = self.trim_horizon.get(ShardId, 0)
        if ShardIteratorType == "TRIM_HORIZON":
            index = horizon
        elif ShardIteratorType == "LATEST":
            index = len(records)
        else:
            index = sum(1 for r in records if int(r["dynamodb"]["SequenceNumber"]) <= int(SequenceNumber or 0))
            if index < horizon:
                raise _error("TrimmedDataAccessException", "GetShardIterator")
        return {"ShardIterator": f"{ShardId}|{index}"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        shard, index_text = ShardIterator.split("|")
        if shard in self.gone:
            raise _error("ResourceNotFoundException", "GetRecords")
        if shard in self.expire_next:
            self.expire_next.discard(shard)
            raise _error("ExpiredIteratorException", "GetRecords")
        index = int(index_text)
        s = self.shards[shard]
        batch = s["records"][index:index + Limit]
        end = index + len(batch)
        out: dict[str, Any] = {"Records": batch}
        if not (s["closed"] and end >= len(s["records"])):
            out["NextShardIterator"] = f"{shard}|{end}"
        return out


class ScriptedDynamo:
    def __init__(self, stream: bool = True) -> None:
        self.stream = stream

    def describe_table(self, TableName: str) -> dict[str, Any]:
        if not self.stream:
            return {"Table": {"TableName": TableName, "TableStatus": "ACTIVE"}}
        return {"Table": {"TableName": TableName, "LatestStreamArn": ARN,
                          "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}}}


@pytest.fixture
def state(tmp_path: Path) -> Any:
    store = StateStore(tmp_path / "state.db")
    yield store
    store.close()


def _source(streams: ScriptedStreams, state: StateStore, **kwargs: Any) -> DynamoStreamSource:
    return DynamoStreamSource(streams, ScriptedDynamo(), state, ["T"], lease_table=None, describe_interval_s=0.0,
                              min_read_interval_s=0.0, max_idle_interval_s=0.01, **kwargs)


def _poll_all(source: DynamoStreamSource, rounds: int = 5, commit: bool = True) -> list[StreamRecord]:
    out: list[StreamRecord] = []
    for _ in range(rounds):
        got = source.poll(1000, 0.02)
        if commit:
            source.commit(got)
        out.extend(got)
    return out


def _seqs(records: list[StreamRecord]) -> list[int]:
    return [int(r.sequence_number) for r in records]


def _three_generations() -> ScriptedStreams:
    s = ScriptedStreams()
    s.add("root")
    s.write("root", 3)
    s.close("root")
    s.add("left", "root")
    s.add("right", "root")
    s.write("left", 2)
    s.write("right", 2)
    s.close("left")
    s.add("grandchild", "left")
    s.write("grandchild", 2)
    return s


def test_children_come_only_after_their_parent_is_read_and_committed(state: StateStore) -> None:
    streams = _three_generations()
    source = _source(streams, state)
    first = _poll_all(source, commit=False)
    assert {r.shard_id for r in first} == {"root"}  # nothing committed: the children wait
    assert _seqs(first) == [1, 2, 3]
    source.commit(first)
    rest = _poll_all(source, rounds=8)
    by_shard = {s: _seqs([r for r in rest if r.shard_id == s]) for s in ("left", "right", "grandchild")}
    assert by_shard == {"left": [4, 5], "right": [6, 7], "grandchild": [8, 9]}
    assert len(rest) == 6
    # the grandchild came after the whole of its parent
    assert max(i for i, r in enumerate(rest) if r.shard_id == "left") < min(
        i for i, r in enumerate(rest) if r.shard_id == "grandchild")
    assert source.counts["shards_finished"] == 2  # root, left (right and grandchild are open)
    assert set(source.held) == {"right", "grandchild"}
    assert set(state.stream_checkpoints(ARN)) == {"root", "left", "right", "grandchild"}
    assert state.stream_checkpoints(ARN)["left"] == ("000000000000000000005", True)


def test_a_shard_born_after_the_start_is_found_by_a_later_description(state: StateStore) -> None:
    streams = ScriptedStreams()
    streams.add("a")
    streams.write("a", 2)
    source = _source(streams, state)
    assert _seqs(_poll_all(source)) == [1, 2]
    streams.write("a", 1)
    streams.close("a")  # rotated: a closed parent and a new child
    streams.add("b", "a")
    streams.write("b", 2)
    assert _seqs(_poll_all(source)) == [3, 4, 5]
    assert source.held == ["b"]


def test_a_restart_in_the_middle_of_a_lineage(tmp_path: Path) -> None:
    streams = _three_generations()
    store = StateStore(tmp_path / "s.db")
    first = _source(streams, store)
    got = _poll_all(first)  # everything, committed
    left = [r for r in got if r.shard_id == "left"]
    assert len(got) == 9
    first.close()
    # roll `left` back to its first record, as if the second had been read but not committed
    store._db.execute("UPDATE stream_shards SET sequence = ?, finished = 0 WHERE shard = 'left'",
                      (left[0].sequence_number,))
    store._db.execute("UPDATE stream_shards SET sequence = NULL, finished = 0 WHERE shard = 'grandchild'")
    streams.calls.clear()
    second = _source(streams, store)
    again = _poll_all(second, rounds=6)
    assert _seqs(again) == [5, 8, 9]  # left after its checkpoint, then its child; root not re-read
    opened = dict(streams.calls)
    assert "root" not in opened
    assert opened["left"] == f"AFTER_SEQUENCE_NUMBER {left[0].sequence_number}"
    assert opened["right"] == "AFTER_SEQUENCE_NUMBER 000000000000000000007"


def test_a_parent_gone_past_retention_is_counted_and_its_children_read(state: StateStore) -> None:
    streams = _three_generations()
    streams.gone.add("root")
    source = _source(streams, state)
    got = _poll_all(source, rounds=8)
    assert sorted(_seqs(got)) == [4, 5, 6, 7, 8, 9]
    assert source.counts["trimmed_shards"] == 1


def test_an_expired_iterator_is_reopened_after_the_last_record_read(state: StateStore) -> None:
    streams = ScriptedStreams()
    streams.add("a")
    streams.write("a", 2)
    source = _source(streams, state)
    assert _seqs(_poll_all(source, commit=False)) == [1, 2]  # read, not committed
    streams.write("a", 2)
    streams.expire_next.add("a")
    assert _seqs(_poll_all(source, commit=False)) == [3, 4]  # no record twice, none lost
    assert source.counts["expired_iterators"] == 1
    assert streams.calls[-1] == ("a", "AFTER_SEQUENCE_NUMBER 000000000000000000002")


def test_a_checkpoint_trimmed_away_is_counted_and_reading_goes_on_from_the_oldest_left(tmp_path: Path) -> None:
    streams = ScriptedStreams()
    streams.add("a")
    streams.write("a", 2)
    store = StateStore(tmp_path / "s.db")
    first = _source(streams, store)
    assert _seqs(_poll_all(first)) == [1, 2]
    first.close()
    streams.write("a", 4)
    streams.trim_horizon["a"] = 4  # records 3 and 4 expired while parity was down
    second = _source(streams, store)
    assert _seqs(_poll_all(second)) == [5, 6]
    assert second.counts["trimmed_positions"] == 1


def test_latest_on_a_fresh_stream_starts_at_the_tip_and_skips_closed_history(state: StateStore) -> None:
    streams = _three_generations()
    source = _source(streams, state, start_position="LATEST")
    assert _poll_all(source) == []
    streams.write("right", 1)
    assert _seqs(_poll_all(source)) == [10]


def test_a_shard_gone_while_being_read_is_finished_and_its_children_follow(state: StateStore) -> None:
    streams = ScriptedStreams()
    streams.add("a")
    streams.write("a", 3)
    source = _source(streams, state)
    first = source.poll(2, 0.05)  # handed out, never committed
    assert _seqs(first) == [1, 2]
    streams.write("a", 1)
    streams.close("a")
    streams.add("b", "a")
    streams.write("b", 2)
    streams.gone.add("a")  # past retention before the rest of it was read
    rest = _poll_all(source, rounds=6)
    assert _seqs(rest) == [5, 6]
    assert source.counts["trimmed_shards"] == 1


def test_latest_then_a_rotation_reads_the_parent_to_its_end_before_the_child(state: StateStore) -> None:
    streams = ScriptedStreams()
    streams.add("a")
    streams.write("a", 2)  # before parity started: skipped by LATEST
    source = _source(streams, state, start_position="LATEST")
    assert _poll_all(source, rounds=2) == []
    streams.write("a", 1)
    streams.close("a")
    streams.add("b", "a")
    streams.write("b", 1)
    batches = []
    for _ in range(6):
        batches.append(source.poll(100, 0.05))
        source.commit(batches[-1])
    got = [b for b in batches if b]
    assert [_seqs(b) for b in got] == [[3], [4]]  # the parent's tail first, the child after its commit


def test_a_table_without_a_stream_is_a_clear_error(state: StateStore) -> None:
    source = DynamoStreamSource(ScriptedStreams(), ScriptedDynamo(stream=False), state, ["T"], lease_table=None)
    with pytest.raises(ConfigError, match="table T has no DynamoDB Stream enabled"):
        source.poll(10, 0.01)
