"""Readiness for rolling updates: a replica that joined the consumer group but owns no partition
(more replicas than partitions) is ready; before it joins it is not. Real broker (tansu)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from parity.adapters.kafka import KafkaSource
from tests.conftest import unique

pytestmark = pytest.mark.component


def test_a_member_with_zero_partitions_has_joined(kafka: Any) -> None:
    topic = unique("ready")
    kafka.create_topics([topic], partitions=1)
    group = unique("group")
    a = KafkaSource(bootstrap_servers=kafka.bootstrap, group_id=group, topics=[topic], session_timeout_ms=6000)
    b = KafkaSource(bootstrap_servers=kafka.bootstrap, group_id=group, topics=[topic], session_timeout_ms=6000)
    try:
        assert not a.joined and not b.joined
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            a.poll_batch(10, 0.2)
            b.poll_batch(10, 0.2)
            if a.joined and b.joined and len(a.assigned) + len(b.assigned) == 1:
                break
        assert a.joined and b.joined, (a.assigned, b.assigned)
        assert sorted([len(a.assigned), len(b.assigned)]) == [0, 1]
    finally:
        a.close()
        b.close()
