"""DynamoDB probes: each target table, its key schema and indexes against the templates, capacity and
the reconcile's read cost, and dry calls proving the permissions each mode needs.

The probe receives a boto3 low-level client. Dry calls never change data: reads of a key that cannot
exist, writes whose condition can never hold (`attribute_not_exists(x) AND attribute_exists(x)`), so
DynamoDB answers ConditionalCheckFailed after IAM has allowed the call.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from parity.core.config import ParityConfig, TableMapping
from parity.core.mapping import KeyTemplate
from parity.doctor.checks_postgres import Column, TableFacts
from parity.doctor.report import Check, fail, ok, warn

SYSTEM = "dynamodb"
_DENIED = frozenset({"AccessDeniedException", "UnrecognizedClientException", "AccessDenied",
                     "InvalidSignatureException", "MissingAuthenticationTokenException"})
_PROBE_MARK = "__parity_doctor_probe__"


@dataclass(frozen=True)
class KeyPart:
    attribute: str
    role: str  # HASH or RANGE
    type: str | None  # S, N, B; None when unknown


def describe(client: Any, table: str) -> dict[str, Any] | None:
    """The table description, or None when it does not exist (other errors propagate)."""
    try:
        desc: dict[str, Any] = client.describe_table(TableName=table)["Table"]
        return desc
    except ClientError as exc:
        if _code(exc) == "ResourceNotFoundException":
            return None
        raise


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def reachable(client: Any, config: ParityConfig) -> Check:
    table = config.tables[0].target
    try:
        describe(client, table)
    except ClientError as exc:
        if _code(exc) in _DENIED:
            return ok(SYSTEM, "reachable", f"endpoint answers (DescribeTable {table}: {_code(exc)})")
        raise
    where = config.dynamodb.endpoint or f"region {config.dynamodb.region}"
    return ok(SYSTEM, "reachable", f"{where} answers")


# --- expected key schema from the templates ---------------------------------------------------------


def expected_type(m: TableMapping, attribute: str, template: str, columns: Mapping[str, Column]) -> str | None:
    """The DynamoDB type a template produces: S unless it is one bare `{column}`, which keeps the
    column's typed value (see parity.core.mapping)."""
    tpl = KeyTemplate.compile(attribute, template)
    if not tpl.bare:
        return "S"
    column = tpl.columns[0]
    rule = m.rule(column).type
    if rule in ("number", "timestamp_epoch_s", "timestamp_epoch_ms"):
        return "N"
    if rule == "binary":
        return "B"
    if rule != "auto":
        return "S"
    col = columns.get(column)
    if col is None:
        return None
    if col.category == "N":
        return "N"
    return "B" if col.typname == "bytea" else "S"


def _key_types(desc: Mapping[str, Any]) -> dict[str, str]:
    return {d["AttributeName"]: d["AttributeType"] for d in desc.get("AttributeDefinitions", [])}


def _schema(key_schema: Sequence[Mapping[str, str]], types: Mapping[str, str]) -> list[KeyPart]:
    return [KeyPart(k["AttributeName"], k["KeyType"], types.get(k["AttributeName"])) for k in key_schema]


def _shown(parts: Sequence[KeyPart]) -> str:
    return ", ".join(f"{p.attribute} {p.role} {p.type or '?'}" for p in parts)


# --- the probe -------------------------------------------------------------------------------------------


def probe_dynamodb(client: Any, config: ParityConfig, pg: Mapping[str, TableFacts]) -> list[Check]:
    checks: list[Check] = []
    groups: dict[str, list[TableMapping]] = {}
    for m in config.tables:
        groups.setdefault(m.target, []).append(m)
        if m.write_table != m.target:
            groups.setdefault(m.write_table, []).append(m)
    for table, mappings in groups.items():
        try:
            desc = describe(client, table)
        except ClientError as exc:
            if _code(exc) not in _DENIED:
                raise
            checks.append(fail("permissions", "dynamodb", f"DescribeTable refused: {_code(exc)}",
                               f"allow dynamodb:DescribeTable on table/{table}", subject=table))
            continue
        if desc is None:
            checks.append(fail(SYSTEM, "table", f"does not exist (mapped from {[m.source for m in mappings]})",
                               f"create it: aws dynamodb create-table --table-name {table} with the key schema "
                               f"{_shown(_wanted_keys(mappings, pg))}", subject=table))
            continue
        status = desc.get("TableStatus", "?")
        if status == "ACTIVE":
            checks.append(ok(SYSTEM, "table", f"ACTIVE, {desc.get('ItemCount', 0)} items", subject=table))
        else:
            checks.append(fail(SYSTEM, "table", f"status {status}, not ACTIVE",
                               "wait until it is ACTIVE (aws dynamodb wait table-exists)", subject=table))
        checks.append(_key_schema(table, desc, mappings, pg))
        checks.extend(_indexes(table, desc, mappings, pg))
        checks.append(_capacity(table, desc, config))
        checks.extend(probe_permissions(client, table, desc, mappings, config))
    return checks


