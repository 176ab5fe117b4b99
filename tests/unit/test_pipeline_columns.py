"""The pipeline's outcome for an event that lacks a mapped column (issue 16, defect 2), with the
in-memory DynamoDB fake and a manual clock (the harness of test_pipeline.py): `not_compared`,
never `match`; TOAST placeholders, deletes and excluded columns are not affected."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import structlog

from parity.core.types import PLACEHOLDER
from tests import debezium
from tests.unit.test_pipeline import TOPIC, TP, Harness, _item, _row

pytestmark = pytest.mark.unit

SOURCE = "public.accounts"


def _missing_logs(logs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["table"], e["column"]) for e in logs if e.get("reason") == "column_missing"]


def test_an_event_without_a_mapped_column_is_not_compared_even_when_the_rest_matches() -> None:
    h = Harness()
    h.store.put("Accounts", _item(1))
    row = _row(1)
    del row["owner"]  # dropped from the table, or a typo in the mapping
    result = h.process(h.record("c", row, id_=1))
    assert h.outcomes() == {"not_compared": 1}
    assert result.events == {(SOURCE, "c", "not_compared"): 1}
    assert result.not_compared == {(SOURCE, "owner", "column_missing"): 1}
    assert h.store.reads == 0  # nothing to compare, so nothing read
    assert h.pipeline.ledger.committable() == {TP: 1}
    assert h.pipeline.columns_missing() == {SOURCE: ["owner"]}


def test_a_toast_placeholder_is_present_so_the_event_is_still_a_match() -> None:
    h = Harness()
    h.store.put("Accounts", _item(1))
    result = h.process(h.record("u", _row(1, owner=PLACEHOLDER), id_=1))
    assert h.outcomes() == {"match": 1}
    assert not result.not_compared


def test_deletes_and_excluded_columns_do_not_count() -> None:
    h = Harness(columns={"id": {"name": "Id"}, "balance": {"name": "Balance"}, "owner": {"exclude": True}})
    h.store.put("Accounts", {"PK": "ACC#1", "Id": Decimal(1), "Balance": "10.50"})
    row = _row(1)
    del row["owner"]  # excluded: not part of the item
    h.process(h.record("c", row, id_=1))
    h.store.delete("Accounts", {"PK": "ACC#1"})
    h.process(h.record("d", {"id": 1}, id_=1))  # a delete carries only the key (REPLICA IDENTITY DEFAULT)
    h.tick(30.0)  # a delete may be confirmed once more at the end of its grace period
    assert h.outcomes() == {"match": 2}


def test_one_log_line_per_table_and_column_however_many_events() -> None:
    h = Harness()
    with structlog.testing.capture_logs() as logs:
        for i in range(1, 4):
            h.process(h.record("c", {"id": i}, id_=i))  # neither balance nor owner
        h.process(h.record("c", {"id": 9, "balance": "1"}, id_=9))
    assert sorted(_missing_logs(logs)) == [(SOURCE, "balance"), (SOURCE, "owner")]
    assert h.outcomes() == {"not_compared": 4}
    totals: dict[tuple[str, str, str], int] = {}
    for r in h.results:
        for k, n in r.not_compared.items():
            totals[k] = totals.get(k, 0) + n
    assert totals == {(SOURCE, "balance", "column_missing"): 3, (SOURCE, "owner", "column_missing"): 4}


def test_a_debezium_schema_without_the_column_is_not_compared() -> None:
    h = Harness()
    h.store.put("Accounts", _item(1))
    fields = [{"field": "id", "type": "int32"}, {"field": "balance", "type": "string", "optional": True}]
    schema = debezium.envelope_schema(fields, name=TOPIC)
    payload = debezium.envelope("c", debezium.source_block("accounts", lsn=5000), after={"id": 1, "balance": "10.50"})
    h.process(h.record("c", None, id_=1, raw=debezium.value(payload, schema)))
    assert h.outcomes() == {"not_compared": 1}


def test_a_not_compared_event_supersedes_an_older_pending_check_of_its_key() -> None:
    h = Harness()
    h.process(h.record("c", _row(1), id_=1))  # nothing in DynamoDB yet: pending
    assert h.outcomes() == {}
    h.tick(1.0)
    h.process(h.record("u", {"id": 1, "balance": "2"}, id_=1))
    assert h.outcomes() == {"superseded": 1, "not_compared": 1}
    assert len(h.pipeline.rechecks) == 0
    assert h.pipeline.ledger.committable() == {TP: 2}
