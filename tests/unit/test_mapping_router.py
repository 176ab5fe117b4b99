"""Single-table design: which mapping an item of the shared BillingSystem table belongs to."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from parity.config_loader import load_config
from parity.core.config import ParityConfig, TableMapping
from parity.core.mapping import ItemMapper, TargetRouter
from parity.core.values import item_from_wire, item_to_wire

pytestmark = pytest.mark.unit

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ENV = {"PARITY_PG_DSN": "postgresql://parity:pw@localhost/billing", "PARITY_KAFKA_BOOTSTRAP": "localhost:1"}
UTC = dt.UTC

ROWS: dict[str, dict[str, Any]] = {
    "billing.billing_account": {
        "ban": 100,
        "customer_id": 7,
        "account_type": "I",
        "account_status": "O",
        "cycle_code": 3,
        "open_date": dt.date(2020, 1, 1),
        "credit_limit": Decimal("500.00"),
        "updated_at": dt.datetime(2024, 1, 1, tzinfo=UTC),
    },
    "billing.customer": {
        "customer_id": 7,
        "first_name": "Ada",
        "last_name": "L",
        "email": "ada@example.invalid",
        "tax_id": "123",
        "date_of_birth": dt.date(1990, 12, 10),
        "preferences": {"paperless": True},
        "updated_at": dt.datetime(2024, 1, 1, tzinfo=UTC),
    },
    "billing.subscriber": {
        "ban": 100,
        "subscriber_no": "5551234",
        "sub_status": "A",
        "price_plan": "UNL",
        "activation_date": dt.date(2021, 5, 1),
        "deactivation_date": None,
        "features": ["VM", "ROAM"],
        "updated_at": dt.datetime(2024, 1, 1, tzinfo=UTC),
    },
    "billing.service_agreement": {
        "ban": 100,
        "subscriber_no": "5551234",
        "soc": "DATA10",
        "effective_date": dt.date(2023, 1, 1),
        "expiration_date": None,
        "monthly_rate": Decimal("10.00"),
        "parameters": {"cap_gb": 10},
        "updated_at": dt.datetime(2024, 1, 1, tzinfo=UTC),
    },
    "billing.bill": {
        "ban": 100,
        "bill_seq_no": 12,
        "cycle_code": 3,
        "cycle_close_date": dt.date(2024, 2, 3),
        "due_date": dt.date(2024, 2, 24),
        "total_due": Decimal("81.20"),
        "bill_status": "OPEN",
        "created_at": dt.datetime(2024, 2, 3, tzinfo=UTC),
    },
    "billing.charge": {
        "ban": 100,
        "charge_seq": 900,
        "activity_num": 2,
        "bill_seq_no": 12,
        "subscriber_no": "5551234",
        "charge_code": "RC",
        "amount": Decimal("10.00"),
        "tax_amount": Decimal("0.80"),
        "description": "Data 10GB",
        "charge_date": dt.date(2024, 2, 1),
    },
}


@pytest.fixture(scope="module")
def billing() -> ParityConfig:
    return load_config(EXAMPLES / "billing-single-table.yaml", env=ENV)


@pytest.fixture(scope="module")
def router(billing: ParityConfig) -> TargetRouter:
    return TargetRouter(billing.tables)


def _item(mapping: TableMapping) -> dict[str, Any]:
    return ItemMapper(mapping).item(ROWS[mapping.source])


def test_every_entity_type_routes_to_its_table(billing: ParityConfig, router: TargetRouter) -> None:
    assert {t.source for t in billing.tables} == set(ROWS)
    for mapping in billing.tables:
        item = item_from_wire(item_to_wire(_item(mapping)))  # as a Scan returns it
        assert router.route(item) is mapping, mapping.source


def test_without_entity_type_the_key_patterns_decide(billing: ParityConfig, router: TargetRouter) -> None:
    for mapping in billing.tables:
        item = {k: v for k, v in _item(mapping).items() if k != "EntityType"}
        assert router.route(item) is mapping, mapping.source


@pytest.mark.parametrize(
    "item",
    [
        {"PK": "BAN#100", "SK": "NOTE#1", "text": "foreign"},
        {"PK": "ORDER#1", "SK": "ORDER#1"},
        {"PK": "BAN#100", "SK": "SUB#5551234", "EntityType": "NOTE"},
        {"id": "1"},
    ],
)
def test_foreign_items_are_unmapped(router: TargetRouter, item: dict[str, Any]) -> None:
    assert router.route(item) is None


def test_key_prefixes_separate_entities_sharing_a_partition(billing: ParityConfig, router: TargetRouter) -> None:
    by_source = {t.source: t for t in billing.tables}
    assert router.route({"PK": "BAN#1", "SK": "SUB#2"}) is by_source["billing.subscriber"]
    assert router.route({"PK": "BAN#1", "SK": "BILL#2"}) is by_source["billing.bill"]
    assert router.route({"PK": "BAN#1", "SK": "CHARGE#2#3"}) is by_source["billing.charge"]
    assert router.route({"PK": "BAN#1", "SK": "SA#2#DATA#2024-01-01"}) is by_source["billing.service_agreement"]


def test_the_billing_items_carry_their_gsi_attributes(billing: ParityConfig) -> None:
    by_source = {t.source: t for t in billing.tables}
    bill = _item(by_source["billing.bill"])
    assert (bill["PK"], bill["SK"], bill["GSI2PK"], bill["GSI2SK"]) == ("BAN#100", "BILL#12", "BILL#3", "2024-02-03")
    charge = _item(by_source["billing.charge"])
    assert (charge["SK"], charge["GSI1PK"]) == ("CHARGE#900#2", "SUB#5551234")
    subscriber = _item(by_source["billing.subscriber"])
    assert (subscriber["SK"], subscriber["GSI1PK"], subscriber["features"]) == (
        "SUB#5551234",
        "SUB#5551234",
        frozenset({"VM", "ROAM"}),
    )
    assert "tax_id" not in _item(by_source["billing.customer"])


def test_a_router_serves_one_dynamodb_table(billing: ParityConfig) -> None:
    other = billing.tables[0].model_copy(update={"target": "Other"})
    with pytest.raises(ValueError, match="one DynamoDB table"):
        TargetRouter([billing.tables[1], other])


def test_with_a_postgres_row_at_hand_the_row_decides_whose_key_it_is(billing: ParityConfig,
                                                                      router: TargetRouter) -> None:
    # The reconciler's rule (docs/reconciler.md, "One key, one finding"): an item with the bill's
    # key and the charge's EntityType belongs to the bill table when a bill row maps to the key.
    from parity.reconcilers.reconcile import _owner

    bill = next(m for m in router.mappers if m.mapping.source == "billing.bill")
    row = ROWS["billing.bill"]
    item = {**_item(bill.mapping), "EntityType": "CHARGE"}
    assert router.mapper_for(item) is not None and router.mapper_for(item).mapping.source == "billing.charge"
    owner, found_row = _owner(router, "billing.charge", [(bill, row)], item)
    assert owner is bill and found_row is row
    # No row maps to the key: the item's own routing decides (the discriminator first).
    owner, found_row = _owner(router, "billing.bill", [], item)
    assert owner is not None and owner.mapping.source == "billing.charge" and found_row is None
    # Neither a row nor an item: nothing to report.
    assert _owner(router, "billing.bill", [], None) == (None, None)
    # An unknown discriminator on a key no row maps to: no table's.
    assert _owner(router, "billing.bill", [], {**item, "EntityType": "SESSION"}) == (None, None)
