"""Operational failures of every sub-command: one line naming what failed and what to do, a bounded
wait, and the documented exit code (never 1, which means the data has a problem).

Real processes (the `parity` console script) against real sockets: a closed port (nothing listens)
and a listener that accepts connections and never answers (the dependency hangs)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from parity.devstack.process import free_port
from tests.cli_output import is_log_record

pytestmark = pytest.mark.component

PARITY = str(Path(sys.executable).with_name("parity"))


class HangingListener:
    """Accepts TCP connections and never sends a byte (a server stopped mid-protocol)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(conn)

    def close(self) -> None:
        self._stop = True
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def hanging() -> Iterator[HangingListener]:
    h = HangingListener()
    yield h
    h.close()


def _config(tmp_path: Path, *, pg: int, kafka: int, dynamo: int, http_port: int = 0, **extra: Any) -> Path:
    raw: dict[str, Any] = {
        "postgres": {"dsn": f"postgresql://parity:pw@127.0.0.1:{pg}/db", "connect_timeout_s": 2},
        "kafka": {"bootstrap_servers": f"127.0.0.1:{kafka}", "topic_prefix": "cdc"},
        "dynamodb": {"endpoint": f"http://127.0.0.1:{dynamo}", "region": "us-east-1", "timeout_s": 2},
        "daemon": {"state_dir": str(tmp_path / "state"), "http": {"port": http_port}},
        "reconcile": {"report_dir": str(tmp_path / "reports")},
        "tables": [{
            "source": "public.payments", "primary_key": ["payment_id"], "target": "Payments",
            "keys": {"PK": "P#{payment_id}"}, "columns": {"payment_id": {}},
        }],
    }
    for dotted, value in extra.items():
        section, key = dotted.split("__")
        raw.setdefault(section, {})[key] = value
    path = tmp_path / "parity.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _env(**more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PARITY_"))}
    env.update({"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_EC2_METADATA_DISABLED": "true"})
    env.update(more)
    return env


def _parity(*args: str, timeout: float = 60, env: dict[str, str] | None = None) -> tuple[int, str, str, float]:
    start = time.monotonic()
    p = subprocess.run([PARITY, *args], capture_output=True, text=True, timeout=timeout, env=env or _env())
    return p.returncode, p.stdout, p.stderr, time.monotonic() - start


def _one_error_line(stderr: str) -> str:
    # Besides the error, only "waiting for <what> ... (gives up after ...)" notices of a long wait
    # and parity's own log lines below error (`<time> [warning  ] private_path_tightened ...`, or
    # JSON lines such as the reconcile's progress when stderr is not a terminal).
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("waiting for ")
             and not re.match(r"\d{4}-\d\d-\d\dT\S+ \[(info|warning) *\] ", ln) and not is_log_record(ln)]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def _report(tmp_path: Path) -> Path:
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"tables": {"public.payments": {
        "target": "Payments", "drift": [{"kind": "missing_in_target", "key": {"PK": {"S": "P#1"}}}]}}}))
    return path


@pytest.mark.parametrize("kind", ["closed", "hanging"])
def test_reconcile_with_postgres_down_is_one_line_exit_3(tmp_path: Path, hanging: HangingListener,
                                                          kind: str) -> None:
    pg = free_port() if kind == "closed" else hanging.port
    cfg = _config(tmp_path, pg=pg, kafka=free_port(), dynamo=free_port())
    code, _out, err, took = _parity("reconcile", "--once", "-c", str(cfg))
    assert code == 3, err
    line = _one_error_line(err)
    assert "Postgres" in line and "127.0.0.1" in line
    assert took < 20
    if kind == "hanging":  # a 2 s connect_timeout: under the 3 s after which a wait is announced
        assert "waiting for" not in err


@pytest.mark.parametrize("kind", ["closed", "hanging"])
def test_repair_with_postgres_down_is_one_line_exit_3(tmp_path: Path, hanging: HangingListener, kind: str) -> None:
    pg = free_port() if kind == "closed" else hanging.port
    cfg = _config(tmp_path, pg=pg, kafka=free_port(), dynamo=free_port())
    code, _out, err, took = _parity("repair", "-c", str(cfg), "--report", str(_report(tmp_path)), "--dry-run")
    assert code == 3, err
    line = _one_error_line(err)
    assert "Postgres" in line
    assert took < 20


