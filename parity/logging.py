"""Structured logs: one JSON object per line on stderr, with secrets redacted from every field.

`configure_logging(level, json=True)` sets up structlog and routes the standard library's
loggers (botocore, kafka, psycopg) through the same processors, so a DSN in a driver's error
message is redacted as well. Redaction runs last, after exceptions are rendered to text, because
a connection error's message is exactly where a password tends to show up.

`redact_dsn` / `redact_text` are usable anywhere a string is shown (CLI errors, reports).
"""

from __future__ import annotations

import json as stdjson
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from parity.core.config import is_secret_option

MASK = "***"

# postgresql://user:secret@host -> postgresql://user:***@host. The password ends at the last '@'
# of the authority (an unescaped '@' in a password is wrong but common).
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/?#\s@]*):(?P<pw>[^/?#\s]*)@")
# key=value secrets: libpq keyword DSNs (password='a b'), URL query strings, env-style assignments.
_KV_SECRET = re.compile(
    r"(?P<key>\b(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?token|"
    r"aws_secret_access_key|secret[_-]?access[_-]?key|aws_session_token|session[_-]?token)"
    r"[\"']?\s*[=:]\s*)"
    r"(?P<value>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s&;,'\"}]+)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?P<head>\bBearer\s+)[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE)
_BASIC = re.compile(r"(?P<head>\bBasic\s+)[A-Za-z0-9+/]{8,}=*", re.IGNORECASE)
# AWS access key ids are not secret on their own but identify the credential; keep the prefix.
_AWS_KEY_ID = re.compile(r"\b(?P<prefix>AKIA|ASIA)[A-Z0-9]{16}\b")
# A bare 40-character AWS secret access key. Demanding upper, lower and digit keeps hex digests
# (git SHAs, sha1) out, which are lower-case only.
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")

# Event fields whose whole value is a secret, whatever it looks like (and Kafka client properties
# such as sasl.password, ssl.key.pem: `is_secret_option`).
_SECRET_FIELD = re.compile(
    r"(?:^|[_.\-])(?:password|passwd|pwd|secret|token|authorization|api_?key|credentials?|"
    r"secret_access_key|session_token)$",
    re.IGNORECASE,
)


def _aws_secret(match: re.Match[str]) -> str:
    text = match.group(0)
    has_kinds = (
        any(c.isupper() for c in text) and any(c.islower() for c in text) and any(c.isdigit() for c in text)
    )
    return MASK if has_kinds else text


def redact_dsn(dsn: str) -> str:
    """A Postgres DSN (URL or key=value form) with its password replaced by `***`."""
    return _KV_SECRET.sub(lambda m: m.group("key") + MASK, _URL_PASSWORD.sub(r"\g<head>:" + MASK + "@", dsn))


def redact_text(text: str) -> str:
    """Every secret parity knows how to recognise in free text, masked."""
    text = redact_dsn(text)
    text = _BEARER.sub(r"\g<head>" + MASK, text)
    text = _BASIC.sub(r"\g<head>" + MASK, text)
    text = _AWS_KEY_ID.sub(r"\g<prefix>" + MASK, text)
    return _AWS_SECRET.sub(_aws_secret, text)


def redact_value(value: Any, key: str | None = None) -> Any:
    if key is not None and (_SECRET_FIELD.search(key) or is_secret_option(key)) and value is not None:
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(v) for v in value]
    if isinstance(value, orjson.Fragment):
        # JSON parity built itself (a key document): written as is, unless it looks like a secret.
        text = orjson.dumps(value).decode()
        masked = redact_text(text)
        return value if masked == text else masked
    if isinstance(value, bytes | bytearray | int | float | bool | Decimal) or value is None:
        return value
    # Objects are rendered to text by the JSON renderer anyway; render here so their text is checked.
    return redact_text(str(value))


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: redacts every field of the event (recursively)."""
    for key in list(event_dict):
        event_dict[key] = redact_value(event_dict[key], key)
    return event_dict


def _log_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # A number stays a number, in the plain digits the drift records use (210, not 2.1E+2).
        from parity.core.values import number_text

        return orjson.Fragment(number_text(value)) if value.is_finite() else str(value)
    return repr(value)


def _stdlib_default(value: Any) -> Any:
    if isinstance(value, orjson.Fragment):
        return stdjson.loads(orjson.dumps(value))
    if isinstance(value, Decimal):
        return str(value)
    return repr(value)


def render_json(event_dict: EventDict, **_ignored: Any) -> str:
    """One compact JSON line, written by orjson as the drift log and topic are, so a key shows
    the same text in a log line as in drift.jsonl (`parity.core.keys.key_document`)."""
    try:
        return orjson.dumps(event_dict, default=_log_default, option=orjson.OPT_NON_STR_KEYS).decode()
    except (orjson.JSONEncodeError, TypeError):  # e.g. an int beyond 64 bits: never lose the line
        return stdjson.dumps(event_dict, default=_stdlib_default, separators=(",", ":"), ensure_ascii=False)


# The logger librdkafka's lines are forwarded to (confluent-kafka's `logger` setting): they become
# parity's JSON lines, rate-limited, instead of librdkafka's raw `%3|...` lines on stderr.
KAFKA_CLIENT_LOGGER = "parity.kafka.client"
# Libraries whose lines repeat while a dependency is down: at most one identical line per interval.
RATE_LIMITED = (KAFKA_CLIENT_LOGGER, "parity.wait", "botocore", "boto3", "urllib3", "kafka")
_DIGITS = re.compile(r"\d+")


def kafka_client_logger() -> logging.Logger:
    """For confluent-kafka's `logger` configuration key (consumer and producer)."""
    return logging.getLogger(KAFKA_CLIENT_LOGGER)


