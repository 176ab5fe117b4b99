"""`parity dev env`: export lines for the running local stack, safe to eval, or exit 1 without it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from parity.devstack.cli import app

pytestmark = pytest.mark.unit

DSN = "postgresql://postgres@127.0.0.1:41234/postgres"


def _recorded_stack(state: Path, *, bridge: bool = True, running: bool = True) -> None:
    state.mkdir(parents=True, exist_ok=True)
    endpoints = {"postgres": {"dsn": DSN, "port": 41234}, "kafka": {"bootstrap": "127.0.0.1:41235"},
                 "dynamodb": {"endpoint": "http://127.0.0.1:41236"}, "state_dir": str(state)}
    if bridge:
        endpoints["bridge"] = {"pid": 1, "topic_prefix": "shop it's", "tables": ["orders"]}
    (state / "stack.json").write_text(json.dumps(endpoints))
    pid = os.getpid() if running else 2**22 + 17  # a PID that does not exist
    for name in ("postgres", "kafka", "dynamodb"):
        (state / f"{name}.pid").write_text(f"{pid}\n")


def test_env_prints_exports_that_eval_into_the_stack_and_dummy_credentials(tmp_path: Path) -> None:
    _recorded_stack(tmp_path / "dev")
    result = CliRunner().invoke(app, ["env", "--state-dir", str(tmp_path / "dev")])
    assert result.exit_code == 0, result.output
    assert all(line.startswith("export ") for line in result.stdout.splitlines())
    names = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "PARITY_PG_DSN",
             "PARITY_KAFKA_BOOTSTRAP", "PARITY_DYNAMODB_ENDPOINT", "PARITY_TOPIC_PREFIX"]
    script = result.stdout + 'printf "%s|" ' + " ".join(f'"${n}"' for n in names)
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True,
                         env={"PATH": os.environ["PATH"]}).stdout
    assert out.split("|")[:-1] == ["local", "local", "us-east-1", DSN, "127.0.0.1:41235",
                                   "http://127.0.0.1:41236", "shop it's"]


def test_env_without_a_bridge_leaves_the_topic_prefix_to_the_config(tmp_path: Path) -> None:
    _recorded_stack(tmp_path / "dev", bridge=False)
    result = CliRunner().invoke(app, ["env", "--state-dir", str(tmp_path / "dev")])
    assert result.exit_code == 0, result.output
    assert "PARITY_TOPIC_PREFIX" not in result.stdout and "PARITY_PG_DSN" in result.stdout


@pytest.mark.parametrize("recorded", [False, True])
def test_env_exits_1_and_prints_nothing_to_eval_when_the_stack_is_down(tmp_path: Path, recorded: bool) -> None:
    if recorded:
        _recorded_stack(tmp_path / "dev", running=False)
    result = CliRunner().invoke(app, ["env", "--state-dir", str(tmp_path / "dev")])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "parity dev up" in result.stderr
