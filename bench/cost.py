"""Capacity units and on-demand cost, from the item sizes measured and the operations parity issues."""

from __future__ import annotations

import math
from typing import Any

from parity.core.values import item_size

# ASSUMPTIONS (check against current AWS pricing for your region before relying on them):
PRICE_PER_MILLION_RRU = 0.25  # USD, on-demand read request units
PRICE_PER_MILLION_WRU = 1.25  # USD, on-demand write request units
PRICE_PER_RCU_HOUR = 0.00013  # USD, provisioned read capacity, for comparison
SECONDS_PER_MONTH = 30 * 24 * 3600
HOURS_PER_MONTH = 730


def model(items: list[dict[str, Any]]) -> dict[str, Any]:
    sizes = [item_size(i) for i in items]
    avg = sum(sizes) / len(sizes)
    # Per item, rounded up per item: BatchGetItem (consistent) 1 RCU per 4 KB; UpdateItem 1 WCU per 1 KB.
    rcu_per_get = sum(math.ceil(s / 4096) for s in sizes) / len(sizes)
    wcu_per_write = sum(math.ceil(s / 1024) for s in sizes) / len(sizes)
    # Scan, eventually consistent: 0.5 RCU per 4 KB of data read (rounded per page, ~negligible).
    rcu_per_scanned = avg / 4096 * 0.5
    per_million = {
        "verify_rcu": round(rcu_per_get * 1e6),
        "shadow_wcu": round(wcu_per_write * 1e6),
        # shadow.py groups its conditional writes into TransactWriteItems: 2 WCU per item written.
        "shadow_wcu_transactional": round(2 * wcu_per_write * 1e6),
        "reconcile_scan_rcu": round(rcu_per_scanned * 1e6),
    }
    # What `shadow_writes: single` saves against transactions: one WCU per item written.
    per_million["shadow_single_saves_wcu"] = per_million["shadow_wcu_transactional"] - per_million["shadow_wcu"]
    monthly = {}
    for rate in (1_000, 10_000, 100_000):
        reads = rate * SECONDS_PER_MONTH * rcu_per_get
        monthly[str(rate)] = {
            "read_units_per_month": round(reads),
            "on_demand_usd": round(reads / 1e6 * PRICE_PER_MILLION_RRU),
            "provisioned_usd": round(rate * rcu_per_get * HOURS_PER_MONTH * PRICE_PER_RCU_HOUR),
        }
    return {
        "avg_item_bytes": round(avg), "max_item_bytes": max(sizes),
        "rcu_per_verified_event": rcu_per_get, "wcu_per_shadow_event": wcu_per_write,
        "per_million_rows": per_million,
        "per_million_rows_usd_on_demand": {
            "verify": round(per_million["verify_rcu"] / 1e6 * PRICE_PER_MILLION_RRU, 3),
            "shadow": round(per_million["shadow_wcu"] / 1e6 * PRICE_PER_MILLION_WRU, 3),
            "shadow_transactional": round(per_million["shadow_wcu_transactional"] / 1e6 * PRICE_PER_MILLION_WRU, 3),
            "shadow_single_saves": round(per_million["shadow_single_saves_wcu"] / 1e6 * PRICE_PER_MILLION_WRU, 3),
            "reconcile": round(per_million["reconcile_scan_rcu"] / 1e6 * PRICE_PER_MILLION_RRU, 4),
        },
        "continuous_verification_monthly": monthly,
        "assumptions": {
            "usd_per_million_rru": PRICE_PER_MILLION_RRU, "usd_per_million_wru": PRICE_PER_MILLION_WRU,
            "usd_per_rcu_hour_provisioned": PRICE_PER_RCU_HOUR, "seconds_per_month": SECONDS_PER_MONTH,
            "note": "list prices assumed, not looked up; check current AWS pricing for the region",
        },
    }
