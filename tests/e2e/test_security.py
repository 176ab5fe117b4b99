"""Security on the real stack: no secret in any output, SQL names quoted, the HTTP server closed by default.

1. Secrets. A daemon runs with a Postgres DSN whose role really needs its password (a
   `scram-sha-256` line for that role is put at the top of the test cluster's pg_hba.conf, which
   otherwise trusts loopback). The password is hostile: spaces, both quotes, `%`, `#`, `@`, `=`, a
   backslash and non-ASCII letters; the daemon reads it from a file (`${file:...}`) into a key=value
   DSN, `parity reconcile` from an environment variable into a key=value DSN, the wrong-password runs
   from a variable into a URL DSN. `AWS_SECRET_ACCESS_KEY` is set to a recognisable value, the Kafka
   options carry a SASL password (from a file), an SSL key password, a keystore password and an
   OAuth client secret, and the HTTP server has a bearer token. A workload injects drift and a
   poison record; the daemon reconciles periodically. Then every output of the run is collected —
   the daemon's JSON log, /metrics, /status (with the token), /readyz, /healthz, the drift log, a
   dump of the state store, `parity status --json`, the reconcile reports, the stdout and stderr of
   `parity reconcile` and of `parity repair --dry-run` (its report of writes), the drift and
   dead-letter topics, `parity config check` of a broken config holding the secrets, and
   `parity reconcile` / `parity doctor` / `parity repair` failing on a wrong password — and scanned
   for each secret, for its JSON, URL and libpq-quoted forms and for every 6-character run of
   letters and digits in it (a parser's error quotes one token of a password, not all of it).
   Malformed DSNs (a space in key=value and URL form, a bad percent escape, a quote) are refused
   at load time by every command, without the value, and the daemon never serves /readyz with one.
   `parity demo`'s stdout, stderr and HTML report are scanned for the AWS secret it runs with.
2. SQL. A table and columns with hostile names (quotes, semicolons, comments) are read by
   `parity doctor` and the reconciler's Postgres reader: the sentinel table the names try to drop
   still exists, and the rows are read and compared correctly.
3. HTTP. The daemon binds 127.0.0.1 unless configured, and the bearer token guards /status and
   admin routes (401 without it, 401 with a wrong one, constant-time compare in the server).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from prometheus_client import CollectorRegistry
from psycopg import sql
from psycopg.rows import dict_row

from parity.config_loader import parse_config
from parity.core.config import HttpConfig
from parity.core.mapping import ItemMapper
from parity.core.values import item_to_wire
from parity.devstack.process import free_port
from parity.metrics.server import Check, MetricsServer
from parity.workload import PaymentsApp
from tests.conftest import unique
from tests.e2e.daemon_http import http_get
from tests.integration.verify_harness import (
    create_topics,
    deploy_example,
    drift_set,
    start_daemon_process,
    terminate,
    wait_for,
)

pytestmark = pytest.mark.e2e

# Recognisable values that appear nowhere else: any occurrence in an output is a leak. The Postgres
# passwords hold every character that breaks a DSN written as text; each run of letters and digits
# in them is distinctive, so that a leaked piece is found too.
PG_PASSWORD = "PgPw7Hq2 Zx9Kd4Lm'Qa8Wb6Nc\"Ec3Rd5Tf%41Yg7Hj9Kl#Mn2Bv4Cx@Lk8Jh6Gf=Ds3Aq1Zw\\Po9Iu7Yt Ünïcødé9Hj"
WRONG_PG_PASSWORD = "WrPw3Vb8 Nc1Qs6Xe'Pl5Ok2Ij\"Uh7Yg4Tf%zzRd2Es9Wa#Qz3Xs5Dc@Vf8Bg1Nh=Mj6Ku4Lo\\Ñøñàscïï7Pq"
AWS_SECRET = "AwsSecretKeyQ9w8E7r6T5y4U3i2O1p0ZxCvBnM1"  # 40 characters, like a real one
SASL_PASSWORD = "SaslPw-5Gt6Yh7Uj8Ik"
SSL_KEY_PASSWORD = "SslKeyPw-4Rf5Tg6Yh7Uj"
KEYSTORE_PASSWORD = "KeystorePw-8Ik9Ol0Pz1Xa"
OAUTH_SECRET = "OauthClientSecret-2Qa3Ws4Ed5Rf"
TOKEN = "BearerTok-2Ws3Ed4Rf5Tg6Yh"
SECRETS = {
    "postgres password": PG_PASSWORD,
    "wrong postgres password": WRONG_PG_PASSWORD,
    "AWS secret key": AWS_SECRET,
    "SASL password": SASL_PASSWORD,
    "SSL key password": SSL_KEY_PASSWORD,
    "keystore password": KEYSTORE_PASSWORD,
    "OAuth client secret": OAUTH_SECRET,
    "bearer token": TOKEN,
}
INVALID_DSN = "postgres.dsn: not a valid connection string (value not shown)"


# ----- helpers ----------------------------------------------------------------------------------------


def parity_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "parity.cli", *args], capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, **(env or {})},
    )


def topic_values(bootstrap: str, topic: str, expected: int, timeout: float = 30.0) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("scan"), "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    # Assigned, not subscribed: a group join on this broker waits half the session timeout.
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    values: list[bytes] = []
    try:
        wait_for(lambda: _drain(consumer, values) >= expected, timeout, f"{expected} records in {topic}", 0.1)
    finally:
        consumer.close()
    return values


def _drain(consumer: Consumer, into: list[bytes]) -> int:
    for m in consumer.consume(100, 1.0):
        if m.error() is None:
            into.append((m.key() or b"") + b" " + (m.value() or b""))
    return len(into)


def libpq_quoted(value: str) -> str:
    """A value as a key=value DSN quotes it (single quotes, backslash escapes); built here, not by
    the code under test."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def secret_forms(secret: str) -> tuple[set[str], set[str]]:
    """How a secret can show up: (whole forms: as is, JSON-escaped (ASCII or not), percent-encoded,
    libpq-quoted; pieces: every 8-character window of each run of letters and digits in it, since a
    parser's error quotes one token of a password, not all of it)."""
    whole = {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
             urllib.parse.quote(secret, safe=""), libpq_quoted(secret)}
    pieces = {run[i:i + 8] for run in re.findall(r"[^\W_]{8,}", secret) for i in range(len(run) - 7)}
    return whole, pieces


