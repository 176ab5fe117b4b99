"""`parity config check --live` when the database cannot be asked: exit 3 (unreachable), and the DSN (with its
password) never printed. The live check itself runs on the real stack (test_column_missing.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from parity.cli import app
from parity.devstack.process import free_port
from tests.unit.mapping_helpers import config_doc

pytestmark = pytest.mark.unit

SECRET = "s3cret-pw-71b2"


def _write(tmp_path: Path) -> Path:
    dsn = f"postgresql://parity:{SECRET}@127.0.0.1:{free_port()}/db?connect_timeout=2"
    raw = config_doc(
        {
            "source": "public.payments",
            "primary_key": ["payment_id"],
            "target": "Payments",
            "keys": {"PK": "P#{payment_id}"},
            "columns": {"payment_id": {}, "amont": {}},
        },
        postgres={"dsn": dsn},
    )
    path = tmp_path / "payments.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_without_live_the_check_stays_static(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["config", "check", str(_write(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "payments.yaml: ok: 1 table(s)" in result.output


def test_live_against_an_unreachable_database_exits_3_without_the_dsn(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["config", "check", "--live", str(_write(tmp_path))])
    assert result.exit_code == 3, result.output
    assert "payments.yaml: cannot check against the database:" in result.output
    assert SECRET not in result.output
