"""Postgres probes: logical replication settings, each mapped table's keys, identity, columns, NULLs.

The probe receives an open psycopg connection (autocommit, read-only session) and never builds one.
Every name in SQL goes through `sql.Identifier`; catalog look-ups pass names as parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from parity.core.columns import absent_column_errors
from parity.core.config import ParityConfig, TableMapping
from parity.core.mapping import ItemMapper
from parity.doctor.report import Check, fail, ok, warn

SYSTEM = "postgres"


# The fix lines are meant to be pasted into psql, so every name in them is quoted the way Postgres
# reads it back: a mixed-case name stays mixed-case, a name with quotes or semicolons stays one
# name. Pure functions, no connection needed (the doctor prints fixes for unreachable setups too).
def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    # standard_conforming_strings is on (the default since PostgreSQL 9.1): only ' needs doubling.
    return "'" + text.replace("'", "''") + "'"


def quoted_table(m: TableMapping) -> str:
    return f"{quote_ident(m.schema)}.{quote_ident(m.table)}"


def _quoted_columns(columns: Sequence[str]) -> str:
    return ", ".join(quote_ident(c) for c in columns)
DEFAULT_MAX_RETAINED_WAL = 1 << 30  # an inactive slot holding a GiB of WAL is worth a look
# Counting NULLs means reading the whole table: only below this heap size is it "cheap".
CHEAP_COUNT_BYTES = 256 << 20


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # format_type(), e.g. "numeric(12,2)"
    typname: str  # the base name, e.g. "numeric", "_text" for text[]
    category: str  # pg_type.typcategory: N numeric, S string, D datetime, A array, U user (json, bytea, uuid) ...
    not_null: bool
    toastable: bool  # attstorage extended/external: large values may be stored out of line


@dataclass
class TableFacts:
    """What the probe learned about one mapped table; the DynamoDB and mapping checks reuse it."""

    exists: bool
    columns: dict[str, Column] = field(default_factory=dict)
    primary_key: tuple[str, ...] = ()
    sample: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class PostgresFindings:
    checks: list[Check] = field(default_factory=list)
    tables: dict[str, TableFacts] = field(default_factory=dict)  # by mapping source


# --- the probe -----------------------------------------------------------------------------------


def probe_postgres(conn: psycopg.Connection[Any], config: ParityConfig, *, sample: int = 100,
                   max_retained_wal: int = DEFAULT_MAX_RETAINED_WAL) -> PostgresFindings:
    found = PostgresFindings()
    found.checks.append(_wal_level(conn))
    found.checks.extend(_slots(conn, max_retained_wal))
    publications = _publications(conn)
    for mapping in config.tables:
        facts, checks = _table(conn, mapping, sample, publications)
        found.tables[mapping.source] = facts
        found.checks.extend(checks)
    return found


def reachable(conn: psycopg.Connection[Any]) -> Check:
    row = conn.execute("SELECT current_setting('server_version'), current_database(), current_user").fetchone()
    assert row is not None
    return ok(SYSTEM, "reachable", f"PostgreSQL {row[0]}, database {row[1]} as {row[2]}")


def _wal_level(conn: psycopg.Connection[Any]) -> Check:
    row = conn.execute(
        "SELECT current_setting('wal_level'), current_setting('max_replication_slots')::int, "
        "current_setting('max_wal_senders')::int, (SELECT count(*) FROM pg_replication_slots)"
    ).fetchone()
    assert row is not None
    level, max_slots, max_senders, used = row
    if level != "logical":
        return fail(SYSTEM, "wal_level", f"wal_level={level}: logical decoding is off, Debezium cannot stream changes",
                    "ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL "
                    "(Amazon RDS/Aurora: set rds.logical_replication = 1 in the parameter group and reboot)")
    if max_slots <= used or max_senders < 1:
        return fail(SYSTEM, "wal_level",
                    f"wal_level=logical but max_replication_slots={max_slots} ({used} used), "
                    f"max_wal_senders={max_senders}: no room for Debezium's slot",
                    "raise max_replication_slots and max_wal_senders (ALTER SYSTEM SET ...) and restart")
    return ok(SYSTEM, "wal_level", f"logical; replication slots {used}/{max_slots} used, max_wal_senders={max_senders}")


def _slots(conn: psycopg.Connection[Any], max_retained: int) -> list[Check]:
    rows = conn.execute(
        "SELECT slot_name, plugin, active, "
        "  pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
        "                       ELSE pg_current_wal_lsn() END, restart_lsn)::bigint, wal_status "
        "FROM pg_replication_slots WHERE slot_type = 'logical' AND database = current_database() "
        "ORDER BY slot_name"
    ).fetchall()
    if not rows:
        return [ok(SYSTEM, "replication_slot", "no logical slot in this database yet "
                   "(Debezium creates its slot, `slot.name`, on first start)")]
    checks = []
    for name, plugin, active, retained, wal_status in rows:
        retained = int(retained or 0)
        state = "active" if active else "inactive"
        text = f"plugin {plugin}, {state}, retains {_bytes(retained)} of WAL"
        if wal_status == "lost":
            checks.append(fail(SYSTEM, "replication_slot", f"{text}; its WAL was removed (wal_status=lost)",
                               "drop the slot and re-snapshot: the connector can no longer resume from it",
                               subject=name))
        elif retained > max_retained:
            checks.append(warn(SYSTEM, "replication_slot", f"{text}, above {_bytes(max_retained)}",
                               "start (or unstick) its consumer, or drop it if unused: "
                               f"SELECT pg_drop_replication_slot({quote_literal(name)}); "
                               "an inactive slot fills the disk",
                               subject=name))
        else:
            checks.append(ok(SYSTEM, "replication_slot", text, subject=name))
    return checks


@dataclass(frozen=True)
class _Publication:
    name: str
    all_tables: bool
    update: bool
    delete: bool


def _publications(conn: psycopg.Connection[Any]) -> list[_Publication]:
    rows = conn.execute("SELECT pubname, puballtables, pubupdate, pubdelete FROM pg_publication "
                        "ORDER BY pubname").fetchall()
    return [_Publication(str(r[0]), bool(r[1]), bool(r[2]), bool(r[3])) for r in rows]


def _table(conn: psycopg.Connection[Any], m: TableMapping, sample: int,
           publications: Sequence[_Publication]) -> tuple[TableFacts, list[Check]]:
    subject = m.source
    rel = conn.execute(
        "SELECT c.oid, c.relkind, c.relreplident, pg_relation_size(c.oid), "
        "  COALESCE(pg_relation_size(NULLIF(c.reltoastrelid, 0)), 0), has_table_privilege(c.oid, 'SELECT') "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
        (m.schema, m.table),
    ).fetchone()
    if rel is None:
        return TableFacts(exists=False), [fail(
            SYSTEM, "table", "does not exist", f"create {m.source}, or fix `source` in the mapping", subject=subject)]
    oid, relkind, replident, heap_bytes, toast_bytes, can_select = rel
    if relkind not in ("r", "p"):
        return TableFacts(exists=False), [fail(
            SYSTEM, "table", f"is not a table (relkind {relkind}): Debezium captures only tables",
            "map the underlying table instead", subject=subject)]
    checks = [ok(SYSTEM, "table", f"exists ({_bytes(int(heap_bytes))})", subject=subject)]
    if not can_select:
        checks.append(fail("permissions", "postgres_select", "the configured user cannot SELECT this table",
                           f"GRANT SELECT ON {quoted_table(m)} TO <parity user> (reconcile reads it)", subject=subject))
    columns = _columns(conn, oid)
    pk = _index_columns(conn, oid, "indisprimary")
    facts = TableFacts(exists=True, columns=columns, primary_key=pk)
    checks.append(_primary_key(m, pk))
    checks.append(_replica_identity(conn, m, oid, str(replident), pk, columns, int(toast_bytes)))
    checks.append(_publication(m, conn, publications))
    checks.extend(_column_checks(m, columns))
    facts.sample = _sample(conn, m, columns, sample) if can_select else []
    if can_select:
        checks.append(_key_nulls(conn, m, columns, facts, int(heap_bytes)))
    return facts, checks


def _columns(conn: psycopg.Connection[Any], oid: int) -> dict[str, Column]:
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typname, t.typcategory, a.attnotnull, "
        "  a.attstorage IN ('x', 'e') "
        "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        (oid,),
    ).fetchall()
    return {str(r[0]): Column(str(r[0]), str(r[1]), str(r[2]), str(r[3]), bool(r[4]), bool(r[5])) for r in rows}


def table_columns(conn: psycopg.Connection[Any], schema: str, table: str) -> list[str] | None:
    """The live columns of `schema.table` in order; None when there is no such table."""
    row = conn.execute(
        "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')",
        (schema, table),
    ).fetchone()
    return None if row is None else list(_columns(conn, row[0]))


def live_column_errors(conn: psycopg.Connection[Any], config: ParityConfig, where: str,
                       mappings: Sequence[TableMapping] | None = None) -> list[str]:
    """One line per mapped table or column the database does not have, naming the field of the
    configuration file (`where`): the live half of `parity config check --live`, also the
    reconciler's preflight. A mapped column the table lacks would otherwise never be compared."""
    errors: list[str] = []
    for i, m in enumerate(config.tables):
        if mappings is not None and m not in mappings:
            continue
        existing = table_columns(conn, m.schema, m.table)
        if existing is None:
            errors.append(f"{where}: tables[{i}].source: table {m.source} does not exist")
        else:
            errors.extend(absent_column_errors(m, i, existing, where=where))
    return errors


