"""The reconcile report: JSON for machines and repair, a short summary for people.

Shape (one file per run):

    {"run_id", "started_at", "finished_at", "duration_s", "settings": {...},
     "targets": {"<DynamoDB table>": {"items_scanned", "items_compared", "items_not_compared",
         "items_other_tables", "items_not_compared_by_reason": [{"table", "reason", "count", "sample"}],
         "unmapped": {"count", "sample": [key]}, "run_dir"}},
     "tables": {"<schema.table>": {
         "target", "rows_postgres", "rows_compared", "rows_not_compared",
         "rows_not_compared_by_reason": [{"reason", "count", "sample": [primary key]}],
         "items_scanned", "items_compared", "items_not_compared",
         "items_not_compared_by_reason": [{"reason", "count", "sample": [{"key", "primary_key"}]}],
         "items_dynamodb" (= items_scanned), "duration_s", "rows_per_s",
         "candidates", "resolved_in_flight", "source_of_truth": "postgres" | "dynamodb",
         "drift_counts": {kind: n},
         "drift": [{"kind", "key", "primary_key", "diffs": [{"attribute", "expected", "actual"}],
                    "seen": {attribute: wire value | null}}]}},
     "drift_total": n, "not_compared_total": n}

Invariants: rows_compared + rows_not_compared = rows_postgres and items_compared +
items_not_compared = items_scanned per table; per target items_compared + items_not_compared +
items_other_tables = items_scanned. A primary key is typed (a bigint is a JSON number), redacted
columns are "<redacted>"; a reason never holds a row's values.

The reconcile is symmetric, and its kinds keep the forward vocabulary in the JSON (`parity repair`
reads them): `expected` is Postgres' side, `actual` DynamoDB's. For a table in mode reverse
(`source_of_truth: dynamodb`, after cutover) the summary for people words them from DynamoDB's
side: an item without its row is "missing in Postgres", a row without its item "unexpected in
Postgres".

`key` and `seen` use DynamoDB's JSON wire shape ({"S": "x"}, binary as base64). `seen` holds the
target's values at report time of the attributes a repair conditions on; redacted attributes are
never written (their diffs say "<redacted>").
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from parity.core.compare import Mismatch
from parity.core.mapping import ItemMapper
from parity.core.values import Item, to_wire
from parity.reconcilers.coverage import NotCompared


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
    primary_key: dict[str, Any] | None  # typed by the reconciler (numeric columns as numbers)
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
    rows_compared: int,
    rows_not_compared: NotCompared,
    items_scanned: int,
    items_not_compared: NotCompared,
    duration_s: float,
    candidates: int,
    resolved_in_flight: int,
    drift: Iterable[DriftEntry],
    source_of_truth: str = "postgres",
) -> dict[str, Any]:
    """One source table's figures. By construction rows_compared + rows_not_compared =
    rows_postgres and items_compared + items_not_compared = items_scanned (the items the routing
    rule gives this table)."""
    entries = sorted(drift, key=lambda d: (d.kind, repr(sorted(d.key.items()))))
    counts: dict[str, int] = {}
    for d in entries:
        counts[d.kind] = counts.get(d.kind, 0) + 1
    rows_postgres = rows_compared + rows_not_compared.total
    items_compared = items_scanned - items_not_compared.total
    rows = rows_postgres + items_scanned
    return {
        "target": target,
        "rows_postgres": rows_postgres,
        "rows_compared": rows_compared,
        "rows_not_compared": rows_not_compared.total,
        "rows_not_compared_by_reason": rows_not_compared.to_json(),
        "items_scanned": items_scanned,
        "items_dynamodb": items_scanned,  # the name before items_scanned; kept for readers of old reports
        "items_compared": items_compared,
        "items_not_compared": items_not_compared.total,
        "items_not_compared_by_reason": items_not_compared.to_json(),
        "duration_s": round(duration_s, 3),
        "rows_per_s": round(rows / duration_s, 1) if duration_s > 0 else None,
        "candidates": candidates,
        "resolved_in_flight": resolved_in_flight,
        "source_of_truth": source_of_truth,
        "drift_counts": counts,
        "drift": [d.to_json() for d in entries],
    }


def target_report(
    *, items_scanned: int, tables: Mapping[str, Mapping[str, Any]], unroutable: NotCompared,
    items_other_tables: int, run_dir: str,
) -> dict[str, Any]:
    """One DynamoDB table: items_scanned = items_compared + items_not_compared + items_other_tables
    (items of tables this run does not check, with --table). Not compared: the tables' items whose
    row does not map, and items no mapping routes (which no table owns)."""
    by_reason = [{"table": None, **g} for g in unroutable.to_json()]
    for source, t in sorted(tables.items()):
        by_reason += [{"table": source, **g} for g in t["items_not_compared_by_reason"]]
    return {
        "items_scanned": items_scanned,
        "items_compared": sum(t["items_compared"] for t in tables.values()),
        "items_not_compared": unroutable.total + sum(t["items_not_compared"] for t in tables.values()),
        "items_other_tables": items_other_tables,
        "items_not_compared_by_reason": by_reason,
        "unmapped": {"count": unroutable.total,
                     "sample": [k for g in unroutable.to_json() for k in g["sample"]]},
        "run_dir": run_dir,
    }


def drift_total(report: Mapping[str, Any]) -> int:
    return sum(sum(t["drift_counts"].values()) for t in report.get("tables", {}).values())


def not_compared_total(report: Mapping[str, Any]) -> int:
    """Rows and items a run could not compare (mapping errors, unroutable items)."""
    rows: int = sum(t.get("rows_not_compared", 0) for t in report.get("tables", {}).values())
    items: int = sum(t.get("items_not_compared", 0) for t in report.get("targets", {}).values())
    return rows + items


def exit_code(report: Mapping[str, Any]) -> int:
    """0: every row and item compared, no drift; 1: drift, or something was not compared (the
    check found a problem either way: an uncompared row is one nobody verified)."""
    return 1 if drift_total(report) or not_compared_total(report) else 0


def summary_lines(report: Mapping[str, Any], *, max_keys: int = 10) -> list[str]:
    lines = [f"reconcile {report.get('run_id', '')}: {report.get('duration_s', 0):.1f}s"]
    for target, t in sorted(report.get("targets", {}).items()):
        line = f"  {target}: {t['items_scanned']} items scanned, {t.get('items_compared', 0)} compared"
        if t.get("items_other_tables"):
            line += f", {t['items_other_tables']} of tables not checked in this run"
        lines.append(line)
        for g in t.get("items_not_compared_by_reason", []):
            if g.get("table") is None:
                lines.append(f"    {g['count']} not compared: {g['reason']}{_sample_text(g['sample'])}")
    for source, t in sorted(report.get("tables", {}).items()):
        counts = t["drift_counts"]
        reverse = t.get("source_of_truth") == "dynamodb"
        status = ", ".join(f"{n} {_kind_text(k, reverse)}" for k, n in sorted(counts.items())) or "clean"
        if reverse:
            status += "; DynamoDB is the source of truth"
        lines.append(
            f"  {source} -> {t['target']}: {t['rows_postgres']} rows / {t['items_scanned']} items, "
            f"{status} ({t['resolved_in_flight']} in-flight resolved, {t['rows_per_s'] or 0:.0f} rows/s)"
        )
        if t["rows_not_compared"]:
            lines.append(f"    {t['rows_not_compared']} of {t['rows_postgres']} rows not compared:")
            for g in t["rows_not_compared_by_reason"]:
                lines.append(f"      {g['count']} {g['reason']}{_sample_text(g['sample'])}")
        if t["items_not_compared"]:
            lines.append(f"    {t['items_not_compared']} of {t['items_scanned']} items not compared:")
            for g in t["items_not_compared_by_reason"]:
                lines.append(f"      {g['count']} {g['reason']}{_sample_text(g['sample'])}")
        for d in t["drift"][:max_keys]:
            if reverse:
                diffs = "; ".join(
                    f"{x['attribute']}: DynamoDB {x['actual']} != Postgres {x['expected']}" for x in d["diffs"]
                )
            else:
                diffs = "; ".join(f"{x['attribute']}: {x['expected']} != {x['actual']}" for x in d["diffs"])
            kind = _kind_text(d["kind"], reverse)
            lines.append(f"    {kind} {_key_text(d['key'])}" + (f"  {diffs}" if diffs else ""))
        if len(t["drift"]) > max_keys:
            lines.append(f"    ... {len(t['drift']) - max_keys} more in the JSON report")
    lines.append(f"drift: {drift_total(report)} key(s); not compared: {not_compared_total(report)}")
    return lines


# The report's kinds (Postgres expected, DynamoDB actual) as read when DynamoDB is the source of truth.
_REVERSE_KIND_TEXT = {
    "missing_in_target": "unexpected in Postgres (no DynamoDB item)",
    "unexpected_in_target": "missing in Postgres",
    "value_mismatch": "value mismatch",
    "stale_in_target": "Postgres newer than DynamoDB",
}


def _kind_text(kind: str, reverse: bool) -> str:
    return _REVERSE_KIND_TEXT.get(kind, kind) if reverse else kind


def _sample_text(sample: Sequence[Mapping[str, Any]], shown: int = 3) -> str:
    """e.g. " (e.g. id=11; id=12)": a primary key, or an item's key (wire JSON)."""
    texts = []
    for entry in sample[:shown]:
        if "key" in entry and isinstance(entry["key"], Mapping):
            texts.append(_key_text(entry["key"]))
        elif entry and all(isinstance(v, Mapping) and len(v) == 1 for v in entry.values()):
            texts.append(_key_text(entry))
        else:
            texts.append(" ".join(f"{k}={v}" for k, v in entry.items()))
    return f" (e.g. {'; '.join(texts)})" if texts else ""


def _key_text(key: Mapping[str, Any]) -> str:
    parts = []
    for name, wire in key.items():
        ((_, raw),) = wire.items()
        parts.append(f"{name}={raw}")
    return " ".join(parts)