def _wanted_keys(mappings: Sequence[TableMapping], pg: Mapping[str, TableFacts]) -> list[KeyPart]:
    m = mappings[0]
    parts = []
    for role, attr in zip(("HASH", "RANGE"), m.keys, strict=False):
        types = {expected_type(x, attr, x.keys[attr], _cols(pg, x)) for x in mappings if attr in x.keys}
        known = {t for t in types if t}
        parts.append(KeyPart(attr, role, next(iter(known)) if len(known) == 1 else None))
    return parts


def _cols(pg: Mapping[str, TableFacts], m: TableMapping) -> Mapping[str, Column]:
    facts = pg.get(m.source)
    return facts.columns if facts is not None else {}


def _key_schema(table: str, desc: Mapping[str, Any], mappings: Sequence[TableMapping],
                pg: Mapping[str, TableFacts]) -> Check:
    actual = _schema(desc.get("KeySchema", []), _key_types(desc))
    wanted = _wanted_keys(mappings, pg)
    names_ok = [(p.attribute, p.role) for p in actual] == [(p.attribute, p.role) for p in wanted]
    types_ok = all(w.type is None or w.type == a.type for w, a in zip(wanted, actual, strict=False))
    if names_ok and types_ok:
        return ok(SYSTEM, "key_schema", f"({_shown(actual)}) matches the key templates", subject=table)
    templates = ", ".join(f"{a}: {t!r}" for a, t in mappings[0].keys.items())
    return fail(SYSTEM, "key_schema",
                f"table is keyed ({_shown(actual)}) but the templates ({templates}) write ({_shown(wanted)})",
                "a key schema cannot be changed: create a new table keyed as the templates say (and copy the data), "
                "or change `keys` so the first attribute is the partition key and the second the sort key",
                subject=table)


def _indexes(table: str, desc: Mapping[str, Any], mappings: Sequence[TableMapping],
             pg: Mapping[str, TableFacts]) -> list[Check]:
    types = _key_types(desc)
    indexes = [(i["IndexName"], i.get("IndexStatus", "ACTIVE"), _schema(i["KeySchema"], types))
               for i in [*desc.get("GlobalSecondaryIndexes", []), *desc.get("LocalSecondaryIndexes", [])]]
    checks: list[Check] = []
    for m in mappings:
        if not m.indexes:
            continue
        order = list(m.indexes)
        missing = [a for a in order if not any(a == p.attribute for _, _, s in indexes for p in s)]
        if missing:
            checks.append(fail(SYSTEM, "index", f"{m.source} fills {missing} but no index of {table} is keyed "
                               "on them: the items are written, the queries that need the index cannot run",
                               f"create a GSI keyed on {_pairs(missing)} (aws dynamodb update-table "
                               "--global-secondary-index-updates Create=...)", subject=table))
        for name, status, schema in indexes:
            used = [p for p in schema if p.attribute in m.indexes]
            if not used:
                continue
            subject = f"{table}/{name}"
            problems: list[str] = []
            for p in used:
                want = expected_type(m, p.attribute, m.indexes[p.attribute], _cols(pg, m))
                if want is not None and p.type is not None and want != p.type:
                    problems.append(f"{p.attribute} is {p.type} but the template writes {want}")
            roles = {p.attribute: p.role for p in schema}
            pair = [a for a in order if a in roles]
            if len(pair) == 2 and [roles[a] for a in pair] != ["HASH", "RANGE"]:
                problems.append(f"keyed ({_shown(schema)}) but the mapping lists {pair[0]} (partition) "
                                f"before {pair[1]} (sort)")
            own = [p.attribute for p in schema if p.attribute not in m.indexes and p.attribute not in m.keys]
            if problems:
                checks.append(fail(SYSTEM, "index", "; ".join(problems),
                                   "recreate the index with the key schema and types the templates produce "
                                   "(or reorder/fix `indexes`)", subject=subject))
            elif status != "ACTIVE":
                checks.append(warn(SYSTEM, "index", f"status {status} (backfilling or updating)",
                                   "wait until the index is ACTIVE before relying on it", subject=subject))
            elif own:
                # DynamoDB leaves an item out of an index unless it has every key attribute of it.
                checks.append(warn(SYSTEM, "index", f"{m.source} fills {[p.attribute for p in used]} but not "
                                   f"{own}: its items never appear in this index",
                                   f"add templates for {own} under `indexes`", subject=subject))
            else:
                checks.append(ok(SYSTEM, "index", f"{status}, ({_shown(schema)}) fits {m.source}", subject=subject))
    return checks


def _pairs(attributes: Sequence[str]) -> str:
    return " + ".join(attributes)


def reconcile_read_units(size_bytes: int, items: int, page_limit: int, consistent: bool) -> float:
    """Read units of one full Scan: a page's items are summed and rounded up to 4 KB, one unit per
    4 KB strongly consistent, half that eventually consistent; each page rounds up once."""
    pages = max(1, math.ceil(items / page_limit)) if items else 1
    units = math.ceil(size_bytes / 4096) + pages
    return units * (1.0 if consistent else 0.5)