def _index_columns(conn: psycopg.Connection[Any], oid: int, flag: str) -> tuple[str, ...]:
    query = sql.SQL(
        "SELECT a.attname FROM pg_index i "
        "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        "WHERE i.indrelid = %s AND i.{} ORDER BY k.ord"
    ).format(sql.Identifier(flag))
    return tuple(str(r[0]) for r in conn.execute(query, (oid,)).fetchall())


def _primary_key(m: TableMapping, pk: tuple[str, ...]) -> Check:
    want = ", ".join(m.primary_key)
    if not pk:
        return fail(SYSTEM, "primary_key", f"has no primary key; the mapping expects ({want})",
                    f"ALTER TABLE {quoted_table(m)} ADD PRIMARY KEY ({_quoted_columns(m.primary_key)}); "
                    "without one Debezium's events have no "
                    "key (no per-row ordering) and UPDATE/DELETE fail once the table is published",
                    subject=m.source)
    if set(pk) != set(m.primary_key):
        return fail(SYSTEM, "primary_key", f"primary key is ({', '.join(pk)}), the mapping says ({want})",
                    f"set `primary_key: [{', '.join(pk)}]` in the mapping (and key templates that use it)",
                    subject=m.source)
    return ok(SYSTEM, "primary_key", f"({', '.join(pk)}) matches the mapping", subject=m.source)


