"""The cluster's shared DynamoDB read budget, kept on the Dask scheduler.

Why on the scheduler and not in a Dask Actor: an actor lives on one worker, and a run must survive
losing any worker; the scheduler is the one process a run cannot lose anyway. Each Scan page asks
the scheduler once (`Client.run_on_scheduler`, one round trip, about a millisecond next to a page's
tens of milliseconds) how long to wait for the units it consumed, and a throttling response is
reported the same way. The logic is `parity.core.readbudget.AdaptiveReadBudget`; the functions
below run in the scheduler's process, so the scheduler must have parity installed (the same image
as the workers: docker-compose.yml's `cluster` profile, docs/reconciler.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from parity.adapters.errors import error_kind
from parity.core.readbudget import AdaptiveReadBudget

_ATTRIBUTE = "_parity_read_budgets"  # on the Scheduler object: budget name -> AdaptiveReadBudget


def _budgets(dask_scheduler: Any) -> dict[str, AdaptiveReadBudget]:
    budgets: dict[str, AdaptiveReadBudget] | None = getattr(dask_scheduler, _ATTRIBUTE, None)
    if budgets is None:
        budgets = {}
        setattr(dask_scheduler, _ATTRIBUTE, budgets)
    return budgets


def open_budget(name: str, ceiling: float, dask_scheduler: Any = None) -> None:
    _budgets(dask_scheduler)[name] = AdaptiveReadBudget(ceiling)


def close_budget(name: str, dask_scheduler: Any = None) -> dict[str, float]:
    budget = _budgets(dask_scheduler).pop(name, None)
    if budget is None:
        return {}
    return {"ceiling": budget.ceiling, "units_spent": round(budget.spent, 1), "throttles": budget.throttles,
            "cuts": budget.cuts,
            "rate_at_end": round(budget.rate(time.monotonic()), 3)}


def reserve(name: str, units: float, dask_scheduler: Any = None) -> float:
    budget = _budgets(dask_scheduler).get(name)
    return 0.0 if budget is None else budget.reserve(time.monotonic(), units)


def throttled(name: str, dask_scheduler: Any = None) -> bool:
    budget = _budgets(dask_scheduler).get(name)
    return False if budget is None else budget.throttled(time.monotonic())


class ClusterReadBudget:
    """A worker's handle on the shared budget (a `ReadLimiter`): waits as the scheduler says."""

    def __init__(self, name: str, *, client: Callable[[], Any] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.name = name
        self._client = client
        self._sleep = sleep

    def _scheduler(self) -> Any:
        if self._client is not None:
            return self._client()
        from distributed import get_client

        return get_client()  # the worker's own client, made once per worker process

    def acquire(self, tokens: float = 1.0) -> None:
        wait = float(self._scheduler().run_on_scheduler(reserve, self.name, tokens))
        if wait > 0:
            self._sleep(wait)

    def throttled(self) -> None:
        self._scheduler().run_on_scheduler(throttled, self.name)


class ThrottleReporter:
    """A `DynamoObserver` for a worker's store: every throttled attempt cuts everyone's rate."""

    def __init__(self, budget: ClusterReadBudget) -> None:
        self.budget = budget
        self.throttles = 0

    def dynamo_request(
        self, table: str, operation: str, seconds: float, error: str | None, last_attempt: bool = True
    ) -> None:
        if error is not None and error_kind(error) == "throttled":
            self.throttles += 1
            self.budget.throttled()
