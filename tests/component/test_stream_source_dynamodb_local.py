"""DynamoStreamSource on DynamoDB Local's Streams with injected failures (DynamoDB Local never
throttles nor expires an iterator on its own): botocore before-call hooks answer chosen calls with
DynamoDB Streams' error codes instead of sending them. Also: the source built from a config."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from botocore.awsrequest import AWSResponse

from parity.adapters.state import StateStore
from parity.adapters.streams import DynamoStreamSource, stream_source
from parity.config_loader import parse_config
from parity.core.errors import DynamoUnavailable
from parity.core.streams import StreamRecord
from tests.conftest import unique

pytestmark = pytest.mark.component

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


class Inject:
    """Answers the next `times` calls with `code` (HTTP `status`), then lets calls through."""

    def __init__(self, code: str, status: int = 400, times: int = 1) -> None:
        self.code, self.status, self.times, self.injected = code, status, times, 0

    def __call__(self, **kwargs: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if self.injected >= self.times:
            return None
        self.injected += 1
        response = AWSResponse("http://injected", self.status, {}, None)  # type: ignore[no-untyped-call]
        return response, {"Error": {"Code": self.code, "Message": "injected by the test"},
                          "ResponseMetadata": {"HTTPStatusCode": self.status}}


@pytest.fixture
def table(dynamodb: Any) -> tuple[Any, Any, str]:
    import boto3

    from parity.devstack.dynamodb import CREDENTIALS

    client = dynamodb.client()
    streams = boto3.client("dynamodbstreams", endpoint_url=dynamodb.endpoint, **CREDENTIALS)
    name = unique("StreamFaults")
    client.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    return client, streams, name


def _put(client: Any, table: str, first: int, n: int) -> None:
    for i in range(first, first + n):
        client.put_item(TableName=table, Item={"PK": {"S": f"k{i:03d}"}, "n": {"N": str(i)}})


def _drain(source: DynamoStreamSource, n: int, timeout_s: float = 30) -> list[StreamRecord]:
    got: list[StreamRecord] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < deadline:
        got.extend(source.poll(4, 0.3))  # small batches: several GetRecords
        source.commit(got)
    got.extend(source.poll(100, 0.3))
    return got


def test_expired_iterators_and_throttling_lose_and_repeat_nothing(table: tuple[Any, Any, str],
                                                                  tmp_path: Path) -> None:
    client, streams, name = table
    state = StateStore(tmp_path / "s.db")
    source = DynamoStreamSource(streams, client, state, [name], lease_table=None,
                                min_read_interval_s=0.02, max_idle_interval_s=0.1)
    try:
        _put(client, name, 0, 6)
        first = _drain(source, 6)
        expired, throttled = Inject("ExpiredIteratorException", times=2), Inject("LimitExceededException", times=2)
        streams.meta.events.register("before-call.dynamodb-streams.GetRecords", expired)
        _put(client, name, 6, 6)
        second = _drain(source, 6)
        streams.meta.events.unregister("before-call.dynamodb-streams.GetRecords", expired)
        streams.meta.events.register("before-call.dynamodb-streams.GetRecords", throttled)
        _put(client, name, 12, 6)
        third = _drain(source, 6)
        got = first + second + third
        assert [r.keys["PK"] for r in got] == [f"k{i:03d}" for i in range(18)]
        assert source.counts["expired_iterators"] == 2 and source.counts["throttled"] == 2
        assert expired.injected == 2 and throttled.injected == 2
    finally:
        source.close()
        state.close()


def test_streams_unreachable_is_dynamo_unavailable_and_reading_resumes_after(table: tuple[Any, Any, str],
                                                                             tmp_path: Path) -> None:
    client, streams, name = table
    state = StateStore(tmp_path / "s.db")
    source = DynamoStreamSource(streams, client, state, [name], lease_table=None,
                                min_read_interval_s=0.02, max_idle_interval_s=0.1)
    source.streams.base_delay_s = source.streams.max_delay_s = 0.01  # retries fast, still all 8
    try:
        _put(client, name, 0, 3)
        got = _drain(source, 3)
        outage = Inject("InternalServerError", status=500, times=8)
        streams.meta.events.register("before-call.dynamodb-streams.GetRecords", outage)
        _put(client, name, 3, 3)
        with pytest.raises(DynamoUnavailable, match="GetRecords"):
            for _ in range(50):
                source.poll(100, 0.2)
        assert outage.injected == 8
        got += _drain(source, 3)
        assert [r.keys["PK"] for r in got] == [f"k{i:03d}" for i in range(6)]
    finally:
        source.close()
        state.close()


def test_a_source_built_from_the_config_reads_with_leases(dynamodb: Any, table: tuple[Any, Any, str],
                                                          tmp_path: Path) -> None:
    client, _, name = table
    data = yaml.safe_load((EXAMPLES / "payments.yaml").read_text())
    data["dynamodb"] = {"endpoint": dynamodb.endpoint}
    data["streams"] = {"lease_table": unique("leases"), "owner_id": "replica-0", "lease_duration_s": 5}
    config = parse_config(data, env={"PARITY_PG_DSN": "postgresql://p@localhost/app",
                                     "PARITY_KAFKA_BOOTSTRAP": "localhost:1"})
    state = StateStore(tmp_path / "s.db")
    source = stream_source(config, state, [name])
    try:
        _put(client, name, 0, 2)
        got = _drain(source, 2)
        assert [r.new_image for r in got] == [{"PK": "k000", "n": 0}, {"PK": "k001", "n": 1}]
        lease = client.scan(TableName=config.streams.lease_table, Limit=10)["Items"]
        assert [(i["owner"]["S"], i["checkpoint"]["S"]) for i in lease] == [("replica-0", got[1].sequence_number)]
    finally:
        source.close()
        state.close()
    released = client.scan(TableName=config.streams.lease_table, Limit=10)["Items"]
    assert "owner" not in released[0]  # close() gave the lease up


def test_a_stream_disabled_and_enabled_again_is_read_to_its_end_then_the_new_one(
        table: tuple[Any, Any, str], tmp_path: Path) -> None:
    """DynamoDB Local closes the shard when its stream is disabled (EndingSequenceNumber set,
    GetRecords ends without NextShardIterator): the one closed shard DynamoDB Local produces."""
    client, streams, name = table
    state = StateStore(tmp_path / "s.db")
    source = DynamoStreamSource(streams, client, state, [name], lease_table=None, describe_interval_s=0.2,
                                min_read_interval_s=0.02, max_idle_interval_s=0.1)
    try:
        _put(client, name, 0, 2)
        got = _drain(source, 2)
        old_arn, old_shard = source.stream_arns[name], got[0].shard_id
        _put(client, name, 2, 2)  # in the old stream, not read yet
        client.update_table(TableName=name, StreamSpecification={"StreamEnabled": False})
        _put(client, name, 4, 1)  # while no stream is enabled: in no stream
        client.update_table(TableName=name, StreamSpecification={"StreamEnabled": True,
                                                                 "StreamViewType": "NEW_IMAGE"})
        _put(client, name, 5, 2)
        got += _drain(source, 4)
        assert [r.keys["PK"] for r in got] == ["k000", "k001", "k002", "k003", "k005", "k006"]
        assert source.stream_arns[name] != old_arn
        assert {r.shard_id for r in got[4:]}.isdisjoint({old_shard})
        assert state.stream_checkpoints(old_arn)[old_shard] == (got[3].sequence_number, True)  # finished
        assert source.counts["streams_replaced"] == 1 and source.counts["shards_finished"] == 1
    finally:
        source.close()
        state.close()


_VICTIM = """
import sys, time, boto3
from parity.adapters.state import StateStore
from parity.adapters.streams import DynamoStreamSource
endpoint, table, state_path, lease_table = sys.argv[1:5]
kw = dict(endpoint_url=endpoint, aws_access_key_id="local", aws_secret_access_key="local", region_name="us-east-1")
source = DynamoStreamSource(boto3.client("dynamodbstreams", **kw), boto3.client("dynamodb", **kw),
                            StateStore(state_path), [table], owner_id="victim", lease_table=lease_table,
                            lease_duration_s=2.0, min_read_interval_s=0.02, max_idle_interval_s=0.1)
