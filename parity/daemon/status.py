"""`parity status`: per-table counts from the daemon's state store (works with the daemon stopped).

The counts add up: every record the daemon consumed ends in one outcome, counted under its own
table, including tables that are not in the configuration (dead letters of another table's
events, `<unknown>` when no table can be named). So per table and in `totals`

    consumed = sum(outcomes) + pending_rechecks

and, once the stream is drained, `consumed` is every record read from the topics (more after a
crash: delivery is at-least-once, a replayed record is counted again).

`stream` is the daemon's own snapshot, written to the state store with each batch and at least
every few seconds while idle (`parity.daemon.run.Daemon.stream_snapshot`), with its age. A script
can wait for `stream.drained`: true only when the snapshot is recent (the daemon is live), no check
is pending, and every assigned partition has a known lag of 0.

Both directions: each table row names its `direction` (forward: Debezium events checked against
DynamoDB; reverse: after cutover, DynamoDB Stream records checked against Postgres), `directions`
sums the rows of each, and `reverse_stream` is the reverse loop's own snapshot (its pending checks,
the lag of the shards it reads), with `drained` as for the Kafka stream.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from parity.adapters.state import StateStore
from parity.core.config import ParityConfig
from parity.core.outcomes import Outcome
from parity.daemon.reverse import REVERSE_STREAM_FACT
from parity.daemon.run import STREAM_FACT, STREAM_HEARTBEAT_S, state_path

# A snapshot older than this says the daemon is not live: several missed heartbeats, or one batch
# stuck that long (DynamoDB or Kafka unreachable; /readyz tells which).
LIVE_WITHIN_S = 6 * STREAM_HEARTBEAT_S


def collect_status(
    config: ParityConfig,
    state: StateStore | None = None,
    *,
    now: float | None = None,
    stream: dict[str, Any] | None = None,
    live_within_s: float = LIVE_WITHIN_S,
    reverse: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`stream` overrides the stored snapshot (the live /status passes the daemon's current one);
    `reverse` likewise the reverse loop's."""
    has_forward = any(t.mode != "reverse" for t in config.tables)
    has_reverse = not all(t.mode != "reverse" for t in config.tables)
    now = time.time() if now is None else now
    path = state_path(config)
    if state is None:
        if not path.exists():
            empty = {t.source: _empty(t.source, t.mode) for t in config.tables}
            return {
                "state": str(path),
                "tables": empty,
                "totals": _totals(empty),
                "directions": _directions(empty),
                "stream": _stream(None, now, live_within_s, has_forward),
                "reverse_stream": _reverse_stream(None, now, live_within_s) if has_reverse else None,
            }
        state = StateStore(path)
    counts = state.outcome_counts()
    drift = state.drift_by_kind()
    lifecycle = state.drift_lifecycle()  # open drift now vs resolved (see state.py)
    facts = state.facts()
    snapshot = stream if stream is not None else facts.get(STREAM_FACT)
    reverse_snapshot = reverse if reverse is not None else facts.get(REVERSE_STREAM_FACT)
    pending = {**(snapshot or {}).get("pending_rechecks", {}), **(reverse_snapshot or {}).get("pending_rechecks", {})}
    snap_rows = facts.get("snapshot_rows", {})
    snap_done = set(facts.get("snapshot_done", []))
    tables: dict[str, Any] = {}
    for t in config.tables:
        c = counts.get(t.source, {})
        verdicts = c.get(Outcome.MATCH, 0) + c.get(Outcome.DRIFT, 0)
        row = _empty(t.source, t.mode)
        row.update(
            {
                "drift_ratio": (c.get(Outcome.DRIFT, 0) / verdicts) if verdicts else 0.0,
                "drift_by_kind": drift.get(t.source, {}),
                "snapshot_rows": snap_rows.get(t.source, 0),
                "snapshot_done": t.source in snap_done,
                "truncated_at": facts.get(f"truncated:{t.source}"),
            }
        )
        row.update(lifecycle.get(t.source, {"drift_open": 0, "drift_resolved": 0, "drift_resolved_by": {}}))
        tables[t.source] = _counted(row, c, pending.get(t.source, 0))
    # Events of tables that are not configured are consumed too: without them the totals would
    # not add up to the records read.
    for source in sorted(set(counts) - set(tables)):
        row = _empty(source, None)
        row["configured"] = False
        tables[source] = _counted(row, counts[source], pending.get(source, 0))
    return {
        "state": str(path),
        "tables": tables,
        "totals": _totals(tables),
        "directions": _directions(tables),
        "stream": _stream(snapshot, now, live_within_s, has_forward),
        "reverse_stream": _reverse_stream(reverse_snapshot, now, live_within_s) if has_reverse else None,
        "last_reconcile": facts.get("last_reconcile"),
        # `parity replay --dlq` results, apart from the counts above (the daemon counted each
        # replayed record once, as dead_letter).
        "dlq_replayed": _replayed(facts.get("dlq_replayed")),
    }


