"""The demo's two sums (parity.demo.accounting): they hold only when every figure agrees."""

from __future__ import annotations

from typing import Any

import pytest

from parity.demo.accounting import reconcile_coverage, stream_accounting

pytestmark = pytest.mark.unit

TOPICS = {"cdc.public.a": "public.a", "cdc.public.b": "public.b"}


def _status(consumed_a: int = 7, hw_a: tuple[int, int] = (3, 4), pending_a: int = 0) -> dict[str, Any]:
    return {
        "tables": {
            "public.a": {"outcomes": {"match": 5, "drift": 2 - pending_a}, "pending_rechecks": pending_a,
                         "consumed": consumed_a},
            "public.b": {"outcomes": {"match": 2}, "pending_rechecks": 0, "consumed": 2},
        },
        "totals": {"consumed": consumed_a + 2},
        "stream": {"partitions": {
            "cdc.public.a[0]": {"high_watermark": hw_a[0]}, "cdc.public.a[1]": {"high_watermark": hw_a[1]},
            "cdc.public.b[0]": {"high_watermark": 2}, "cdc.public.b[1]": {"high_watermark": 0},
        }},
    }


def test_the_stream_adds_up_when_topics_consumed_and_outcomes_agree() -> None:
    acc = stream_accounting(_status(), TOPICS)
    assert acc["adds_up"] is True
    assert acc["records_on_topics"] == 9 == acc["consumed"]
    assert acc["tables"]["public.a"] == {"records_on_topic": 7, "consumed": 7, "outcomes": 7,
                                        "pending_rechecks": 0, "adds_up": True}


def test_a_record_on_the_topic_that_was_not_consumed_breaks_the_sum() -> None:
    acc = stream_accounting(_status(hw_a=(3, 5)), TOPICS)
    assert acc["adds_up"] is False
    assert acc["tables"]["public.a"]["adds_up"] is False


def test_an_event_without_an_outcome_breaks_the_sum() -> None:
    acc = stream_accounting(_status(consumed_a=8, hw_a=(4, 4)), TOPICS)
    assert acc["tables"]["public.a"]["adds_up"] is False
    assert acc["adds_up"] is False


def test_pending_checks_count_as_consumed_not_as_outcomes() -> None:
    acc = stream_accounting(_status(pending_a=1), TOPICS)
    assert acc["tables"]["public.a"]["outcomes"] == 6
    assert acc["adds_up"] is True


def test_coverage_holds_against_count_star_and_the_scan() -> None:
    report = {
        "tables": {"public.a": {"rows_compared": 98, "rows_not_compared": 2}},
        "targets": {"T": {"items_scanned": 103, "items_compared": 100, "items_not_compared": 3}},
        "not_compared_total": 5,
    }
    assert reconcile_coverage(report, {"public.a": 100})["adds_up"] is True
    short = reconcile_coverage(report, {"public.a": 101})  # a row neither compared nor counted
    assert short["adds_up"] is False
    assert short["tables"]["public.a"]["adds_up"] is False
    report["targets"]["T"]["items_scanned"] = 104
    assert reconcile_coverage(report, {"public.a": 100})["targets"]["T"]["adds_up"] is False