def leaks(outputs: dict[str, str | bytes]) -> list[str]:
    found = []
    for where, text in outputs.items():
        blob = text if isinstance(text, str) else text.decode("utf-8", "replace")
        lower = blob.lower()
        for what, secret in SECRETS.items():
            whole, pieces = secret_forms(secret)
            # Whole forms in any case; pieces exactly (mixed-case windows: no false alarms from hex).
            shown = sorted({f for f in whole if f.lower() in lower} | {p for p in pieces if p in blob})
            if shown:
                found.append(f"{what} in {where}: {shown[:3]}")
    return found


def leak_sources(outputs: dict[str, str | bytes]) -> set[str]:
    return {entry.split(":")[0] for entry in leaks(outputs)}


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on `port` (from /proc/net/tcp{,6})."""
    found: set[str] = set()
    for name in ("tcp", "tcp6"):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if int(port_hex, 16) != port or fields[3] != "0A":  # 0A = LISTEN
                continue
            if len(address) == 8:  # IPv4, little-endian hex
                found.add(".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0)))
            else:
                found.add("::" if set(address) == {"0"} else address)
    return found


def other_local_ipv4() -> str | None:
    """A non-loopback IPv4 address of this machine, if it has one."""
    try:
        out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, timeout=5).stdout
    except OSError:
        return None
    for line in out.splitlines():
        address = line.split()[3].split("/")[0]
        if not address.startswith("127."):
            return address
    return None


@pytest.fixture
def password_role(pg: Any) -> Iterator[str]:
    """A login role that must authenticate with PG_PASSWORD (scram), even though the test cluster
    trusts every other loopback connection."""
    role = unique("sec_role")
    hba = Path(pg.data_dir) / "pg_hba.conf"
    original = hba.read_text()
    with pg.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(PG_PASSWORD)))
        hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n{original}")
        conn.execute("SELECT pg_reload_conf()")
    try:
        yield role
    finally:
        hba.write_text(original)
        with pg.connect() as conn:
            conn.execute("SELECT pg_reload_conf()")


# ----- 1. no secret in any output -----------------------------------------------------------------------


def newest_report_with_drift(reports: Path) -> Path:
    for path in sorted(reports.rglob("reconcile-*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        data = json.loads(path.read_bytes())
        if any(t.get("drift") for t in (data.get("tables") or {}).values()):
            return path
    raise AssertionError(f"no reconcile report with drift under {reports}")


def test_no_secret_appears_in_any_output_of_a_run(
    pg: Any, kafka: Any, dynamodb: Any, bridge_factory: Any, password_role: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAPARITYSECTEST001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    secrets_dir = tmp_path / "secrets"  # as Kubernetes and Docker mount them: one file per secret
    secrets_dir.mkdir()
    (secrets_dir / "pg-password").write_text(PG_PASSWORD + "\n", encoding="utf-8")
    (secrets_dir / "sasl-password").write_text(SASL_PASSWORD, encoding="utf-8")
    where = f"host=127.0.0.1 port={pg.port} dbname=postgres user={password_role}"
    file_dsn = where + " password=${file:" + str(secrets_dir / "pg-password") + "}"
    env_dsn = where + " password=${PARITY_TEST_PG_PASSWORD}"
    url_dsn = f"postgresql://{password_role}:${{PARITY_TEST_PG_PASSWORD}}@127.0.0.1:{pg.port}/postgres"
    port = free_port()
    state = tmp_path / "state"
    dep = deploy_example(
        "payments", pg=pg, dynamodb=dynamodb, kafka=kafka, suffix=unique("sec"), state_dir=state,
        table_overrides={"grace_period_s": 4, "recheck_schedule_s": [1, 2, 4]},
        overrides={
            "postgres": {"dsn": file_dsn},
            "kafka": {"options": {
                "sasl.username": "parity", "sasl.password": "${file:" + str(secrets_dir / "sasl-password") + "}",
                "ssl.key.password": SSL_KEY_PASSWORD, "ssl.keystore.password": KEYSTORE_PASSWORD,
                "sasl.oauthbearer.client.secret": OAUTH_SECRET}},
            "daemon": {"http": {"port": port, "bearer_token": TOKEN}},
            "reconcile": {"interval_s": 5, "segments": 2, "workers": 2, "buckets": 64, "grace_period_s": 1,
                          "report_dir": str(tmp_path / "reports")},
        },
    )
    mapping = dep.config.tables[0]
    with pg.connect() as conn:
        conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(
            sql.Identifier(mapping.schema, mapping.table), sql.Identifier(password_role)))
    k = dep.config.kafka
    create_topics(kafka, [*dep.config.topics(), k.dead_letter_topic, k.drift_topic or ""])
    bridge_factory([mapping.source], topic_prefix=k.topic_prefix)

    outputs: dict[str, str | bytes] = {}
    log = tmp_path / "daemon.log"
    proc = start_daemon_process(dep.config_path, log)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_get(f"{base}/readyz", TOKEN)[0] == 200 or proc.poll() is not None, 90, "/readyz 200")
        assert proc.poll() is None, log.read_text()[-3000:]
        # The password is really in use: this role cannot log in without it.
        ready = json.loads(http_get(f"{base}/readyz", TOKEN)[1])
        assert {c["name"]: c["ok"] for c in ready["checks"]}["postgres"] is True, ready
        producer = Producer({"bootstrap.servers": kafka.bootstrap})
        producer.produce(dep.config.topics()[0], key=b'{"payment_id": -7}', value=b"{not json", partition=0)
        producer.flush(10)
        del producer
        with pg.connect() as conn:
            app = PaymentsApp(conn, dynamodb.client(), mapping, lag_ms=200, seed=17)
            app.run(100, drift_every=10, rate=100)
            app.finish()
        wait_for(lambda: len(drift_set(dep.config)) >= 6 and any((tmp_path / "reports").rglob("*.json")), 120,
                 "drift records and a reconcile report")
        # The daemon listens on loopback only (nothing configured host).
        assert listening_addresses(port) == {"127.0.0.1"}
        outputs["/metrics"] = http_get(f"{base}/metrics", TOKEN)[1]
        outputs["/status"] = http_get(f"{base}/status", TOKEN)[1]
        outputs["/status without token"] = http_get(f"{base}/status")[1]
        outputs["/readyz"] = http_get(f"{base}/readyz", TOKEN)[1]
        outputs["/healthz"] = http_get(f"{base}/healthz")[1]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)

    outputs["daemon log"] = log.read_bytes()
    outputs["drift log"] = Path(dep.config.daemon.drift_log or "").read_bytes()
    with sqlite3.connect(state / "state.sqlite") as db:
        outputs["state store dump"] = "\n".join(db.iterdump())
    drift_report = newest_report_with_drift(tmp_path / "reports")
    # Failure paths, where a secret tends to end up in an error message.
    broken = dict(dep.raw)
    broken["postgres"] = {"dsn": env_dsn, "password": PG_PASSWORD}  # a common mistake: unknown key
    broken["daemon"] = {**dep.raw["daemon"], "http": {"bearer_token": [TOKEN]}}  # wrong type
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken))
    env_config = {**dep.raw, "postgres": {"dsn": env_dsn},
                  "reconcile": {**dep.raw["reconcile"], "report_dir": str(tmp_path / "cli-reports")}}
    (tmp_path / "env.yaml").write_text(yaml.safe_dump(env_config))
    (tmp_path / "wrong.yaml").write_text(yaml.safe_dump({**dep.raw, "postgres": {"dsn": url_dsn}}))
    right, wrong = {"PARITY_TEST_PG_PASSWORD": PG_PASSWORD}, {"PARITY_TEST_PG_PASSWORD": WRONG_PG_PASSWORD}
    cfg, env_cfg, wrong_cfg = str(dep.config_path), str(tmp_path / "env.yaml"), str(tmp_path / "wrong.yaml")
    # The commands are independent: run them side by side (each one's start-up is most of its time).
    with ThreadPoolExecutor(4) as pool:
        runs = {
            "parity status --json": pool.submit(parity_cli, "status", "--json", "--config", cfg),
            "parity config check (broken)": pool.submit(parity_cli, "config", "check", str(tmp_path / "broken.yaml"),
                                                        env=right),
            "parity reconcile": pool.submit(parity_cli, "reconcile", "--once", "--config", env_cfg, env=right),
            "parity repair --dry-run": pool.submit(parity_cli, "repair", "--dry-run", "--config", cfg, "--report",
                                                   str(drift_report)),
            "parity reconcile (wrong password)": pool.submit(
                parity_cli, "reconcile", "--once", "--config", wrong_cfg, env=wrong),
            "parity doctor (wrong password)": pool.submit(parity_cli, "doctor", "--json", "--config", wrong_cfg,
                                                          env=wrong),
            "parity repair (wrong password)": pool.submit(
                parity_cli, "repair", "--dry-run", "--config", wrong_cfg, "--report", str(drift_report), env=wrong),
        }
        outputs["drift topic"] = b"\n".join(topic_values(kafka.bootstrap, k.drift_topic or "", 6))
        outputs["dead-letter topic"] = b"\n".join(topic_values(kafka.bootstrap, k.dead_letter_topic, 1))
        done = {name: future.result() for name, future in runs.items()}
    for name, run in done.items():
        outputs[f"{name} stdout"] = run.stdout
        outputs[f"{name} stderr"] = run.stderr
    for report in [*(tmp_path / "reports").rglob("*"), *(tmp_path / "cli-reports").rglob("*")]:
        if report.is_file():
            outputs[f"reconcile report {report.name}"] = report.read_bytes()
    status, check = done["parity status --json"], done["parity config check (broken)"]
    reconcile, repair = done["parity reconcile"], done["parity repair --dry-run"]
    bad_reconcile, doctor = done["parity reconcile (wrong password)"], done["parity doctor (wrong password)"]
    bad_repair = done["parity repair (wrong password)"]

    # The outputs are real, not empty: the scan below would otherwise prove nothing.
    assert b'"started"' in outputs["daemon log"] and b"parity_build_info" in outputs["/metrics"]
    assert b"unauthorized" in outputs["/status without token"]
    assert json.loads(outputs["/status"])["tables"][mapping.source]["drift"] >= 6
    assert len(outputs["drift log"].splitlines()) >= 6 and "CREATE TABLE" in str(outputs["state store dump"])
    assert any(k.startswith("reconcile report") for k in outputs)
    assert "drift" in status.stdout and status.returncode == 0
    assert check.returncode == 2 and "postgres.password" in check.stderr
    # The hostile password, interpolated into a key=value DSN, logs in: the reconcile ran and found drift.
    assert reconcile.returncode == 1 and "report:" in reconcile.stdout, reconcile.stderr[-2000:]
    assert any((tmp_path / "cli-reports").glob("reconcile-*.json"))
    assert repair.returncode == 0 and "would " in repair.stdout, repair.stdout[-2000:] + repair.stderr[-2000:]
    for run, text in ((bad_reconcile, bad_reconcile.stderr), (doctor, doctor.stdout), (bad_repair, bad_repair.stderr)):
        assert run.returncode != 0 and "password authentication failed" in text, text[-2000:]
        assert f"{password_role}@127.0.0.1:{pg.port}/postgres" in text, text[-2000:]  # where, in parity's words
        assert "Traceback" not in run.stderr  # a wrong password is a one-line error, not a crash
    assert doctor.returncode == 3 and bad_repair.returncode == 3  # could not log in: exit 3, not 1 (drift)

    # The scan recognises the secrets where they do belong (the secret files, the environment).
    assert leak_sources({"pg file": (secrets_dir / "pg-password").read_text(), "wrong env": WRONG_PG_PASSWORD,
                         "config": dep.config_path.read_text()}) == {
        "postgres password in pg file", "wrong postgres password in wrong env", "SSL key password in config",
        "keystore password in config", "OAuth client secret in config", "bearer token in config"}
    assert leaks(outputs) == []


# The shapes also tried with `parity run` (before the fix, /readyz served libpq's message with them).
DAEMON_SHAPES = ("key=value with a space", "URL with a space")


def test_a_malformed_dsn_is_refused_by_every_command_without_its_value(
    pg: Any, kafka: Any, dynamodb: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The four shapes seen in the field, each written literally (not through a variable, which
    would be quoted): a space in a key=value DSN, a space in a URL DSN, a bad percent escape, a quote."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    where = f"127.0.0.1:{pg.port}"
    percent = "Uh7Yg4Tf%zzRd2Es9Wa"  # pieces of the secrets, so that the scan recognises a leak
    quoted = "PgPw7Hq2 Zx9Kd4Lm"
    assert percent in WRONG_PG_PASSWORD and quoted in PG_PASSWORD
    shapes = {
        "key=value with a space": f"host=127.0.0.1 port={pg.port} dbname=postgres user=app password={PG_PASSWORD}",
        "URL with a space": f"postgresql://app:{PG_PASSWORD}@{where}/postgres",
        "URL with a bad percent escape": f"postgresql://app:{percent}@{where}/postgres",
        "key=value with a quote": f'host=127.0.0.1 port={pg.port} user=app password="{quoted}"',
    }
    assert "%zz" in shapes["URL with a bad percent escape"]
    dep = deploy_example("payments", pg=pg, dynamodb=dynamodb, kafka=kafka, suffix=unique("dsn"),
                         state_dir=tmp_path / "state")
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"tables": {dep.config.tables[0].source: {"drift": [
        {"kind": "missing_in_target",
         "key": {"CustomerId": {"N": "5"}, "PaymentDateId": {"S": "2024-01-01T00:00:00Z#1"}}}]}}}))
    outputs: dict[str, str | bytes] = {}
    codes: dict[str, int] = {}
    daemons: list[tuple[str, subprocess.Popen[bytes], int, Path]] = []
    jobs = {}
    with ThreadPoolExecutor(4) as pool:
        for shape, dsn in shapes.items():
            path = tmp_path / f"{unique('bad')}.yaml"
            port = free_port()
            path.write_text(yaml.safe_dump({**dep.raw, "postgres": {"dsn": dsn},
                                            "daemon": {**dep.raw["daemon"], "http": {"port": port}}}))
            for command in (["doctor", "--json"], ["reconcile", "--once"], ["repair", "--dry-run", "--report",
                                                                           str(report)]):
                jobs[f"parity {command[0]} ({shape})"] = pool.submit(parity_cli, *command, "--config", str(path))
            jobs[f"parity config check ({shape})"] = pool.submit(parity_cli, "config", "check", str(path))
            if shape in DAEMON_SHAPES:
                log = tmp_path / f"{unique('daemon')}.log"
                daemons.append((shape, start_daemon_process(path, log), port, log))
        for name, future in jobs.items():
            run = future.result()
            outputs[f"{name} stdout"], outputs[f"{name} stderr"] = run.stdout, run.stderr
            codes[name] = run.returncode
    for shape, proc, port, log in daemons:
        name = f"parity run ({shape})"
        try:
            # Today's fix refuses to start; before it, the daemon served libpq's message on /readyz.
            wait_for(lambda p=proc, port=port: p.poll() is not None  # type: ignore[misc]
                     or b"postgres" in http_get(f"http://127.0.0.1:{port}/readyz")[1], 90, f"{name} to settle")
            outputs[f"{name} /readyz"] = http_get(f"http://127.0.0.1:{port}/readyz")[1]
        finally:
            terminate(proc, 30)
        outputs[f"{name} log"] = log.read_bytes()
        codes[name] = proc.returncode

    assert leaks(outputs) == []
    for name, code in codes.items():
        assert code == 2, (name, code, outputs.get(f"{name} stderr") or outputs.get(f"{name} log"))
        text = outputs.get(f"{name} stderr") or outputs[f"{name} log"]
        assert INVALID_DSN in str(text), (name, text)


def test_no_secret_in_the_demo_outputs(tmp_path: Path) -> None:
    """`parity demo` runs with the caller's AWS credentials (DynamoDB Local wants some): its stdout,
    stderr, JSON result and HTML report never show the secret key."""
    import shutil
    import tempfile

    from parity.devstack.stack import Stack

    # World-searchable parents: the private Postgres runs as the `postgres` OS user under root.
    base = Path(tempfile.mkdtemp(prefix="parity-demo-sec-"))
    base.chmod(0o755)
    state = base / "demo"
    try:
        run = parity_cli("demo", "--json", "--state-dir", str(state), "--rows", "50", "--duration", "4",
                         "--lag-ms", "500", "--grace", "8", "--no-prometheus", timeout=600,
                         env={"AWS_ACCESS_KEY_ID": "AKIAPARITYSECTEST001", "AWS_SECRET_ACCESS_KEY": AWS_SECRET})
        result = json.loads(run.stdout.strip().splitlines()[-1])
        html = Path(result["report_html"]).read_text()
        assert "<svg" in html  # the report is real
        outputs: dict[str, str | bytes] = {"demo stdout": run.stdout, "demo stderr": run.stderr, "demo HTML": html}
        for log in state.rglob("*.log"):
            outputs[f"demo {log.name}"] = log.read_bytes()
        assert leaks(outputs) == []
    finally:
        Stack(state).down()
        shutil.rmtree(base, ignore_errors=True)


# ----- 2. hostile SQL names are quoted, never executed -----------------------------------------------------


def test_hostile_table_and_column_names_are_quoted_not_executed(
    pg: Any, kafka: Any, dynamodb: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from parity.adapters.clients import dynamodb_client
    from parity.adapters.dynamodb import DynamoStore
    from parity.doctor import Status, run_doctor
    from parity.reconcilers.reconcile import Reconciler

    for name, value in (("AWS_ACCESS_KEY_ID", "local"), ("AWS_SECRET_ACCESS_KEY", "local")):
        monkeypatch.setenv(name, value)
    sentinel = unique("sentinel")
    table = f'evil"; DROP TABLE {sentinel}; --'
    key_col = f"id'); DELETE FROM {sentinel}; --"
    value_col = f'amount" numeric); DROP TABLE {sentinel} CASCADE; --'
    note_col = "note`$$; SELECT pg_sleep(30); --"
    target = unique("Evil")
    with pg.connect() as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (x int)").format(sql.Identifier(sentinel)))
        conn.execute(sql.SQL("INSERT INTO {} VALUES (1)").format(sql.Identifier(sentinel)))
        conn.execute(sql.SQL("CREATE TABLE {} ({} bigint PRIMARY KEY, {} numeric(10,2) NOT NULL, {} text)").format(
            sql.Identifier("public", table), sql.Identifier(key_col), sql.Identifier(value_col),
            sql.Identifier(note_col)))
        conn.execute(sql.SQL("INSERT INTO {} SELECT g, g * 1.5, 'row ' || g FROM generate_series(1, 50) g").format(
            sql.Identifier("public", table)))
    raw = {
        "postgres": {"dsn": pg.dsn},
        "kafka": {"bootstrap_servers": kafka.bootstrap, "topic_prefix": unique("evil")},
        "dynamodb": {"endpoint": dynamodb.endpoint, "region": "us-east-1"},
        "reconcile": {"report_dir": str(tmp_path / "reports"), "grace_period_s": 0, "segments": 2, "workers": 2,
                      "buckets": 16},
        "tables": [{
            "source": f"public.{table}",
            "primary_key": [key_col],
            "target": target,
            "keys": {"PK": "{" + key_col + "}"},
            "columns": {key_col: {}, value_col: {"type": "number"}, note_col: {}},
        }],
    }
    config = parse_config(raw, env={})
    mapping = config.tables[0]
    client = dynamodb.client()
    client.create_table(TableName=target, KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "N"}],
                        BillingMode="PAY_PER_REQUEST")
    mapper = ItemMapper(mapping)
    with pg.connect() as conn:
        rows = conn.cursor(row_factory=dict_row).execute(
            sql.SQL("SELECT * FROM {}").format(sql.Identifier("public", table))).fetchall()
    for row in rows:
        item = mapper.item(row)
        if row[key_col] == 7:  # one deliberate difference, which the reconciler must find
            item[note_col] = "tampered"
        client.put_item(TableName=target, Item=item_to_wire(item))

    report = run_doctor(config, sample=20, timeout_s=3)
    postgres_checks = [c for c in report.checks if c.system in ("postgres", "mapping", "permissions")]
    failed = [c.line() for c in postgres_checks if c.status is Status.FAIL]
    # Rows were read through the hostile identifiers: the table, its columns and the round trip check out.
    assert not [f for f in failed if "syntax" in f.lower()], failed
    names = {(c.name, c.status) for c in postgres_checks}
    for check in ("table", "columns", "key_nulls", "round_trip", "duplicate_keys"):
        assert (check, Status.OK) in names, [c.line() for c in postgres_checks]

    store = DynamoStore(dynamodb_client(config.dynamodb), concurrency=2)
    try:
        result = Reconciler(config, dynamo=store, dsn=pg.dsn).run()
    finally:
        store.close()
    [t] = result["tables"].values()
    assert t["rows_postgres"] == 50 and t["items_dynamodb"] == 50
    assert t["drift_counts"] == {"value_mismatch": 1}, t

    with pg.connect() as conn:
        [(count,)] = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(sentinel))).fetchall()
        [(evil_rows,)] = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("public", table))).fetchall()
    assert (count, evil_rows) == (1, 50)


# ----- 3. loopback by default, bearer token on /status and admin routes ----------------------------------------


def test_http_server_binds_loopback_by_default_and_the_token_guards_status_and_admin() -> None:
    assert HttpConfig().host == "127.0.0.1"
    calls: list[bytes] = []

    def admin(body: bytes) -> tuple[int, Any]:
        calls.append(body)
        return 202, {"accepted": True}

    config = HttpConfig(port=0, bearer_token=TOKEN)  # type: ignore[arg-type]  # pydantic coerces to SecretStr
    server = MetricsServer(CollectorRegistry(), config, readiness=lambda: [Check("test", True)],
                           status=lambda: {"tables": {}}, admin={("POST", "/admin/reconcile"): admin})
    with server:
        assert listening_addresses(server.port) == {"127.0.0.1"}
        other = other_local_ipv4()
        if other is not None:  # the same port on another interface of this machine is closed
            assert http_get(f"http://{other}:{server.port}/healthz")[0] == 0
        url = server.url
        assert http_get(f"{url}/healthz")[0] == 200  # liveness stays open; /metrics and /readyz need the token
        assert http_get(f"{url}/metrics")[0] == 401 and http_get(f"{url}/metrics", TOKEN)[0] == 200
        assert http_get(f"{url}/status")[0] == 401
        assert http_get(f"{url}/status", "wrong-token")[0] == 401
        assert http_get(f"{url}/status", TOKEN[:-1])[0] == 401  # a prefix of the token is not the token
        assert http_get(f"{url}/status", TOKEN)[0] == 200
        for token in (None, "wrong-token"):
            request = urllib.request.Request(f"{url}/admin/reconcile", data=b"{}", method="POST")  # noqa: S310
            if token:
                request.add_header("Authorization", f"Bearer {token}")
            with pytest.raises(urllib.error.HTTPError) as denied:
                urllib.request.urlopen(request, timeout=5)  # noqa: S310
            assert denied.value.code == 401
        assert calls == []  # the handler never ran for a refused request
        request = urllib.request.Request(f"{url}/admin/reconcile", data=b"{}", method="POST")  # noqa: S310
        request.add_header("Authorization", f"Bearer {TOKEN}")
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            assert response.status == 202
        assert calls == [b"{}"]