def _replayed(entries: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in (entries or {}).values() if isinstance(entries, dict) else ():
        outcome = str(entry.get("outcome")) if isinstance(entry, dict) else "unknown"
        counts[outcome] = counts.get(outcome, 0) + 1
    return dict(sorted(counts.items()))


def _direction(mode: str | None) -> str | None:
    if mode is None:
        return None
    return "reverse" if mode == "reverse" else "forward"


def _directions(tables: dict[str, Any]) -> dict[str, Any]:
    """Per direction: its tables and their consumed / drift / open drift / pending sums."""
    out: dict[str, Any] = {}
    for row in tables.values():
        direction = row.get("direction")
        if direction is None:
            continue
        d = out.setdefault(
            direction, {"tables": [], "consumed": 0, "verified": 0, "drift": 0, "drift_open": 0, "pending_rechecks": 0}
        )
        d["tables"].append(row["table"])
        for name in ("consumed", "verified", "drift", "drift_open", "pending_rechecks"):
            d[name] += row.get(name, 0)
    return out


def _empty(source: str, mode: str | None) -> dict[str, Any]:
    return {
        "table": source,
        "mode": mode,
        "direction": _direction(mode),
        "configured": True,
        "consumed": 0,
        "resolved": 0,
        "pending_rechecks": 0,
        "verified": 0,
        "drift": 0,
        "dead_letters": 0,
        "outcomes": {},
    }


def _counted(row: dict[str, Any], outcomes: dict[str, int], pending: int) -> dict[str, Any]:
    resolved = sum(outcomes.values())
    row.update(
        {
            "outcomes": dict(sorted(outcomes.items())),
            "resolved": resolved,
            "pending_rechecks": pending,
            "consumed": resolved + pending,
            "verified": outcomes.get(Outcome.MATCH, 0),
            "drift": outcomes.get(Outcome.DRIFT, 0),
            "dead_letters": outcomes.get(Outcome.DEAD_LETTER, 0),
            "applied": outcomes.get(Outcome.APPLIED, 0),
            "stale_skipped": outcomes.get(Outcome.STALE_SKIPPED, 0),
        }
    )
    return row


def _totals(tables: dict[str, Any]) -> dict[str, Any]:
    outcomes: dict[str, int] = {}
    for row in tables.values():
        for name, n in row["outcomes"].items():
            outcomes[name] = outcomes.get(name, 0) + n
    resolved = sum(outcomes.values())
    pending = sum(row["pending_rechecks"] for row in tables.values())
    return {
        "consumed": resolved + pending,
        "resolved": resolved,
        "pending_rechecks": pending,
        "outcomes": dict(sorted(outcomes.items())),
        "invariant": "consumed = sum(outcomes) + pending_rechecks, per table and in total",
    }


def _reverse_stream(snapshot: dict[str, Any] | None, now: float, live_within_s: float) -> dict[str, Any]:
    """The reverse loop's snapshot (parity.daemon.reverse.ReverseDaemon.snapshot), with its age."""
    if not snapshot:
        return {
            "snapshot_at": None,
            "daemon_live": False,
            "pending_rechecks": 0,
            "shard_lag_s": {},
            "stream_events": {},
            "never_verified": [],
            "drained": False,
            "not_drained_because": ["no reverse snapshot: the reverse loop has not run with this state directory"],
        }
    age = max(0.0, now - float(snapshot["written_at"]))
    stopped = snapshot.get("stopped_at") is not None
    live = not stopped and age <= live_within_s
    pending = sum(snapshot.get("pending_rechecks", {}).values())
    lag: dict[str, float] = snapshot.get("shard_lag_s", {})
    reasons: list[str] = []
    if stopped:
        reasons.append("the reverse loop stopped")
    elif not live:
        reasons.append(f"the snapshot is {age:.0f}s old (live within {live_within_s:.0f}s): not running or stuck")
    if pending:
        reasons.append(f"{pending} pending rechecks")
    behind = {shard: s for shard, s in lag.items() if s > 0}
    if behind:
        reasons.append(f"{len(behind)} shards behind (up to {max(behind.values()):.0f}s)")
    events: dict[str, int] = snapshot.get("stream_events", {})
    # Records trimmed away (DynamoDB keeps 24 h) before parity read them were never verified: said
    # here, never folded into "drained" (a reconcile is the way to check what they changed).
    unverified = [
        f"{events[name]} {what} trimmed away past the stream's retention before they were read: "
        "their changes were never verified (run parity reconcile)"
        for name, what in (("trimmed_positions", "shard positions"), ("trimmed_shards", "shards"))
        if events.get(name)
    ]
    return {
        "snapshot_at": snapshot["written_at"],
        "snapshot_age_s": round(age, 3),
        "daemon_live": live,
        "daemon_started_at": snapshot.get("started_at"),
        "daemon_stopped_at": snapshot.get("stopped_at"),
        "daemon_ready": snapshot.get("ready"),
        "last_error": snapshot.get("last_error"),
        "last_record_at": snapshot.get("last_record_at"),
        "pending_rechecks": pending,
        "shard_lag_s": lag,
        "stream_events": events,
        "never_verified": unverified,
        "drained": not reasons,
        "not_drained_because": reasons,
    }


def _stream(
    snapshot: dict[str, Any] | None, now: float, live_within_s: float, has_forward: bool = True
) -> dict[str, Any]:
    if not snapshot:
        # The same fields as below, so a script can read them before the daemon's first batch.
        return {
            "snapshot_at": None,
            "snapshot_age_s": None,
            "daemon_live": False,
            "daemon_started_at": None,
            "daemon_stopped_at": None,
            "daemon_ready": None,
            "last_error": None,
            "last_event_at": None,
            "last_event_source_at": None,
            "pending_rechecks": 0,
            "consumer_lag_total": 0,
            "partitions": {},
            "drained": False,
            "not_drained_because": [
                "no stream snapshot: the daemon has not run with this state directory"
                if has_forward
                else "no Kafka stream: every table is in mode reverse (see reverse_stream)"
            ],
        }
    age = max(0.0, now - float(snapshot["written_at"]))
    stopped = snapshot.get("stopped_at") is not None
    live = not stopped and age <= live_within_s
    partitions: dict[str, dict[str, Any]] = snapshot.get("partitions", {})
    pending = sum(snapshot.get("pending_rechecks", {}).values())
    lags = [p.get("lag") for p in partitions.values()]
    reasons: list[str] = []
    if stopped:
        reasons.append("the daemon stopped")
    elif not live:
        reasons.append(
            f"the snapshot is {age:.0f}s old (live within {live_within_s:.0f}s): the daemon is not running or stuck"
        )
    if pending:
        reasons.append(f"{pending} pending rechecks")
    if not partitions:
        reasons.append("no partitions assigned")
    unknown = sorted(name for name, p in partitions.items() if p.get("lag") is None)
    if unknown:
        reasons.append(f"lag unknown on {', '.join(unknown)}")
    behind = {name: p["lag"] for name, p in partitions.items() if p.get("lag")}
    if behind:
        reasons.append("lag on " + ", ".join(f"{name}: {n}" for name, n in sorted(behind.items())))
    return {
        "snapshot_at": snapshot["written_at"],
        "snapshot_age_s": round(age, 3),
        "daemon_live": live,
        "daemon_started_at": snapshot.get("started_at"),
        "daemon_stopped_at": snapshot.get("stopped_at"),
        "daemon_ready": snapshot.get("ready"),
        "last_error": snapshot.get("last_error"),
        "last_event_at": snapshot.get("last_event_at"),
        "last_event_source_at": snapshot.get("last_event_source_at"),
        "pending_rechecks": pending,
        "consumer_lag_total": sum(n for n in lags if n is not None),
        "partitions": partitions,
        "drained": not reasons,
        "not_drained_because": reasons,
    }


def print_status(config: ParityConfig, *, as_json: bool) -> None:
    status = collect_status(config)
    if as_json:
        print(orjson.dumps(status, option=orjson.OPT_INDENT_2, default=str).decode())
        return
    table = Table(title=f"parity status ({status['state']})")
    for col in (
        "table",
        "direction",
        "mode",
        "consumed",
        "verified",
        "drift",
        "open drift",
        "drift ratio",
        "pending",
        "applied",
        "stale skipped",
        "dead letters",
        "other",
        "snapshot",
    ):
        table.add_column(col, justify="left" if col in ("table", "direction", "mode") else "right")
    shown: tuple[str, ...] = (Outcome.MATCH, Outcome.DRIFT, Outcome.APPLIED, Outcome.STALE_SKIPPED, Outcome.DEAD_LETTER)
    for t in status["tables"].values():
        snap = f"{t.get('snapshot_rows', 0)}" + (" done" if t.get("snapshot_done") else "")
        other = sum(n for k, n in t["outcomes"].items() if k not in shown)
        table.add_row(
            t["table"],
            t.get("direction") or "",
            t["mode"] or "not configured",
            str(t["consumed"]),
            str(t["verified"]),
            str(t["drift"]),
            str(t.get("drift_open", 0)),
            f"{t.get('drift_ratio', 0.0):.4%}",
            str(t["pending_rechecks"]),
            str(t.get("applied", 0)),
            str(t.get("stale_skipped", 0)),
            str(t["dead_letters"]),
            str(other),
            snap if t["configured"] else "",
        )
    console = Console()
    console.print(table)
    totals, stream = status["totals"], status["stream"]
    console.print(
        f"consumed {totals['consumed']} = resolved {totals['resolved']} + pending {totals['pending_rechecks']}"
        + (f"; other = {_others(totals['outcomes'], shown)}" if _others(totals["outcomes"], shown) else "")
    )
    for direction, d in status["directions"].items():
        console.print(
            f"{direction}: {len(d['tables'])} tables, consumed {d['consumed']}, verified {d['verified']}, "
            f"drift {d['drift']}, open drift {d['drift_open']}, pending {d['pending_rechecks']}"
        )
    _print_reverse(console, status.get("reverse_stream"))
    if status.get("dlq_replayed"):
        replayed = status["dlq_replayed"]
        console.print(f"dead letters replayed: {sum(replayed.values())} ("
                      + ", ".join(f"{k} {v}" for k, v in replayed.items()) + ")")
    if stream["snapshot_at"] is None:
        console.print("stream: " + "; ".join(stream["not_drained_because"]))
        return
    state = "drained" if stream["drained"] else "not drained: " + "; ".join(stream["not_drained_because"])
    console.print(
        f"stream: {state} (daemon {'live' if stream['daemon_live'] else 'not live'}, "
        f"snapshot {stream['snapshot_age_s']:.0f}s old, lag {stream['consumer_lag_total']})"
    )


def _print_reverse(console: Console, reverse: dict[str, Any] | None) -> None:
    if reverse is None:
        return
    if reverse["snapshot_at"] is None:
        console.print("reverse stream (DynamoDB Streams): " + "; ".join(reverse["not_drained_because"]))
        return
    state = "drained" if reverse["drained"] else "not drained: " + "; ".join(reverse["not_drained_because"])
    lag = max(reverse["shard_lag_s"].values(), default=0.0)
    console.print(
        f"reverse stream (DynamoDB Streams): {state} (loop {'live' if reverse['daemon_live'] else 'not live'}, "
        f"snapshot {reverse['snapshot_age_s']:.0f}s old, {len(reverse['shard_lag_s'])} shards, lag {lag:.0f}s)"
    )
    for line in reverse.get("never_verified", ()):
        console.print(f"reverse stream: {line}")


def _others(outcomes: dict[str, int], shown: tuple[str, ...]) -> str:
    return ", ".join(f"{k} {n}" for k, n in outcomes.items() if k not in shown)
