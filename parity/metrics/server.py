"""The daemon's HTTP endpoints: /metrics, /healthz, /readyz, /status (+ optional admin routes).

- `/metrics`  Prometheus exposition of the registry it is given.
- `/healthz`  200 while the process serves requests (liveness); always open.
- `/readyz`   200 only when every check of the readiness callback is ok; JSON names each check and
              lists the ones that are down (`down`), never a driver's error text (that can hold
              host names, user names, SQL): the text goes to the log when a check turns bad.
- `/status`   JSON from the status callback (per-table counts, drift ratio, lag, last reconcile).
- admin routes, registered by the caller (e.g. POST /admin/reconcile).

When a bearer token is configured, everything but `/healthz` requires
`Authorization: Bearer <token>` (metrics carry table names and drift figures; readiness tells
which dependency is down), compared with `hmac.compare_digest` so response timing does not leak
how much of a guess matched. Prometheus sends it with `authorization: {credentials_file: ...}`.
The server binds 127.0.0.1 by default (HttpConfig): exposing it wider is a deliberate
configuration choice. Every connection has a socket timeout (`request_timeout_s`), so a slow or
stalled client holds its thread that long at most. With `tls_cert_file` and `tls_key_file` it
serves HTTPS (stdlib ssl, TLS 1.2+); the TLS handshake runs in the connection's own thread,
under the same timeout, so a client that stalls the handshake cannot block the accept loop.

It is the stdlib ThreadingHTTPServer in a daemon thread: a scrape or probe never waits for the
pipeline, and a stuck pipeline still answers /healthz, /metrics (which is how you see it is stuck).
"""

from __future__ import annotations

import hmac
import ssl
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from parity.core.config import HttpConfig

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Check:
    """One readiness check: partitions assigned, kafka, dynamodb, postgres reachable, stores writable."""

    name: str
    ok: bool
    detail: str = ""


ReadinessProbe = Callable[[], Iterable[Check]]
StatusProvider = Callable[[], Mapping[str, Any]]
# An admin route gets the request body and returns (HTTP status, JSON-serialisable body).
AdminHandler = Callable[[bytes], tuple[int, Any]]

_MAX_BODY = 1 << 20  # admin requests are small; refuse to buffer anything large


def _not_ready() -> Iterable[Check]:
    return [Check("readiness", False, "no readiness probe configured")]


def _no_status() -> Mapping[str, Any]:
    return {}


def _json(value: Any) -> bytes:
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SORT_KEYS)


