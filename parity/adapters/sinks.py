"""Where confirmed drift and dead letters go. Each `flush()` returns only when the data is
durable (fsynced file, acknowledged by Kafka), because offsets are committed right after."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException

from parity.adapters.kafka import broker_unavailable
from parity.core.errors import StoreError
from parity.files import open_private, parent_dir, private_file


class JsonLinesFile:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # Drift records hold keys and non-redacted values: the file is 0600 (parity.files).
        parent_dir(self.path)
        private_file(self.path)

    def write(self, lines: Sequence[bytes]) -> None:
        if not lines:
            return
        try:
            with os.fdopen(open_private(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, tighten=False), "ab") as fh:
                fh.write(b"".join(line + b"\n" for line in lines))
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise StoreError(f"drift log {self.path}: {exc.strerror or exc}") from exc


class KafkaTopicSink:
    """A producer for the drift and dead-letter topics (idempotent, acks=all)."""

    def __init__(self, producer: Any, topic: str, *, flush_timeout_s: float = 30.0) -> None:
        self.producer = producer
        self.topic = topic
        self.flush_timeout_s = flush_timeout_s
        self._errors: list[str] = []

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._errors.append(str(err))

    def send(self, messages: Sequence[tuple[bytes | None, bytes]]) -> None:
        try:
            for key, value in messages:
                while True:
                    try:
                        self.producer.produce(self.topic, value=value, key=key, on_delivery=self._delivered)
                        break
                    except BufferError:
                        self.producer.poll(0.1)
            self.producer.poll(0)
        except KafkaException as exc:  # e.g. a message over the broker's size limit
            raise broker_unavailable(exc) from exc

    def flush(self) -> None:
        try:
            remaining = self.producer.flush(self.flush_timeout_s)
        except KafkaException as exc:
            raise broker_unavailable(exc) from exc
        if remaining:
            raise StoreError(f"topic {self.topic}: {remaining} messages not acknowledged")
        if self._errors:
            errors, self._errors = self._errors, []
            raise StoreError(f"topic {self.topic}: delivery failed: {errors[0]}")
