"""One UpdateItem builder for shadow mode and repair (parity.core.update).

The two used to disagree on an attribute a column maps to but the mapping lists in
`ignore_attributes` (the application's TTL, say): shadow mode SET it and REMOVEd it when the
column was NULL, repair SET it but never REMOVEd it. Neither may touch it: it is not the
mapping's to write (README, "What parity does not verify": repair keeps them).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from parity.adapters.dynamodb import DynamoStore
from parity.core.config import TableMapping
from parity.core.update import OwnedAttributes, item_update
from parity.reconcilers.repair import Repairer
from tests.unit.test_reconcile_plan import config as parity_config
from tests.unit.test_shadow import Harness, _config, _row

pytestmark = pytest.mark.unit

TTL_COLUMNS = {
    "id": {}, "name": {}, "grp": {}, "big": {}, "secret": {"exclude": True}, "expires_on": {"name": "ExpiresAt"},
}


def _mapping(**extra: Any) -> TableMapping:
    return TableMapping.model_validate({
        "source": "public.acct",
        "primary_key": ["id"],
        "target": "Accounts",
        "keys": {"PK": "A#{id}"},
        "indexes": {"GSI1PK": "G#{grp}"},
        "constants": {"EntityType": "ACCT"},
        "columns": {"id": {}, "name": {}, "grp": {}, "big": {}, "secret": {"exclude": True}},
        **extra,
    })


# --- the disagreement, through both writers ----------------------------------------------------


def test_shadow_mode_never_removes_nor_sets_an_ignored_attribute_a_column_maps_to() -> None:
    h = Harness(_config(columns=TTL_COLUMNS, ignore_attributes=["ExpiresAt"]))
    # The application's TTL is already on the item (written by the application, not by parity).
    h.table.items[h.table._id({"PK": {"S": "A#1"}})] = {"PK": {"S": "A#1"}, "ExpiresAt": {"N": "1900000000"}}
    h.process([h.record("c", 100, after=_row(expires_on=None))])
    item = h.table.get("A#1")
    assert item is not None and item["name"] == {"S": "ann"}
    assert item["ExpiresAt"] == {"N": "1900000000"}  # the old shadow writer REMOVEd it here
    h.process([h.record("u", 200, after=_row(name="bo", expires_on="2031-01-01"))])
    item = h.table.get("A#1")
    assert item is not None and item["name"] == {"S": "bo"}
    assert item["ExpiresAt"] == {"N": "1900000000"}


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def update_item(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(("UpdateItem", kw))
        return {}


class _Rows:
    def __init__(self, row: dict[str, Any]) -> None:
        self.row = row

    def rows(self, mapping: TableMapping, keys: list[Any]) -> list[dict[str, Any] | None]:
        return [dict(self.row) for _ in keys]


def test_repair_never_sets_nor_removes_an_ignored_attribute_a_column_maps_to() -> None:
    mapping = _mapping(columns={**TTL_COLUMNS, "balance": {"type": "number"}}, ignore_attributes=["ExpiresAt"])
    client = _Recorder()
    repairer = Repairer(parity_config(mapping), dynamo=DynamoStore(client), dsn="postgresql://u@127.0.0.1:1/db",
                        rate=1000, sleep=lambda s: None)
    report = {"tables": {"public.acct": {"target": "Accounts", "drift": [
        {"kind": "value_mismatch", "key": {"PK": {"S": "A#1"}}, "seen": {"name": {"S": "old"}}},
    ]}}}
    for expires_on in ("2031-01-01", None):
        repairer.lookup = _Rows({"id": 1, "name": "new", "grp": "g", "big": "b", "secret": "s",  # type: ignore[assignment]
                                 "expires_on": expires_on, "balance": None})
        lines: list[str] = []
        assert repairer.run(report, execute=True, echo=lines.append)["updated"] == 1
        op, kw = client.calls[-1]
        assert op == "UpdateItem"
        names = kw["ExpressionAttributeNames"]
        assert "ExpiresAt" not in names.values()  # the old repair SET it from expires_on
        written = {names[n] for n in names if n.startswith("#u")}
        assert written == {"id", "name", "grp", "big", "GSI1PK", "EntityType"}
        assert {names[n] for n in names if n.startswith("#r")} == {"balance"}
        assert "ExpiresAt" not in lines[-1]


# --- the builder -----------------------------------------------------------------------------------


def test_owned_attributes_are_columns_templates_and_constants_but_not_key_ignored_or_version() -> None:
    owned = OwnedAttributes.of(_mapping(columns=TTL_COLUMNS, ignore_attributes=["ExpiresAt"]))
    assert owned.produced == ("EntityType", "GSI1PK", "big", "grp", "id", "name")
    assert owned.key == {"PK"}
    assert owned.left_alone == {"ExpiresAt", "_parity_version"}


def test_shadow_update_sets_the_version_first_and_removes_what_the_row_maps_to_no_value() -> None:
    owned = OwnedAttributes.of(_mapping())
    item = {"PK": "A#1", "id": Decimal(1), "name": "ann", "EntityType": "ACCT"}  # grp NULL: no GSI1PK either
    update = item_update(owned, item, unavailable=["big"], version=("_parity_version", 42))
    assert update is not None
    assert update.expression == "SET #v = :v, #u0 = :u0, #u1 = :u1, #u2 = :u2 REMOVE #r0, #r1"
    assert update.names == {"#v": "_parity_version", "#u0": "EntityType", "#u1": "id", "#u2": "name",
                            "#r0": "GSI1PK", "#r1": "grp"}
    assert update.values == {":v": {"N": "42"}, ":u0": {"S": "ACCT"}, ":u1": {"N": "1"}, ":u2": {"S": "ann"}}
    assert update.removed == ("GSI1PK", "grp")  # big is TOASTed: its value is unknown, kept


def test_a_column_named_like_the_version_attribute_is_not_a_second_path_to_it() -> None:
    # DynamoDB refuses an UpdateExpression naming one attribute twice; the old shadow writer did.
    owned = OwnedAttributes.of(_mapping(columns={"id": {}, "_parity_version": {}},
                                        ignore_attributes=["_parity_version"], indexes={}, constants={}))
    item = {"PK": "A#1", "id": Decimal(1), "_parity_version": Decimal(7)}
    update = item_update(owned, item, version=("_parity_version", 9))
    assert update is not None
    assert list(update.names.values()).count("_parity_version") == 1
    assert update.values[":v"] == {"N": "9"}


def test_attributes_the_item_does_not_own_but_carries_are_written() -> None:
    # schema_drift: compare adds new source columns to the expected item under their own names.
    owned = OwnedAttributes.of(_mapping())
    update = item_update(owned, {"PK": "A#1", "id": Decimal(1), "name": "a", "grp": "g", "GSI1PK": "G#g", "big": "b",
                                 "EntityType": "ACCT", "added_later": "x"})
    assert update is not None
    assert "added_later" in update.names.values() and update.removed == ()
    assert update.expression.startswith("SET ") and " REMOVE " not in update.expression


def test_only_removals_make_a_remove_expression_and_nothing_to_do_is_none() -> None:
    owned = OwnedAttributes.of(_mapping(columns={"id": {"name": "Id"}, "note": {}}, indexes={}, constants={},
                                        keys={"PK": "A#{id}"}))
    assert item_update(owned, {"PK": "A#1", "Id": Decimal(1)}) is not None
    only_remove = item_update(owned, {"PK": "A#1", "Id": Decimal(1)}, unavailable=[])
    assert only_remove is not None and only_remove.removed == ("note",)
    owned_key_only = OwnedAttributes.of(_mapping(columns={"id": {"exclude": True}}, indexes={}, constants={}))
    assert item_update(owned_key_only, {"PK": "A#1"}) is None
    removal = item_update(OwnedAttributes.of(_mapping(columns={"id": {"exclude": True}, "n": {}}, indexes={},
                                                      constants={})), {"PK": "A#1"})
    assert removal is not None and removal.expression == "REMOVE #r0" and removal.names == {"#r0": "n"}


def test_repair_paces_each_table_at_its_rate() -> None:
    sleeps: list[float] = []
    mapping = _mapping(write_rate_limit=2)
    repairer = Repairer(parity_config(mapping), dynamo=DynamoStore(_Recorder()), dsn="postgresql://u@127.0.0.1:1/db",
                        sleep=sleeps.append)
    for _ in range(3):
        repairer._throttle(mapping)
    assert len(sleeps) == 1 and sleeps[0] == pytest.approx(0.5, abs=0.05)
