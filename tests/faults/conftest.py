"""Fault tests talk to DynamoDB Local, which accepts any credentials but needs some."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import unique
from tests.faults.harness import FAST_GRACE
from tests.integration.verify_harness import deploy_example

os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture
def payments(pg: Any, kafka: Any, dynamodb: Any, bridge_factory: Any, tmp_path: Path) -> Any:
    """The payments example under unique names on the session's services, with its bridge."""
    dep = deploy_example(
        "payments",
        pg=pg,
        dynamodb=dynamodb,
        kafka=kafka,
        suffix=unique("f"),
        state_dir=tmp_path / "state",
        table_overrides=FAST_GRACE,
    )
    bridge = bridge_factory([dep.config.tables[0].source], topic_prefix=dep.config.kafka.topic_prefix)
    return dep, bridge
