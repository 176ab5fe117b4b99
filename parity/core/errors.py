"""The project's own exceptions. Data problems are values (see compare.py); these are for input
that cannot be processed at all and for failed I/O in the adapters.

The adapters translate their libraries' failures at their boundary: a failure the daemon answers
by redoing its batch is a `TransientError`, whatever library it came from."""

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


class TransientError(Exception):
    """A dependency failed in a way that a redo from the committed offsets fixes (once it is back).

    The daemon cannot skip records, so it answers every one of these alike: drop the batch,
    rewind to the committed offsets, report not ready, back off, redo. `kind` names the failure
    in logs, /readyz and metrics; a translated library error keeps that error's class name there.

    Not a ParityError by itself: the commands other than the daemon (reconcile, repair) tell
    their own errors from a dependency's, and DynamoDB's and Kafka's failures stay the latter.
    """

    def __init__(self, *args: object, kind: str | None = None) -> None:
        super().__init__(*args)
        self.kind = kind or type(self).__name__


class StoreError(ParityError, TransientError):
    """A durable store (recheck store, drift sink, checkpoint) could not be written."""


class DynamoUnavailable(TransientError):
    """DynamoDB did not answer after the bounded retries; the caller must not commit offsets."""


class BrokerUnavailable(TransientError):
    """The Kafka broker failed a fetch, a commit or a seek (e.g. UNKNOWN_MEMBER_ID after its restart)."""


class UnreachableError(ParityError):
    """A dependency (Postgres, Kafka, DynamoDB) did not answer within its timeout (exit code 3)."""


class LocalEnvironmentError(ParityError):
    """This machine is in the way: a port in use, a directory that cannot be written (exit code 4)."""
