"""Where each consumed record ends: one outcome, counted per source table.

The values are the strings the state store's `outcomes` rows, the `outcome` label of
parity_events_total and `parity status --json` have always used: a member is a `str`, so it can
be written, compared and used as a dictionary key exactly like its value.

Verify mode:
  match          the target held the expected state (at once, or at a re-check within grace)
  drift          still different after the grace period: a drift record is written
  pending        (transient, never counted) waiting in the recheck store, its offset held back
  superseded     a newer event for the same key arrived before this one was decided
  duplicate      same key and an LSN not newer than one already seen (a redelivery)
  unverified     the recheck store was full: reported, never silently dropped
  not_compared   the event lacks a mapped column altogether (reason `column_missing`: dropped from
                 the table, or misspelt in the mapping): neither compared nor applied, counted per
                 column, logged once per (table, column); see parity.core.columns
  dead_letter    could not be decoded or mapped: sent to the dead-letter topic with a reason
  skipped        heartbeats, transaction metadata, tombstones, snapshot rows under policy `skip`
  truncate       a TRUNCATE: counted and the table is marked for reconciliation
  unmapped       on a topic matched by kafka.topic_pattern (or shared by routed tables) but of no
                 mapped table: counted under its source (or `<unmapped>`), not dead-lettered

Reverse mode (parity.daemon.reverse, DynamoDB Stream records checked against Postgres) ends each
record in the verify outcomes: match, drift, superseded, duplicate (a re-delivered position),
unverified, and skipped (an item no reverse table routes to, counted under `<unmapped>`).

Shadow mode (parity.daemon.shadow):
  applied        written to DynamoDB
  stale_skipped  the target already held this event or a newer one (the version condition failed)
  failed         DynamoDB refused the write for good: dead-lettered too
"""

from __future__ import annotations

import enum
from typing import Final


class Outcome(enum.StrEnum):
    MATCH = "match"
    DRIFT = "drift"
    PENDING = "pending"
    SUPERSEDED = "superseded"
    DUPLICATE = "duplicate"
    UNVERIFIED = "unverified"
    NOT_COMPARED = "not_compared"
    DEAD_LETTER = "dead_letter"
    SKIPPED = "skipped"
    TRUNCATE = "truncate"
    UNMAPPED = "unmapped"
    APPLIED = "applied"
    STALE_SKIPPED = "stale_skipped"
    FAILED = "failed"


# The two outcomes that are verdicts on the target: the drift ratio's denominator.
VERDICTS: Final = frozenset({Outcome.MATCH, Outcome.DRIFT})
# What a shadow-mode write ended as.
SHADOW: Final = frozenset({Outcome.APPLIED, Outcome.STALE_SKIPPED, Outcome.FAILED})
# Verify-mode outcomes that end a record for good (everything but `pending`).
RESOLVED: Final = (
    Outcome.MATCH,
    Outcome.DRIFT,
    Outcome.DEAD_LETTER,
    Outcome.SUPERSEDED,
    Outcome.DUPLICATE,
    Outcome.UNVERIFIED,
    Outcome.NOT_COMPARED,
    Outcome.SKIPPED,
    Outcome.TRUNCATE,
    Outcome.UNMAPPED,
)