def _replica_identity(conn: psycopg.Connection[Any], m: TableMapping, oid: int, replident: str,
                      pk: tuple[str, ...], columns: dict[str, Column], toast_bytes: int) -> Check:
    subject = m.source
    full_fix = f"ALTER TABLE {quoted_table(m)} REPLICA IDENTITY FULL"
    if replident == "f":
        return ok(SYSTEM, "replica_identity", "FULL: update and delete events carry the whole old row",
                  subject=subject)
    if replident == "n":
        return fail(SYSTEM, "replica_identity", "NOTHING: updates and deletes carry no old key at all",
                    full_fix + " (or DEFAULT with a primary key)", subject=subject)
    identity = pk if replident == "d" else _index_columns(conn, oid, "indisreplident")
    kind = "DEFAULT" if replident == "d" else "USING INDEX"
    needed = ItemMapper(m).key_columns
    missing = sorted(needed - set(identity))
    if missing:
        # A delete then carries only the identity columns: the item's key cannot be rebuilt.
        return fail(SYSTEM, "replica_identity",
                    f"{kind}, but the key templates also use {missing}: deletes and key changes carry only "
                    f"({', '.join(identity)}), so the old item cannot be found", full_fix, subject=subject)
    toastable = sorted(c for c in m.columns if not m.rule(c).exclude and c in columns and columns[c].toastable)
    if toastable and toast_bytes > 0:
        return warn(SYSTEM, "replica_identity",
                    f"{kind} and {_bytes(toast_bytes)} of values stored out of line (TOAST) in {toastable}: "
                    "an update that leaves them unchanged carries Debezium's unavailable-value marker, so those "
                    "attributes go unverified for that event", full_fix, subject=subject)
    note = f"; TOAST-able columns {toastable} have no out-of-line values yet" if toastable else ""
    return ok(SYSTEM, "replica_identity", f"{kind}: old key ({', '.join(identity)}) is enough for the key "
              f"templates{note}", subject=subject)


