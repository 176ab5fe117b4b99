"""The project's own exceptions. Data problems are values (see compare.py); these are for input
that cannot be processed at all and for failed I/O in the adapters."""

from __future__ import annotations


class ParityError(Exception):
    """Base of every exception parity raises on purpose."""


class ConfigError(ParityError):
    """A configuration file is invalid. `str()` is one line: `file: path.to.field: reason`."""

    def __init__(self, message: str, *, source: str | None = None, path: str | None = None,
                 more: tuple[ConfigError, ...] = ()) -> None:
        self.source = source
        self.path = path
        self.reason = message
        self.more = more  # further errors of the same file (`parity config check` prints each)
        parts = [p for p in (source, path) if p]
        self.line = ": ".join([*parts, message])
        tail = f" (and {len(more)} more error{'s' if len(more) > 1 else ''})" if more else ""
        super().__init__(self.line + tail)

    @property
    def lines(self) -> list[str]:
        """Every error of the file, one line each."""
        return [self.line, *(e.line for e in self.more)]


class DecodeError(ParityError):
    """A Kafka record is not a Debezium change event parity can read (goes to the dead letters)."""


class MappingError(ParityError):
    """A row cannot become a DynamoDB item: a value DynamoDB cannot hold, an empty key, too large."""


class StoreError(ParityError):
    """A durable store (recheck store, drift sink, checkpoint) could not be written."""


class UnreachableError(ParityError):
    """A dependency (Postgres, Kafka, DynamoDB) did not answer within its timeout (exit code 3)."""


class LocalEnvironmentError(ParityError):
    """This machine is in the way: a port in use, a directory that cannot be written (exit code 4)."""
