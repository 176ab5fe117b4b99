"""The verifier's pure path on one core: decode + map + compare, no I/O.

The same calls per event as the daemon's (parity.daemon.decode and verify): the table's compiled
plan (`parity.core.plan.Planner.decode`: the record decoded and its expectation built in one
pass) and `compare` with the mapping's known attributes. `general=True` measures the general
path the plan stands in for (`decode_record`, then `expect`), so one run can show both."""

from __future__ import annotations

import time
from typing import Any

from parity.adapters.kafka import Record
from parity.core.compare import compare, known_attributes
from parity.core.config import ParityConfig
from parity.core.events import ChangeEvent, decode_record
from parity.core.expect import Expectation, expect
from parity.core.mapping import ItemMapper
from parity.core.plan import Planner


def run(
    cfg: ParityConfig, records: list[Record], actual: dict[Any, dict[str, Any]], *, general: bool = False
) -> dict[str, Any]:
    """Decode every record, build its key and expected item, compare with the stored item."""
    mapping = cfg.tables[0]
    mapper = ItemMapper(mapping)
    planner = Planner(mapper)
    hints = mapping.columns
    matches = 0
    started = time.perf_counter()
    cpu0 = time.process_time()
    known = known_attributes(mapper)
    for r in records:
        if general:
            event = decode_record(r.topic, r.key, r.value, hints)
            if not isinstance(event, ChangeEvent):
                continue
            found = expect(mapper, event)
        else:
            decoded, planned = planner.decode(r.topic, r.key, r.value)
            if not isinstance(decoded, ChangeEvent):
                continue
            found = planned if planned is not None else expect(mapper, decoded)
        if not isinstance(found, Expectation) or found.expected is None:
            continue
        actual_item = actual.get(found.key["PK"])
        verdict = compare(mapper, found.expected, actual_item, unavailable=found.unavailable, known=known)
        matches += verdict.__class__.__name__ == "Match"
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    return {"path": "general" if general else "plan",
            "events": len(records), "matches": matches, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "events_per_s_wall": round(len(records) / wall), "events_per_s_cpu": round(len(records) / cpu)}


def calibration() -> dict[str, float]:
    """CPU seconds of a fixed pure-Python loop, measured now: how slow this (shared) core is at
    the moment, to compare pure-path rates between runs and machines."""
    best = 1e9
    for _ in range(5):
        cpu0 = time.process_time()
        sum(range(1_000_000))
        best = min(best, time.process_time() - cpu0)
    return {"sum_range_1e6_cpu_ms": round(best * 1000, 1)}
