"""DynamoDB Stream records as the reverse direction sees them (after cutover).

After cutover DynamoDB is the source of truth and Postgres the rollback copy: parity reads the
target table's DynamoDB Stream and checks each change against Postgres. This module holds the
record type shared by the stream adapter (`parity.adapters.streams`, shards, iterators, leases,
checkpoints) and the reverse verifier; it has no I/O.

A record's position is (shard, sequence number). Sequence numbers are decimal strings that grow
within a shard; they are compared as integers, never as text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from parity.core.values import Item

StreamEventName = Literal["INSERT", "MODIFY", "REMOVE"]


@dataclass(frozen=True, slots=True)
class StreamRecord:
    table: str  # the DynamoDB table whose stream this is
    shard_id: str
    sequence_number: str  # decimal digits; order within a shard by int(sequence_number)
    event_name: StreamEventName
    keys: Item  # the item's primary key attributes, decoded (parity.core.values)
    new_image: Item | None  # None for REMOVE, or with a KEYS_ONLY / OLD_IMAGE view
    old_image: Item | None  # None for INSERT, or with a NEW_IMAGE view
    approximate_creation_s: float  # ApproximateCreationDateTime, epoch seconds

    @property
    def position(self) -> tuple[str, int]:
        return self.shard_id, int(self.sequence_number)
