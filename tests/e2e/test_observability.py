"""Observability end to end: a real Prometheus scrapes a live `parity run` on the real stack.

Postgres -> Debezium -> Kafka -> `parity run` (a subprocess, its HTTP server on a port chosen
here) <- DynamoDB Local; Prometheus (Debian package) scrapes the daemon every second and sends
alerts to a real Alertmanager (gossip off), whose webhook receiver is a small HTTP server in
this test.

The deployment has what every dashboard panel needs to have data:
- a verify-mode payments table written by `PaymentsApp` (Postgres, then a late dual write to
  DynamoDB) with one drift in ten operations: drift ratio far above 1%;
- a shadow-mode copy, with rows present before Debezium starts (a snapshot, i.e. a backfill)
  and live changes after: shadow apply outcomes and backfill progress;
- one undecodable record in the verify table's topic: a dead letter;
- periodic reconciles inside the daemon (`reconcile.interval_s`), at least two runs, so the
  reconciler's rate() and histogram panels have an increase to show.

The rule file is `prometheus/alerts.yml` with one change: `ParityDriftHigh`'s `for: 5m` is
shortened to a few seconds (and Prometheus evaluates rules every second), so the alert fires
within the test; the expression, labels and annotations are the shipped ones.
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Producer
from psycopg import sql

from parity.config_loader import parse_config
from parity.devstack.process import free_port
from parity.devstack.prometheus import PrometheusService, start_alertmanager, start_prometheus
from parity.metrics.dashboards import dashboard_panels, substitute
from parity.workload import PaymentsApp
from tests.conftest import unique
from tests.e2e.daemon_http import http_get
from tests.integration.verify_harness import create_topics, deploy_example, start_daemon_process, wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "obs-token-3c1f0d"
FAST_GRACE = {"grace_period_s": 6, "recheck_schedule_s": [1, 2, 4, 6]}
DRIFT_FOR = "3s"


# ----- helpers ---------------------------------------------------------------------------------------


class WebhookReceiver:
    """Alertmanager's webhook target: records every alert it is sent."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        received = self.alerts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.extend(json.loads(body).get("alerts", []))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/alerts"

    def firing(self, name: str) -> list[dict[str, Any]]:
        return [a for a in list(self.alerts) if a["labels"].get("alertname") == name and a["status"] == "firing"]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def fast_drift_rules(path: Path) -> Path:
    """prometheus/alerts.yml with ParityDriftHigh's `for` shortened to DRIFT_FOR (nothing else changed)."""
    doc = yaml.safe_load((ROOT / "prometheus" / "alerts.yml").read_text())
    changed = 0
    for group in doc["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "ParityDriftHigh":
                rule["for"] = DRIFT_FOR
                changed += 1
    assert changed == 1, "prometheus/alerts.yml has no ParityDriftHigh rule"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def sample_values(result: list[dict[str, Any]]) -> list[float]:
    return [float(r["value"][1]) for r in result]


def insert_payments(conn: Any, table: str, n: int) -> None:
    """Rows written straight to Postgres (the shadow-mode table has no dual writer: parity applies them)."""
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (customer_id, loan_id, amount, payment_date, method, status) "
            "SELECT mod(g, 50) + 1, g, (mod(g, 900) + 100) / 100.0, now() - make_interval(days => mod(g, 30)), "
            "'ACH', 'PENDING' FROM generate_series(1, %s) AS g"
        ).format(sql.Identifier("public", table)),
        (n,),
    )


# ----- the deployment ------------------------------------------------------------------------------------


class Live:
    def __init__(self, config_path: Path, raw: dict[str, Any], port: int) -> None:
        self.config_path = config_path
        self.raw = raw
        self.port = port
        self.config = parse_config(raw, source="observability.yaml", env={})
        self.verify_table = self.config.tables[0]
        self.shadow_table = self.config.tables[1]
        self.url = f"http://127.0.0.1:{port}"


