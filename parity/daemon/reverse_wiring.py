"""Assemble the reverse loop (`parity.daemon.reverse.ReverseDaemon`) with real clients: the
DynamoDB Streams reader of the reverse tables' DynamoDB tables, consistent DynamoDB reads, and the
Postgres rows (the rollback copy)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from parity.adapters.clients import dynamodb_client
from parity.adapters.dynamodb import DynamoObserver, DynamoStore
from parity.adapters.ports import StreamSource
from parity.adapters.state import StateStore
from parity.adapters.streams import DynamoStreamSource
from parity.core.config import DynamoConfig, ParityConfig
from parity.daemon.reverse import ReverseDaemon, reverse_tables
from parity.daemon.reverse_rows import PostgresRows
from parity.daemon.run import Telemetry


def streams_client(cfg: DynamoConfig) -> Any:
    """A boto3 `dynamodbstreams` client for the same endpoint and region as the DynamoDB client."""
    import boto3
    from botocore.config import Config

    botocfg = Config(
        region_name=cfg.region,
        retries={"max_attempts": 1, "mode": "standard"},
        connect_timeout=cfg.timeout_s,
        read_timeout=cfg.timeout_s,
        tcp_keepalive=True,
    )
    return boto3.session.Session().client("dynamodbstreams", endpoint_url=cfg.endpoint or None, config=botocfg)


def stream_source(config: ParityConfig, state: StateStore, **kwargs: Any) -> DynamoStreamSource:
    """The DynamoDB Streams of the DynamoDB tables that reverse tables map to."""
    s = config.daemon.streams
    targets = sorted({t.target for t in reverse_tables(config)})
    options: dict[str, Any] = {
        "owner_id": s.owner_id,
        "lease_table": s.lease_table,
        "lease_duration_s": s.lease_duration_s,
        "start_position": s.start_position,
        "describe_interval_s": s.describe_interval_s,
        "min_read_interval_s": s.min_read_interval_s,
        **kwargs,
    }
    return DynamoStreamSource(
        streams_client(config.dynamodb), dynamodb_client(config.dynamodb), state, targets, **options
    )


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
        source=source if source is not None else stream_source(config, state),
        dynamo=dynamo,
        rows=PostgresRows(config.postgres, statement_timeout_s=config.reconcile.statement_timeout_s),
        state=state,
        telemetry=telemetry,
        emit=emit,
    )
