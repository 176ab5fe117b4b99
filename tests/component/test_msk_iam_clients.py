"""The real confluent-kafka clients built from an msk_iam configuration ask the signer for a token
on their own, before any poll(): the consumer, the drift / dead-letter producer and the doctor's
admin client. The broker address is a closed loopback port; the signer is replaced at its boundary."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from parity.config_loader import parse_config
from parity.core.config import ParityConfig

pytestmark = pytest.mark.component


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config() -> ParityConfig:
    return parse_config({"postgres": {"dsn": "postgresql://x@h/db"},
                         "kafka": {"bootstrap_servers": f"127.0.0.1:{_closed_port()}", "topic_prefix": "cdc",
                                   "auth": {"type": "msk_iam", "region": "eu-west-1"}},
                         "tables": [{"source": "public.items", "primary_key": ["id"], "target": "Items",
                                     "keys": {"PK": "ITEM#{id}"}, "columns": {"id": {}}}]}, env={})


@pytest.fixture
def signed(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

    event = threading.Event()

    def generate_auth_token(region: str, aws_debug_creds: bool = False) -> tuple[str, int]:
        assert region == "eu-west-1"
        event.set()
        return "token", int((time.time() + 900) * 1000)

    monkeypatch.setattr(MSKAuthTokenProvider, "generate_auth_token", generate_auth_token)
    return event


def _producer(cfg: ParityConfig) -> Any:
    from parity.adapters.clients import kafka_producer

    return kafka_producer(cfg.kafka)


def _consumer(cfg: ParityConfig) -> Any:
    from parity.daemon.wiring import kafka_source

    return kafka_source(cfg).consumer


def _admin(cfg: ParityConfig) -> Any:
    from confluent_kafka.admin import AdminClient

    from parity.doctor import _kafka_conf

    return AdminClient(_kafka_conf(cfg))


@pytest.mark.parametrize("build", [_producer, _consumer, _admin], ids=["producer", "consumer", "admin"])
def test_each_client_fetches_a_token_without_poll(build: Callable[[ParityConfig], Any],
                                                  signed: threading.Event) -> None:
    client = build(_config())
    try:
        assert signed.wait(10), "the client never asked the signer for a token"
    finally:
        if hasattr(client, "close"):
            client.close()
