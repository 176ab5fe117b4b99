"""Assemble a Daemon from a configuration with real clients (Kafka, DynamoDB, SQLite)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import structlog

from parity.adapters.clients import dynamodb_client, kafka_producer
from parity.adapters.dynamodb import DynamoObserver, DynamoStore
from parity.adapters.kafka import KafkaSource
from parity.adapters.sinks import JsonLinesFile, KafkaTopicSink
from parity.adapters.state import StateStore
from parity.core.config import ParityConfig
from parity.daemon.run import Daemon, Telemetry, state_path
from parity.kafka_auth import client_options


def kafka_source(config: ParityConfig, *, instance_id: str | None = None, **kwargs: Any) -> KafkaSource:
    """The change-topic consumer, with the authentication of `kafka.auth` / `kafka.options`, and
    with `instance_id` as its static group membership unless the options name one."""
    k = config.kafka
    options = client_options(k)
    if instance_id is not None and k.static_membership:
        options.setdefault("group.instance.id", instance_id)
    return KafkaSource(
        bootstrap_servers=k.bootstrap_servers,
        group_id=k.group_id,
        topics=config.topics(),
        options=options,
        session_timeout_ms=k.session_timeout_ms,
        **kwargs,
    )


INSTANCE_FACT = "kafka_group_instance_id"

log = structlog.get_logger("parity.daemon")


def member_instance_id(state: StateStore) -> str:
    """This replica's `group.instance.id`: made on its first start and kept in its state store, so
    it is the same after any restart and differs between replicas (each has its own state)."""
    known = state.facts().get(INSTANCE_FACT)
    if isinstance(known, str) and known:
        return known
    made = f"parity-{uuid.uuid4().hex[:16]}"
    state.set_fact(INSTANCE_FACT, made)
    return made


def build_daemon(config: ParityConfig, *, telemetry: Telemetry | None = None) -> Daemon:
    k = config.kafka
    state = StateStore(state_path(config))
    dynamo = DynamoStore(
        dynamodb_client(config.dynamodb),
        concurrency=config.daemon.dynamo_concurrency,
        write_concurrency=config.shadow_write_width,
        observer=telemetry if isinstance(telemetry, DynamoObserver) else None,
    )
    if config.shadow_write_width < config.daemon.shadow_write_concurrency and any(
        t.mode == "shadow" and t.shadow_writes == "single" for t in config.tables
    ):
        # Only the pool was set smaller (an explicit shadow_write_concurrency above it is a config error).
        log.info(
            "daemon.shadow_write_concurrency capped to dynamodb.max_pool_connections",
            shadow_write_concurrency=config.daemon.shadow_write_concurrency,
            max_pool_connections=config.dynamodb.max_pool_connections,
            used=config.shadow_write_width,
        )
    source = kafka_source(config, instance_id=member_instance_id(state) if k.static_membership else None)
    producer = kafka_producer(k)
    shadow = None
    if any(t.mode == "shadow" for t in config.tables):
        from parity.daemon.shadow import ShadowApplier

        shadow = ShadowApplier(config, dynamo, state)
    drift_file = JsonLinesFile(Path(config.daemon.drift_log)) if config.daemon.drift_log else None
    return Daemon(
        config,
        source=source,
        dynamo=dynamo,
        state=state,
        dead_letters=KafkaTopicSink(producer, k.dead_letter_topic),
        drift_topic=KafkaTopicSink(producer, k.drift_topic) if k.drift_topic else None,
        drift_file=drift_file,
        telemetry=telemetry,
        shadow=shadow,
    )
