"""`parity config check`: every error of a file at once, one line each; duplicate YAML keys refused;
errors of `defaults:` reported there; empty DSN / bootstrap refused; and a fresh clone's examples
pass without the environment (an unset `${VAR}` is checked with a placeholder and noted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from parity.cli import app
from parity.config_loader import load_config
from parity.core.errors import ConfigError

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]

BASE = """\
postgres: {dsn: "host=db dbname=app"}
kafka: {bootstrap_servers: "k:9092", topic_prefix: cdc}
"""

TABLE = """\
  - source: public.{name}
    primary_key: [id]
    target: {target}
    keys: {{PK: "{{id}}"}}
    columns: {{id: {{}}}}
"""


def _tables(*names: str) -> str:
    return "tables:\n" + "".join(TABLE.format(name=n, target=n.title()) for n in names)


def _check(tmp_path: Path, text: str) -> tuple[int, list[str], list[str]]:
    path = tmp_path / "f.yaml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["config", "check", str(path)])
    return result.exit_code, result.stdout.splitlines(), result.stderr.splitlines()


def test_every_error_is_reported_at_once_one_line_each(tmp_path: Path) -> None:
    text = BASE.replace("topic_prefix: cdc", "topic_prefix: cdc, colour: blue") + \
        "dynamodb: {timeout_s: -1}\n" + _tables("a").replace("    target: A\n", "")
    code, _out, err = _check(tmp_path, text)
    assert code == 2
    assert err == [
        "f.yaml: kafka.colour: unknown key",
        "f.yaml: dynamodb.timeout_s: Input should be greater than 0",
        "f.yaml: tables[0].target: required",
    ], err


def test_duplicate_keys_are_refused_naming_line_and_key(tmp_path: Path) -> None:
    text = BASE + "kafka: {bootstrap_servers: other:9092, topic_prefix: x}\n" + _tables("a")
    code, _out, err = _check(tmp_path, text)
    assert code == 2
    assert err == ["f.yaml: line 3: duplicate key 'kafka' (a YAML mapping holds each key once)"], err


def test_a_duplicate_column_inside_a_table_is_refused_too(tmp_path: Path) -> None:
    text = BASE + _tables("a").replace("columns: {id: {}}", "columns: {id: {}, id: {name: X}}")
    with pytest.raises(ConfigError, match=r"line 8: duplicate key 'id'"):
        (tmp_path / "f.yaml").write_text(text)
        load_config(tmp_path / "f.yaml")


def test_an_error_in_defaults_is_reported_at_defaults(tmp_path: Path) -> None:
    text = BASE + "defaults: {mode: mirror, recheck_delays_s: [1]}\n" + _tables("a", "b", "c")
    code, _out, err = _check(tmp_path, text)
    assert code == 2
    assert any(line.startswith("f.yaml: defaults.mode: ") for line in err), err
    assert not any("tables[" in line and ".mode" in line for line in err), err
    assert len([line for line in err if "defaults.mode" in line]) == 1


def test_a_table_that_overrides_a_default_keeps_its_own_path(tmp_path: Path) -> None:
    text = BASE + "defaults: {mode: verify}\n" + _tables("a", "b").replace(
        "    target: B\n", "    target: B\n    mode: mirror\n")
    code, _out, err = _check(tmp_path, text)
    assert code == 2
    assert any(line.startswith("f.yaml: tables[1].mode: ") for line in err), err


@pytest.mark.parametrize(("old", "new", "line"), [
    ('dsn: "host=db dbname=app"', 'dsn: ""', "f.yaml: postgres.dsn: empty"),
    ('dsn: "host=db dbname=app"', 'dsn: "   "', "f.yaml: postgres.dsn: empty"),
    ('bootstrap_servers: "k:9092"', 'bootstrap_servers: ""', "f.yaml: kafka.bootstrap_servers: empty"),
])
def test_empty_dsn_or_bootstrap_is_refused(tmp_path: Path, old: str, new: str, line: str) -> None:
    code, _out, err = _check(tmp_path, BASE.replace(old, new) + _tables("a"))
    assert code == 2
    assert err == [line], err


def test_empty_values_from_the_environment_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text('postgres: {dsn: "${PG}"}\nkafka: {bootstrap_servers: "${K}", topic_prefix: cdc}\n'
                    + _tables("a"))
    with pytest.raises(ConfigError) as info:
        load_config(path, env={"PG": "", "K": ""})
    assert info.value.lines == ["f.yaml: postgres.dsn: empty", "f.yaml: kafka.bootstrap_servers: empty"]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("PARITY_", "AWS_"))}


def test_the_examples_pass_on_a_fresh_clone_without_the_environment() -> None:
    examples = sorted(str(p) for p in (ROOT / "examples").glob("*.yaml"))
    assert examples
    parity = str(Path(sys.executable).with_name("parity"))
    p = subprocess.run([parity, "config", "check", *examples], capture_output=True, text=True,
                       env=_clean_env(), cwd=ROOT, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.count(": ok: ") == len(examples), p.stdout
    assert "postgres.dsn: ${PARITY_PG_DSN} is unset, checked with a placeholder" in p.stdout


def test_other_commands_still_refuse_an_unset_variable() -> None:
    parity = str(Path(sys.executable).with_name("parity"))
    p = subprocess.run([parity, "status", "-c", "examples/payments.yaml"], capture_output=True, text=True,
                       env=_clean_env(), cwd=ROOT, timeout=60)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "error: payments.yaml: postgres.dsn: environment variable PARITY_PG_DSN is not set (and 1 more error)"]


def test_live_check_needs_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text('postgres: {dsn: "${PARITY_UNSET_DSN_X}"}\n' + BASE.splitlines()[1] + "\n" + _tables("a"))
    result = CliRunner().invoke(app, ["config", "check", "--live", str(path)])
    assert result.exit_code == 2
    assert "PARITY_UNSET_DSN_X is not set" in result.stderr


def test_an_unset_variable_in_a_number_field_is_noted_not_an_error(tmp_path: Path) -> None:
    text = BASE + 'daemon: {http: {port: "${PARITY_UNSET_PORT_X}"}}\n' + _tables("a")
    code, out, err = _check(tmp_path, text)
    assert code == 0, err
    assert "f.yaml: note: daemon.http.port: ${PARITY_UNSET_PORT_X} is unset, checked with a placeholder" in out
    assert any(line.startswith("f.yaml: note: daemon.http.port: not checked") for line in out), out
    assert out[-1].startswith("f.yaml: ok: 1 table(s)")


def test_placeholders_do_not_hide_the_other_errors(tmp_path: Path) -> None:
    text = BASE + 'daemon: {http: {port: "${PARITY_UNSET_PORT_X}"}, colour: blue}\n' + _tables("a")
    code, _out, err = _check(tmp_path, text)
    assert code == 2
    assert err == ["f.yaml: daemon.colour: unknown key"], err
