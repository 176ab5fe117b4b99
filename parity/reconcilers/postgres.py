"""Postgres side of a reconcile: hashed partitions read in one consistent snapshot, streamed.

One coordinator transaction (REPEATABLE READ) exports a snapshot with `pg_export_snapshot()`;
every partition reader imports it with `SET TRANSACTION SNAPSHOT`, so all partitions of all
tables see the database at one instant, while the readers run in parallel.

The split: partition i of n holds the rows with `mod(hashtext(ROW(pk)::text) + 2^31, n) = i`.
Why hash and not primary-key ranges: it needs no statistics or sampling, balances exactly for any
key type and skew (ranges from `pg_stats` histograms are uneven for composite and text keys, and
stale right after a bulk load), and its cost is a sequential scan per partition whose filter runs
in C at a fraction of the per-row Python cost of mapping and hashing (measured in BENCHMARKS.md).
The reconciler's own buckets are computed in Python from the DynamoDB key, never in SQL, so the
Postgres split only has to be disjoint and complete.

Rows stream through a server-side cursor in binary format, fetched in batches, so a table is
never loaded into memory. All SQL is composed with `psycopg.sql` identifiers, never by string
formatting of names.
"""

from __future__ import annotations

import threading
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg import sql

from parity.adapters.clients import PostgresSource, connect_postgres
from parity.core.config import ParityConfig, TableMapping, template_fields
from parity.core.digest import MASK, row_hash
from parity.core.errors import ConfigError, MappingError
from parity.core.mapping import ItemMapper
from parity.core.values import Item
from parity.reconcilers.coverage import NUMERIC_TYPE_OIDS, NotCompared, primary_key_json, reason_of
from parity.reconcilers.tally import FAILED, SideTally, SpillWriter, key_bytes, key_fingerprint, key_to_json

FETCH_ROWS = 5000

# (unit rows read so far in this batch, spill offset)
BatchCallback = Callable[[int, int], None]


def columns_read(mapping: TableMapping) -> list[str]:
    """Columns the mapper needs: every non-excluded column and every column of a key or index template."""
    needed = {c for c, r in mapping.columns.items() if not r.exclude}
    for template in [*mapping.keys.values(), *mapping.indexes.values()]:
        needed.update(c for c, _ in template_fields(template))
    needed.update(mapping.primary_key)
    return [c for c in mapping.columns if c in needed]


def partition_query(mapping: TableMapping, part: int, parts: int) -> sql.Composed:
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in columns_read(mapping))
    table = sql.Identifier(mapping.schema, mapping.table)
    query = sql.SQL("SELECT {columns} FROM {table}").format(columns=columns, table=table)
    if parts <= 1:
        return query
    pk = sql.SQL(", ").join(sql.Identifier(c) for c in mapping.primary_key)
    return query + sql.SQL(" WHERE mod(hashtext(ROW({pk})::text)::bigint + 2147483648, {n}) = {i}").format(
        pk=pk, n=sql.Literal(parts), i=sql.Literal(part)
    )


def row_query(mapping: TableMapping) -> sql.Composed:
    """One row by its primary key; parameters are the key columns' texts, typed by the server."""
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in columns_read(mapping))
    table = sql.Identifier(mapping.schema, mapping.table)
    where = sql.SQL(" AND ").join(
        sql.SQL("{c} = {p}").format(c=sql.Identifier(c), p=sql.Placeholder()) for c in mapping.primary_key
    )
    return sql.SQL("SELECT {columns} FROM {table} WHERE {where}").format(columns=columns, table=table, where=where)


def check_mapped_columns(dsn: PostgresSource, config: ParityConfig, mappings: Sequence[TableMapping]) -> None:
    """Refuse to reconcile a table whose mapping names a column it does not have: its SELECT would
    fail on an obscure error, and the attribute would be compared nowhere. Same text as
    `parity config check --live` (the file name is not known here)."""
    from parity.doctor.checks_postgres import live_column_errors

    with connect_postgres(dsn, autocommit=True) as conn:
        errors = live_column_errors(conn, config, "<config>", mappings)
    if errors:
        raise ConfigError("; ".join(errors))


def estimated_rows(dsn: PostgresSource, mappings: Sequence[TableMapping]) -> int:
    """Planner's row estimate (pg_class.reltuples) summed over the tables; 0 when unknown."""
    total = 0
    with connect_postgres(dsn, autocommit=True) as conn:
        for m in mappings:
            row = conn.execute(
                "SELECT c.reltuples::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = %s AND c.relname = %s",
                (m.schema, m.table),
            ).fetchone()
            if row is not None and int(row[0]) < 0:
                # Never analyzed (reltuples = -1): count. A sequential count runs in C, a small
                # fraction of the per-row Python work the run is about to do anyway.
                query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(m.schema, m.table))
                row = conn.execute(query).fetchone()
            total += max(0, int(row[0])) if row else 0
    return total


@contextmanager
def exported_snapshot(dsn: PostgresSource) -> Iterator[str]:
    """A snapshot id valid while the context is open (the exporting transaction stays open)."""
    conn = connect_postgres(dsn, autocommit=False)
    try:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        yield str(row[0])
    finally:
        conn.close()


