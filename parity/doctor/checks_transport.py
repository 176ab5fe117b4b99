"""Insecure transport: connections that would carry customer data or credentials in clear text.

- Postgres: `sslmode` other than `verify-ca` / `verify-full` (libpq's default `prefer`, and
  `require`, encrypt without checking who answers: a man in the middle reads everything).
- Kafka: `security.protocol` PLAINTEXT (librdkafka's default) or SASL_PLAINTEXT.
- DynamoDB: an `http://` endpoint on a host other than loopback.

Only the configuration is read, no connection is made. The DSN is parsed locally and never shown
(it can hold the password): checks name the setting, not its value, apart from the mode itself.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from parity.core.config import ParityConfig
from parity.doctor.report import Check, ok, warn

NAME = "transport"
_VERIFYING = ("verify-ca", "verify-full")


def transport(config: ParityConfig, env: Mapping[str, str] | None = None) -> list[Check]:
    env = os.environ if env is None else env
    return [_postgres(config, env), _kafka(config), _dynamodb(config)]


def _postgres(config: ParityConfig, env: Mapping[str, str]) -> Check:
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(config.postgres.dsn.get_secret_value())
    except Exception:  # psycopg's message may quote the DSN: do not pass it on
        return warn("postgres", NAME, "postgres.dsn could not be parsed to check its sslmode",
                    "use a libpq key/value or postgresql:// DSN with sslmode=verify-full")
    hosts = str(params.get("host") or env.get("PGHOST") or "").split(",")
    if all(h.startswith("/") or h == "" for h in hosts) and not params.get("hostaddr"):
        return ok("postgres", NAME, "Unix-domain socket: no network transport")
    # libpq's order: the DSN, then PGSSLMODE, then its default `prefer`.
    mode = str(params.get("sslmode") or env.get("PGSSLMODE") or "prefer")
    if mode in _VERIFYING:
        return ok("postgres", NAME, f"TLS with the server certificate verified (sslmode={mode})")
    return warn("postgres", NAME,
                f"sslmode={mode}: the server's certificate is not verified"
                + ("" if mode in ("require", "prefer") else ", and the connection may be unencrypted")
                + "; rows and the password can be read or altered in transit",
                "set sslmode=verify-full and sslrootcert=<CA file> in postgres.dsn")


def _kafka(config: ParityConfig) -> Check:
    protocol = config.kafka.options.get("security.protocol", "PLAINTEXT").strip().upper()
    if protocol in ("PLAINTEXT", "SASL_PLAINTEXT"):
        return warn("kafka", NAME,
                    f"security.protocol={protocol}: change events (customer rows), drift and dead letters"
                    + (" and the SASL credentials" if protocol.startswith("SASL") else "")
                    + " travel unencrypted",
                    "set kafka.options security.protocol: SSL or SASL_SSL (with ssl.ca.location if needed)")
    return ok("kafka", NAME, f"security.protocol={protocol}")


def _dynamodb(config: ParityConfig) -> Check:
    endpoint = config.dynamodb.endpoint
    if endpoint is None:
        return ok("dynamodb", NAME, f"the AWS endpoint of {config.dynamodb.region} (HTTPS)")
    url = urlsplit(endpoint)
    if url.scheme.lower() == "http" and not _loopback(url.hostname or ""):
        return warn("dynamodb", NAME,
                    f"dynamodb.endpoint is plain http:// on {url.hostname}: items and signed requests "
                    "travel unencrypted",
                    "use an https:// endpoint (or leave dynamodb.endpoint unset for AWS)")
    return ok("dynamodb", NAME, f"{url.scheme}:// endpoint" + (" on loopback" if url.scheme == "http" else ""))


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
