"""Without AWS credentials, against DynamoDB Local: doctor, reconcile and run each say in one line
how to fix it (dummy credentials or `eval "$(parity dev env)"`), never with a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli_output import is_log_record
from tests.conftest import unique

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _no_aws_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(HOME=str(tmp_path), AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_EC2_METADATA_DISABLED="true",
               PYTHONPATH=str(ROOT))
    return env


@pytest.fixture
def config(pg: Any, kafka: Any, dynamodb: Any, tmp_path: Path) -> Path:
    table, target = unique("nocred"), unique("NoCred")
    with pg.connect() as conn:
        conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, v text)")
        conn.execute(f"INSERT INTO {table} VALUES (1, 'a'), (2, 'b')")
    dynamodb.client().create_table(TableName=target, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                                   AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
                                   BillingMode="PAY_PER_REQUEST")
    path = tmp_path / "parity.yaml"
    path.write_text(yaml.safe_dump({
        "postgres": {"dsn": pg.dsn},
        "kafka": {"bootstrap_servers": kafka.bootstrap, "topic_prefix": unique("p"), "group_id": unique("g")},
        "dynamodb": {"endpoint": dynamodb.endpoint, "region": "us-east-1"},
        "daemon": {"state_dir": str(tmp_path / "state"), "http": {"port": 0}},
        "reconcile": {"report_dir": str(tmp_path / "reports")},
        "tables": [{"source": f"public.{table}", "primary_key": ["id"], "target": target, "mode": "verify",
                    "keys": {"id": "{id}"}, "columns": {"id": {"exclude": True}, "v": {}}}],
    }))
    return path


def _parity(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "parity.cli", *args], capture_output=True, text=True,
                          timeout=120, check=False, env=_no_aws_env(tmp_path), cwd=tmp_path)


def _assert_names_the_fix(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert "AWS_ACCESS_KEY_ID=local" in result.stderr + result.stdout, result.stderr
    assert 'eval "$(parity dev env)"' in result.stderr + result.stdout


def test_doctor_fails_the_dynamodb_check_with_the_fix(config: Path, tmp_path: Path) -> None:
    result = _parity(tmp_path, "doctor", "--config", str(config))
    assert result.returncode == 2, result.stdout + result.stderr  # setup, as in every command
    assert "NoCredentialsError" in result.stdout
    _assert_names_the_fix(result)


def test_reconcile_stops_with_one_line_naming_the_fix(config: Path, tmp_path: Path) -> None:
    result = _parity(tmp_path, "reconcile", "--config", str(config), "--once")
    assert result.returncode == 2, result.stdout + result.stderr
    assert len([ln for ln in result.stderr.strip().splitlines() if not is_log_record(ln)]) == 1, result.stderr
    _assert_names_the_fix(result)


def test_run_refuses_to_start_with_one_line_naming_the_fix(config: Path, tmp_path: Path) -> None:
    result = _parity(tmp_path, "run", "--config", str(config))
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    _assert_names_the_fix(result)
