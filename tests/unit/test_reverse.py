"""The reverse direction's pure logic: verdicts of literal DynamoDB items against literal Postgres
rows, routing of stream records of a shared table, and the stream ledger (checkpoints, re-delivery)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from parity.core.compare import MATCH
from parity.core.config import TableMapping
from parity.core.mapping import ItemMapper
from parity.core.reverse import ReverseKind, ReverseMismatch, ReverseRouter, reverse_verdict
from parity.core.reverse_ledger import StreamLedger
from parity.core.streams import StreamRecord
from tests.unit.mapping_helpers import config

pytestmark = pytest.mark.unit

UTC = dt.UTC

ACCOUNT: dict[str, Any] = {
    "source": "billing.account",
    "primary_key": ["ban"],
    "target": "Billing",
    "mode": "reverse",
    "keys": {"PK": "BAN#{ban}", "SK": "ACCT#{ban}"},
    "constants": {"EntityType": "ACCOUNT"},
    "freshness_column": "updated_at",
    "columns": {
        "ban": {"type": "number"},
        "status": {},
        "credit": {"name": "CreditLimit", "type": "number"},
        "updated_at": {"type": "timestamp_iso"},
    },
}
SUBSCRIBER: dict[str, Any] = {
    "source": "billing.subscriber",
    "primary_key": ["ban", "subscriber_no"],
    "target": "Billing",
    "mode": "reverse",
    "keys": {"PK": "BAN#{ban}", "SK": "SUB#{subscriber_no}"},
    "constants": {"EntityType": "SUBSCRIBER"},
    "columns": {"ban": {"type": "number"}, "subscriber_no": {}, "status": {}},
}


def _mapping(spec: dict[str, Any]) -> TableMapping:
    return config(spec).tables[0]


def _mapper() -> ItemMapper:
    return ItemMapper(_mapping(ACCOUNT))


# What DynamoDB holds, written out by hand (not built by the mapper).
ITEM = {
    "PK": "BAN#100",
    "SK": "ACCT#100",
    "EntityType": "ACCOUNT",
    "ban": Decimal(100),
    "status": "O",
    "CreditLimit": Decimal("500.5"),
    "updated_at": "2024-03-01T12:00:00Z",
}
ROW = {"ban": 100, "status": "O", "credit": Decimal("500.50"), "updated_at": dt.datetime(2024, 3, 1, 12, tzinfo=UTC)}


def _row_item(row: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if row is None else _mapper().item(row)


def test_equal_item_and_row_match_with_the_forward_normalization() -> None:
    assert reverse_verdict(_mapper(), ITEM, _row_item(ROW)) == MATCH  # 500.50 vs 500.5


def test_item_without_row_is_missing_in_source() -> None:
    verdict = reverse_verdict(_mapper(), ITEM, None)
    assert isinstance(verdict, ReverseMismatch) and verdict.kind is ReverseKind.MISSING_IN_SOURCE


def test_removed_item_with_row_still_there_is_unexpected_in_source() -> None:
    verdict = reverse_verdict(_mapper(), None, _row_item(ROW))
    assert isinstance(verdict, ReverseMismatch) and verdict.kind is ReverseKind.UNEXPECTED_IN_SOURCE


def test_removed_item_and_no_row_match() -> None:
    assert reverse_verdict(_mapper(), None, None) == MATCH


def test_different_value_is_value_mismatch_with_dynamodb_as_expected() -> None:
    verdict = reverse_verdict(_mapper(), ITEM, _row_item({**ROW, "status": "C"}))
    assert isinstance(verdict, ReverseMismatch) and verdict.kind is ReverseKind.VALUE_MISMATCH
    [diff] = verdict.diffs
    assert (diff.attribute, diff.expected, diff.actual) == ("status", '"O"', '"C"')


def test_older_freshness_in_postgres_is_stale_in_source() -> None:
    old = {**ROW, "status": "C", "updated_at": dt.datetime(2024, 2, 1, tzinfo=UTC)}
    verdict = reverse_verdict(_mapper(), ITEM, _row_item(old))
    assert isinstance(verdict, ReverseMismatch) and verdict.kind is ReverseKind.STALE_IN_SOURCE
    assert not verdict.source_ahead


def test_newer_freshness_in_postgres_is_a_mismatch_with_source_ahead() -> None:
    newer = {**ROW, "status": "C", "updated_at": dt.datetime(2024, 4, 1, tzinfo=UTC)}
    verdict = reverse_verdict(_mapper(), ITEM, _row_item(newer))
    assert isinstance(verdict, ReverseMismatch) and verdict.kind is ReverseKind.VALUE_MISMATCH
    assert verdict.source_ahead


def test_attributes_no_column_maps_are_not_compared() -> None:
    assert reverse_verdict(_mapper(), {**ITEM, "AppOnly": "x"}, _row_item(ROW)) == MATCH


def _record(
    event: str = "MODIFY",
    keys: dict[str, Any] | None = None,
    new: dict[str, Any] | None = None,
    old: dict[str, Any] | None = None,
    seq: int = 1,
    shard: str = "shard-1",
) -> StreamRecord:
    return StreamRecord(
        table="Billing",
        shard_id=shard,
        sequence_number=str(seq).zfill(21),
        event_name=event,  # type: ignore[arg-type]
        keys=keys or {"PK": "BAN#100", "SK": "ACCT#100"},
        new_image=new,
        old_image=old,
        approximate_creation_s=1000.0,
    )


def test_router_parses_the_primary_key_back_and_uses_the_discriminator() -> None:
    router = ReverseRouter([_mapping(ACCOUNT), _mapping(SUBSCRIBER)])
    routed = router.route(_record(new=ITEM))
    assert routed is not None and routed.source == "billing.account"
    assert routed.primary_key == {"ban": "100"} and routed.key == {"PK": "BAN#100", "SK": "ACCT#100"}
    sub = {"PK": "BAN#100", "SK": "SUB#555-1", "EntityType": "SUBSCRIBER", "status": "A"}
    routed = router.route(_record(keys={"PK": "BAN#100", "SK": "SUB#555-1"}, new=sub))
    assert routed is not None and routed.source == "billing.subscriber"
    assert routed.primary_key == {"ban": "100", "subscriber_no": "555-1"}


def test_router_routes_a_remove_without_images_by_its_key_templates() -> None:
    router = ReverseRouter([_mapping(ACCOUNT), _mapping(SUBSCRIBER)])
    routed = router.route(_record(event="REMOVE", keys={"PK": "BAN#7", "SK": "SUB#9"}))
    assert routed is not None and routed.source == "billing.subscriber"
    assert routed.primary_key == {"ban": "7", "subscriber_no": "9"}


def test_router_leaves_unmapped_entities_and_other_tables_alone() -> None:
    router = ReverseRouter([_mapping(ACCOUNT)])
    other = {"PK": "BAN#100", "SK": "NOTE#1", "EntityType": "NOTE"}
    assert router.route(_record(keys={"PK": "BAN#100", "SK": "NOTE#1"}, new=other)) is None
    assert router.route(StreamRecord("Elsewhere", "s", "1", "INSERT", ITEM, ITEM, None, 0.0)) is None


def test_ledger_checkpoints_only_past_decided_records() -> None:
    ledger = StreamLedger()
    r1, r2, r3 = (_record(seq=n) for n in (1, 2, 3))
    for r in (r1, r2, r3):
        ledger.hold(r)
    ledger.decide(r1)
    ledger.decide(r3)
    assert ledger.committable() == [r1]  # r2 holds the shard back
    ledger.committed([r1])
    assert ledger.committable() == []
    ledger.decide(r2)
    assert ledger.committable() == [r3]
    ledger.committed([r3])
    assert ledger.seen(r2) and ledger.pending() == 0


def test_ledger_recognises_redelivered_records_after_a_restart() -> None:
    before = StreamLedger()
    r1, r2, r3 = (_record(seq=n) for n in (1, 2, 3))
    for r in (r1, r2, r3):
        before.hold(r)
    before.decide(r1)
    before.decide(r3)
    before.committed(before.committable())  # r1 checkpointed; r2 pending, r3 decided at the crash
    after = StreamLedger()
    after.restore(before.decided_above())
    assert after.seen(r1) and after.seen(r3) and not after.seen(r2)
    # The restored position is not checkpointed before r2, re-read and undecided, is decided.
    assert after.committable() == []
    after.hold(r2)
    after.redelivered(r3)
    assert after.committable() == []
    after.decide(r2)
    assert after.committable() == [r3]


def test_reverse_mode_refuses_settings_of_the_other_directions() -> None:
    from parity.core.errors import ConfigError

    for setting in ({"shadow_table": "X"}, {"snapshot_policy": "skip"}, {"truncate": "apply"}):
        with pytest.raises(ConfigError, match="does not apply to mode reverse"):
            config({**ACCOUNT, **setting})
