"""A mapped column the source does not have (parity.core.columns): what counts as missing, and
how a missing column is named in the configuration."""

from __future__ import annotations

from typing import Any

import pytest

from parity.core.columns import absent_column_errors, compared_columns, missing_columns, suggestion
from parity.core.events import UNAVAILABLE
from parity.core.mapping import ItemMapper
from tests.unit.mapping_helpers import config

pytestmark = pytest.mark.unit


def _mapping(**table: Any) -> Any:
    spec = {
        "source": "public.payments",
        "primary_key": ["payment_id"],
        "target": "Payments",
        "keys": {"PK": "P#{payment_id}"},
        "columns": {
            "payment_id": {},
            "amont": {"name": "Amount", "type": "number"},
            "status": {},
            "customer_id": {"exclude": True},
        },
        **table,
    }
    return config(spec, source="payments.yaml").tables[0]


def test_a_toast_placeholder_is_present_an_absent_key_is_missing() -> None:
    columns = ("payment_id", "amont", "status")
    row = {"payment_id": 1, "amount": 5, "status": UNAVAILABLE}
    assert missing_columns(columns, row) == ("amont",)
    assert missing_columns(columns, {"payment_id": 1, "amont": None, "status": UNAVAILABLE}) == ()


def test_excluded_columns_are_not_compared_but_index_template_columns_are() -> None:
    m = _mapping()
    assert compared_columns(m) == ("payment_id", "amont", "status")
    assert compared_columns(m, ["customer_id", "status"]) == ("payment_id", "amont", "status", "customer_id")


def test_the_mapper_reports_missing_columns_apart_from_unavailable_ones() -> None:
    mapper = ItemMapper(_mapping(indexes={"GSI1PK": "C#{customer_id}"}))
    row = {"payment_id": 1, "amount": 5, "status": UNAVAILABLE}  # no amont, no customer_id
    assert mapper.missing(row) == ("amont", "customer_id")
    # The old silent path still treats both alike; `missing` is what tells them apart.
    assert set(mapper.unavailable(row)) == {"Amount", "status", "GSI1PK"}
    assert mapper.missing({"payment_id": 1, "amont": 5, "status": "ok", "customer_id": 7}) == ()


def test_a_typo_is_named_by_its_field_path_with_the_nearest_unmapped_column() -> None:
    m = _mapping()
    existing = ["payment_id", "customer_id", "amount", "status", "created_at"]
    assert absent_column_errors(m, 0, existing, where="payments.yaml") == [
        "payments.yaml: tables[0].columns.amont: column does not exist in public.payments (did you mean 'amount'?)"
    ]


def test_no_suggestion_when_nothing_is_close_and_excluded_typos_count_too() -> None:
    m = _mapping(columns={"payment_id": {}, "zzz": {"exclude": True}})
    assert absent_column_errors(m, 3, ["payment_id", "amount"], where="f.yaml") == [
        "f.yaml: tables[3].columns.zzz: column does not exist in public.payments"
    ]
    assert suggestion("amont", ["payment_id", "status"]) is None
    assert suggestion("amont", ["amount", "status"]) == "amount"
