"""The reconcile report: JSON for machines and repair, a short summary for people.

Shape (one file per run):

    {"run_id", "started_at", "finished_at", "duration_s", "settings": {...},
     "targets": {"<DynamoDB table>": {"items_scanned", "unmapped": {"count", "sample": [key]}}},
     "tables": {"<schema.table>": {
         "target", "rows_postgres", "items_dynamodb", "duration_s", "rows_per_s",
         "candidates", "resolved_in_flight", "drift_counts": {kind: n},
         "drift": [{"kind", "key", "primary_key", "diffs": [{"attribute", "expected", "actual"}],
                    "seen": {attribute: wire value | null}}]}},
     "mapping_errors": [...], "drift_total": n}

`key` and `seen` use DynamoDB's JSON wire shape ({"S": "x"}, binary as base64). `seen` holds the
target's values at report time of the attributes a repair conditions on; redacted attributes are
never written (their diffs say "<redacted>").
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from parity.core.compare import Mismatch
from parity.core.mapping import ItemMapper
from parity.core.values import Item, to_wire


def wire_json(value: Any) -> Any:
    """Low-level wire value -> JSON-ready (bytes as base64 at any depth)."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {k: wire_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [wire_json(v) for v in value]
    return value


def wire_from_json(value: Any, tag: str | None = None) -> Any:
    """Inverse of `wire_json` for one attribute value ({"B": "<b64>"} -> bytes)."""
    if not isinstance(value, dict) or len(value) != 1:
        return value
    ((t, raw),) = value.items()
    if t == "B":
        return {"B": base64.b64decode(raw)}
    if t == "BS":
        return {"BS": [base64.b64decode(x) for x in raw]}
    if t == "L":
        return {"L": [wire_from_json(x) for x in raw]}
    if t == "M":
        return {"M": {k: wire_from_json(x) for k, x in raw.items()}}
    return value


@dataclass(frozen=True, slots=True)
class DriftEntry:
    source: str
    kind: str
    key: dict[str, Any]  # wire JSON
    primary_key: dict[str, str] | None
    diffs: tuple[dict[str, str], ...] = ()
    seen: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "key": self.key,
            "primary_key": self.primary_key,
            "diffs": list(self.diffs),
            "seen": self.seen,
        }


def seen_attributes(mapper: ItemMapper, mismatch: Mismatch, actual: Item | None) -> dict[str, Any]:
    """Target values a repair conditions on: the differing attributes (absent -> null), or for an
    unexpected item all of its attributes; never a redacted one."""
    if actual is None:
        return {}
    redacted = mapper.plan.redacted
    keys = set(mapper.key_attributes)
    if mismatch.kind == "unexpected_in_target":
        names: Iterable[str] = [n for n in actual if n not in keys]
    else:
        names = [d.attribute for d in mismatch.diffs]
    seen: dict[str, Any] = {}
    for name in names:
        if name in redacted or name in keys:
            continue
        value = actual.get(name, _ABSENT)
        seen[name] = None if value is _ABSENT else wire_json(to_wire(value))  # type: ignore[arg-type]
    return seen


_ABSENT = object()


def drift_entry(mapper: ItemMapper, key: dict[str, Any], mismatch: Mismatch, actual: Item | None) -> DriftEntry:
    return DriftEntry(
        source=mapper.mapping.source,
        kind=str(mismatch.kind),
        key=key,
        primary_key=mapper.primary_key_from_item(_key_item(key)),
        diffs=tuple({"attribute": d.attribute, "expected": d.expected, "actual": d.actual} for d in mismatch.diffs),
        seen=seen_attributes(mapper, mismatch, actual),
    )


def _key_item(key: Mapping[str, Any]) -> Item:
    from parity.reconcilers.tally import key_from_json

    return key_from_json(key)


def table_report(
    *,
    target: str,
    rows_postgres: int,
    items_dynamodb: int,
    duration_s: float,
    candidates: int,
    drift: Iterable[DriftEntry],
) -> dict[str, Any]:
    entries = sorted(drift, key=lambda d: (d.kind, repr(sorted(d.key.items()))))
    counts: dict[str, int] = {}
    for d in entries:
        counts[d.kind] = counts.get(d.kind, 0) + 1
    rows = rows_postgres + items_dynamodb
    return {
        "target": target,
        "rows_postgres": rows_postgres,
        "items_dynamodb": items_dynamodb,
        "duration_s": round(duration_s, 3),
        "rows_per_s": round(rows / duration_s, 1) if duration_s > 0 else None,
        "candidates": candidates,
        "resolved_in_flight": candidates - len(entries),
        "drift_counts": counts,
        "drift": [d.to_json() for d in entries],
    }


def drift_total(report: Mapping[str, Any]) -> int:
    return sum(sum(t["drift_counts"].values()) for t in report.get("tables", {}).values())


def exit_code(report: Mapping[str, Any]) -> int:
    """0: no drift; 1: drift. Unmapped items are shown but do not fail a run: a single-table
    design often holds items no Postgres table produces (sessions, caches, counters)."""
    return 1 if drift_total(report) else 0


def summary_lines(report: Mapping[str, Any], *, max_keys: int = 10) -> list[str]:
    lines = [f"reconcile {report.get('run_id', '')}: {report.get('duration_s', 0):.1f}s"]
    for target, t in sorted(report.get("targets", {}).items()):
        unmapped = t["unmapped"]
        line = f"  {target}: {t['items_scanned']} items scanned"
        if unmapped["count"]:
            line += f", {unmapped['count']} unmapped (e.g. {_key_text(unmapped['sample'][0])})"
        lines.append(line)
    for source, t in sorted(report.get("tables", {}).items()):
        counts = t["drift_counts"]
        status = "clean" if not counts else ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        lines.append(
            f"  {source} -> {t['target']}: {t['rows_postgres']} rows / {t['items_dynamodb']} items, "
            f"{status} ({t['resolved_in_flight']} in-flight resolved, {t['rows_per_s'] or 0:.0f} rows/s)"
        )
        for d in t["drift"][:max_keys]:
            diffs = "; ".join(f"{x['attribute']}: {x['expected']} != {x['actual']}" for x in d["diffs"])
            lines.append(f"    {d['kind']} {_key_text(d['key'])}" + (f"  {diffs}" if diffs else ""))
        if len(t["drift"]) > max_keys:
            lines.append(f"    ... {len(t['drift']) - max_keys} more in the JSON report")
    for err in report.get("mapping_errors", [])[:max_keys]:
        lines.append(f"  mapping error: {err}")
    lines.append(f"drift: {drift_total(report)} key(s)")
    return lines


def _key_text(key: Mapping[str, Any]) -> str:
    parts = []
    for name, wire in key.items():
        ((_, raw),) = wire.items()
        parts.append(f"{name}={raw}")
    return " ".join(parts)