def _publication(m: TableMapping, conn: psycopg.Connection[Any], publications: Sequence[_Publication]) -> Check:
    subject = m.source
    if not publications:
        return ok(SYSTEM, "publication", "no publication yet (Debezium's publication.autocreate.mode creates one)",
                  subject=subject)
    rows = conn.execute("SELECT pubname FROM pg_publication_tables WHERE schemaname = %s AND tablename = %s",
                        (m.schema, m.table)).fetchall()
    names = {str(r[0]) for r in rows}
    holding = [p for p in publications if p.name in names or p.all_tables]
    if not holding:
        first = publications[0].name
        return warn(SYSTEM, "publication", f"in none of the publications {[p.name for p in publications]}",
                    f"ALTER PUBLICATION {quote_ident(first)} ADD TABLE {quoted_table(m)} "
                    "(or the connector's table.include.list)",
                    subject=subject)
    partial = [p.name for p in holding if not (p.update and p.delete)]
    if partial:
        return warn(SYSTEM, "publication", f"publication(s) {partial} do not publish updates and deletes",
                    "ALTER PUBLICATION ... SET (publish = 'insert, update, delete, truncate')", subject=subject)
    return ok(SYSTEM, "publication", f"published by {[p.name for p in holding]}", subject=subject)


# --- columns -------------------------------------------------------------------------------------------

_TIME_ONLY = frozenset({"time", "timetz"})
_JSON = frozenset({"json", "jsonb"})


def _fits(rule_type: str, col: Column) -> bool:
    """Whether the mapping's converter can take this Postgres type at all (rows are tried in the
    round trip; this catches a rule that can never work)."""
    cat, name = col.category, col.typname
    accepts: dict[str, Callable[[], bool]] = {
        "string": lambda: True,
        "auto": lambda: cat not in ("G", "I", "R") and name not in ("tsvector", "tsquery"),
        "number": lambda: cat in ("N", "S", "T"),
        "bool": lambda: cat in ("B", "N", "S"),
        "binary": lambda: name == "bytea" or cat == "S",
        "timestamp_iso": lambda: (cat == "D" and name not in _TIME_ONLY) or cat == "S",
        "timestamp_epoch_s": lambda: (cat == "D" and name not in _TIME_ONLY) or cat == "S",
        "timestamp_epoch_ms": lambda: (cat == "D" and name not in _TIME_ONLY) or cat == "S",
        "date_iso": lambda: (cat == "D" and name not in _TIME_ONLY) or cat == "S",
        "json_map": lambda: name in _JSON or cat == "S",
        "json_string": lambda: name in _JSON or cat == "S",
        "list": lambda: cat == "A" or name in _JSON,
        "string_set": lambda: cat == "A" or name in _JSON or cat == "S",
        "number_set": lambda: cat == "A" or name in _JSON or cat == "S",
    }
    return accepts.get(rule_type, lambda: True)()


