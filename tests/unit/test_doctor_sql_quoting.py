"""The doctor's printed fix SQL quotes identifiers: a mixed-case or hostile name is safe to paste."""

from __future__ import annotations

import pytest

from parity.core.config import TableMapping
from parity.doctor.checks_postgres import _primary_key, quote_ident, quote_literal, quoted_table

pytestmark = pytest.mark.unit

HOSTILE = 'Pay"ments; DROP TABLE sentinel; --'


def _mapping(table: str) -> TableMapping:
    return TableMapping.model_validate({
        "source": f"Billing.{table}", "primary_key": ["Id", 'we"ird'], "target": "T",
        "keys": {"PK": "{Id}#{we\"ird}"}, "columns": {"Id": {}, 'we"ird': {}},
    })


def test_identifiers_are_double_quoted_with_embedded_quotes_doubled() -> None:
    assert quote_ident("payments") == '"payments"'
    assert quote_ident("Payments") == '"Payments"'  # unquoted, Postgres would fold it to payments
    assert quote_ident(HOSTILE) == '"Pay""ments; DROP TABLE sentinel; --"'
    assert quoted_table(_mapping(HOSTILE)) == '"Billing"."Pay""ments; DROP TABLE sentinel; --"'


def test_literals_are_single_quoted_with_embedded_quotes_doubled() -> None:
    assert quote_literal("slot'); DROP TABLE x; --") == "'slot''); DROP TABLE x; --'"


def test_the_add_primary_key_fix_quotes_the_table_and_its_columns() -> None:
    check = _primary_key(_mapping(HOSTILE), ())
    assert check.fix.startswith(
        'ALTER TABLE "Billing"."Pay""ments; DROP TABLE sentinel; --" ADD PRIMARY KEY ("Id", "we""ird");'
    ), check.fix
