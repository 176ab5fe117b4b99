"""Scoring a demo run: the drift the workload injected against the drift parity reported.

Pure: takes the injected drift and the detections (from the streaming verifier's state store and
from the reconcile report), returns counts per table and kind, detection latencies and `exact`.

- injected / detected / missed are counted by injected kind (a `subtle_value` is reported as a
  `value_mismatch`, see parity.workload.REPORTED_KIND); detected = some detector reported the key
  with the expected kind.
- false_positives are counted by reported kind: a key that was never injected, or an injected key
  reported with another kind. A key counts once per kind however many detectors saw it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from parity.workload import DRIFT_KINDS, REPORTED_KIND, InjectedDrift

REPORTED_KINDS = tuple(dict.fromkeys(REPORTED_KIND.values()))


@dataclass(frozen=True)
class Detection:
    detector: str  # "stream" (the verifier daemon) or "reconcile"
    table: str
    key: Mapping[str, Any]
    kind: str
    at: float  # wall-clock time the detector confirmed it


def canonical_key(key: Mapping[str, Any]) -> str:
    """One text per key whatever produced it (a mapper's Decimal, a report's wire JSON number)."""

    def plain(v: Any) -> str:
        if isinstance(v, bool):
            return str(v).lower()
        if isinstance(v, int | float | Decimal):
            d = Decimal(str(v)).normalize()
            return format(d, "f")
        if isinstance(v, bytes | bytearray):
            return bytes(v).hex()
        return str(v)

    return json.dumps({k: plain(v) for k, v in key.items()}, sort_keys=True)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class KindCounts:
    injected: int = 0
    detected: int = 0
    missed: int = 0
    false_positives: int = 0


@dataclass
class Score:
    tables: dict[str, dict[str, KindCounts]] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=dict)  # detector or "first" -> seconds
    missed_keys: list[dict[str, Any]] = field(default_factory=list)
    false_positive_keys: list[dict[str, Any]] = field(default_factory=list)

    def _cell(self, table: str, kind: str) -> KindCounts:
        return self.tables.setdefault(table, {}).setdefault(kind, KindCounts())

    def totals(self, attr: str) -> dict[str, int]:
        kinds = REPORTED_KINDS if attr == "false_positives" else DRIFT_KINDS
        out = dict.fromkeys(kinds, 0)
        for cells in self.tables.values():
            for kind, c in cells.items():
                n = getattr(c, attr)
                if n:
                    out[kind] = out.get(kind, 0) + n
        return out

    @property
    def exact(self) -> bool:
        return not any(self.totals("missed").values()) and not any(self.totals("false_positives").values())

    def latency_summary(self) -> dict[str, dict[str, float | int | None]]:
        return {
            name: {"count": len(v), "p50_s": _round(percentile(v, 50)), "p99_s": _round(percentile(v, 99))}
            for name, v in sorted(self.latencies.items())
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "exact": self.exact,
            "injected": self.totals("injected"),
            "detected": self.totals("detected"),
            "missed": self.totals("missed"),
            "false_positives": self.totals("false_positives"),
            "tables": {
                t: {k: vars(c) for k, c in sorted(cells.items())} for t, cells in sorted(self.tables.items())
            },
            "detection_latency": self.latency_summary(),
            "missed_keys": self.missed_keys,
            "false_positive_keys": self.false_positive_keys,
        }


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def score(injected: Iterable[InjectedDrift], detections: Iterable[Detection], tables: Iterable[str] = ()) -> Score:
    result = Score()
    for t in tables:
        result.tables.setdefault(t, {})
    wanted: dict[tuple[str, str], InjectedDrift] = {}
    for d in injected:
        wanted[(d.source, canonical_key(d.key))] = d
        result._cell(d.source, d.kind).injected += 1
    seen: dict[tuple[str, str], dict[str, list[Detection]]] = {}
    for det in detections:
        seen.setdefault((det.table, canonical_key(det.key)), {}).setdefault(det.kind, []).append(det)
    for ident, inj in wanted.items():
        right = seen.get(ident, {}).get(inj.reported_kind, [])
        if right:
            result._cell(inj.source, inj.kind).detected += 1
            first = min(right, key=lambda d: d.at)
            result.latencies.setdefault("first", []).append(max(0.0, first.at - inj.at))
            for detector in sorted({d.detector for d in right}):
                at = min(d.at for d in right if d.detector == detector)
                result.latencies.setdefault(detector, []).append(max(0.0, at - inj.at))
        else:
            result._cell(inj.source, inj.kind).missed += 1
            result.missed_keys.append({"table": inj.source, "key": ident[1], "kind": inj.kind})
    for ident, by_kind in sorted(seen.items()):
        planted = wanted.get(ident)
        for kind, dets in sorted(by_kind.items()):
            if planted is not None and kind == planted.reported_kind:
                continue
            result._cell(ident[0], kind).false_positives += 1
            result.false_positive_keys.append({
                "table": ident[0], "key": ident[1], "kind": kind,
                "detectors": sorted({d.detector for d in dets}),
                "injected_kind": planted.kind if planted is not None else None,
            })
    return result
