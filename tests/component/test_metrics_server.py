"""The HTTP endpoints, over real HTTP on loopback (an ephemeral port per test)."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from parity.core.config import HttpConfig
from parity.metrics.catalog import Metrics
from parity.metrics.server import Check, MetricsServer
from parity.metrics.status import status_from_registry

pytestmark = pytest.mark.component

TOKEN = "s3cret-token"


def request(
    server: MetricsServer, path: str, method: str = "GET", headers: dict[str, str] | None = None, body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Metrics:
    return Metrics(registry, version="9.9.9", tables=["public.subscriber"])


@pytest.fixture
def server(registry: CollectorRegistry, metrics: Metrics) -> Iterator[MetricsServer]:
    checks = [Check("partitions_assigned", True), Check("kafka", True), Check("dynamodb", True)]
    with MetricsServer(
        registry,
        HttpConfig(port=0),
        readiness=lambda: checks,
        status=lambda: status_from_registry(registry, {"mode": "verify"}),
    ) as srv:
        srv.checks = checks  # type: ignore[attr-defined]  # the test flips them
        yield srv


def test_binds_loopback_on_an_ephemeral_port_by_default(server: MetricsServer) -> None:
    assert server.host == "127.0.0.1"
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}"


def test_metrics_serves_the_registry_in_prometheus_text(server: MetricsServer, metrics: Metrics) -> None:
    metrics.event("public.subscriber", "c", "match", direction="forward")
    code, headers, body = request(server, "/metrics")
    assert code == 200
    assert headers["content-type"].startswith("text/plain")
    text = body.decode()
    assert 'parity_build_info{version="9.9.9"} 1.0' in text
    assert 'parity_events_total{direction="forward",op="c",outcome="match",table="public.subscriber"} 1.0' in text


def test_metrics_speaks_openmetrics_when_asked(server: MetricsServer) -> None:
    code, headers, body = request(server, "/metrics", headers={"Accept": "application/openmetrics-text"})
    assert code == 200
    assert headers["content-type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


def test_healthz_is_alive(server: MetricsServer) -> None:
    code, _, body = request(server, "/healthz")
    assert (code, json.loads(body)) == (200, {"status": "alive"})


def test_readyz_is_200_only_when_every_check_is_ok(server: MetricsServer) -> None:
    code, _, body = request(server, "/readyz")
    doc = json.loads(body)
    assert code == 200 and doc["ready"] is True
    assert [c["name"] for c in doc["checks"]] == ["partitions_assigned", "kafka", "dynamodb"]
    server.checks[1] = Check("kafka", False, "broker unreachable")  # type: ignore[attr-defined]
    code, _, body = request(server, "/readyz")
    doc = json.loads(body)
    assert code == 503 and doc["ready"] is False
    assert {"name": "kafka", "ok": False} in doc["checks"]
    assert doc["down"] == ["kafka"]
    assert "broker unreachable" not in body.decode()  # which dependency, never the driver's text


def _serve(registry: CollectorRegistry, **kwargs: Any) -> MetricsServer:
    return MetricsServer(registry, HttpConfig(port=0), **kwargs)


def test_readyz_is_503_without_a_probe_with_no_checks_or_when_the_probe_raises(registry: CollectorRegistry) -> None:
    def raising() -> Iterable[Check]:
        raise ConnectionError("postgres down")

    for kwargs in ({}, {"readiness": list}, {"readiness": raising}):
        with _serve(registry, **kwargs) as srv:
            code, _, body = request(srv, "/readyz")
            assert code == 503, kwargs
            assert json.loads(body)["ready"] is False
    with _serve(registry, readiness=raising) as srv:
        body = request(srv, "/readyz")[2].decode()
        assert "postgres down" not in body and json.loads(body)["down"] == ["readiness"]


def test_status_returns_the_providers_json(server: MetricsServer, metrics: Metrics) -> None:
    metrics.verdicts_batch("public.subscriber", now=0.0, matched=9, drifted={"value_mismatch": 1}, direction="forward")
    metrics.set_consumer_lag("pg.public.subscriber", 0, 7)
    code, headers, body = request(server, "/status")
    assert code == 200 and headers["content-type"] == "application/json"
    doc = json.loads(body)
    assert doc["mode"] == "verify"
    table = doc["tables"]["public.subscriber"]
    assert table["drift_ratio"] == pytest.approx(0.1)
    assert table["drift_by_kind"] == {"value_mismatch": 1}
    assert doc["consumer_lag_total"] == 7


def test_a_failing_status_provider_is_a_500_not_a_dead_server(registry: CollectorRegistry) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("bug")

    with _serve(registry, status=broken) as srv:
        assert request(srv, "/status")[0] == 500
        assert request(srv, "/healthz")[0] == 200


def test_unknown_paths_and_methods(server: MetricsServer) -> None:
    assert request(server, "/nope")[0] == 404
    assert request(server, "/metrics", method="POST")[0] == 405


class TestBearerToken:
    @pytest.fixture
    def secured(self, registry: CollectorRegistry) -> Iterator[MetricsServer]:
        calls: list[bytes] = []

        def reconcile(body: bytes) -> tuple[int, Any]:
            calls.append(body)
            return 202, {"accepted": True}

        with MetricsServer(
            registry,
            HttpConfig(port=0, bearer_token=SecretStr(TOKEN)),
            readiness=lambda: [Check("kafka", True)],
            status=lambda: {"ok": True},
            admin={("POST", "/admin/reconcile"): reconcile},
        ) as srv:
            srv.calls = calls  # type: ignore[attr-defined]
            yield srv

    @pytest.mark.parametrize(
        "auth", [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer ", f"bearer{TOKEN}"]
    )
    def test_status_and_admin_refuse_a_missing_or_wrong_token(self, secured: MetricsServer, auth: str | None) -> None:
        headers = {"Authorization": auth} if auth is not None else {}
        code, resp_headers, _ = request(secured, "/status", headers=headers)
        assert code == 401
        assert resp_headers["www-authenticate"].startswith("Bearer")
        assert request(secured, "/admin/reconcile", "POST", headers, b"{}")[0] == 401
        assert secured.calls == []  # type: ignore[attr-defined]

    def test_status_and_admin_accept_the_token(self, secured: MetricsServer) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        code, _, body = request(secured, "/status", headers=headers)
        assert (code, json.loads(body)) == (200, {"ok": True})
        code, _, body = request(secured, "/admin/reconcile", "POST", headers, b'{"table": "public.subscriber"}')
        assert (code, json.loads(body)) == (202, {"accepted": True})
        assert secured.calls == [b'{"table": "public.subscriber"}']  # type: ignore[attr-defined]

    @pytest.mark.parametrize("path", ["/metrics", "/readyz", "/status"])
    @pytest.mark.parametrize("auth", [None, "Bearer wrong", f"Bearer {TOKEN}x"])
    def test_metrics_readyz_and_status_need_the_token(
        self, secured: MetricsServer, path: str, auth: str | None
    ) -> None:
        headers = {"Authorization": auth} if auth is not None else {}
        code, _, body = request(secured, path, headers=headers)
        assert code == 401
        assert b"parity_" not in body and b"kafka" not in body

    def test_metrics_and_readyz_answer_with_the_token(self, secured: MetricsServer) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        assert request(secured, "/metrics", headers=headers)[0] == 200
        assert request(secured, "/readyz", headers=headers)[0] == 200

    def test_liveness_stays_open(self, secured: MetricsServer) -> None:
        assert request(secured, "/healthz")[0] == 200


def test_concurrent_scrapes_are_served(server: MetricsServer) -> None:
    codes: list[int] = []
    lock = threading.Lock()

    def scrape() -> None:
        code = request(server, "/metrics")[0]
        with lock:
            codes.append(code)

    threads = [threading.Thread(target=scrape) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert codes == [200] * 8


def test_stop_releases_the_port(registry: CollectorRegistry) -> None:
    srv = _serve(registry).start()
    port = srv.port
    srv.stop()
    with pytest.raises(OSError):
        http.client.HTTPConnection("127.0.0.1", port, timeout=2).request("GET", "/healthz")
    srv.stop()  # idempotent


# ----- bind address, timeouts, TLS ----------------------------------------------------------------


def test_a_blank_token_from_an_unset_environment_variable_means_no_token() -> None:
    # `bearer_token: ${PARITY_HTTP_TOKEN:-}` with the variable unset interpolates to "".
    assert HttpConfig(bearer_token="  ").bearer_token is None  # type: ignore[arg-type]


def test_tls_needs_both_the_certificate_and_the_key() -> None:
    with pytest.raises(ValueError, match="tls_key_file"):
        HttpConfig(tls_cert_file="/etc/parity/cert.pem")


def test_a_slow_client_is_cut_off_after_the_request_timeout(registry: CollectorRegistry) -> None:
    import socket
    import time

    config = HttpConfig(port=0, request_timeout_s=0.5)
    with MetricsServer(registry, config, readiness=lambda: [Check("k", True)]) as srv:
        slow = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        slow.sendall(b"GET /healthz HTTP/1.1\r\n")  # and never the rest of the request
        started = time.monotonic()
        slow.settimeout(5)
        try:
            leftover = slow.recv(1024)  # the server closes the connection: b""
        except ConnectionResetError:
            leftover = b""
        waited = time.monotonic() - started
        slow.close()
        assert leftover == b"" and waited < 3, (leftover, waited)
        assert request(srv, "/healthz")[0] == 200


def _self_signed(tmp_path: Any) -> tuple[str, str]:
    import shutil
    import subprocess

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl binary to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return str(cert), str(key)


def test_tls_serves_https_with_the_configured_certificate_and_keeps_the_token(
    registry: CollectorRegistry, metrics: Metrics, tmp_path: Any
) -> None:
    import ssl

    cert, key = _self_signed(tmp_path)
    config = HttpConfig(port=0, tls_cert_file=cert, tls_key_file=key, bearer_token=SecretStr(TOKEN))
    with MetricsServer(registry, config, readiness=lambda: [Check("k", True)]) as srv:
        assert srv.url.startswith("https://")
        ctx = ssl.create_default_context(cafile=cert)
        conn = http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=5, context=ctx)
        conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        resp = conn.getresponse()
        assert resp.status == 200 and b"parity_" in resp.read()
        conn.close()
        # Plain HTTP to the TLS port gets no metrics.
        plain = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
        with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
            plain.request("GET", "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            answer = plain.getresponse()
            assert answer.status != 200
            raise ConnectionError("refused as expected")
        plain.close()
        assert request_tls_healthz(srv.port, cert) == 200


def request_tls_healthz(port: int, cafile: str) -> int:
    import ssl

    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=ssl.create_default_context(cafile=cafile))
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status
    finally:
        conn.close()
