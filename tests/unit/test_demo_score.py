"""Scoring a demo run: injected drift against what the verifier and the reconciler reported."""

from __future__ import annotations

from decimal import Decimal

import pytest

from parity.demo.score import Detection, canonical_key, percentile, score
from parity.workload import InjectedDrift

pytestmark = pytest.mark.unit

KEY = {"CustomerId": Decimal("12"), "PaymentDateId": "2024-01-01T00:00:00Z#7"}


def test_a_key_from_a_mapper_and_from_a_report_is_the_same_key() -> None:
    assert canonical_key(KEY) == canonical_key({"CustomerId": 12, "PaymentDateId": "2024-01-01T00:00:00Z#7"})
    assert canonical_key(KEY) == canonical_key({"PaymentDateId": "2024-01-01T00:00:00Z#7", "CustomerId": "12"})
    assert canonical_key({"N": Decimal("1.50")}) == canonical_key({"N": Decimal("1.5")})
    assert canonical_key(KEY) != canonical_key({**KEY, "CustomerId": 13})


def test_every_drift_found_with_its_reported_kind_is_exact() -> None:
    injected = [
        InjectedDrift("public.payments", KEY, "subtle_value", 100.0),
        InjectedDrift("billing.customer", {"PK": "CUST#9", "SK": "PROFILE#9"}, "unexpected_in_target", 100.0),
    ]
    found = [
        Detection("stream", "public.payments", {"CustomerId": 12, "PaymentDateId": KEY["PaymentDateId"]},
                  "value_mismatch", 106.0),
        Detection("reconcile", "public.payments", KEY, "value_mismatch", 130.0),
        Detection("reconcile", "billing.customer", {"PK": "CUST#9", "SK": "PROFILE#9"}, "unexpected_in_target",
                  130.0),
    ]
    s = score(injected, found, tables=["public.payments", "billing.customer", "billing.bill"])
    assert s.exact
    assert s.totals("injected")["subtle_value"] == 1
    assert s.totals("detected") == {**s.totals("injected")}
    assert sum(s.totals("false_positives").values()) == 0
    assert s.latencies["stream"] == [6.0]
    assert s.latencies["first"] == [6.0, 30.0]
    assert s.to_json()["tables"]["billing.bill"] == {}


def test_a_wrong_kind_is_a_miss_and_a_false_positive() -> None:
    injected = [InjectedDrift("public.payments", KEY, "stale_in_target", 0.0)]
    s = score(injected, [Detection("stream", "public.payments", KEY, "value_mismatch", 5.0)])
    assert not s.exact
    assert s.totals("missed")["stale_in_target"] == 1
    assert s.totals("false_positives")["value_mismatch"] == 1
    assert s.false_positive_keys[0]["injected_kind"] == "stale_in_target"


def test_drift_nobody_injected_is_a_false_positive_counted_once_per_key_and_kind() -> None:
    found = [Detection(d, "public.payments", KEY, "missing_in_target", 1.0) for d in ("stream", "reconcile")]
    s = score([], found)
    assert s.totals("false_positives")["missing_in_target"] == 1
    assert s.false_positive_keys[0]["detectors"] == ["reconcile", "stream"]
    assert not s.exact


def test_nothing_injected_and_nothing_found_is_exact() -> None:
    s = score([], [], tables=["public.payments"])
    assert s.exact
    assert s.latency_summary() == {}


def test_nearest_rank_percentile() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 99) == 99.0
    assert percentile([1.0, 10.0], 99) == 10.0
