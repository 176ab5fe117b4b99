"""Kafka goes down under a running daemon: the metrics say so while /metrics keeps being served.

Before parity_dependency_up, a daemon whose broker was gone kept answering scrapes with nothing
that an alert could fire on (ParityDaemonDown needs a failed scrape). Its own broker here, so
stopping it disturbs no other test.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from tests.conftest import _started, unique
from tests.faults.harness import TelemetryDaemon
from tests.integration.verify_harness import deploy_example, wait_for

pytestmark = pytest.mark.faults


def test_kafka_down_sets_its_dependency_gauge_to_zero_and_back(
    pg: Any, dynamodb: Any, tmp_path: Path
) -> None:
    from parity.devstack.kafka import start_kafka

    broker = start_kafka(tmp_path / "own-kafka")
    _started.append(broker.process)
    try:
        dep = deploy_example("payments", pg=pg, dynamodb=dynamodb, kafka=broker, suffix=unique("dk"),
                             state_dir=tmp_path / "state")
        topics = [dep.config.kafka.topic_for(t.source) for t in dep.config.tables]
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        created = admin.create_topics([NewTopic(t, num_partitions=2, replication_factor=1) for t in topics])
        for future in created.values():
            future.result(30)
        with TelemetryDaemon(dep.config) as runner:
            wait_for(runner.ready, 60, "the daemon to join its group")
            wait_for(lambda: runner.metric("parity_dependency_up", dependency="kafka") == 1, 30, "kafka up")
            assert runner.metric("parity_dependency_up", dependency="postgres") == 1
            assert runner.metric("parity_dependency_up", dependency="dynamodb") == 1
            assigned = len(runner.daemon.source.assigned)
            assert assigned > 0
            # Idle partitions (nothing fetched, no watermark, so no lag) count as assigned too.
            wait_for(lambda: runner.metric("parity_kafka_assigned_partitions") == assigned, 30, "assigned gauge")
            broker.stop()
            stopped = time.monotonic()
            gauge = runner.registry.get_sample_value
            wait_for(lambda: gauge("parity_dependency_up", {"dependency": "kafka"}) == 0, 60, "kafka down")
            down_after = time.monotonic() - stopped
            # The others stay up: the gauge names the dependency that is down.
            assert runner.metric("parity_dependency_up", dependency="postgres") == 1
            assert runner.metric("parity_dependency_up", dependency="dynamodb") == 1
            # The consumer loses its assignment and the loop keeps running: the gauge ParityNotConsuming
            # reads drops to 0 while /metrics is still served.
            wait_for(lambda: gauge("parity_kafka_assigned_partitions") == 0, 60, "no partitions assigned")
            print(f"kafka down seen after {down_after:.1f} s, no partitions after {time.monotonic() - stopped:.1f} s")
            broker.start()
            wait_for(lambda: runner.metric("parity_dependency_up", dependency="kafka") == 1, 60, "kafka back")
    finally:
        broker.stop()