@pytest.fixture
def live(
    pg: Any, kafka: Any, dynamodb: Any, bridge_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Live]:
    # DynamoDB Local accepts any credentials but needs some; the daemon subprocess inherits these.
    for name, value in (("AWS_ACCESS_KEY_ID", "local"), ("AWS_SECRET_ACCESS_KEY", "local"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    state = tmp_path / "state"
    verify = deploy_example("payments", pg=pg, dynamodb=dynamodb, kafka=kafka, suffix=unique("ov"),
                            state_dir=state, table_overrides=FAST_GRACE)
    shadow = deploy_example("payments", pg=pg, dynamodb=dynamodb, kafka=kafka, suffix=unique("os"),
                            state_dir=tmp_path / "unused", table_overrides={**FAST_GRACE, "mode": "shadow"})
    raw = verify.raw
    raw["tables"].append(shadow.raw["tables"][0])
    port = free_port()
    raw["daemon"].update({"http": {"port": port, "bearer_token": TOKEN}, "drift_window_s": 120})
    raw["reconcile"] = {"interval_s": 5, "segments": 2, "workers": 2, "buckets": 64, "grace_period_s": 1,
                        "report_dir": str(tmp_path / "reports")}
    config_path = state / "observability.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    deployed = Live(config_path, raw, port)

    # Rows that exist before Debezium starts arrive as its snapshot: the shadow table's backfill.
    with pg.connect() as conn:
        insert_payments(conn, deployed.shadow_table.table, 40)
    create_topics(kafka, deployed.config.topics())
    bridge_factory([t.source for t in deployed.config.tables], topic_prefix=deployed.config.kafka.topic_prefix)
    yield deployed


# ----- the test ---------------------------------------------------------------------------------------------


def test_prometheus_scrapes_the_live_daemon_every_panel_has_data_and_drift_pages(
    live: Live, pg: Any, kafka: Any, dynamodb: Any, tmp_path: Path
) -> None:
    webhook = WebhookReceiver()
    alertmanager = start_alertmanager(tmp_path, webhook.url)
    prometheus = start_prometheus(
        tmp_path, [f"127.0.0.1:{live.port}"], rule_files=[fast_drift_rules(tmp_path / "alerts-fast.yml")],
        alertmanager_url=alertmanager.url, bearer_token=TOKEN,  # /metrics needs the token too
    )
    log = tmp_path / "daemon.log"
    proc = start_daemon_process(live.config_path, log)
    conn = pg.connect()
    try:
        # --- the daemon's own endpoints --------------------------------------------------------------
        wait_for(lambda: http_get(f"{live.url}/healthz")[0] == 200, 60, "/healthz")
        code, body = http_get(f"{live.url}/healthz")
        assert json.loads(body) == {"status": "alive"}
        assert http_get(f"{live.url}/readyz")[0] == 401  # the token guards readiness and metrics
        wait_for(lambda: http_get(f"{live.url}/readyz", TOKEN)[0] == 200, 60, "/readyz to be 200 (partitions assigned)")
        ready = json.loads(http_get(f"{live.url}/readyz", TOKEN)[1])
        checks = {c["name"]: c["ok"] for c in ready["checks"]}
        assert ready["ready"] is True
        assert checks["group_joined"] and checks["postgres"], ready

        # --- load: drift above 1% on the verify table, changes on the shadow table, one poison record ---
        verify_topic = live.config.kafka.topic_for(live.verify_table.source)
        producer = Producer({"bootstrap.servers": kafka.bootstrap})
        producer.produce(verify_topic, key=b'{"payment_id": -1}', value=b"{this is not json", partition=0)
        producer.flush(10)
        del producer
        app = PaymentsApp(conn, dynamodb.client(), live.verify_table, lag_ms=300, seed=21)
        app.run(200, drift_every=10, rate=80)  # 20 injected drifts in 200 operations
        insert_payments(conn, live.shadow_table.table, 30)
        conn.execute(sql.SQL("UPDATE {} SET status = 'SETTLED', updated_at = now() WHERE mod(payment_id, 3) = 0")
                     .format(sql.Identifier("public", live.shadow_table.table)))
        app.finish()
        # From here on a trickle of changes on both tables keeps the panels' 1-minute rate() windows
        # filled while the test waits for the alert and the reconciles (the machine may be slow).
        trickle = PaymentsApp(conn, dynamodb.client(), live.verify_table, lag_ms=0, seed=22)

        def traffic() -> None:
            trickle.run(2)
            insert_payments(conn, live.shadow_table.table, 1)

        # --- the headline alert reaches the webhook through Prometheus and Alertmanager ------------------
        def paged() -> bool:
            traffic()
            return bool(webhook.firing("ParityDriftHigh"))

        wait_for(paged, 90, "ParityDriftHigh at the webhook")
        alert = webhook.firing("ParityDriftHigh")[0]
        assert alert["labels"]["table"] == live.verify_table.source
        assert alert["labels"]["severity"] == "critical"
        assert live.verify_table.source in alert["annotations"]["summary"]
        assert all(a["labels"]["table"] != live.shadow_table.source for a in webhook.firing("ParityDriftHigh"))
        [ratio] = prometheus.query(f'parity_drift_ratio{{table="{live.verify_table.source}"}}')
        assert float(ratio["value"][1]) > 0.01  # type: ignore[index]

        # --- /status: per-table counts, drift ratio, pending rechecks (behind the bearer token) ----------
        assert http_get(f"{live.url}/status")[0] == 401
        code, body = http_get(f"{live.url}/status", TOKEN)
        assert code == 200
        status = json.loads(body)
        row = status["tables"][live.verify_table.source]
        assert sum(row["outcomes"].values()) >= 150  # 200 operations, most resolved by now
        assert row["verified"] > 0 and row["drift"] > 0 and row["drift_ratio"] > 0.01
        assert row["drift_ratio"] == pytest.approx(row["drift"] / (row["drift"] + row["verified"]))
        assert row["dead_letters"] == 1
        assert "pending_rechecks" in row and row["pending_rechecks"] >= 0
        assert status["tables"][live.shadow_table.source]["applied"] > 0
        assert status["assigned_partitions"] and status["ready"] is True

        # --- two reconciles, so the reconciler's increase()/rate() panels have something to show ---------
        def reconciled_twice() -> bool:
            traffic()
            return _reconcile_runs(prometheus) >= 2

        wait_for(reconciled_twice, 150, "two periodic reconcile runs", interval=1)
        last = json.loads(http_get(f"{live.url}/status", TOKEN)[1])["last_reconcile"]
        assert last is not None and "error" not in last, last
        assert set(last["tables"]) == {live.verify_table.source, live.shadow_table.source}
        assert last["drift_total"] >= 0 and Path(last["report"]).exists()

        # --- every dashboard panel's query returns data ----------------------------------------------------
        results = _evaluate_panels(prometheus)
        empty = [f"{title}: {q}" for title, q, values in results if not values]
        assert not empty, "panels without data:\n" + "\n".join(empty)
        # A panel whose every series is NaN (e.g. a quantile of a zero rate) draws nothing either.
        blank = [f"{title}: {q}" for title, q, values in results if all(math.isnan(v) for v in values)]
        assert not blank, "panels whose every value is NaN:\n" + "\n".join(blank)
        print(f"{len(results)} panel queries evaluated, all with data")
        trickle.finish()

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        conn.close()
        prometheus.stop()
        alertmanager.stop()
        webhook.close()


def _reconcile_runs(prometheus: PrometheusService) -> float:
    result = prometheus.query('min(sum by (table) (parity_reconcile_runs_total{outcome="success"}))')
    return float(result[0]["value"][1]) if result else 0.0  # type: ignore[index]


def _evaluate_panels(prometheus: PrometheusService) -> list[tuple[str, str, list[float]]]:
    """(panel title, query, sample values) for every target of every panel of every dashboard."""
    out: list[tuple[str, str, list[float]]] = []
    for path in sorted((ROOT / "grafana" / "dashboards").glob("*.json")):
        for panel in dashboard_panels(path):
            for target in panel.get("targets", []):
                if not target.get("expr"):
                    continue
                query = substitute(str(target["expr"]))
                out.append((f"{path.stem} / {panel.get('title')}", query, sample_values(prometheus.query(query))))
    assert len(out) >= 20, out  # both dashboards were read
    return out