@pytest.mark.parametrize("kind", ["closed", "hanging"])
def test_doctor_with_everything_down_exits_3_in_bounded_time(tmp_path: Path, hanging: HangingListener,
                                                             kind: str) -> None:
    port = free_port() if kind == "closed" else hanging.port
    cfg = _config(tmp_path, pg=port, kafka=port, dynamo=port)
    code, out, err, took = _parity("doctor", "-c", str(cfg))
    assert code == 3, out + err
    assert "fail reachable" in out
    assert "Traceback" not in err and "%3|" not in err  # librdkafka's raw lines stay out
    assert took < 45
    if kind == "hanging":  # each wait longer than 3 s says what it waits for
        assert "waiting for Kafka brokers 127.0.0.1:" in err, err


def test_status_with_a_broken_state_store_is_one_line_exit_4(tmp_path: Path) -> None:
    cfg = _config(tmp_path, pg=free_port(), kafka=free_port(), dynamo=free_port())
    (tmp_path / "state" / "state.sqlite").mkdir(parents=True)  # not a database file
    code, _out, err, _took = _parity("status", "-c", str(cfg))
    assert code == 4, err
    assert "daemon.state_dir" in _one_error_line(err)


def test_run_with_the_http_port_in_use_is_one_line_exit_4(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        cfg = _config(tmp_path, pg=free_port(), kafka=free_port(), dynamo=free_port(),
                      http_port=busy.getsockname()[1])
        code, _out, err, _took = _parity("run", "-c", str(cfg))
    assert code == 4, err
    errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "daemon.http" in errors[0] and "in use" in errors[0], err
    assert "Traceback" not in err


def test_run_with_a_state_dir_that_cannot_be_created_is_one_line_exit_4(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cfg = _config(tmp_path, pg=free_port(), kafka=free_port(), dynamo=free_port(),
                  daemon__state_dir=str(blocker / "state"))
    code, _out, err, _took = _parity("run", "-c", str(cfg))
    assert code == 4, err
    errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "daemon.state_dir" in errors[0], err
    assert "Traceback" not in err


def test_run_with_a_bad_log_level_is_a_usage_error(tmp_path: Path) -> None:
    cfg = _config(tmp_path, pg=free_port(), kafka=free_port(), dynamo=free_port())
    code, _out, err, _took = _parity("run", "-c", str(cfg), "--log-level", "loud")
    assert code == 2, err
    assert "loud" in err and "Traceback" not in err


def test_parity_debug_shows_the_traceback(tmp_path: Path) -> None:
    cfg = _config(tmp_path, pg=free_port(), kafka=free_port(), dynamo=free_port())
    (tmp_path / "state" / "state.sqlite").mkdir(parents=True)
    code, _out, err, _took = _parity("status", "-c", str(cfg), env=_env(PARITY_DEBUG="1"))
    assert code == 4
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error: ")
    code, _out, err, _took = _parity("--debug", "status", "-c", str(cfg))
    assert code == 4
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error: ")


@pytest.mark.parametrize("kind", ["closed", "hanging"])
def test_run_with_kafka_down_names_it_in_parity_log_lines_only(tmp_path: Path, hanging: HangingListener,
                                                              kind: str) -> None:
    kafka = free_port() if kind == "closed" else hanging.port
    cfg = _config(tmp_path, pg=free_port(), kafka=kafka, dynamo=free_port())
    proc = subprocess.Popen([PARITY, "run", "-c", str(cfg)], stderr=subprocess.PIPE, text=True, env=_env())
    try:
        time.sleep(12)
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=30)
    lines = err.splitlines()
    raw = [ln for ln in lines if ln.startswith("%")]
    assert not raw, raw[:3]  # librdkafka's own format never reaches stderr
    records = [json.loads(ln) for ln in lines if ln.startswith("{")]
    unreachable = [r for r in records if r["event"] == "kafka unreachable, retrying"]
    assert unreachable and unreachable[0]["brokers"] == f"127.0.0.1:{kafka}", lines[:20]
    assert len(unreachable) <= 3  # rate-limited
    assert len(lines) < 60, len(lines)
    creds = [r for r in records if "Found credentials" in r["event"]]
    assert len(creds) <= 1
    assert proc.returncode == 0  # SIGTERM: a graceful stop


def test_repair_on_a_locked_table_is_cancelled_by_the_statement_timeout(tmp_path: Path, pg: Any) -> None:
    """reconcile.statement_timeout_s holds every statement of repair (and reconcile): a table locked
    by someone else ends the run in bounded time, one line, exit 3."""
    from psycopg.conninfo import conninfo_to_dict

    from tests.conftest import unique

    table = unique("locked")
    with pg.connect(autocommit=True) as admin:
        admin.execute(f"CREATE TABLE public.{table} (payment_id int PRIMARY KEY)")
    port = int(conninfo_to_dict(pg.dsn).get("port") or 5432)
    cfg = _config(tmp_path, pg=port, kafka=free_port(), dynamo=free_port(),
                  reconcile__statement_timeout_s=1)
    raw = yaml.safe_load(cfg.read_text())
    raw["postgres"]["dsn"] = pg.dsn
    raw["tables"][0]["source"] = f"public.{table}"
    cfg.write_text(yaml.safe_dump(raw))
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"tables": {f"public.{table}": {
        "target": "Payments", "drift": [{"kind": "missing_in_target", "key": {"PK": {"S": "P#1"}}}]}}}))
    with pg.connect(autocommit=False) as locker:
        locker.execute(f"LOCK TABLE public.{table} IN ACCESS EXCLUSIVE MODE")
        code, _out, err, took = _parity("repair", "-c", str(cfg), "--report", str(report), "--dry-run")
        locker.rollback()
    assert code == 3, err
    assert "statement_timeout" in _one_error_line(err)
    assert took < 20


