"""Assemble the reverse loop (`parity.daemon.reverse.ReverseDaemon`) with real clients: the
DynamoDB Streams reader of the reverse tables' DynamoDB tables, consistent DynamoDB reads, and the
Postgres rows (the rollback copy)."""

from __future__ import annotations

from collections.abc import Callable

from parity.adapters.clients import dynamodb_client
from parity.adapters.dynamodb import DynamoObserver, DynamoStore
from parity.adapters.ports import StreamSource
from parity.adapters.state import StateStore
from parity.adapters.streams import stream_source
from parity.core.config import ParityConfig
from parity.daemon.reverse import ReverseDaemon, reverse_tables
from parity.daemon.reverse_rows import PostgresRows
from parity.daemon.run import Telemetry


def reverse_source(config: ParityConfig, state: StateStore) -> StreamSource:
    """The DynamoDB Streams of the DynamoDB tables that reverse tables map to (`streams:` settings)."""
    return stream_source(config, state, sorted({t.target for t in reverse_tables(config)}))


def build_reverse(
    config: ParityConfig,
    *,
    state: StateStore,
    telemetry: Telemetry | None = None,
    emit: Callable[[], None] | None = None,
    source: StreamSource | None = None,
) -> ReverseDaemon:
    dynamo = DynamoStore(
        dynamodb_client(config.dynamodb),
        concurrency=config.daemon.dynamo_concurrency,
        observer=telemetry if isinstance(telemetry, DynamoObserver) else None,
    )
    return ReverseDaemon(
        config,
        source=source if source is not None else reverse_source(config, state),
        dynamo=dynamo,
        rows=PostgresRows(config.postgres, statement_timeout_s=config.reconcile.statement_timeout_s),
        state=state,
        telemetry=telemetry,
        emit=emit,
    )
