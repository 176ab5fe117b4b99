"""Static group membership: a replica's `group.instance.id` is made once, kept in its state store
and handed to the consumer, so a restarted daemon rejoins as the member it was (KIP-345)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from parity.adapters.state import StateStore
from parity.core.config import ParityConfig
from parity.daemon.wiring import kafka_source, member_instance_id

pytestmark = pytest.mark.unit


def config(**kafka: Any) -> ParityConfig:
    return ParityConfig.model_validate({
        "postgres": {"dsn": "postgresql://x@127.0.0.1/db"},
        "kafka": {"bootstrap_servers": "127.0.0.1:1", "topic_prefix": "p", **kafka},
        "tables": [{"source": "public.a", "primary_key": ["id"], "target": "A", "keys": {"PK": "A#{id}"},
                    "columns": {"id": {}}}],
    })


def consumer_conf(cfg: ParityConfig, instance_id: str | None) -> dict[str, Any]:
    seen: list[dict[str, Any]] = []

    class FakeConsumer:
        def __init__(self, conf: dict[str, Any]) -> None:
            seen.append(conf)

        def subscribe(self, *args: Any, **kwargs: Any) -> None:
            pass

    kafka_source(cfg, instance_id=instance_id, consumer_factory=FakeConsumer)
    (conf,) = seen
    return conf


def test_the_instance_id_is_made_once_and_the_same_after_a_restart_but_not_for_another_replica(
    tmp_path: Path,
) -> None:
    first = StateStore(tmp_path / "a" / "state.sqlite")
    made = member_instance_id(first)
    first.close()
    again = StateStore(tmp_path / "a" / "state.sqlite")  # the same replica, restarted
    assert member_instance_id(again) == made
    again.close()
    other = StateStore(tmp_path / "b" / "state.sqlite")  # another replica, its own state
    assert member_instance_id(other) != made
    other.close()


def test_the_consumer_joins_with_the_replica_s_instance_id_by_default() -> None:
    assert config().kafka.static_membership is True
    assert consumer_conf(config(), "parity-0123")["group.instance.id"] == "parity-0123"


def test_an_instance_id_in_the_options_wins_and_static_membership_can_be_turned_off() -> None:
    named = config(options={"group.instance.id": "pod-7"})
    assert consumer_conf(named, "parity-0123")["group.instance.id"] == "pod-7"
    assert "group.instance.id" not in consumer_conf(config(static_membership=False), "parity-0123")
