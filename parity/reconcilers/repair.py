"""Repair from a reconcile report, with Postgres as the source of truth.

- `value_mismatch` / `stale_in_target`: UpdateItem to the item mapped from the *current* Postgres
  row: every attribute the mapping produces is SET, or REMOVEd when the row maps to no value for
  it; attributes the mapping does not produce (a TTL, the shadow version, ignored attributes,
  even when a column maps to one of those names) are left as they are (`parity.core.update`,
  shared with shadow mode). Conditional on the target still holding, for each differing
  attribute, the value the report saw (`seen`; absent -> `attribute_not_exists`). Redacted attributes are
  never in a report, so a difference only in a redacted attribute is guarded by the item's
  existence alone.
- `missing_in_target`: PutItem conditional on the item still being absent.
- `unexpected_in_target`: DeleteItem only with `--delete-unexpected`, only if Postgres still has no
  row, conditional on every (non-redacted) attribute the report saw.
A failed condition means the item changed since the report: skipped and counted, never forced.
A report with two findings for one target key is refused before any write (one key, one action).
Writes go through a token bucket (the table's `write_rate_limit`, else `rate`). The dry run prints
each write exactly as it would be sent (redacted attribute values masked).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from botocore.exceptions import ClientError

from parity.adapters.clients import PostgresSource, postgres_target, with_statement_timeout
from parity.adapters.dynamodb import DynamoStore
from parity.core.config import ParityConfig, TableMapping
from parity.core.errors import MappingError, ParityError
from parity.core.mapping import ItemMapper
from parity.core.ratelimit import Pacer
from parity.core.update import OwnedAttributes, item_update
from parity.core.values import Item, item_to_wire, to_wire
from parity.reconcilers.postgres import RowLookup
from parity.reconcilers.report import wire_from_json, wire_json
from parity.reconcilers.tally import key_from_json

DEFAULT_RATE = 100.0
REWRITE_KINDS = ("value_mismatch", "stale_in_target", "missing_in_target")


class RepairError(ParityError):
    """The report does not fit the configuration."""


def condition(mapper: ItemMapper, kind: str, seen: Mapping[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
    """(ConditionExpression, names, values) that hold only if the item is as the report saw it."""
    names: dict[str, str] = {"#k0": mapper.key_attributes[0]}
    if kind == "missing_in_target":
        return "attribute_not_exists(#k0)", names, {}
    parts = ["attribute_exists(#k0)"]
    values: dict[str, Any] = {}
    for i, (attr, wire) in enumerate(sorted(seen.items())):
        names[f"#a{i}"] = attr
        if wire is None:
            parts.append(f"attribute_not_exists(#a{i})")
        else:
            values[f":v{i}"] = wire_from_json(wire)
            parts.append(f"#a{i} = :v{i}")
    return " AND ".join(parts), names, values


class Repairer:
    def __init__(
        self,
        config: ParityConfig,
        *,
        dynamo: DynamoStore,
        dsn: PostgresSource,
        rate: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.dynamo = dynamo
        self.lookup = RowLookup(with_statement_timeout(postgres_target(dsn), config.reconcile.statement_timeout_s))
        self.rate = rate
        self._sleep = sleep
        self._pacers: dict[str, Pacer] = {}
        self.written: list[tuple[str, Item]] = []  # (source, DynamoDB key) of each write done

    def _throttle(self, mapping: TableMapping) -> None:
        pacer = self._pacers.get(mapping.source)
        if pacer is None:
            rate = self.rate or mapping.write_rate_limit or DEFAULT_RATE
            pacer = Pacer(rate, clock=time.monotonic, sleep=self._sleep)
            self._pacers[mapping.source] = pacer
        pacer.acquire()

    def run(
        self,
        report: Mapping[str, Any],
        *,
        execute: bool,
        delete_unexpected: bool = False,
        echo: Callable[[str], None] = print,
    ) -> dict[str, int]:
        _one_finding_per_key(report, self.config)
        outcome = {"put": 0, "updated": 0, "deleted": 0, "skipped_changed": 0, "skipped_source_gone": 0,
                   "skipped_source_exists": 0, "skipped_unexpected": 0, "failed": 0}
        verb = "" if execute else "would "
        for source, table_report in sorted((report.get("tables") or {}).items()):
            try:
                mapping = self.config.table(source)
            except KeyError:
                raise RepairError(f"the report's table {source} is not in the configuration") from None
            mapper = ItemMapper(mapping)
            owned = OwnedAttributes.of(mapping)
            table = table_report.get("target") or mapping.write_table
            for entry in table_report.get("drift", []):
                kind = entry["kind"]
                key = key_from_json(entry["key"])
                if kind == "unexpected_in_target" and not delete_unexpected:
                    outcome["skipped_unexpected"] += 1
                    continue
                pk = mapper.primary_key_from_item(key)
                row = self.lookup.rows(mapping, [pk])[0] if pk is not None else None
                cond, names, values = condition(mapper, kind, entry.get("seen") or {})
                request: dict[str, Any] = {"TableName": table, "ConditionExpression": cond,
                                           "ExpressionAttributeNames": names}
                if values:
                    request["ExpressionAttributeValues"] = values
                if kind == "unexpected_in_target":
                    if row is not None:
                        outcome["skipped_source_exists"] += 1
                        echo(f"skip {source} {_text(entry['key'])}: the Postgres row exists now")
                        continue
                    request["Key"] = item_to_wire(key)
                    operation, counter = "DeleteItem", "deleted"
                    echo(f"{verb}DELETE {table} {_text(entry['key'])} IF {_shown_condition(request)}")
                elif kind in REWRITE_KINDS:
                    if row is None:
                        outcome["skipped_source_gone"] += 1
                        echo(f"skip {source} {_text(entry['key'])}: the Postgres row is gone")
                        continue
                    try:
                        item = mapper.item(row)
                    except MappingError as exc:
                        outcome["failed"] += 1
                        echo(f"fail {source} {_text(entry['key'])}: {exc}")
                        continue
                    shown = {k: ("<redacted>" if k in mapper.plan.redacted else wire_json(to_wire(v)))
                             for k, v in sorted(item.items())}
                    changes = item_update(owned, item) if kind != "missing_in_target" else None
                    if changes is None:
                        request["Item"] = item_to_wire(item)
                        operation, counter = "PutItem", "put"
                        echo(f"{verb}PUT {table} {_text(entry['key'])} ITEM {orjson.dumps(shown).decode()} "
                             f"IF {_shown_condition(request)}")
                    else:
                        shown_condition = _shown_condition(request)  # before the (maybe redacted) values join
                        request["Key"] = item_to_wire(key)
                        request["UpdateExpression"] = changes.expression
                        request["ExpressionAttributeNames"] = {**names, **changes.names}
                        request["ExpressionAttributeValues"] = {**values, **changes.values}
                        operation, counter = "UpdateItem", "updated"
                        removed = list(changes.removed)
                        shown = {k: v for k, v in shown.items() if k not in owned.left_alone}
                        echo(f"{verb}UPDATE {table} {_text(entry['key'])} SET {orjson.dumps(shown).decode()} "
                             f"REMOVE {orjson.dumps(removed).decode()} IF {shown_condition}")
                else:
                    continue
                if not execute:
                    outcome[counter] += 1
                    continue
                self._throttle(mapping)
                try:
                    self.dynamo.call(operation, **request)
                    outcome[counter] += 1
                    self.written.append((source, key))
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                        outcome["skipped_changed"] += 1
                        echo(f"skip {source} {_text(entry['key'])}: changed since the report")
                    else:
                        outcome["failed"] += 1
                        echo(f"fail {source} {_text(entry['key'])}: {exc}")
        return outcome


def _one_finding_per_key(report: Mapping[str, Any], config: ParityConfig) -> None:
    """Refuse a report with two findings for one item (an older reconcile wrote a key with a wrong
    discriminator under two tables): their writes would race, the result depending on the order."""
    seen: dict[tuple[str, bytes], list[str]] = {}
    for source, table_report in sorted((report.get("tables") or {}).items()):
        try:
            table = table_report.get("target") or config.table(source).write_table
        except KeyError:
            continue  # named by run() below
        for entry in table_report.get("drift", []):
            key = orjson.dumps(entry["key"], option=orjson.OPT_SORT_KEYS)
            seen.setdefault((table, key), []).append(f"{entry['kind']} of {source}")
    twice = {k: v for k, v in seen.items() if len(v) > 1}
    if twice:
        lines = [f"{table} {key.decode()}: {', '.join(found)}" for (table, key), found in sorted(twice.items())]
        raise RepairError(
            f"the report has more than one finding for {len(twice)} key(s); repair one finding per key "
            f"(re-run reconcile, which reports each key once): " + "; ".join(lines)
        )


def _text(key: Mapping[str, Any]) -> str:
    return orjson.dumps(key, option=orjson.OPT_SORT_KEYS).decode()


def _shown_condition(request: Mapping[str, Any]) -> str:
    values = {k: wire_json(v) for k, v in (request.get("ExpressionAttributeValues") or {}).items()}
    text = f"{request['ConditionExpression']} names={orjson.dumps(request['ExpressionAttributeNames']).decode()}"
    return text + (f" values={orjson.dumps(values).decode()}" if values else "")
