"""parity.core.outcomes: one name per outcome, the same strings the metrics, the state store and
`parity status` use."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from parity.core.outcomes import RESOLVED, SHADOW, VERDICTS, Outcome
from parity.daemon.batch import BatchResult
from parity.metrics.catalog import EVENT_OUTCOMES, SHADOW_OUTCOMES
from parity.metrics.catalog import VERDICTS as CATALOG_VERDICTS

pytestmark = pytest.mark.unit

NAMES = [
    "match", "drift", "pending", "superseded", "duplicate", "unverified", "not_compared",
    "dead_letter", "skipped", "truncate", "unmapped", "applied", "stale_skipped", "failed",
]


def test_every_outcome_has_its_established_name() -> None:
    assert sorted(o.value for o in Outcome) == sorted(NAMES)
    assert Outcome("stale_skipped") is Outcome.STALE_SKIPPED
    assert f"{Outcome.NOT_COMPARED}" == "not_compared"


def test_the_metrics_label_sets_are_the_outcomes() -> None:
    assert set(EVENT_OUTCOMES) == set(NAMES)
    assert set(CATALOG_VERDICTS) == VERDICTS == {"match", "drift"}
    assert set(SHADOW_OUTCOMES) == SHADOW == {"applied", "stale_skipped", "failed"}


def test_resolved_is_every_verify_outcome_but_pending() -> None:
    assert set(RESOLVED) == set(NAMES) - {"pending"} - SHADOW


def test_counts_are_keyed_by_plain_strings() -> None:
    result = BatchResult()
    result.count("public.t", Outcome.MATCH, op="c")
    result.count("public.t", Outcome.MATCH, op="c")
    result.count("public.t", "drift")  # type: ignore[arg-type]
    assert result.outcomes == Counter({("public.t", "match"): 2, ("public.t", "drift"): 1})
    assert all(type(o) is str for _, o in result.outcomes)
    assert all(type(o) is str for _, _, o in result.events)
    # orjson refuses str subclasses as keys: the counts must stay writable as JSON.
    by_outcome = {o: n for (_, o), n in result.outcomes.items()}
    assert orjson.loads(orjson.dumps(by_outcome)) == {"match": 2, "drift": 1}
