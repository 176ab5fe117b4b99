"""Scoring the cutover demo (pure): injected drift against what the reverse direction reported."""

from __future__ import annotations

import pytest

from parity.demo.cutover import score_cutover

pytestmark = pytest.mark.unit


def test_exact_when_every_injected_key_is_reported_with_its_kind_and_nothing_else() -> None:
    injected = {"ACC#1": "missing_in_source", "ACC#2": "stale_in_source"}
    result = score_cutover(injected, [("ACC#1", "missing_in_source"), ("ACC#2", "stale_in_source")])
    assert result["exact"] and result["detected"] == 2 and result["missed"] == 0
    assert result["kinds"]["stale_in_source"] == {"injected": 1, "detected": 1, "missed": 0, "false_positives": 0}


def test_wrong_kind_is_a_miss_and_a_false_positive_and_late_keys_reported_are_counted() -> None:
    injected = {"ACC#1": "value_mismatch"}
    result = score_cutover(injected, [("ACC#1", "stale_in_source"), ("ACC#9", "missing_in_source")], late=["ACC#9"])
    assert not result["exact"]
    assert result["missed"] == 1 and result["false_positives"] == 2
    assert result["late_reported"] == 1
    assert result["false_positive_keys"] == [
        {"key": "ACC#1", "kind": "stale_in_source"}, {"key": "ACC#9", "kind": "missing_in_source"}]