def _column_checks(m: TableMapping, columns: dict[str, Column]) -> list[Check]:
    subject = m.source
    missing = [c for c in m.columns if c not in columns]
    unfit = [f"{c} ({columns[c].type} as {m.rule(c).type})" for c in m.columns
             if c in columns and not m.rule(c).exclude and not _fits(m.rule(c).type, columns[c])]
    unmapped = [c for c in columns if c not in m.columns]
    checks = []
    if missing:
        checks.append(fail(SYSTEM, "columns", f"mapped columns missing from the table: {missing}",
                           "fix the names under `columns` (or add the columns)", subject=subject))
    if unfit:
        checks.append(fail(SYSTEM, "columns", f"the mapping cannot convert: {unfit}",
                           "give each a `type:` rule that fits the column (`string` fits every type)",
                           subject=subject))
    if unmapped:
        checks.append(warn(SYSTEM, "columns", f"table columns not in the mapping are ignored: {unmapped}",
                           "list them under `columns` (with `exclude: true` if they stay out of DynamoDB)",
                           subject=subject))
    if not checks:
        checks.append(ok(SYSTEM, "columns", f"all {len(m.columns)} mapped columns exist with convertible types",
                         subject=subject))
    return checks


# --- rows -----------------------------------------------------------------------------------------------


def _sample(conn: psycopg.Connection[Any], m: TableMapping, columns: dict[str, Column], n: int) -> list[dict[str, Any]]:
    present = [c for c in m.columns if c in columns]
    if n <= 0 or not present:
        return []
    query = sql.SQL("SELECT {} FROM {}.{} LIMIT {}").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in present),
        sql.Identifier(m.schema), sql.Identifier(m.table), sql.Literal(n))
    with conn.cursor(row_factory=dict_row) as cur:
        return list(cur.execute(query).fetchall())


def _key_nulls(conn: psycopg.Connection[Any], m: TableMapping, columns: dict[str, Column],
               facts: TableFacts, heap_bytes: int) -> Check:
    subject = m.source
    key_columns = sorted(c for c in ItemMapper(m).key_columns if c in columns)
    nullable = [c for c in key_columns if not columns[c].not_null]
    if not nullable:
        return ok(SYSTEM, "key_nulls", f"key-template columns {key_columns} are NOT NULL", subject=subject)
    if heap_bytes > CHEAP_COUNT_BYTES:
        nulls = {c: sum(1 for r in facts.sample if r.get(c) is None) for c in nullable}
        scope = f"in a sample of {len(facts.sample)} rows (table too large to count)"
    else:
        query = sql.SQL("SELECT {} FROM {}.{}").format(
            sql.SQL(", ").join(sql.SQL("count(*) FILTER (WHERE {} IS NULL)").format(sql.Identifier(c))
                               for c in nullable),
            sql.Identifier(m.schema), sql.Identifier(m.table))
        row = conn.execute(query).fetchone()
        assert row is not None
        nulls = dict(zip(nullable, (int(v) for v in row), strict=True))
        scope = "in the whole table"
    bad = {c: n for c, n in nulls.items() if n}
    if not bad:
        return ok(SYSTEM, "key_nulls", f"no NULL in nullable key-template columns {nullable} {scope}",
                  subject=subject)
    first = next(iter(bad))
    examples = _null_examples(conn, m, first, facts.primary_key or m.primary_key, columns)
    return fail(SYSTEM, "key_nulls",
                f"NULL key-template values {scope}: " + ", ".join(f"{c} in {n} row(s)" for c, n in bad.items())
                + (f"; e.g. rows {examples}" if examples else "") + ": these rows cannot become items",
                f"fill them (UPDATE {quoted_table(m)} SET {quote_ident(first)} = ... "
                f"WHERE {quote_ident(first)} IS NULL) and add NOT NULL, "
                "or change the key template", subject=subject)


def _null_examples(conn: psycopg.Connection[Any], m: TableMapping, column: str, pk: Sequence[str],
                   columns: dict[str, Column]) -> list[dict[str, Any]]:
    pk = [c for c in pk if c in columns]
    if not pk:
        return []
    query = sql.SQL("SELECT {} FROM {}.{} WHERE {} IS NULL LIMIT 3").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in pk), sql.Identifier(m.schema), sql.Identifier(m.table),
        sql.Identifier(column))
    redacted = {c for c in pk if m.rule(c).redact}
    with conn.cursor(row_factory=dict_row) as cur:
        return [{k: ("<redacted>" if k in redacted else str(v)) for k, v in r.items()} for r in cur.execute(query)]


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