committed = 0
while committed < 3:  # commit three records one by one
    got = source.poll(1, 0.5)
    source.commit(got)
    committed += len(got)
read = []
while len(read) < 2:  # read two more, never committed
    read += source.poll(2 - len(read), 0.5)
print("holding", flush=True)
time.sleep(600)
"""


def test_kill_9_of_a_reader_another_replica_takes_over_from_the_durable_checkpoint(
        dynamodb: Any, table: tuple[Any, Any, str], tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    client, streams, name = table
    lease_table = unique("leases")
    _put(client, name, 0, 6)
    victim = subprocess.Popen([sys.executable, "-c", _VICTIM, dynamodb.endpoint, name, str(tmp_path / "victim.db"),
                               lease_table], stdout=subprocess.PIPE, text=True)
    try:
        assert victim.stdout is not None
        assert victim.stdout.readline().strip() == "holding"
    finally:
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
    lease = client.scan(TableName=lease_table, Limit=10)["Items"]
    assert [i["owner"]["S"] for i in lease] == ["victim"]  # died holding it
    checkpoint = lease[0]["checkpoint"]["S"]
    victim_store = StateStore(tmp_path / "victim.db")
    heir_store = StateStore(tmp_path / "heir.db")
    heir = DynamoStreamSource(streams, client, heir_store, [name], owner_id="heir", lease_table=lease_table,
                              lease_duration_s=2.0, min_read_interval_s=0.02, max_idle_interval_s=0.1)
    arn = _arn(client, name)
    try:
        # the victim's own store agrees with its lease: the checkpoint written before the kill
        assert list(victim_store.stream_checkpoints(arn).values()) == [(checkpoint, False)]
        got = _drain(heir, 3)
        assert [r.keys["PK"] for r in got] == ["k003", "k004", "k005"]  # after the checkpoint: none lost
        assert int(got[0].sequence_number) > int(checkpoint)  # none committed is delivered again
        assert heir.counts["leases_taken"] == 1 and heir_store.stream_checkpoints(arn)
    finally:
        heir.close()
        heir_store.close()
        victim_store.close()


def _arn(client: Any, table: str) -> str:
    return str(client.describe_table(TableName=table)["Table"]["LatestStreamArn"])


def test_lease_writes_are_conditional_on_owner_and_version(dynamodb: Any) -> None:
    from parity.adapters.dynamodb import DynamoStore
    from parity.adapters.leases import LeaseTable

    store = DynamoStore(dynamodb.client(), concurrency=1, raw_reads=False)
    name = unique("leases")
    a, b, c = (LeaseTable(store, name, owner, 5.0) for owner in ("a", "b", "c"))
    try:
        a.ensure_table()
        a.ensure_table()  # present: nothing to do
        assert a.create("S", "shard-1")
        assert not b.create("S", "shard-1")  # exists already
        seen = b.leases("S")["shard-1"]
        assert (seen.owner, seen.version) == ("a", 1)
        assert a.renew("S", "shard-1", checkpoint="000000000000000000007")  # version 2
        assert not b.take("S", seen)  # read at version 1: stale
        seen = b.leases("S")["shard-1"]
        assert (seen.version, seen.checkpoint) == (2, "000000000000000000007")
        assert b.take("S", seen)  # two takers at version 2: one wins
        assert not c.take("S", seen)
        assert not a.renew("S", "shard-1")  # a lost it
        assert not a.release("S", "shard-1")
        assert b.renew("S", "shard-1", finished=True)
        assert b.release("S", "shard-1")
        final = c.leases("S")["shard-1"]
        assert (final.owner, final.finished, final.checkpoint) == (None, True, "000000000000000000007")
    finally:
        store.close()
