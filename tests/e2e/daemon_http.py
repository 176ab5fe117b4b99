"""The daemon's HTTP endpoints as a client sees them (/healthz, /readyz, /metrics, /status)."""

from __future__ import annotations

import urllib.error
import urllib.request


def http_get(url: str, token: str | None = None) -> tuple[int, bytes]:
    """(status, body) of a GET, with `token` as the bearer; (0, b"") when nothing answers."""
    request = urllib.request.Request(url)  # noqa: S310 - loopback URL built here
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()
    except OSError:
        return 0, b""
