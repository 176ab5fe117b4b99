"""The cluster's shared DynamoDB read budget (parity.core.readbudget), on a manual clock."""

from __future__ import annotations

import pytest

from parity.core.readbudget import AdaptiveReadBudget

pytestmark = pytest.mark.unit


def drain(budget: AdaptiveReadBudget, start: float, seconds: float, page: float = 10.0) -> float:
    """Readers that sleep exactly as told: the units they got through in `seconds`."""
    now, spent = start, 0.0
    while now < start + seconds:
        wait = budget.reserve(now, page)
        spent += page
        now += wait
    return spent


def test_the_budget_caps_the_sum_of_all_readers_at_the_ceiling() -> None:
    budget = AdaptiveReadBudget(100, burst_s=1)
    # Two readers interleaving pages of 10 units each: together they get ceiling x seconds (+ burst).
    now = 0.0
    waits = [budget.reserve(now, 10) for _ in range(10)]
    assert waits == [0.0] * 10  # the first second's burst
    assert budget.reserve(now, 10) == pytest.approx(0.1)
    assert budget.reserve(now, 10) == pytest.approx(0.2)  # the second reader queues behind the first
    spent = drain(budget, 0.0, 10.0)
    assert spent == pytest.approx(1000, rel=0.03)


def test_a_throttle_halves_the_rate_for_everyone_and_it_climbs_back_linearly() -> None:
    budget = AdaptiveReadBudget(100, recover_s=10, cooldown_s=1)
    budget.reserve(0.0, 0)
    assert budget.throttled(5.0)
    assert budget.rate(5.0) == pytest.approx(50)
    assert budget.rate(7.5) == pytest.approx(75)  # +ceiling/recover_s per second
    assert budget.rate(10.0) == pytest.approx(100)
    assert budget.rate(60.0) == 100  # never above the ceiling
    # Right after the cut no saved-up burst is left: the next page waits at the halved rate.
    assert budget.reserve(5.0, 10) == pytest.approx(10 / 50)


def test_throttles_of_one_burst_cut_once_and_later_ones_cut_again_down_to_the_floor() -> None:
    budget = AdaptiveReadBudget(100, floor=10, recover_s=1000, cooldown_s=1)
    assert budget.throttled(0.0)
    assert not budget.throttled(0.3)  # the same burst seen by another worker
    assert not budget.throttled(0.9)
    assert budget.rate(0.9) == pytest.approx(50, rel=0.01)
    assert budget.throttled(1.0)
    assert budget.rate(1.0) == pytest.approx(25, rel=0.01)
    for t in range(2, 10):
        budget.throttled(float(t))
    assert budget.rate(10.0) == pytest.approx(10, abs=0.1)  # the floor holds
    assert budget.throttles == 12 and budget.cuts == 10


def test_units_spent_under_a_cut_follow_the_lower_rate() -> None:
    steady = AdaptiveReadBudget(100, recover_s=1000)
    cut = AdaptiveReadBudget(100, recover_s=1000)
    cut.reserve(0.0, 0)
    cut.throttled(0.0)
    assert drain(cut, 0.0, 20.0) < 0.6 * drain(steady, 0.0, 20.0)


@pytest.mark.parametrize("kwargs", [{"ceiling": 0}, {"ceiling": 10, "decrease": 1.0}, {"ceiling": 10, "recover_s": 0},
                                    {"ceiling": 10, "floor": 0}])
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    ceiling = kwargs.pop("ceiling")
    with pytest.raises(ValueError):
        AdaptiveReadBudget(ceiling, **kwargs)
