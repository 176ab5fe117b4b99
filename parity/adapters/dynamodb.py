"""DynamoDB access for the daemon: batched consistent reads and conditional writes.

The low-level client is injected (never built here), so tests and benchmarks decide endpoints,
retries and connection pools. Items cross this boundary in parity's canonical value model
(`parity.core.values`); the wire format stays inside.

Fast reads: botocore turns every response into Python by walking the service model, value by
value, which costs more CPU than everything parity then does with an item (measured in
BENCHMARKS.md). For the read operations (`RAW_READS`) the store hooks botocore's `before-parse`
event, decodes the body with orjson itself, and hands botocore an empty body to parse. The result
has the same keys and wire shape, except that binary values stay base64 text as DynamoDB sent
them (`item_from_wire` accepts both); keys handed back to botocore (LastEvaluatedKey,
UnprocessedKeys) are turned back into bytes here. Errors (any non-200) are parsed by botocore as
usual. Only calls made through this store are affected, even on a shared client.
"""

from __future__ import annotations

import base64
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Protocol, runtime_checkable

import orjson
from botocore.exceptions import ClientError

from parity.adapters.errors import DynamoRefused as DynamoRefused
from parity.adapters.errors import error_kind, is_transport_error
from parity.core.errors import DynamoUnavailable
from parity.core.values import item_from_wire, item_to_wire

Item = dict[str, Any]
KeyTuple = tuple[Any, ...]

BATCH_GET_LIMIT = 100  # DynamoDB's limit of keys per BatchGetItem
RAW_READS = ("Scan", "Query", "GetItem", "BatchGetItem")


@runtime_checkable
class DynamoObserver(Protocol):
    # `last_attempt`: no retry can follow this attempt (an error of an earlier one may be retried).
    def dynamo_request(
        self, table: str, operation: str, seconds: float, error: str | None, last_attempt: bool = True
    ) -> None: ...


class _NoObserver:
    def dynamo_request(
        self, table: str, operation: str, seconds: float, error: str | None, last_attempt: bool = True
    ) -> None:
        return None


def key_tuple(key_names: Sequence[str], item: Item) -> KeyTuple:
    return tuple(item.get(n) for n in key_names)