def _capacity(table: str, desc: Mapping[str, Any], config: ParityConfig) -> Check:
    rc = config.reconcile
    size, items = int(desc.get("TableSizeBytes", 0)), int(desc.get("ItemCount", 0))
    units = reconcile_read_units(size, items, rc.page_limit, rc.consistent_read)
    formula = (f"(ceil({size} B / 4096) + {max(1, math.ceil(items / rc.page_limit)) if items else 1} pages) x "
               f"{'1 (consistent)' if rc.consistent_read else '0.5 (eventually consistent)'}")
    mode = (desc.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED")
    estimate = (f"a reconcile scan reads about {units:,.1f} read units = {formula}, from the size DynamoDB "
                "last reported (updated about every 6 hours)")
    if mode == "PAY_PER_REQUEST":
        per_day = f", {units * 86_400 / rc.interval_s:,.0f} per day at interval {rc.interval_s:g}s" \
            if rc.interval_s else ""
        return ok(SYSTEM, "capacity", f"on-demand; {estimate}{per_day}", subject=table)
    rcu = int((desc.get("ProvisionedThroughput") or {}).get("ReadCapacityUnits", 0))
    wcu = int((desc.get("ProvisionedThroughput") or {}).get("WriteCapacityUnits", 0))
    limit = rc.read_rate_limit
    text = f"provisioned {rcu} RCU / {wcu} WCU; {estimate}"
    if rcu and (limit is None or limit > rcu / 2):
        return warn(SYSTEM, "capacity", f"{text}; reconcile reads are "
                    + ("unlimited" if limit is None else f"limited to {limit:g}/s"),
                    f"set reconcile.read_rate_limit to at most half the provisioned RCU (e.g. {max(1, rcu // 4)}) "
                    "so reconciles do not throttle the application", subject=table)
    seconds = units / limit if limit else 0
    return ok(SYSTEM, "capacity", f"{text}; at {limit or 0:g} units/s a reconcile takes about {seconds:,.0f} s",
              subject=table)


# --- permissions -----------------------------------------------------------------------------------------


def _probe_key(desc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    types = _key_types(desc)
    key: dict[str, dict[str, Any]] = {}
    for k in desc.get("KeySchema", []):
        t = types.get(k["AttributeName"], "S")
        # A key no application writes: the reads find nothing, the writes are refused by their condition.
        value: Any = {"S": _PROBE_MARK, "N": "-9.87654321E-120", "B": _PROBE_MARK.encode()}[t]
        key[k["AttributeName"]] = {t: value}
    return key


def probe_permissions(client: Any, table: str, desc: Mapping[str, Any], mappings: Sequence[TableMapping],
                      config: ParityConfig) -> list[Check]:
    key = _probe_key(desc)
    never = {"ConditionExpression": "attribute_not_exists(#p) AND attribute_exists(#p)",
             "ExpressionAttributeNames": {"#p": _PROBE_MARK}}
    reads = any(m.target == table for m in mappings)
    writes = [m for m in mappings if m.mode == "shadow" and m.write_table == table]
    calls: list[tuple[str, str, Any]] = []
    if reads:
        calls += [
            ("GetItem", "verify", lambda: client.get_item(TableName=table, Key=key, ConsistentRead=True)),
            ("BatchGetItem", "verify", lambda: client.batch_get_item(
                RequestItems={table: {"Keys": [key], "ConsistentRead": True}})),
            ("Scan", "reconcile", lambda: client.scan(TableName=table, Limit=1, Select="COUNT")),
        ]
    if writes:
        calls += [
            ("UpdateItem", "shadow", lambda: client.update_item(TableName=table, Key=key, **never)),
            ("DeleteItem", "shadow", lambda: client.delete_item(TableName=table, Key=key, **never)),
        ]
    checks = []
    for operation, need, call in calls:
        allowed, detail = _dry(call)
        if allowed:
            checks.append(ok("permissions", "dynamodb", f"{operation} allowed ({need}){detail}", subject=table))
        elif need == "reconcile" and config.reconcile.interval_s is None:
            checks.append(warn("permissions", "dynamodb", f"{operation} refused: {detail}; `parity reconcile` "
                               "will not work", f"allow dynamodb:{operation} on table/{table}", subject=table))
        else:
            checks.append(fail("permissions", "dynamodb", f"{operation} refused ({need} needs it): {detail}",
                               f"allow dynamodb:{operation} on table/{table} (and its indexes)", subject=table))
    return checks


def _dry(call: Any) -> tuple[bool, str]:
    try:
        call()
    except ClientError as exc:
        code = _code(exc)
        if code in ("ConditionalCheckFailedException", "TransactionCanceledException"):
            return True, " (dry call refused by its own condition)"
        if code in _DENIED:
            return False, f"{code}: {exc.response.get('Error', {}).get('Message', '')}"
        return False, code or str(exc)
    except BotoCoreError as exc:
        return False, type(exc).__name__
    return True, ""
