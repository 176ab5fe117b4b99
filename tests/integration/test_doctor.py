"""`parity doctor` on the real stack: the examples come out all ok; each broken setup is reported
as exactly the failing check(s) it should be, with its fix.

One Postgres, Kafka and DynamoDB Local for the whole module; every case has its own database or
schema, its own DynamoDB table and topic prefix. `wal_level=replica` needs a second cluster.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg import sql
from typer.testing import CliRunner

from parity.config_loader import parse_config
from parity.core.config import ParityConfig, PostgresConfig
from parity.doctor import Report, Status, reachability, run_doctor
from tests.conftest import unique

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@dataclass
class Env:
    pg: Any
    kafka: Any
    dynamodb: Any
    dsn_base: str
    databases: list[str]
    slots: list[tuple[str, str]]  # (database, slot)
    tables: list[str]

    def dsn(self, database: str) -> str:
        return self.dsn_base.rsplit("/", 1)[0] + "/" + database

    def create_database(self) -> str:
        name = unique("doctor")
        with psycopg.connect(self.pg.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.databases.append(name)
        return name

    def create_dynamo_tables(self, definitions: list[dict[str, Any]]) -> None:
        client: Any = self.dynamodb.client()
        for d in definitions:
            client.create_table(**d)
            self.tables.append(d["TableName"])
        for d in definitions:
            client.get_waiter("table_exists").wait(TableName=d["TableName"], WaiterConfig={"Delay": 0.2})


@pytest.fixture(scope="module")
def env(pg: Any, kafka: Any, dynamodb: Any) -> Iterator[Env]:
    e = Env(pg, kafka, dynamodb, pg.dsn, [], [], [])
    kafka.create_topics(["parity.drift", "parity.dlq"], partitions=1)
    yield e
    client: Any = dynamodb.client()
    for table in e.tables:
        with contextlib.suppress(Exception):
            client.delete_table(TableName=table)
    for database, slot in e.slots:
        with contextlib.suppress(Exception), psycopg.connect(e.dsn(database), autocommit=True) as conn:
            conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        for database in e.databases:
            with contextlib.suppress(Exception):
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))


def config_of(data: dict[str, Any], dsn: str, env: Env, prefix: str) -> ParityConfig:
    return parse_config(data, env={
        "PARITY_PG_DSN": dsn, "PARITY_KAFKA_BOOTSTRAP": env.kafka.bootstrap,
        "PARITY_DYNAMODB_ENDPOINT": env.dynamodb.endpoint, "PARITY_TOPIC_PREFIX": prefix,
    })


def failing(report: Report) -> set[tuple[str, str]]:
    return {(c.system, c.name) for c in report if c.status is Status.FAIL}


def not_ok(report: Report) -> list[str]:
    # The test stack is plaintext on loopback: its transport warnings are pinned by their own test.
    return [f"{c.system}: {c.line()}" for c in report if c.status is not Status.OK and c.name != "transport"]


# --- the examples: all ok -----------------------------------------------------------------------------

SEEDS = {
    "payments": """
        INSERT INTO public.payments (customer_id, loan_id, amount, payment_date, method, status,
                                     transaction_reference)
        SELECT 100 + i % 7, 500 + i, 10.50 + i, '2024-03-01T12:00:00Z'::timestamptz + i * interval '1 hour',
               'ACH', 'SETTLED', 'TX' || i FROM generate_series(1, 40) AS i;
    """,
    "multi-table": """
        INSERT INTO public.payments (customer_id, loan_id, amount, payment_date, method, status)
        SELECT 100 + i, 500 + i, 99.99, '2024-03-02T08:00:00Z', 'CARD', 'PENDING' FROM generate_series(1, 5) AS i;
        INSERT INTO public.integration_logs (integration, direction, http_status, request_payload,
                                             response_payload, error_message, duration_ms)
        SELECT CASE WHEN i % 3 = 0 THEN NULL ELSE 'crm' END, 'OUTBOUND', 200, '{"q": 1}', '{"ok": true}', '',
               12.5 FROM generate_series(1, 12) AS i;
    """,
    "billing-single-table": """
        INSERT INTO billing.customer (customer_id, first_name, last_name, email, preferences)
        VALUES (1, 'Ada', 'Lovelace', 'ada@example.com', '{"paperless": true}');
        INSERT INTO billing.billing_account VALUES (10, 1, 'I', 'O', 5, '2020-01-01', 100.00, now());
        INSERT INTO billing.subscriber VALUES (10, '5551234', 'A', 'PLAN1', '2020-01-02', NULL, '{VM,DATA}', now());
        INSERT INTO billing.service_agreement VALUES (10, '5551234', 'SOC1', '2020-01-02', NULL, 9.99, '{"a": 1}',
                                                      now());
        INSERT INTO billing.bill VALUES (10, 1, 5, '2020-02-01', '2020-02-20', 42.00, 'OPEN', now());
        INSERT INTO billing.charge VALUES (10, 1, 1, 1, '5551234', 'MRC', 9.99, 0.80, 'monthly', '2020-01-31'),
                                          (10, 2, 1, NULL, NULL, 'FEE', 5.00, 0, '', '2020-01-31');
    """,
}


def setup_example(env: Env, name: str, *, slot: bool = False) -> ParityConfig:
    database = env.create_database()
    suffix = unique("")  # DynamoDB Local is shared by every test module: own table names
    with psycopg.connect(env.dsn(database), autocommit=True) as conn:
        conn.execute((EXAMPLES / f"{name}.sql").read_text())
        if slot:  # before the seed, so that the slot retains the seed's WAL
            conn.execute("CREATE PUBLICATION doctor_pub FOR ALL TABLES")
            slot_name = unique("doctor_slot")
            conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot_name,))
            env.slots.append((database, slot_name))
        conn.execute(SEEDS[name])
    definitions = json.loads((EXAMPLES / f"{name}.dynamodb.json").read_text())
    for d in definitions:
        d["TableName"] += suffix
    env.create_dynamo_tables(definitions)
    data = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    for holder in [data.get("defaults") or {}, *data["tables"]]:
        if "target" in holder:
            holder["target"] += suffix
    prefix = unique("cdc")
    config = config_of(data, env.dsn(database), env, prefix)
    env.kafka.create_topics(config.topics(), partitions=2)
    return config


@pytest.mark.parametrize("example", ["payments", "multi-table", "billing-single-table"])
def test_the_examples_on_a_healthy_stack_are_all_ok(env: Env, example: str) -> None:
    config = setup_example(env, example, slot=example == "payments")
    report = run_doctor(config, sample=50)
    assert not_ok(report) == [], report.to_text()
    systems = {c.system for c in report}
    assert {"postgres", "dynamodb", "kafka", "mapping", "permissions"} <= systems
    # every mapped table was looked at in Postgres and round-tripped
    for m in config.tables:
        assert report.find(system="postgres", name="primary_key", subject=m.source)
        assert report.find(system="mapping", name="round_trip", subject=m.source)
    if example == "payments":
        slot = report.find(system="postgres", name="replication_slot", status=Status.OK)
        assert [c.subject for c in slot] == [env.slots[-1][1]]
        assert report.find(system="postgres", name="publication", status=Status.OK)[0].reason.startswith(
            "published by ['doctor_pub']")
        # The same slot above a (tiny) retained-WAL threshold is the one warning.
        strict = run_doctor(config, sample=5, max_retained_wal=1)
        assert [(c.name, c.subject) for c in strict if c.status is not Status.OK and c.name != "transport"] == [
            ("replication_slot", env.slots[-1][1])], strict.to_text()
        assert "pg_drop_replication_slot" in strict.find(name="replication_slot")[0].fix
    if example == "billing-single-table":  # shadow mode: the dry conditional writes were allowed
        assert any("UpdateItem allowed" in c.reason for c in report.find(system="permissions"))


# --- broken setups: exactly the named failure, with its fix ----------------------------------------------

BASE_DDL = """
    CREATE SCHEMA {schema};
    CREATE TABLE {schema}.items (id bigint PRIMARY KEY, name text NOT NULL, note text);
    INSERT INTO {schema}.items SELECT i, 'n' || i, 'x' FROM generate_series(1, 20) AS i;