class DynamoStore:
    def __init__(
        self,
        client: Any,
        *,
        concurrency: int = 8,
        write_concurrency: int | None = None,
        observer: DynamoObserver | None = None,
        max_attempts: int = 8,
        base_delay_s: float = 0.05,
        max_delay_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        raw_reads: bool = True,
    ) -> None:
        self.client = client
        self._raw = threading.local()
        events = getattr(getattr(client, "meta", None), "events", None)
        self.raw_reads = False
        self._hooks: list[str] = []
        if raw_reads and events is not None:  # fakes in tests have no botocore event system
            service = client.meta.service_model.service_id.hyphenize()
            self._hooks = [f"before-parse.{service}.{operation}" for operation in RAW_READS]
            for event in self._hooks:
                events.register(event, self._parse_raw)
            self.raw_reads = True
        self.observer = observer or _NoObserver()
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self._sleep = sleep
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="dynamo")
        self.concurrency = concurrency
        # `map_parallel`'s own threads (the writes of shadow mode): a `width` above `concurrency`
        # (single writes, one request per item) must not starve the reads of `_pool`.
        self.write_concurrency = max(concurrency, write_concurrency or concurrency)
        self._map_pool = ThreadPoolExecutor(max_workers=self.write_concurrency, thread_name_prefix="dynamo-write")
        # Told of every failed attempt that looks like an outage (transport error, 5xx), before the
        # retries run out: with 8 attempts of `timeout_s` each, the daemon would otherwise look
        # healthy for minutes while DynamoDB is unreachable. Throttling is not an outage.
        self.on_unreachable: Callable[[str], None] | None = None

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._map_pool.shutdown(wait=True)
        # A shared client outlives the store: leave no handler of ours on it.
        for event in self._hooks:
            self.client.meta.events.unregister(event, self._parse_raw)
        self._hooks = []

    # -- retries -------------------------------------------------------------------------------

    def _backoff(self, attempt: int) -> None:
        # Full jitter: spreads retries of many workers instead of synchronising them.
        cap = min(self.max_delay_s, self.base_delay_s * (2**attempt))
        self._sleep(random.uniform(0, cap))

    @contextmanager
    def _timed(self, table: str, operation: str, last_attempt: bool = True) -> Iterator[None]:
        start = time.perf_counter()
        error: str | None = None
        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {}).get("Code", "ClientError")
            raise
        except Exception as exc:
            error = type(exc).__name__
            raise
        finally:
            self.observer.dynamo_request(table, operation, time.perf_counter() - start, error, last_attempt)

    def _parse_raw(self, response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any) -> None:
        if not getattr(self._raw, "on", False) or response_dict.get("status_code") != 200:
            return
        body = response_dict.get("body")
        if not body:
            return
        try:
            decoded = orjson.loads(body)
        except orjson.JSONDecodeError:
            return  # a damaged body: botocore parses it and raises its own (retried) error
        customized_response_dict.update(decoded)
        response_dict["body"] = b"{}"

    def _call_raw(self, method: Callable[..., dict[str, Any]], kwargs: dict[str, Any]) -> dict[str, Any]:
        self._raw.on = True
        try:
            result = method(**kwargs)
        finally:
            self._raw.on = False
        last = result.get("LastEvaluatedKey")
        if last:
            result["LastEvaluatedKey"] = _binary_back(last)
        unprocessed = result.get("UnprocessedKeys")
        if unprocessed:
            result["UnprocessedKeys"] = {
                table: {**request, "Keys": [_binary_back(k) for k in request.get("Keys", [])]}
                for table, request in unprocessed.items()
            }
        return result

    def _unreachable(self, detail: str) -> None:
        if self.on_unreachable is not None:
            self.on_unreachable(detail)

    def call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """One DynamoDB call with bounded exponential backoff on throttling and transport errors.

        Conditional-check failures and validation errors are returned to the caller at once."""
        method = getattr(self.client, _snake(operation))
        raw = self.raw_reads and operation in RAW_READS
        table = kwargs.get("TableName") or next(iter(kwargs.get("RequestItems") or {"": None}))
        if not table and kwargs.get("TransactItems"):  # labelled by the first write's table
            table = next(iter(kwargs["TransactItems"][0].values())).get("TableName", "")
        for attempt in range(self.max_attempts):
            try:
                with self._timed(table, operation, last_attempt=attempt + 1 >= self.max_attempts):
                    result: dict[str, Any] = self._call_raw(method, kwargs) if raw else method(**kwargs)
                    return result
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if error_kind(code) == "throttled" or status >= 500:
                    if status >= 500:
                        self._unreachable(f"{operation}: {code or status}")
                    if attempt + 1 < self.max_attempts:
                        self._backoff(attempt)
                        continue
                    raise DynamoUnavailable(f"{operation}: {code} after {self.max_attempts} attempts") from exc
                raise DynamoRefused(exc) from exc
            except OSError as exc:
                self._unreachable(f"{operation}: {type(exc).__name__}")
                if attempt + 1 < self.max_attempts:
                    self._backoff(attempt)
                    continue
                raise DynamoUnavailable(
                    f"{operation}: {type(exc).__name__} after {self.max_attempts} attempts"
                ) from exc
            except Exception as exc:  # botocore's EndpointConnectionError, urllib3's errors, ...
                if is_transport_error(exc):
                    self._unreachable(f"{operation}: {type(exc).__name__}")
                    if attempt + 1 < self.max_attempts:
                        self._backoff(attempt)
                        continue
                    raise DynamoUnavailable(f"{operation}: {type(exc).__name__}") from exc
                raise
        raise DynamoUnavailable(operation)  # pragma: no cover - loop always returns or raises

    # -- reads ---------------------------------------------------------------------------------

    def batch_get(
        self, table: str, key_names: Sequence[str], keys: Sequence[Item], *, consistent: bool = True
    ) -> dict[KeyTuple, Item]:
        """Items by key tuple for every key that exists; chunks of 100 fetched in parallel."""
        if not keys:
            return {}
        chunks = [keys[i : i + BATCH_GET_LIMIT] for i in range(0, len(keys), BATCH_GET_LIMIT)]
        found: dict[KeyTuple, Item] = {}
        if len(chunks) == 1:
            results: Iterator[dict[KeyTuple, Item]] = iter([self._get_chunk(table, key_names, chunks[0], consistent)])
        else:
            results = self._pool.map(lambda c: self._get_chunk(table, key_names, c, consistent), chunks)
        for part in results:
            found.update(part)
        return found

    def batch_get_async(
        self, table: str, key_names: Sequence[str], keys: Sequence[Item], *, consistent: bool = True
    ) -> Future[dict[KeyTuple, Item]]:
        """One BatchGetItem chunk (at most BATCH_GET_LIMIT keys) read in the background."""
        if len(keys) > BATCH_GET_LIMIT:
            raise ValueError(f"at most {BATCH_GET_LIMIT} keys per chunk, got {len(keys)}")
        return self._pool.submit(self._get_chunk, table, key_names, keys, consistent)

    def _get_chunk(
        self, table: str, key_names: Sequence[str], keys: Sequence[Item], consistent: bool
    ) -> dict[KeyTuple, Item]:
        request: dict[str, Any] = {table: {"Keys": [item_to_wire(k) for k in keys], "ConsistentRead": consistent}}
        found: dict[KeyTuple, Item] = {}
        attempt = 0
        while request:
            resp = self.call("BatchGetItem", RequestItems=request)
            for wire in resp.get("Responses", {}).get(table, []):
                item = item_from_wire(wire)
                found[key_tuple(key_names, item)] = item
            request = resp.get("UnprocessedKeys") or {}
            if request:
                # DynamoDB returns UnprocessedKeys under load or above 16 MB per response.
                if attempt + 1 >= self.max_attempts:
                    raise DynamoUnavailable(f"BatchGetItem: keys still unprocessed after {attempt + 1} attempts")
                self._backoff(attempt)
                attempt += 1
        return found

    def get(self, table: str, key: Item, *, consistent: bool = True) -> Item | None:
        resp = self.call("GetItem", TableName=table, Key=item_to_wire(key), ConsistentRead=consistent)
        wire = resp.get("Item")
        return item_from_wire(wire) if wire is not None else None

    def map_parallel(self, fn: Callable[[Any], Any], items: Sequence[Any], *, width: int | None = None) -> list[Any]:
        """`fn` of every item, in the order of `items`, at most `width` calls at once (default
        `concurrency`, capped to `write_concurrency`).

        `width` tasks drain one shared iterator instead of one future per item: a future per
        single write (its lock, its condition, the waiter's wake-up) was about a fifth of parity's
        own CPU per write (BENCHMARKS.md, issue 23). After a call raises, no new call starts, and the exception is
        raised only once every call already started has returned: no write is left running
        unobserved behind an error (the caller retries the batch)."""
        n = len(items)
        if n == 0:
            return []
        results: list[Any] = [None] * n
        failures: list[tuple[int, BaseException]] = []
        lock = threading.Lock()
        indexes = iter(range(n))

        def drain() -> None:
            while True:
                with lock:
                    if failures:
                        return
                    i = next(indexes, None)
                if i is None:
                    return
                try:
                    results[i] = fn(items[i])
                except BaseException as exc:
                    with lock:
                        failures.append((i, exc))
                    return

        tasks = min(n, max(1, min(width or self.concurrency, self.write_concurrency)))
        if tasks == 1:
            drain()  # nothing to overlap: no thread hand-off
        else:
            for done in [self._map_pool.submit(drain) for _ in range(tasks)]:
                done.result()  # drain() keeps its exceptions: this only waits
        if failures:
            raise min(failures, key=lambda f: f[0])[1]  # the earliest item's, as a sequential loop would
        return results


def _binary_back(key: dict[str, Any]) -> dict[str, Any]:
    """A key from a raw response, with base64 binary values as bytes again (botocore encodes them)."""
    out = {}
    for name, av in key.items():
        if "B" in av and isinstance(av["B"], str):
            av = {"B": base64.b64decode(av["B"])}
        out[name] = av
    return out


def _snake(operation: str) -> str:
    out = []
    for i, ch in enumerate(operation):
        if ch.isupper() and i:
            out.append("_")
        out.append(ch.lower())
    return "".join(out)
