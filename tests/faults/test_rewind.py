"""What the daemon does after a fault, without services: records read again after a rewind (or
by a partition's next owner) are checked again, not taken for duplicates of themselves."""

from __future__ import annotations

import pytest

from tests.unit.test_pipeline import TP, Harness, _item, _row

pytestmark = pytest.mark.faults


def test_records_reread_after_a_rewind_are_checked_again_and_the_drift_is_still_found() -> None:
    h = Harness()
    h.pipeline.caught_up = lambda tp: True  # no newer event is on its way
    h.store.put("Accounts", _item(1, balance="99.00"))  # drift: Postgres says 10.50
    rec = h.record("c", _row(1), id_=1)
    h.process(rec)
    assert len(h.pipeline.rechecks) == 1
    # A fault: the daemon drops its in-memory state and rewinds to the committed offset.
    h.pipeline.revoke([TP])
    assert len(h.pipeline.rechecks) == 0
    h.now += 0.5  # the rewind and re-read take a moment
    again = h.process(rec)  # the same record, read again
    assert again.outcomes.get(("public.accounts", "duplicate"), 0) == 0
    assert len(h.pipeline.rechecks) == 1
    h.tick(11)
    h.tick(11)
    assert [d.kind for d in h.drift()] == ["value_mismatch"]
    assert h.pipeline.ledger.committable() == {TP: 1}


def test_a_real_redelivery_without_a_rewind_is_still_a_duplicate() -> None:
    h = Harness()
    h.store.put("Accounts", _item(1))
    rec = h.record("c", _row(1), id_=1)
    h.process(rec)
    again = h.process(rec)
    assert again.outcomes[("public.accounts", "duplicate")] == 1
