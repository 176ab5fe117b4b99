"""What a DynamoDB error is, in one place: the store's retry decision and the request metrics both
read it, so a code the store retries is never counted as a final failure, nor the reverse."""

from __future__ import annotations

from botocore.exceptions import ClientError

from parity.core.errors import TransientError

THROTTLE_CODES = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"})

# Kinds DynamoStore.call retries while attempts remain (throttling, 5xx, transport errors).
RETRIED_KINDS = frozenset({"throttled", "server", "timeout", "connection"})


def error_kind(error: str) -> str:
    """The kind of a failed DynamoDB request, from its error code (a ClientError's
    `Error.Code`) or, for a failure without one, the exception's class name."""
    if error in THROTTLE_CODES:
        return "throttled"
    if error == "ConditionalCheckFailedException":
        return "conditional_check_failed"
    if "Timeout" in error:
        return "timeout"
    if "Connect" in error or error in ("ConnectionError", "OSError", "EndpointConnectionError"):
        return "connection"
    if error.endswith("Exception") or error in ("ValidationException", "ClientError"):
        return "client"
    return "server"


def is_transport_error(exc: BaseException) -> bool:
    """A failure to reach DynamoDB or to read its answer (a refused or reset connection, a
    timeout, a damaged response): the socket errors, and botocore's and urllib3's own exceptions
    from whichever of their modules, except DynamoDB's answer itself (a ClientError)."""
    if isinstance(exc, ClientError):
        return False
    return isinstance(exc, OSError) or type(exc).__module__.startswith(("botocore", "urllib3"))


class DynamoRefused(ClientError, TransientError):  # type: ignore[misc]  # botocore has no types
    """DynamoDB answered a request with an error the store does not retry (a missing table,
    denied access, an invalid request), and the caller did not take it as an answer (as the
    shadow applier takes a failed condition). Still a ClientError, so callers read its code as
    before; transient for the daemon, which waits for the table or the permission and redoes.
    Its `kind` stays "ClientError", the name logs and /readyz have always shown for it."""

    def __init__(self, refused: ClientError) -> None:
        super().__init__(refused.response, refused.operation_name)
        self.kind = "ClientError"
