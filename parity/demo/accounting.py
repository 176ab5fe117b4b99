"""The demo's proof that nothing passed unverified: two sums, each against a count parity did not make.

- Stream: per table, the records on its topic (the broker's high watermarks: offsets start at 0 and
  nothing is compacted) = the events the daemon consumed = the sum of their outcomes + pending checks.
- Reconcile: per table, `count(*)` in Postgres = rows compared + rows not compared; per DynamoDB
  table, the items scanned = items compared + items not compared (+ items of tables not reconciled).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def stream_accounting(status: Mapping[str, Any], topic_tables: Mapping[str, str]) -> dict[str, Any]:
    """`status` is `parity status --json`'s document; `topic_tables` maps each topic to its table."""
    on_topic: dict[str, int] = {}
    for name, p in (status.get("stream") or {}).get("partitions", {}).items():
        topic = name.rsplit("[", 1)[0]
        table = topic_tables.get(topic)
        if table is not None and p.get("high_watermark") is not None:
            on_topic[table] = on_topic.get(table, 0) + int(p["high_watermark"])
    tables: dict[str, Any] = {}
    for source, row in status.get("tables", {}).items():
        outcomes = sum(row.get("outcomes", {}).values())
        pending = row.get("pending_rechecks", 0)
        entry = {
            "records_on_topic": on_topic.get(source),
            "consumed": row.get("consumed", 0),
            "outcomes": outcomes,
            "pending_rechecks": pending,
        }
        # A table without a topic of its own (events of an unconfigured table) has no topic figure.
        entry["adds_up"] = row.get("consumed", 0) == outcomes + pending and (
            entry["records_on_topic"] is None or entry["records_on_topic"] == row.get("consumed", 0)
        )
        tables[source] = entry
    totals = status.get("totals", {})
    records = sum(on_topic.values()) if on_topic else None
    return {
        "tables": tables,
        "records_on_topics": records,
        "consumed": totals.get("consumed", 0),
        "adds_up": all(t["adds_up"] for t in tables.values()) and records == totals.get("consumed", 0),
    }


def reconcile_coverage(report: Mapping[str, Any], rows_in_postgres: Mapping[str, int]) -> dict[str, Any]:
    """Per table the reconcile's figures next to `count(*)`, and per DynamoDB table its item figures."""
    tables: dict[str, Any] = {}
    for source, t in report.get("tables", {}).items():
        counted = rows_in_postgres.get(source)
        tables[source] = {
            "rows_in_postgres": counted,
            "rows_compared": t.get("rows_compared", 0),
            "rows_not_compared": t.get("rows_not_compared", 0),
            "adds_up": counted == t.get("rows_compared", 0) + t.get("rows_not_compared", 0),
        }
    targets: dict[str, Any] = {}
    for name, t in report.get("targets", {}).items():
        parts = t.get("items_compared", 0) + t.get("items_not_compared", 0) + t.get("items_other_tables", 0)
        targets[name] = {
            "items_scanned": t.get("items_scanned", 0),
            "items_compared": t.get("items_compared", 0),
            "items_not_compared": t.get("items_not_compared", 0),
            "adds_up": parts == t.get("items_scanned", 0),
        }
    return {
        "tables": tables,
        "targets": targets,
        "not_compared_total": report.get("not_compared_total", 0),
        "adds_up": all(v["adds_up"] for v in (*tables.values(), *targets.values())),
    }
