"""Building real clients from configuration: the one place that does. Adapters receive them."""

from __future__ import annotations

from typing import Any

from parity.core.config import DynamoConfig, KafkaConfig
from parity.kafka_auth import client_options


def dynamodb_client(cfg: DynamoConfig) -> Any:
    import boto3
    from botocore.config import Config

    # parity retries throttling itself (with jitter, counted in metrics); botocore's own retries
    # would multiply the attempts and hide throttles from the metrics.
    botocfg = Config(
        region_name=cfg.region,
        retries={"max_attempts": 1, "mode": "standard"},
        max_pool_connections=cfg.max_pool_connections,
        connect_timeout=cfg.timeout_s,
        read_timeout=cfg.timeout_s,
        tcp_keepalive=True,
    )
    return boto3.session.Session().client("dynamodb", endpoint_url=cfg.endpoint or None, config=botocfg)


def kafka_producer(cfg: KafkaConfig) -> Any:
    from confluent_kafka import Producer

    return Producer(
        {
            "bootstrap.servers": cfg.bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "partitioner": "murmur2_random",
            **client_options(cfg),
        }
    )