def test_reconcile_without_aws_credentials_is_a_configuration_error(tmp_path: Path, pg: Any) -> None:
    from psycopg.conninfo import conninfo_to_dict

    from tests.conftest import unique

    table = unique("nocreds")
    with pg.connect(autocommit=True) as admin:
        admin.execute(f"CREATE TABLE public.{table} (payment_id int PRIMARY KEY)")
        admin.execute(f"INSERT INTO public.{table} VALUES (1)")
    port = int(conninfo_to_dict(pg.dsn).get("port") or 5432)
    cfg = _config(tmp_path, pg=port, kafka=free_port(), dynamo=free_port())
    raw = yaml.safe_load(cfg.read_text())
    raw["postgres"]["dsn"] = pg.dsn
    raw["tables"][0]["source"] = f"public.{table}"
    cfg.write_text(yaml.safe_dump(raw))
    env = _env(AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    code, _out, err, took = _parity("reconcile", "--once", "-c", str(cfg), env=env)
    assert code == 2, err
    assert "credentials" in _one_error_line(err).lower()
    assert took < 30


@pytest.mark.parametrize("kind", ["closed", "hanging"])
def test_reconcile_with_dynamodb_down_is_one_line_exit_3(tmp_path: Path, pg: Any, hanging: HangingListener,
                                                         kind: str) -> None:
    from psycopg.conninfo import conninfo_to_dict

    from tests.conftest import unique

    table = unique("nodynamo")
    with pg.connect(autocommit=True) as admin:
        admin.execute(f"CREATE TABLE public.{table} (payment_id int PRIMARY KEY)")
        admin.execute(f"INSERT INTO public.{table} VALUES (1)")
    port = int(conninfo_to_dict(pg.dsn).get("port") or 5432)
    dynamo = free_port() if kind == "closed" else hanging.port
    cfg = _config(tmp_path, pg=port, kafka=free_port(), dynamo=dynamo)
    raw = yaml.safe_load(cfg.read_text())
    raw["postgres"]["dsn"] = pg.dsn
    raw["tables"][0]["source"] = f"public.{table}"
    cfg.write_text(yaml.safe_dump(raw))
    code, _out, err, took = _parity("reconcile", "--once", "-c", str(cfg), timeout=120)
    assert code == 3, err
    line = _one_error_line(err)
    assert "Scan" in line, line
    assert took < 100, took  # dynamodb.timeout_s 2 s per attempt, parity's bounded retries
    assert f"waiting for DynamoDB http://127.0.0.1:{dynamo}" in err, err