"""


@dataclass
class Case:
    env: Env
    database: str

    def run(self, *, ddl: str = BASE_DDL, mapping: dict[str, Any] | None = None,
            dynamo: dict[str, Any] | None = None, topic: bool = True, dsn: str | None = None) -> tuple[Report, Any]:
        schema = unique("c")
        table = unique("Doctor")
        with psycopg.connect(dsn or self.env.dsn(self.database), autocommit=True) as conn:
            conn.execute(sql.SQL(ddl).format(schema=sql.Identifier(schema)))  # type: ignore[arg-type]
        m = {"source": f"{schema}.items", "primary_key": ["id"], "target": table,
             "keys": {"PK": "ITEM#{id}"}, "columns": {"id": {}, "name": {}, "note": {}}, **(mapping or {})}
        d = {"TableName": table, "BillingMode": "PAY_PER_REQUEST",
             "AttributeDefinitions": [{"AttributeName": "PK", "AttributeType": "S"}],
             "KeySchema": [{"AttributeName": "PK", "KeyType": "HASH"}], **(dynamo or {})}
        self.env.create_dynamo_tables([d])
        prefix = unique("cdc")
        data = {"postgres": {"dsn": dsn or self.env.dsn(self.database)},
                "kafka": {"bootstrap_servers": self.env.kafka.bootstrap, "topic_prefix": prefix},
                "dynamodb": {"endpoint": self.env.dynamodb.endpoint}, "tables": [m]}
        config = config_of(data, "", self.env, prefix)
        if topic:
            self.env.kafka.create_topics(config.topics(), partitions=1)
        return run_doctor(config, sample=50), config


@pytest.fixture(scope="module")
def case(env: Env) -> Case:
    return Case(env, env.create_database())


def only(report: Report, system: str, name: str) -> Any:
    found = report.find(system=system, name=name, status=Status.FAIL)
    assert len(found) == 1, report.to_text()
    return found[0]


def test_the_plain_case_is_healthy(case: Case) -> None:
    """The baseline every broken case departs from: proves each failure below comes from its breakage."""
    report, _ = case.run()
    assert not_ok(report) == [], report.to_text()


@pytest.fixture(scope="module")
def replica_cluster() -> Iterator[Any]:
    from parity.devstack.postgres import postgres_service

    state = Path(tempfile.mkdtemp(prefix="parity-doctor-"))
    state.chmod(0o755)
    service = postgres_service(state)
    with (service.data_dir / "postgresql.auto.conf").open("a") as conf:
        conf.write("wal_level = replica\n")  # the last setting wins
    service.start()
    try:
        yield service
    finally:
        service.stop()
        shutil.rmtree(state, ignore_errors=True)


def test_wal_level_replica_is_named_with_its_fix(case: Case, replica_cluster: Any) -> None:
    report, _ = case.run(dsn=replica_cluster.dsn)
    assert failing(report) == {("postgres", "wal_level")}, report.to_text()
    check = only(report, "postgres", "wal_level")
    assert "wal_level=replica" in check.reason
    assert "wal_level = logical" in check.fix


def test_a_missing_gsi_is_named_with_its_fix(case: Case) -> None:
    report, _ = case.run(mapping={"indexes": {"GSI1PK": "NAME#{name}", "GSI1SK": "ITEM#{id}"}})
    assert failing(report) == {("dynamodb", "index")}, report.to_text()
    check = only(report, "dynamodb", "index")
    assert "GSI1PK" in check.reason and "GSI1SK" in check.reason
    assert "create a GSI" in check.fix


def test_a_gsi_with_swapped_roles_is_named(case: Case) -> None:
    gsi = {"IndexName": "GSI1", "Projection": {"ProjectionType": "ALL"},
           "KeySchema": [{"AttributeName": "GSI1SK", "KeyType": "HASH"},
                         {"AttributeName": "GSI1PK", "KeyType": "RANGE"}]}
    report, _ = case.run(
        mapping={"indexes": {"GSI1PK": "NAME#{name}", "GSI1SK": "ITEM#{id}"}},
        dynamo={"AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"}
                                         for a in ("PK", "GSI1PK", "GSI1SK")],
                "GlobalSecondaryIndexes": [gsi]})
    assert failing(report) == {("dynamodb", "index")}, report.to_text()
    assert only(report, "dynamodb", "index").subject.endswith("/GSI1")


def test_a_table_without_a_primary_key_is_named_with_its_fix(case: Case) -> None:
    ddl = """
        CREATE SCHEMA {schema};
        CREATE TABLE {schema}.items (id bigint NOT NULL, name text NOT NULL, note text);
        ALTER TABLE {schema}.items REPLICA IDENTITY FULL;
        INSERT INTO {schema}.items SELECT i, 'n' || i, 'x' FROM generate_series(1, 5) AS i;
    """
    report, config = case.run(ddl=ddl)
    assert failing(report) == {("postgres", "primary_key")}, report.to_text()
    check = only(report, "postgres", "primary_key")
    assert "no primary key" in check.reason
    m = config.tables[0]
    assert f'ALTER TABLE "{m.schema}"."{m.table}" ADD PRIMARY KEY ("id")' in check.fix


def test_a_null_in_a_key_column_is_named_with_the_row(case: Case) -> None:
    ddl = """
        CREATE SCHEMA {schema};
        CREATE TABLE {schema}.items (id bigint PRIMARY KEY, name text, note text);
        ALTER TABLE {schema}.items REPLICA IDENTITY FULL;
        INSERT INTO {schema}.items VALUES (1, 'a', 'x'), (2, NULL, 'x'), (3, 'c', 'x');
    """
    report, _ = case.run(ddl=ddl, mapping={"keys": {"PK": "NAME#{name}", "SK": "ITEM#{id}"}},
                         dynamo={"AttributeDefinitions": [{"AttributeName": "PK", "AttributeType": "S"},
                                                          {"AttributeName": "SK", "AttributeType": "S"}],
                                 "KeySchema": [{"AttributeName": "PK", "KeyType": "HASH"},
                                               {"AttributeName": "SK", "KeyType": "RANGE"}]})
    assert failing(report) == {("postgres", "key_nulls"), ("mapping", "round_trip")}, report.to_text()
    nulls = only(report, "postgres", "key_nulls")
    assert "name in 1 row(s)" in nulls.reason and "'id': '2'" in nulls.reason
    assert "NOT NULL" in nulls.fix
    trip = only(report, "mapping", "round_trip")
    assert "(id=2)" in trip.reason and "'name' is NULL" in trip.reason


def test_a_key_template_that_collides_is_named_with_both_rows(case: Case) -> None:
    ddl = """
        CREATE SCHEMA {schema};
        CREATE TABLE {schema}.items (a int, b int, name text NOT NULL, PRIMARY KEY (a, b));
        INSERT INTO {schema}.items VALUES (1, 23, 'x'), (12, 3, 'y'), (5, 5, 'z');
    """
    report, _ = case.run(ddl=ddl, mapping={"primary_key": ["a", "b"], "keys": {"PK": "{a}{b}"},
                                            "columns": {"a": {}, "b": {}, "name": {}}})
    assert failing(report) == {("mapping", "duplicate_keys")}, report.to_text()
    check = only(report, "mapping", "duplicate_keys")
    assert "a=1, b=23" in check.reason and "a=12, b=3" in check.reason and "PK=123" in check.reason
    assert "separator" in check.fix


def test_a_missing_topic_is_named_with_its_fix(case: Case) -> None:
    report, config = case.run(topic=False)
    assert failing(report) == {("kafka", "topic")}, report.to_text()
    check = only(report, "kafka", "topic")
    assert check.subject == config.topics()[0]
    assert f"topic.prefix={config.kafka.topic_prefix}" in check.fix


def test_a_wrong_key_schema_is_named_with_its_fix(case: Case) -> None:
    # The table is keyed on a number `Id`; the templates write a string `PK`.
    report, _ = case.run(dynamo={"AttributeDefinitions": [{"AttributeName": "Id", "AttributeType": "N"}],
                                 "KeySchema": [{"AttributeName": "Id", "KeyType": "HASH"}]})
    assert failing(report) == {("dynamodb", "key_schema")}, report.to_text()
    check = only(report, "dynamodb", "key_schema")
    assert "Id HASH N" in check.reason and "PK HASH S" in check.reason
    assert "create a new table" in check.fix


def test_a_key_type_mismatch_is_a_wrong_key_schema(case: Case) -> None:
    # Same name, wrong type: `{id}` alone keeps the bigint, an N, but the table says S.
    report, _ = case.run(mapping={"keys": {"PK": "{id}"}})
    assert failing(report) == {("dynamodb", "key_schema")}, report.to_text()
    assert "PK HASH N" in only(report, "dynamodb", "key_schema").reason


def test_key_templates_beyond_a_default_replica_identity_fail_with_the_fix(case: Case) -> None:
    ddl = BASE_DDL  # REPLICA IDENTITY DEFAULT: a delete carries only `id`
    report, config = case.run(ddl=ddl, mapping={"keys": {"PK": "NAME#{name}", "SK": "ITEM#{id}"}},
                              dynamo={"AttributeDefinitions": [{"AttributeName": "PK", "AttributeType": "S"},
                                                               {"AttributeName": "SK", "AttributeType": "S"}],
                                      "KeySchema": [{"AttributeName": "PK", "KeyType": "HASH"},
                                                    {"AttributeName": "SK", "KeyType": "RANGE"}]})
    assert failing(report) == {("postgres", "replica_identity")}, report.to_text()
    check = only(report, "postgres", "replica_identity")
    assert "['name']" in check.reason
    m = config.tables[0]
    assert check.fix == f'ALTER TABLE "{m.schema}"."{m.table}" REPLICA IDENTITY FULL'


def test_toasted_values_under_a_default_replica_identity_warn(case: Case) -> None:
    ddl = BASE_DDL + """
        UPDATE {schema}.items SET note = (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 400) AS g)
        WHERE id = 1;
    """
    report, _ = case.run(ddl=ddl)
    assert not failing(report), report.to_text()
    warned = [c for c in report if c.status is Status.WARN and c.name != "transport"]
    assert [(c.system, c.name) for c in warned] == [("postgres", "replica_identity")], report.to_text()
    assert "TOAST" in warned[0].reason and "['name', 'note']" in warned[0].reason


def test_a_mapped_column_missing_from_the_table_fails(case: Case) -> None:
    report, _ = case.run(mapping={"columns": {"id": {}, "name": {}, "note": {}, "ghost": {}}})
    assert failing(report) == {("postgres", "columns")}, report.to_text()
    assert "['ghost']" in only(report, "postgres", "columns").reason


# --- the command and the readiness helper ----------------------------------------------------------------


def test_the_command_exits_0_1_2_and_prints_json(case: Case, env: Env, tmp_path: Path) -> None:
    from parity.cli import app

    _, config = case.run()
    good = tmp_path / "good.yaml"
    data = json.loads(config.model_dump_json())
    data["postgres"]["dsn"] = config.postgres.dsn.get_secret_value()
    good.write_text(yaml.safe_dump(data))
    runner = CliRunner()
    result = runner.invoke(app, ["doctor", "--config", str(good), "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["ok"] is True and body["summary"]["fail"] == 0 and body["checks"]

    data["kafka"]["topic_prefix"] = unique("absent")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    result = runner.invoke(app, ["doctor", "--config", str(bad)])
    assert result.exit_code == 1
    assert "fail topic" in result.stdout and "fix: start the connector" in result.stdout

    invalid = tmp_path / "invalid.yaml"
    invalid.write_text("postgres: {dsn: x}\n")
    result = runner.invoke(app, ["doctor", "--config", str(invalid)])
    assert result.exit_code == 2


def test_reachability_reports_each_system(case: Case, env: Env) -> None:
    _, config = case.run()
    assert [(name, reachable) for name, reachable, _ in reachability(config)] == [
        ("postgres", True), ("dynamodb", True), ("kafka", True)]
    down = config.model_copy(update={
        "kafka": config.kafka.model_copy(update={"bootstrap_servers": "127.0.0.1:1"}),
    })
    result = dict((name, ok) for name, ok, _ in reachability(down, timeout_s=2))
    assert result == {"postgres": True, "dynamodb": True, "kafka": False}


def test_unreachable_systems_give_one_failing_line_each(case: Case) -> None:
    _, config = case.run()
    down = config.model_copy(update={
        "postgres": PostgresConfig(dsn="postgresql://postgres@127.0.0.1:1/postgres", connect_timeout_s=2),
        "dynamodb": config.dynamodb.model_copy(update={"endpoint": "http://127.0.0.1:1", "timeout_s": 2}),
        "kafka": config.kafka.model_copy(update={"bootstrap_servers": "127.0.0.1:1"}),
    })
    report = run_doctor(down, timeout_s=2)
    assert failing(report) == {("postgres", "reachable"), ("dynamodb", "reachable"), ("kafka", "reachable")}
    reached = [c for c in report if c.name != "transport"]  # transport is read from the configuration
    assert len(reached) == 3, report.to_text()
    assert all(c.fix for c in reached)


# --- private by default: clear-text transport and pasteable fix SQL ---------------------------------------

HOSTILE = 'Pay"Ments; DROP TABLE {sentinel}; --'


def test_fix_sql_for_a_hostile_mixed_case_table_is_safe_to_paste(case: Case, env: Env) -> None:
    """A mixed-case table whose name tries to drop another table, without a primary key and with a
    default replica identity: the doctor's fixes, pasted into Postgres as printed, alter exactly
    that table, and the sentinel survives."""
    schema = unique("Hostile")  # mixed case: unquoted, Postgres would fold it to lower case
    sentinel = unique("sentinel")
    table = HOSTILE.format(sentinel=sentinel)
    dsn = env.dsn(case.database)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("CREATE TABLE {} (x int)").format(sql.Identifier(sentinel)))
        conn.execute(sql.SQL("CREATE TABLE {} (id bigint NOT NULL, name text NOT NULL)").format(
            sql.Identifier(schema, table)))
        conn.execute(sql.SQL("INSERT INTO {} VALUES (1, 'a'), (2, 'b')").format(sql.Identifier(schema, table)))
    target = unique("Doctor")
    env.create_dynamo_tables([{"TableName": target, "BillingMode": "PAY_PER_REQUEST",
                               "AttributeDefinitions": [{"AttributeName": "PK", "AttributeType": "S"}],
                               "KeySchema": [{"AttributeName": "PK", "KeyType": "HASH"}]}])
    prefix = unique("cdc")
    mapping = {"source": f"{schema}.{table}", "primary_key": ["id"], "target": target,
               "keys": {"PK": "ITEM#{id}#{name}"}, "columns": {"id": {}, "name": {}}}
    config = config_of({"postgres": {"dsn": dsn},
                        "kafka": {"bootstrap_servers": env.kafka.bootstrap, "topic_prefix": prefix},
                        "dynamodb": {"endpoint": env.dynamodb.endpoint}, "tables": [mapping]}, "", env, prefix)
    env.kafka.create_topics(config.topics(), partitions=1)

    report = run_doctor(config, sample=5)
    pk = only(report, "postgres", "primary_key")
    statement_end = pk.fix.index('("id")') + len('("id")')  # the fix is the SQL, then an explanation
    fix = pk.fix[:statement_end]
    assert fix == f'ALTER TABLE "{schema}"."{table.replace(chr(34), chr(34) * 2)}" ADD PRIMARY KEY ("id")'
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(fix)  # as printed
        # The key template uses `name`, which the new primary key does not carry: FULL is the fix.
    report = run_doctor(config, sample=5)
    identity = only(report, "postgres", "replica_identity")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(identity.fix)  # as printed
        relation = conn.execute(
            "SELECT c.relreplident, (SELECT count(*) FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
            (schema, table)).fetchone()
        assert relation == ("f", 1)
        assert conn.execute("SELECT to_regclass(%s)", (f'"{sentinel}"',)).fetchone() == (sentinel,)
    assert not failing(run_doctor(config, sample=5)), "both fixes applied: nothing fails any more"


def test_clear_text_transport_warns_and_never_prints_the_dsn(case: Case, env: Env) -> None:
    """The test stack is plaintext: Postgres without sslmode=verify-*, Kafka PLAINTEXT. A DynamoDB
    endpoint on a non-loopback http:// address warns too (it is unreachable here: one more fail)."""
    password = "DsnPw-4r5t6y7u"
    _, config = case.run()
    dsn = config.postgres.dsn.get_secret_value()
    assert dsn.startswith("postgresql://") and "?" not in dsn  # the devstack's URI form
    with_password = dsn.replace("@", f":{password}@", 1) if "@" in dsn else dsn.replace("://", f"://x:{password}@")
    noisy = config.model_copy(update={
        "postgres": PostgresConfig(dsn=with_password, connect_timeout_s=2),
        "dynamodb": config.dynamodb.model_copy(update={"endpoint": "http://10.255.255.1:8000", "timeout_s": 1}),
    })
    report = run_doctor(noisy, timeout_s=2)
    transport = {c.system: c for c in report if c.name == "transport"}
    assert {s: c.status for s, c in transport.items()} == {
        "postgres": Status.WARN, "kafka": Status.WARN, "dynamodb": Status.WARN}, report.to_text()
    assert "sslmode=" in transport["postgres"].reason and "verify-full" in transport["postgres"].fix
    assert "PLAINTEXT" in transport["kafka"].reason
    assert "10.255.255.1" in transport["dynamodb"].reason
    text = report.to_text() + json.dumps(report.to_dict(), default=str)
    assert password not in text
    # With verification configured, the Postgres line is ok (the server's own TLS is not needed to
    # read the setting: no connection is made for it).
    verified = noisy.model_copy(update={"postgres": PostgresConfig(dsn=f"{dsn}?sslmode=verify-full")})
    from parity.doctor.checks_transport import transport as transport_checks

    assert transport_checks(verified, {})[0].status is Status.OK