class PartitionReader:
    """Reads partitions of one source table into records and bucket digests."""

    def __init__(self, dsn: PostgresSource, mapper: ItemMapper, index: int) -> None:
        self.dsn = dsn
        self.mapper = mapper
        self.index = index
        self.names = columns_read(mapper.mapping)

    def read(
        self,
        snapshot: str | None,
        part: int,
        parts: int,
        tally: SideTally,
        lock: threading.Lock,
        writer: SpillWriter,
        *,
        on_batch: BatchCallback | None = None,
    ) -> int:
        query = partition_query(self.mapper.mapping, part, parts)
        rows_read = 0
        with connect_postgres(self.dsn, autocommit=False) as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            if snapshot is not None:
                conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
            with conn.cursor(name=f"parity_reconcile_{part}", binary=True) as cur:
                cur.itersize = FETCH_ROWS
                cur.execute(query)
                while True:
                    batch = cur.fetchmany(FETCH_ROWS)
                    if not batch:
                        break
                    self._batch(batch, tally, lock, writer)
                    rows_read += len(batch)
                    if on_batch is not None:
                        on_batch(len(batch), writer.flush())
            conn.rollback()
        return rows_read

    def _batch(
        self,
        batch: list[tuple[Any, ...]],
        tally: SideTally,
        lock: threading.Lock,
        writer: SpillWriter,
    ) -> None:
        names = self.names
        mapper = self.mapper
        comparable = mapper.plan.comparable
        index = self.index
        write = writer.write
        records: list[tuple[int, int]] = []
        failed: list[bytes] = []
        for values in batch:
            row = dict(zip(names, values, strict=True))
            try:
                item = mapper.item(row)
            except MappingError as exc:
                # A row that cannot become an item is not compared: counted by reason (spilled, so
                # a resumed run counts it too), never fatal for the run. With its key, the
                # drill-down can tell its DynamoDB item apart from drift (reconcile.py).
                payload, failed_key = self._failed(row, exc)
                write(index | FAILED, 0 if failed_key is None else key_fingerprint(failed_key), 0, payload)
                failed.append(payload)
                continue
            key = {n: item[n] for n in mapper.key_attributes}
            fp = key_fingerprint(key)
            h = row_hash(comparable(item))
            write(index, fp, h, key_bytes(key))
            records.append((fp, h))
        with lock:
            for fp, h in records:
                tally.add(index, fp, h)
            for payload in failed:
                tally.add_failed(index, payload)

    def _failed(self, row: Mapping[str, Any], exc: MappingError) -> tuple[bytes, Item | None]:
        try:
            key = self.mapper.key(row)
        except MappingError:
            key = None  # the key itself cannot be rendered: no DynamoDB item can be this row's
        payload = {
            "reason": reason_of(str(exc)),
            "primary_key": primary_key_json(self.mapper.mapping, row),
            "key": key_to_json(key) if key is not None else None,
        }
        return orjson.dumps(payload), key


def numeric_key_columns(dsn: PostgresSource, mapping: TableMapping) -> frozenset[str]:
    """Primary-key columns of a numeric type, so that reports give their values as JSON numbers."""
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in mapping.primary_key)
    query = sql.SQL("SELECT {} FROM {} LIMIT 0").format(columns, sql.Identifier(mapping.schema, mapping.table))
    with connect_postgres(dsn, autocommit=True) as conn:
        cur = conn.execute(query)
        return frozenset(d.name for d in cur.description or () if d.type_code in NUMERIC_TYPE_OIDS)


class RowLookup:
    """Current rows by primary key (outside the snapshot: the recheck wants the newest state)."""

    def __init__(self, dsn: PostgresSource) -> None:
        self.dsn = dsn

    def rows(self, mapping: TableMapping, keys: Sequence[Mapping[str, str]]) -> list[dict[str, Any] | None]:
        names = columns_read(mapping)
        query = row_query(mapping)
        out: list[dict[str, Any] | None] = []
        with connect_postgres(self.dsn, autocommit=True) as conn:
            for key in keys:
                try:
                    row = conn.execute(query, [key[c] for c in mapping.primary_key]).fetchone()
                except psycopg.errors.DataError:
                    row = None  # the key text does not parse as the column type: no such row
                out.append(dict(zip(names, row, strict=True)) if row is not None else None)
        return out


# --- partitions in worker processes ----------------------------------------------------------------
#
# Mapping and hashing a row is pure Python (about as much CPU as botocore's decoding of the same
# item on the DynamoDB side), and both sides run at once: in threads they share one GIL. A
# partition can instead run in a separate process: it needs only picklable inputs (DSN, snapshot
# id, the frozen TableMapping) and returns its digests as bytes, its records being in its spill
# file. Used for large tables, where the ~1 s start of a spawned interpreter is noise.


@dataclass(frozen=True, slots=True)
class PartitionTask:
    dsn: PostgresSource
    snapshot: str | None
    mapping: TableMapping
    index: int
    mappings: int
    part: int
    parts: int
    buckets: int
    spill_path: str


@dataclass(frozen=True, slots=True)
class PartitionResult:
    rows: int
    counts: bytes
    totals: bytes
    offset: int
    not_compared: NotCompared


def read_partition(task: PartitionTask) -> PartitionResult:
    """Read one partition (in whatever process runs this); digests come back as raw arrays."""
    tally = SideTally(task.mappings, task.buckets)
    writer = SpillWriter(Path(task.spill_path))
    try:
        rows = PartitionReader(task.dsn, ItemMapper(task.mapping), task.index).read(
            task.snapshot, task.part, task.parts, tally, threading.Lock(), writer
        )
    finally:
        offset = writer.close()
    return PartitionResult(
        rows, tally.counts[task.index].tobytes(), tally.totals[task.index].tobytes(), offset,
        tally.not_compared[task.index],
    )


def merge_partition(tally: SideTally, index: int, result: PartitionResult) -> None:
    counts, totals = array("Q"), array("Q")
    counts.frombytes(result.counts)
    totals.frombytes(result.totals)
    tally.not_compared[index].merge(result.not_compared)
    c, t = tally.counts[index], tally.totals[index]
    for b, n in enumerate(counts):
        if n:
            c[b] += n
            t[b] = (t[b] + totals[b]) & MASK
