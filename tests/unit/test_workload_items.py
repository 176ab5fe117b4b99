"""The workload's own DynamoDB items (parity.workload.payment_item), written by hand as
examples/payments.yaml documents them, so that a run checks parity's mapper against an independent
writer instead of against itself."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from parity.core.config import TableMapping
from parity.core.mapping import ItemMapper
from parity.workload import PaymentsApp, payment_item, payment_key, wire_item

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "payments.yaml"
BERLIN = dt.timezone(dt.timedelta(hours=2))


def _payments_mapping(**over: Any) -> TableMapping:
    raw = yaml.safe_load(EXAMPLE.read_text())["tables"][0]
    return TableMapping.model_validate({**raw, **over})


def _row(**over: Any) -> dict[str, Any]:
    return {
        "payment_id": 42,
        "customer_id": 1007,
        "loan_id": 5,
        "amount": Decimal("1250.50"),
        "payment_date": dt.datetime(2026, 3, 1, 1, 30, 15, 987654, tzinfo=BERLIN),
        "method": "ACH",
        "status": "PENDING",
        "transaction_reference": "TX-00ab",
        "processed_date": None,
        "created_at": dt.datetime(2026, 3, 1, 0, 0, 0, 123999, tzinfo=dt.UTC),
        "updated_at": dt.datetime(2026, 3, 2, 9, 8, 7, 5000, tzinfo=dt.UTC),
        **over,
    }


def test_a_payment_is_the_item_the_example_documents() -> None:
    assert payment_item(_row()) == {
        "CustomerId": Decimal(1007),
        # payment_date in UTC (Berlin +02:00 -> the day before), to the second, then the payment id
        "PaymentDateId": "2026-02-28T23:30:15Z#42",
        "PaymentId": Decimal(42),
        "LoanId": Decimal(5),
        "Amount": Decimal("1250.50"),
        "PaymentDate": "2026-02-28T23:30:15Z",
        "Method": "ACH",
        "Status": "PENDING",
        "TransactionReference": "TX-00ab",
        "CreatedAt": "2026-03-01T00:00:00.123Z",  # truncated to the millisecond, not rounded
        "UpdatedAt": "2026-03-02T09:08:07.005Z",
    }


def test_null_columns_are_left_out_and_a_processed_payment_has_its_date() -> None:
    assert "TransactionReference" not in payment_item(_row(transaction_reference=None))
    assert "ProcessedDate" not in payment_item(_row())
    processed = payment_item(_row(processed_date=dt.datetime(2026, 3, 3, 12, 0, 0, tzinfo=dt.UTC)))
    assert processed["ProcessedDate"] == "2026-03-03T12:00:00.000Z"


def test_the_key_is_the_items_key() -> None:
    assert payment_key(_row()) == {"CustomerId": Decimal(1007), "PaymentDateId": "2026-02-28T23:30:15Z#42"}


def test_the_wire_form_is_strings_and_numbers() -> None:
    assert wire_item({"A": "x", "B": Decimal("1.50"), "C": Decimal(7)}) == {
        "A": {"S": "x"}, "B": {"N": "1.50"}, "C": {"N": "7"},
    }
    with pytest.raises(TypeError):
        wire_item({"A": 1.5})


def test_the_hand_written_item_and_the_mapper_agree_on_random_payments() -> None:
    # Two independent writers of one documented shape: a change to either shows up here.
    mapper = ItemMapper(_payments_mapping())
    rng = random.Random(19)
    for _ in range(200):
        zone = dt.timezone(dt.timedelta(minutes=rng.randrange(-720, 720, 15)))
        moment = dt.datetime(2020, 1, 1, tzinfo=zone) + dt.timedelta(microseconds=rng.randrange(0, 10**14))
        row = _row(
            payment_id=rng.randrange(1, 10**9),
            customer_id=rng.randrange(1, 10**6),
            amount=Decimal(rng.randrange(1, 10**8)) / 100,
            payment_date=moment,
            created_at=moment,
            updated_at=moment + dt.timedelta(microseconds=rng.randrange(0, 10**9)),
            processed_date=rng.choice([None, moment]),
            transaction_reference=rng.choice([None, "TX-1"]),
        )
        assert payment_item(row) == mapper.item(row)
        assert payment_key(row) == mapper.key(row)


def test_the_workload_refuses_a_mapping_it_does_not_write() -> None:
    PaymentsApp(None, None, _payments_mapping(target="Payments_x", grace_period_s=3)).finish(1.0)
    with pytest.raises(ValueError, match="not the payments mapping"):
        PaymentsApp(None, None, _payments_mapping(keys={"PK": "P#{payment_id}"}))
    columns = yaml.safe_load(EXAMPLE.read_text())["tables"][0]["columns"]
    with pytest.raises(ValueError, match="not the payments mapping"):
        PaymentsApp(None, None, _payments_mapping(columns={**columns, "status": {"name": "State"}}))