class RateLimitFilter(logging.Filter):
    """At most one line per `interval_s` for each repeated message of the libraries in `prefixes`
    (numbers in the message are ignored when comparing: librdkafka says "after 0ms", "after 3ms");
    the line that gets through after a quiet spell says how many were suppressed. botocore's
    "Found credentials in ..." (logged at every credential resolution) passes once per process."""

    def __init__(self, interval_s: float = 30.0, prefixes: tuple[str, ...] = RATE_LIMITED,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.prefixes = prefixes
        self.clock = clock
        self.max_keys = max_keys
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}
        self._once: set[str] = set()
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefixes):
            return True
        message = record.getMessage()
        with self._lock:
            if record.name.startswith("botocore.credentials") and message.startswith("Found credentials"):
                if message in self._once:
                    return False
                self._once.add(message)
                return True
            key = (record.name, record.levelno, _DIGITS.sub("#", message))
            now = self.clock()
            seen = self._seen.get(key)
            if seen is not None and now - seen[0] < self.interval_s:
                self._seen[key] = (seen[0], seen[1] + 1)
                return False
            if len(self._seen) >= self.max_keys:
                self._seen.clear()
            self._seen[key] = (now, 0)
        suppressed = seen[1] if seen is not None else 0
        if suppressed:
            record.msg = f"{message} ({suppressed} identical lines suppressed in the last {self.interval_s:g}s)"
            record.args = ()
        return True


def _processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        redact_secrets,
    ]


def _fragments_as_text(_logger: Any, _name: str, event_dict: EventDict) -> EventDict:
    for name, value in event_dict.items():
        if isinstance(value, orjson.Fragment):
            event_dict[name] = orjson.dumps(value).decode()
    return event_dict


def _level_number(level: str | int) -> int:
    if isinstance(level, int):
        return level
    number = logging.getLevelNamesMapping().get(level.upper())
    if number is None:
        raise ValueError(f"unknown log level {level!r}; use debug, info, warning, error or critical")
    return number


def configure_logging(level: str | int = "info", json: bool = True, stream: TextIO | None = None) -> None:
    """JSON lines (or a readable console format when `json=False`) on `stream` (stderr)."""
    number = _level_number(level)
    out = stream if stream is not None else sys.stderr
    renderer: Processor = (
        structlog.processors.JSONRenderer(serializer=render_json)
        if json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared = _processors()
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(number),
        cache_logger_on_first_use=False,
    )
    # The console renderer would print a key document's repr: show the JSON text drift.jsonl has.
    texts: list[Processor] = [] if json else [_fragments_as_text]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *texts, renderer],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    handler.addFilter(RateLimitFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_parity", False):
            root.removeHandler(old)
    handler._parity = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(number)
    # Chatty libraries: their DEBUG lines are useful only when debugging them.
    for noisy in ("botocore", "boto3", "urllib3", "kafka"):
        logging.getLogger(noisy).setLevel(max(number, logging.INFO))


class _CurrentStderr:
    """Whatever sys.stderr is at the time of the write (a test runner swaps it per invocation)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_cli_logging() -> None:
    """For the one-shot commands (all but `parity run`, which calls `configure_logging`): structlog's
    default writes to stdout, where a warning (e.g. `private_path_tightened`) would corrupt the
    `--json` output. Readable lines on stderr instead, redacted. Left alone when already configured."""
    if structlog.is_configured():
        return
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        logger_factory=structlog.PrintLoggerFactory(_CurrentStderr()),  # type: ignore[arg-type]
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=False,
    )
