"""The DynamoDB Streams of the target tables, read for the reverse direction (a `StreamSource`).

Per table: DescribeTable gives the stream ARN; DescribeStream (paged by ExclusiveStartShardId,
described again every `describe_interval_s`) gives its shards; `parity.core.shards` decides which
are readable (parents finished first); a lease (parity.adapters.leases) says this replica reads
the shard; GetShardIterator opens it after its checkpoint; GetRecords reads it, paced per shard.

Positions: `read_upto` is the last record handed out by `poll` (memory only), the checkpoint the
last record `commit`ted (state store, and the lease item so another replica can take over). A
shard is finished once GetRecords returned no NextShardIterator and its last record is
committed; then it is marked finished durably, its lease released, and its children readable.

Errors: throttling, 5xx and transport errors are retried by `DynamoStore.call` and raised as
`DynamoUnavailable` once its attempts run out. An expired iterator is reopened after the last
record read; a position or shard trimmed away (past the 24 h retention) is counted in `counts`
and reading goes on from what is left.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from parity.adapters.dynamodb import DynamoObserver, DynamoStore
from parity.adapters.leases import LeaseTable
from parity.adapters.state import StateStore
from parity.core.config import ParityConfig
from parity.core.errors import ConfigError, DynamoUnavailable
from parity.core.leases import LeaseView, LeaseWatch, fair_share, lease_action, renewal_due, still_held
from parity.core.shards import (
    Shard,
    StartPosition,
    finished_by_checkpoint,
    higher,
    highest_per_shard,
    iterator_start,
    readable_shards,
    shard_from_description,
    skipped_at_start,
)
from parity.core.streams import StreamEventName, StreamRecord
from parity.core.values import item_from_wire

log = logging.getLogger(__name__)

GET_RECORDS_LIMIT = 1000  # DynamoDB Streams' maximum per GetRecords
_EVENT_NAMES: tuple[StreamEventName, ...] = ("INSERT", "MODIFY", "REMOVE")


@dataclass
class _Reader:
    """A shard this replica reads now (holds the lease of, when leases are on)."""

    stream: str
    table: str
    shard: Shard
    checkpoint: str | None
    iterator: str | None = None
    read_upto: str | None = None
    end_reached: bool = False
    next_read_at: float = 0.0
    idle_reads: int = 0
    newest_s: float | None = None  # ApproximateCreationDateTime of the newest record read
    caught_up: bool = False
    last_renewed: float = 0.0
    from_trim_horizon: bool = False  # the checkpoint was trimmed away: reopen at the oldest record
    gone: bool = False  # the shard is past retention: finished whatever was committed of it


class DynamoStreamSource:
    """Reads the DynamoDB Streams of `tables` (each must have its stream enabled).

    `streams_client` is a boto3 `dynamodbstreams` client, `dynamodb_client` a boto3 `dynamodb`
    client (DescribeTable, and the lease table), both for the same endpoint and region. With
    `lease_table=None` there are no leases: this replica reads every shard (one replica only).

    `poll`, `commit` and `close` belong to one thread (the loop's); `lag_s`, `held` and `counts`
    may be read from another (metrics, status)."""

    def __init__(
        self,
        streams_client: Any,
        dynamodb_client: Any,
        state: StateStore,
        tables: Sequence[str],
        *,
        owner_id: str | None = None,
        lease_table: str | None = "parity-stream-leases",
        lease_duration_s: float = 20.0,
        start_position: StartPosition = "TRIM_HORIZON",
        describe_interval_s: float = 10.0,
        min_read_interval_s: float = 0.2,
        max_idle_interval_s: float = 1.0,
        observer: DynamoObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not tables:
            raise ValueError("DynamoStreamSource needs at least one table")
        if start_position not in ("TRIM_HORIZON", "LATEST"):
            raise ValueError(f"start_position must be TRIM_HORIZON or LATEST, got {start_position!r}")
        self.tables = tuple(tables)
        self.owner_id = owner_id or f"parity-{uuid.uuid4().hex[:12]}"
        self.state = state
        self.start_position: StartPosition = start_position
        self.describe_interval_s = describe_interval_s
        self.min_read_interval_s = min_read_interval_s
        self.max_idle_interval_s = max(max_idle_interval_s, min_read_interval_s)
        self._clock = clock
        self._wall = wall
        self._sleep = sleep
        self.streams = DynamoStore(streams_client, concurrency=1, observer=observer, raw_reads=False)
        self.dynamodb = DynamoStore(dynamodb_client, concurrency=1, observer=observer, raw_reads=False)
        self.lease_duration_s = lease_duration_s
        self.leases: LeaseTable | None = None
        self._watch = LeaseWatch(lease_duration_s)
        if lease_table is not None:
            self.leases = LeaseTable(self.dynamodb, lease_table, self.owner_id, lease_duration_s,
                                     wall=wall, sleep=sleep)
        # Named, counted events of the stream (for logs and metrics): records read, iterators
        # expired, positions and shards trimmed away, shards finished, leases won and lost.
        self.counts: Counter[str] = Counter()
        self._started = False
        self._arns: dict[str, str] = {}  # table -> its current stream's ARN
        self._streams: dict[str, list[str]] = {}  # table -> stream ARNs being read, oldest first
        self._table_of: dict[str, str] = {}  # stream ARN -> table
        self._stream_of: dict[str, str] = {}  # shard id -> stream ARN
        self._disabled: set[str] = set()  # tables whose stream is disabled now
        self._skip_checked: set[str] = set()  # streams whose closed history LATEST has skipped (or not)
        self._shards: dict[str, list[Shard]] = {}  # stream -> shards as last described
        self._finished: dict[str, set[str]] = {}
        self._fresh: dict[str, bool] = {}
        self._readers: dict[tuple[str, str], _Reader] = {}
        self._next_describe = 0.0
        self._next_leases = 0.0
        self._closed = False

    # -- the port --------------------------------------------------------------------------------

    def poll(self, max_records: int, timeout_s: float) -> list[StreamRecord]:
        """Records of the shards held, each shard in order, at most `max_records`; waits up to
        `timeout_s` for the first (an empty list when nothing came)."""
        if self._closed:
            raise RuntimeError("poll on a closed DynamoStreamSource")
        deadline = self._clock() + timeout_s
        while True:
            self._maintain()
            out: list[StreamRecord] = []
            now = self._clock()
            for reader in sorted(self._readers.values(), key=lambda r: r.next_read_at):
                if len(out) >= max_records:
                    break
                if reader.end_reached or reader.next_read_at > now:
                    continue
                out.extend(self._read(reader, max_records - len(out)))
            if out:
                return out
            now = self._clock()
            if now >= deadline:
                return out
            waits = [r.next_read_at for r in self._readers.values() if not r.end_reached]
            waits.append(self._next_describe)
            if self.leases is not None:
                waits.append(self._next_leases)
            wake = min([deadline, *waits])
            self._sleep(min(max(wake - now, 0.005), self.max_idle_interval_s))

    def commit(self, records: Sequence[StreamRecord]) -> None:
        """Checkpoint per shard the highest sequence number of `records`, durably (state store,
        then the lease item). Records of a shard no longer held are still checkpointed locally."""
        by_stream: dict[str, dict[str, str]] = {}
        for shard_id, seq in highest_per_shard(records).items():
            stream = self._stream_of.get(shard_id)
            if stream is None:
                raise ValueError(f"commit of records of shard {shard_id!r}, which this source never read")
            by_stream.setdefault(stream, {})[shard_id] = seq
        now = self._wall()
        for stream, positions in by_stream.items():
            self.state.commit_stream_positions(stream, positions, now)
            self._fresh[stream] = False
            for shard_id, seq in positions.items():
                reader = self._readers.get((stream, shard_id))
                if reader is None:
                    continue
                reader.checkpoint = higher(reader.checkpoint, seq)
                if self.leases is not None and not self._renew(reader, checkpoint=reader.checkpoint):
                    self._lose(reader)
        self._finish_done()

    def lag_s(self) -> dict[str, float]:
        """Per shard held and read at least once: 0 when its last read found nothing new, else
        seconds since the newest record read was written (DynamoDB Local rounds that time down
        to the minute, so its lag reads high there)."""
        now = self._wall()
        out: dict[str, float] = {}
        for reader in list(self._readers.values()):  # a copy: a metrics thread may ask mid-poll
            if reader.caught_up or reader.end_reached:
                out[reader.shard.shard_id] = 0.0
            elif reader.newest_s is not None:
                out[reader.shard.shard_id] = max(0.0, now - reader.newest_s)
        return out

    def close(self) -> None:
        """Release every lease held (best effort: one not released expires after its duration)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.leases is not None:
                for reader in list(self._readers.values()):
                    try:
                        self.leases.release(reader.stream, reader.shard.shard_id)
                    except Exception as exc:  # expires by itself; never hide close's other work
                        log.warning("stream lease of shard %s not released: %s", reader.shard.shard_id, exc)
            self._readers.clear()
        finally:
            self.streams.close()
            self.dynamodb.close()

    # -- what else callers may want ----------------------------------------------------------------

    @property
    def stream_arns(self) -> dict[str, str]:
        """Table -> stream ARN, once the first poll found them."""
        return dict(self._arns)

    @property
    def held(self) -> list[str]:
        """The shards this replica reads now."""
        return sorted(shard for _, shard in list(self._readers))

    # -- discovery, leases, finishing -------------------------------------------------------------

    def _start(self) -> None:
        for table in self.tables:
            arn = self._latest_stream(table)
            if arn is None:
                raise ConfigError(
                    f"table {table} has no DynamoDB Stream enabled (the reverse direction needs one with "
                    "StreamViewType NEW_AND_OLD_IMAGES or NEW_IMAGE)", path="tables"
                )
            self._follow(table, arn)
        if self.leases is not None:
            self.leases.ensure_table()
        self._started = True

    def _latest_stream(self, table: str) -> str | None:
        desc = self.dynamodb.call("DescribeTable", TableName=table)["Table"]
        arn = desc.get("LatestStreamArn")
        enabled = (desc.get("StreamSpecification") or {}).get("StreamEnabled", False)
        return str(arn) if arn and enabled else None

    def _follow(self, table: str, arn: str) -> None:
        self._arns[table] = arn
        self._streams.setdefault(table, []).append(arn)
        self._table_of[arn] = table

    def _check_tables(self) -> None:
        """A stream disabled and enabled again is a new stream (a new ARN): the old one is read to
        its end (its shards are closed), then the new one. Changes made while no stream was
        enabled are in neither."""
        for table in self.tables:
            arn = self._latest_stream(table)
            if arn is None:
                if table not in self._disabled:
                    log.warning("the DynamoDB Stream of table %s is disabled: its changes are not seen", table)
                    self._disabled.add(table)
                    self.counts["streams_disabled"] += 1
                continue
            self._disabled.discard(table)
            if arn != self._arns.get(table):
                log.warning("table %s has a new DynamoDB Stream %s: reading it after the old one's end", table, arn)
                self.counts["streams_replaced"] += 1
                self._follow(table, arn)
                # Every record of the new stream is news, whatever start_position says.
                stored = self.state.stream_checkpoints(arn)
                self._finished[arn] = {shard for shard, (_, done) in stored.items() if done}
                self._fresh[arn] = False

    def _maintain(self) -> None:
        if not self._started:
            self._start()
        now = self._clock()
        if now >= self._next_describe:
            if self._next_describe:  # not at start: _start has just described the tables
                self._check_tables()
            for table, arns in self._streams.items():
                for arn in list(arns):
                    self._describe(table, arn)
            self._next_describe = now + self.describe_interval_s
            self._claim()
        elif self.leases is not None and now >= self._next_leases:
            self._claim()
        self._finish_done()

    def _describe(self, table: str, stream: str) -> None:
        shards: list[Shard] = []
        kwargs: dict[str, Any] = {"StreamArn": stream}
        try:
            while True:
                resp = self.streams.call("DescribeStream", **kwargs)["StreamDescription"]
                shards.extend(shard_from_description(s) for s in resp.get("Shards", []))
                last = resp.get("LastEvaluatedShardId")
                if not last:
                    break
                kwargs["ExclusiveStartShardId"] = last
        except DynamoUnavailable:
            raise
        except Exception as exc:
            if _code(exc) != "ResourceNotFoundException" or stream == self._arns.get(table):
                raise
            # An old stream of the table, past its retention: nothing of it can be read any more.
            self.counts["streams_gone"] += 1
            self._drop_stream(table, stream)
            return
        self._shards[stream] = shards
        for shard in shards:
            self._stream_of[shard.shard_id] = stream
        if stream not in self._finished:
            stored = self.state.stream_checkpoints(stream)
            self._finished[stream] = {s for s, (_, done) in stored.items() if done}
            self._fresh[stream] = not stored
        for shard in shards:
            reader = self._readers.get((stream, shard.shard_id))
            if reader is not None:
                reader.shard = shard  # an open shard read so far may be closed now
        if stream != self._arns.get(table) and all(s.shard_id in self._finished[stream] for s in shards):
            self._drop_stream(table, stream)

    def _drop_stream(self, table: str, stream: str) -> None:
        """Stop following a replaced stream (every shard finished, or the stream gone)."""
        self._streams[table].remove(stream)
        self._shards.pop(stream, None)
        for arn, shard_id in list(self._readers):
            if arn == stream:
                self._readers.pop((arn, shard_id))
                if self.leases is not None:
                    self.leases.release(arn, shard_id)

    def _claim(self) -> None:
        """Renew the leases held, and take readable shards up to this replica's share."""
        now = self._clock()
        for stream, shards in self._shards.items():
            table = self._table_of[stream]
            if self._streams[table][0] != stream:
                continue  # a newer stream of the table waits for the older one's end
            local = self.state.stream_checkpoints(stream)
            leases: dict[str, LeaseView] = self.leases.leases(stream) if self.leases is not None else {}
            finished = self._finished[stream]
            finished.update(s for s, lease in leases.items() if lease.finished)
            if any(lease.checkpoint is not None or lease.finished for lease in leases.values()):
                self._fresh[stream] = False
            if stream not in self._skip_checked:
                # Once, at the first claim: a shard closing later was being read (from LATEST) and
                # must be read to its end before its children, like any other.
                self._skip_checked.add(stream)
                finished.update(skipped_at_start(shards, self.start_position, self._fresh[stream]))
            for shard in shards:  # closed and already committed to its end by someone
                cp = higher(local.get(shard.shard_id, (None, False))[0],
                            leases[shard.shard_id].checkpoint if shard.shard_id in leases else None)
                if shard.shard_id not in finished and (stream, shard.shard_id) not in self._readers \
                        and finished_by_checkpoint(shard, cp):
                    finished.add(shard.shard_id)
            held = [r for r in self._readers.values() if r.stream == stream]
            if self.leases is not None:
                for reader in held:
                    if renewal_due(reader.last_renewed, now, self.lease_duration_s) \
                            and not self._renew(reader):
                        self._lose(reader)
            readable = readable_shards(shards, finished)
            want = [s for s in readable if (stream, s.shard_id) not in self._readers]
            if not want:
                continue
            if self.leases is None:
                for shard in want:
                    self._open_reader(stream, table, shard, local.get(shard.shard_id, (None, False))[0], now)
                continue
            live = {self.leases.owner}
            for lease in leases.values():
                if lease.owner is not None and not lease.finished and not self._watch.expired(lease, now):
                    live.add(lease.owner)
            share = fair_share(len(readable), len(live))
            mine = sum(1 for r in self._readers.values() if r.stream == stream)
            for shard in want:
                if mine >= share:
                    break
                found = leases.get(shard.shard_id)
                action = lease_action(found, self.leases.owner, found is not None and self._watch.expired(found, now))
                if action == "wait":
                    continue
                ok = (self.leases.create(stream, shard.shard_id) if action == "create" or found is None
                      else self.leases.take(stream, found))
                if not ok:
                    continue
                self.counts["leases_taken"] += 1
                self._watch.forget(shard.shard_id)
                cp = higher(local.get(shard.shard_id, (None, False))[0], found.checkpoint if found else None)
                self._open_reader(stream, table, shard, cp, now)
                mine += 1
        if self.leases is not None:
            self._next_leases = now + self.lease_duration_s / 3

    def _open_reader(self, stream: str, table: str, shard: Shard, checkpoint: str | None, now: float) -> None:
        self._readers[(stream, shard.shard_id)] = _Reader(stream, table, shard, checkpoint, last_renewed=now,
                                                          next_read_at=now)

    def _renew(self, reader: _Reader, *, checkpoint: str | None = None, finished: bool = False) -> bool:
        assert self.leases is not None
        ok = self.leases.renew(reader.stream, reader.shard.shard_id, checkpoint, finished)
        if ok:
            reader.last_renewed = self._clock()
        return ok

    def _lose(self, reader: _Reader) -> None:
        """Another replica holds this shard now: stop reading it (its records after our last
        commit are read again by the new owner)."""
        self.counts["leases_lost"] += 1
        log.info("stream lease of shard %s lost to another replica", reader.shard.shard_id)
        self._readers.pop((reader.stream, reader.shard.shard_id), None)

    def _finish_done(self) -> None:
        """Shards read to their end with every record committed: finished, durably; their
        leases released; their children readable at the next claim."""
        now = self._clock()
        done = [r for r in self._readers.values()
                if r.end_reached and (r.gone or r.read_upto is None or int(r.checkpoint or -1) >= int(r.read_upto))]
        for reader in done:
            self.state.finish_stream_shard(reader.stream, reader.shard.shard_id, self._wall())
            if self.leases is not None:
                self._renew(reader, finished=True)
                self.leases.release(reader.stream, reader.shard.shard_id)
            self._finished.setdefault(reader.stream, set()).add(reader.shard.shard_id)
            self._readers.pop((reader.stream, reader.shard.shard_id), None)
            self.counts["shards_finished"] += 1
        if done:
            self._claim()
        if self.leases is not None:
            for reader in list(self._readers.values()):
                if not still_held(reader.last_renewed, now, self.lease_duration_s):
                    self._lose(reader)

    # -- reading -----------------------------------------------------------------------------------

    def _open(self, reader: _Reader) -> str | None:
        """A shard iterator for where `reader` resumes, or None when the shard is gone."""
        start = iterator_start(reader.shard, reader.read_upto, reader.checkpoint, self.start_position,
                               self._fresh.get(reader.stream, False))
        if reader.from_trim_horizon:
            start = iterator_start(reader.shard, None, None, "TRIM_HORIZON", False)
        kwargs: dict[str, Any] = {"StreamArn": reader.stream, "ShardId": reader.shard.shard_id,
                                  "ShardIteratorType": start.kind}
        if start.sequence is not None:
            kwargs["SequenceNumber"] = start.sequence
        try:
            return cast(str | None, self.streams.call("GetShardIterator", **kwargs).get("ShardIterator"))
        except DynamoUnavailable:
            raise
        except Exception as exc:
            code = _code(exc)
            if code == "TrimmedDataAccessException" and not reader.from_trim_horizon:
                # The records after the checkpoint are past retention: lost to us; go on from the oldest left.
                self.counts["trimmed_positions"] += 1
                log.warning("shard %s: position after %s trimmed away; reading on from the oldest record",
                            reader.shard.shard_id, start.sequence)
                reader.from_trim_horizon = True
                return self._open(reader)
            if code in ("ResourceNotFoundException", "TrimmedDataAccessException"):
                self.counts["trimmed_shards"] += 1
                log.warning("shard %s is gone from the stream (past retention): taken as finished",
                            reader.shard.shard_id)
                return None
            raise

    def _read(self, reader: _Reader, limit: int) -> list[StreamRecord]:
        now = self._clock()
        if reader.iterator is None:
            reader.iterator = self._open(reader)
            reader.from_trim_horizon = False
            if reader.iterator is None:
                reader.end_reached = reader.gone = True
                return []
        try:
            resp = self.streams.call("GetRecords", ShardIterator=reader.iterator, Limit=min(limit, GET_RECORDS_LIMIT))
        except DynamoUnavailable:
            raise
        except Exception as exc:
            code = _code(exc)
            reader.iterator = None
            if code == "ExpiredIteratorException":
                self.counts["expired_iterators"] += 1
                reader.next_read_at = now
                return []
            if code == "TrimmedDataAccessException":
                self.counts["trimmed_positions"] += 1
                reader.from_trim_horizon = True
                reader.next_read_at = now
                return []
            if code == "ResourceNotFoundException":
                self.counts["trimmed_shards"] += 1
                reader.end_reached = reader.gone = True
                return []
            if code == "LimitExceededException":  # too many reads of this shard: slow down
                self.counts["throttled"] += 1
                reader.next_read_at = now + self.max_idle_interval_s
                return []
            raise
        records = [_record(reader.table, reader.shard.shard_id, raw) for raw in resp.get("Records", [])]
        reader.iterator = resp.get("NextShardIterator")
        if reader.iterator is None:
            reader.end_reached = True
        if records:
            reader.read_upto = records[-1].sequence_number
            reader.newest_s = records[-1].approximate_creation_s
            reader.caught_up = False
            reader.idle_reads = 0
            reader.next_read_at = now + self.min_read_interval_s
            self.counts["records"] += len(records)
        else:
            reader.caught_up = True
            reader.idle_reads += 1
            # Nothing new: back off, doubling up to the idle interval (DynamoDB Streams allows
            # about five GetRecords per second per shard, shared by every reader of the stream).
            reader.next_read_at = now + min(self.max_idle_interval_s,
                                            self.min_read_interval_s * (2 ** min(reader.idle_reads, 10)))
        return records


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _record(table: str, shard_id: str, raw: dict[str, Any]) -> StreamRecord:
    """A stream record as parity sees it; ValueError naming what is wrong with a malformed one."""
    name = raw.get("eventName")
    if name not in _EVENT_NAMES:
        raise ValueError(f"stream record of table {table} shard {shard_id}: unknown eventName {name!r}")
    body = raw.get("dynamodb") or {}
    seq = body.get("SequenceNumber")
    if not isinstance(seq, str) or not seq.isdigit():
        raise ValueError(f"stream record of table {table} shard {shard_id}: bad SequenceNumber {seq!r}")
    created = body.get("ApproximateCreationDateTime")
    if isinstance(created, dt.datetime):
        created_s = created.timestamp()
    elif isinstance(created, (int, float)):
        created_s = float(created)
    else:
        created_s = 0.0
    new, old = body.get("NewImage"), body.get("OldImage")
    return StreamRecord(
        table=table,
        shard_id=shard_id,
        sequence_number=seq,
        event_name=cast(StreamEventName, name),
        keys=item_from_wire(body.get("Keys") or {}),
        new_image=item_from_wire(new) if new is not None else None,
        old_image=item_from_wire(old) if old is not None else None,
        approximate_creation_s=created_s,
    )


def stream_source(config: ParityConfig, state: StateStore, tables: Sequence[str], *,
                  streams_client: Any = None, dynamodb_client: Any = None,
                  observer: DynamoObserver | None = None) -> DynamoStreamSource:
    """The source for `tables` as `config.streams` and `config.dynamodb` say; clients are built
    from the configuration unless given (tests pass their own)."""
    from parity.adapters.clients import dynamodb_client as make_dynamodb_client
    from parity.adapters.clients import dynamodb_streams_client

    cfg = config.streams
    return DynamoStreamSource(
        streams_client if streams_client is not None else dynamodb_streams_client(config.dynamodb, cfg),
        dynamodb_client if dynamodb_client is not None else make_dynamodb_client(config.dynamodb),
        state,
        tables,
        owner_id=cfg.owner_id,
        lease_table=cfg.lease_table,
        lease_duration_s=cfg.lease_duration_s,
        start_position=cfg.start_position,
        describe_interval_s=cfg.describe_interval_s,
        observer=observer,
    )