class MetricsServer:
    """Serves the endpoints on `config.host:config.port` (port 0 = an ephemeral port, see `.port`)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        config: HttpConfig | None = None,
        *,
        readiness: ReadinessProbe = _not_ready,
        status: StatusProvider = _no_status,
        admin: Mapping[tuple[str, str], AdminHandler] | None = None,
    ) -> None:
        self.registry = registry
        self.config = config or HttpConfig()
        self.readiness = readiness
        self.status = status
        self._admin = dict(admin or {})
        token = self.config.bearer_token
        self._token: bytes | None = token.get_secret_value().encode() if token else None
        self._httpd: ThreadingHTTPServer | None = None
        self._down_lock = threading.Lock()
        self._last_down: tuple[tuple[str, str], ...] = ()
        self._thread: threading.Thread | None = None

    # ----- lifecycle --------------------------------------------------------------------------------

    def start(self) -> MetricsServer:
        if self._httpd is not None:
            raise RuntimeError("already started")
        handler = _handler_class(self)
        try:
            self._httpd = _Server((self.config.host, self.config.port), handler)
        except OSError as exc:
            from parity.core.errors import LocalEnvironmentError

            # One line naming the setting, not socketserver's traceback (exit code 4).
            raise LocalEnvironmentError(
                f"daemon.http: cannot listen on {self.config.host}:{self.config.port}: "
                f"{exc.strerror or exc}: stop the process using it or set daemon.http.port / daemon.http.host"
            ) from exc
        self._httpd.daemon_threads = True
        if self.config.tls_cert_file and self.config.tls_key_file:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_cert_chain(self.config.tls_cert_file, self.config.tls_key_file)
            # No handshake in accept(): it would run in the serving thread, where one client that
            # never finishes it would stop every other request. The handler thread does it.
            self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True, do_handshake_on_connect=False)
        # A short poll interval bounds how long stop() waits; the poll costs nothing measurable.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="parity-http", daemon=True
        )
        self._thread.start()
        log.info("http_started", host=self.host, port=self.port)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout)
        self._httpd = self._thread = None

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def host(self) -> str:
        if self._httpd is None:
            return self.config.host
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        """The bound port (the ephemeral one when configured with port 0)."""
        if self._httpd is None:
            raise RuntimeError("not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"{'https' if self.config.tls else 'http'}://{self.host}:{self.port}"

    # ----- request handling (called from the handler threads) --------------------------------------

    def authorized(self, header: str | None) -> bool:
        if self._token is None:
            return True
        if not header or not header.startswith("Bearer "):
            return False
        return hmac.compare_digest(header[len("Bearer ") :].strip().encode(), self._token)

    def handle(self, method: str, path: str, auth: str | None, body: bytes, accept: str) -> _Response:
        route = path.split("?", 1)[0]
        if method == "GET" and route == "/healthz":
            return _Response.json(HTTPStatus.OK, {"status": "alive"})
        if method == "GET" and route in ("/metrics", "/readyz", "/status") and not self.authorized(auth):
            return _unauthorized()
        if method == "GET" and route == "/metrics":
            encoder, content_type = choose_encoder(accept)
            return _Response(HTTPStatus.OK, encoder(self.registry), content_type)
        if method == "GET" and route == "/readyz":
            return self._ready()
        if route == "/status" and method == "GET":
            try:
                return _Response.json(HTTPStatus.OK, dict(self.status()))
            except Exception as exc:  # a status bug must not take the endpoint down
                log.warning("status_failed", error=repr(exc))
                return _Response.json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": type(exc).__name__})
        admin = self._admin.get((method, route))
        if admin is not None:
            if not self.authorized(auth):
                return _unauthorized()
            code, payload = admin(body)
            return _Response.json(code, payload)
        if any(r == route for _m, r in self._admin) or route in (
            "/metrics",
            "/healthz",
            "/readyz",
            "/status",
        ):
            return _Response.json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "method not allowed"})
        return _Response.json(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def _ready(self) -> _Response:
        try:
            checks = list(self.readiness())
        except Exception as exc:  # a probe that raises means "not ready"; the reason goes to the log
            checks = [Check("readiness", False, f"probe raised {type(exc).__name__}: {exc}")]
        if not checks:
            checks = [Check("readiness", False, "the readiness probe reported no checks")]
        down = [c.name for c in checks if not c.ok]
        self._log_down(checks)
        body = {"ready": not down, "down": down, "checks": [{"name": c.name, "ok": c.ok} for c in checks]}
        return _Response.json(HTTPStatus.SERVICE_UNAVAILABLE if down else HTTPStatus.OK, body)

    def _log_down(self, checks: list[Check]) -> None:
        # Once per change of what is down, not on every probe (Kubernetes asks every few seconds).
        down = tuple((c.name, c.detail) for c in checks if not c.ok)
        with self._down_lock:
            changed, self._last_down = down != self._last_down, down
        if changed and down:
            log.warning("not_ready", down={name: detail for name, detail in down})


@dataclass(frozen=True, slots=True)
class _Response:
    code: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()

    @staticmethod
    def json(code: int, value: Any) -> _Response:
        return _Response(code, _json(value), "application/json")


def _unauthorized() -> _Response:
    return _Response(
        HTTPStatus.UNAUTHORIZED,
        _json({"error": "unauthorized"}),
        "application/json",
        (("WWW-Authenticate", 'Bearer realm="parity"'),),
    )


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that times out, resets or fails the TLS handshake is the client's problem:
        # one log line, not socketserver's traceback on stderr.
        log.debug("http_connection_dropped", client=str(client_address[0]))


def _handler_class(server: MetricsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "parity"
        sys_version = ""
        # StreamRequestHandler sets it on the connection: every read and write of a request,
        # and the TLS handshake below, gives up after this long.
        timeout = server.config.request_timeout_s

        def setup(self) -> None:
            super().setup()
            if isinstance(self.connection, ssl.SSLSocket):
                try:
                    self.connection.do_handshake()
                except OSError:  # TimeoutError included
                    self.close_connection = True
                    raise

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > _MAX_BODY:
                resp = _Response.json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "body too large"})
                self.close_connection = True
            else:
                body = self.rfile.read(length) if length > 0 else b""
                try:
                    resp = server.handle(
                        method,
                        self.path,
                        self.headers.get("Authorization"),
                        body,
                        self.headers.get("Accept", ""),
                    )
                except Exception as exc:
                    log.error("http_handler_failed", path=self.path.split("?", 1)[0], error=repr(exc))
                    resp = _Response.json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": type(exc).__name__})
            self.send_response(resp.code)
            self.send_header("Content-Type", resp.content_type)
            self.send_header("Content-Length", str(len(resp.body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in resp.headers:
                self.send_header(name, value)
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(resp.body)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def log_message(self, format: str, *args: Any) -> None:
            # Scrapes and probes every few seconds would drown the log; errors are logged above.
            return

    return Handler
