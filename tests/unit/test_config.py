"""Loading configuration: the examples, one-line errors with their path, env vars, secrets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from parity.config_loader import load_config, parse_config
from parity.core.config import ParityConfig
from parity.core.errors import ConfigError
from parity.core.mapping import ItemMapper

pytestmark = pytest.mark.unit

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PASSWORD = "s3cr3t-pw"
ENV = {
    "PARITY_PG_DSN": f"postgresql://parity:{PASSWORD}@localhost:5432/app",
    "PARITY_KAFKA_BOOTSTRAP": "localhost:19092",
}
EXAMPLE_NAMES = ["payments", "billing-single-table", "multi-table"]


def _billing() -> dict[str, Any]:
    data = yaml.safe_load((EXAMPLES / "billing-single-table.yaml").read_text())
    assert isinstance(data, dict)
    return data


def _write(tmp_path: Path, data: dict[str, Any], name: str = "billing.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_example_loads(name: str) -> None:
    config = load_config(EXAMPLES / f"{name}.yaml", env=ENV)
    assert isinstance(config, ParityConfig)
    assert config.dynamodb.endpoint is None  # ${PARITY_DYNAMODB_ENDPOINT:-} -> "" -> the AWS default
    for mapping in config.tables:
        ItemMapper(mapping)  # every template compiles


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_example_dynamodb_tables_match_the_key_templates(name: str) -> None:
    config = load_config(EXAMPLES / f"{name}.yaml", env=ENV)
    requests = json.loads((EXAMPLES / f"{name}.dynamodb.json").read_text())
    by_name = {r["TableName"]: r for r in requests}
    assert set(by_name) == {t.target for t in config.tables}
    for mapping in config.tables:
        request = by_name[mapping.target]
        assert request["BillingMode"] == "PAY_PER_REQUEST"
        assert [k["AttributeName"] for k in request["KeySchema"]] == list(mapping.keys)
        defined = {a["AttributeName"] for a in request["AttributeDefinitions"]}
        index_attrs = {
            k["AttributeName"] for gsi in request.get("GlobalSecondaryIndexes", []) for k in gsi["KeySchema"]
        }
        assert defined == set(mapping.keys) | index_attrs
        assert index_attrs <= set(mapping.indexes) | {
            a for t in config.tables if t.target == mapping.target for a in t.indexes
        }


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_example_sql_creates_every_mapped_table(name: str) -> None:
    config = load_config(EXAMPLES / f"{name}.yaml", env=ENV)
    sql = (EXAMPLES / f"{name}.sql").read_text()
    for mapping in config.tables:
        assert f"CREATE TABLE IF NOT EXISTS {mapping.source} (" in sql
        for column in mapping.columns:
            assert f"\n    {column} " in sql, (mapping.source, column)


def test_payments_uses_replica_identity_full_for_its_non_primary_key_columns() -> None:
    config = load_config(EXAMPLES / "payments.yaml", env=ENV)
    mapper = ItemMapper(config.tables[0])
    assert not mapper.key_columns <= set(config.tables[0].primary_key)
    assert "ALTER TABLE public.payments REPLICA IDENTITY FULL;" in (EXAMPLES / "payments.sql").read_text()


def test_billing_runs_in_shadow_mode_into_one_table() -> None:
    config = load_config(EXAMPLES / "billing-single-table.yaml", env=ENV)
    assert {(t.mode, t.target) for t in config.tables} == {("shadow", "BillingSystem")}
    assert [t.constants["EntityType"] for t in config.tables] == [
        "BILLING_ACCOUNT",
        "CUSTOMER",
        "SUBSCRIBER",
        "SERVICE_AGREEMENT",
        "BILL",
        "CHARGE",
    ]


def test_an_unknown_template_column_is_one_line_with_its_path(tmp_path: Path) -> None:
    data = _billing()
    data["tables"][5]["keys"]["SK"] = "CHARGE#{charge_seq}#{activity_no}"
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, data), env=ENV)
    assert str(err.value) == "billing.yaml: tables[5].keys.SK: unknown column 'activity_no'"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["tables"][2].update(colour="red"), "billing.yaml: tables[2].colour: unknown key"),
        (
            lambda d: d["tables"][0]["columns"]["ban"].update(typ="number"),
            "billing.yaml: tables[0].columns.ban.typ: unknown key",
        ),
        (lambda d: d.update(kafak={}), "billing.yaml: kafak: unknown key"),
        (lambda d: d["kafka"].pop("topic_prefix"), "billing.yaml: kafka.topic_prefix: required"),
        (
            lambda d: d["tables"][1]["columns"]["email"].update(type="text"),
            "billing.yaml: tables[1].columns.email.type: ",
        ),
        (
            lambda d: d["tables"][3].update(primary_key=["ban", "nope"]),
            "billing.yaml: tables[3].primary_key: unknown column 'nope'",
        ),
        (
            lambda d: d["tables"][4]["indexes"].update(GSI2SK="{closed}"),
            "billing.yaml: tables[4].indexes.GSI2SK: unknown column 'closed'",
        ),
        (
            lambda d: d["tables"][4].update(source="bill"),
            "billing.yaml: tables[4].source: must be schema.table, got 'bill'",
        ),
        (
            lambda d: d["tables"][4].update(keys={"PK": "BAN#{ban}"}),
            "billing.yaml: tables[4].keys: the key templates must use every primary-key column",
        ),
        (
            lambda d: d["tables"][5].update(source="billing.bill"),
            "billing.yaml: tables[5].source: billing.bill is already mapped by tables[4]",
        ),
        (
            lambda d: d["tables"][5].update(keys={"pk": "BAN#{ban}", "sk": "C#{charge_seq}#{activity_num}"}),
            "billing.yaml: tables[5].keys: tables sharing DynamoDB table BillingSystem",
        ),
        (
            lambda d: d["tables"][0]["columns"].update(ban={"name": "PK"}),
            "billing.yaml: tables[0].columns: attribute 'PK' is both a column",
        ),
        (
            lambda d: d["tables"][0]["columns"]["ban"].update(tolerance=-1),
            "billing.yaml: tables[0].columns.ban.tolerance: ",
        ),
        (
            lambda d: d["tables"][0]["columns"]["ban"].update(empty_set_as="null"),
            "billing.yaml: tables[0].columns.ban.empty_set_as: applies to string_set and number_set columns, "
            "not type auto",
        ),
        (
            lambda d: d["tables"][2]["columns"]["features"].update(empty_set_as="none"),
            "billing.yaml: tables[2].columns.features.empty_set_as: ",
        ),
    ],
)
def test_errors_name_the_file_and_the_path(tmp_path: Path, edit: Any, message: str) -> None:
    data = _billing()
    edit(data)
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, data), env=ENV)
    text = str(err.value)
    assert text.startswith(message)
    assert "\n" not in text


def test_a_missing_environment_variable_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(EXAMPLES / "payments.yaml", env={"PARITY_PG_DSN": ENV["PARITY_PG_DSN"]})
    assert (
        str(err.value)
        == "payments.yaml: kafka.bootstrap_servers: environment variable PARITY_KAFKA_BOOTSTRAP is not set"
    )


def test_defaults_and_explicit_values_from_the_environment() -> None:
    env = {
        **ENV,
        "PARITY_DYNAMODB_ENDPOINT": "http://127.0.0.1:8000",
        "PARITY_TOPIC_PREFIX": "cdc",
        "AWS_REGION": "eu-west-1",
    }
    config = load_config(EXAMPLES / "payments.yaml", env=env)
    assert (config.dynamodb.endpoint, config.dynamodb.region) == ("http://127.0.0.1:8000", "eu-west-1")
    assert config.topics() == ["cdc.public.payments"]
    assert config.table_for_topic("cdc.public.payments") is config.tables[0]
    assert config.table_for_topic("other.public.payments") is None


def test_the_dsn_password_never_shows(tmp_path: Path) -> None:
    config = load_config(EXAMPLES / "payments.yaml", env=ENV)
    assert PASSWORD not in repr(config)
    assert PASSWORD not in str(config)
    assert config.postgres.dsn.get_secret_value() == ENV["PARITY_PG_DSN"]
    data = yaml.safe_load((EXAMPLES / "payments.yaml").read_text())
    bad_inputs = [
        {**data, "postgres": {"dsn": ENV["PARITY_PG_DSN"], "connect_timeout_s": PASSWORD}},
        {**data, "postgres": {"dsn": [ENV["PARITY_PG_DSN"]]}},
        {**data, "postgres": {"dsn": "${PARITY_PG_DSN}", "connect_timeout_s": "${PARITY_PG_DSN}"}},
        {**data, "dynamodb": {"max_pool_connections": "${PARITY_PG_DSN}"}},
    ]
    for bad in bad_inputs:
        with pytest.raises(ConfigError) as err:
            parse_config(bad, source="payments.yaml", env=ENV)
        assert PASSWORD not in str(err.value), str(err.value)
        assert PASSWORD not in repr(err.value)


def test_yaml_syntax_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("postgres:\n  dsn: [unclosed\n")
    with pytest.raises(ConfigError, match=r"^broken\.yaml: line \d+: "):
        load_config(path, env=ENV)


def test_an_unreadable_file_and_a_non_mapping_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^nowhere\.yaml: cannot read"):
        load_config(tmp_path / "nowhere.yaml", env=ENV)
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match=r"^list\.yaml: the file must hold a mapping"):
        load_config(tmp_path / "list.yaml", env=ENV)


def test_configuration_is_frozen() -> None:
    config = load_config(EXAMPLES / "payments.yaml", env=ENV)
    with pytest.raises(Exception, match="frozen"):
        config.tables[0].target = "Other"  # type: ignore[misc]


# ----- kafka.options that would override what parity's offset and delivery guarantees rest on -----


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("enable.auto.commit", "true"),
        ("auto.commit.enable", "true"),  # librdkafka's older alias of enable.auto.commit
        ("enable.auto.offset.store", "true"),
        ("group.id", "someone-else"),
        ("auto.offset.reset", "latest"),
        ("enable.idempotence", "false"),
        ("acks", "1"),
        ("request.required.acks", "0"),  # librdkafka's alias of acks
        ("bootstrap.servers", "elsewhere:9092"),
        ("metadata.broker.list", "elsewhere:9092"),
    ],
)
def test_kafka_options_that_override_correctness_settings_are_refused_naming_the_field(
    tmp_path: Path, option: str, value: str
) -> None:
    data = _billing()
    data["kafka"]["options"] = {"security.protocol": "SASL_SSL", option: value}
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, data), env=ENV)
    assert str(err.value).startswith(f"billing.yaml: kafka.options.{option}: ")
    assert "parity sets" in str(err.value)


def test_kafka_options_refused_even_when_they_repeat_parity_s_own_value(tmp_path: Path) -> None:
    # A value equal to parity's today would still silently win over a future change of it.
    data = _billing()
    data["kafka"]["options"] = {"enable.auto.commit": "false"}
    with pytest.raises(ConfigError, match=r"kafka\.options\.enable\.auto\.commit"):
        load_config(_write(tmp_path, data), env=ENV)


def test_ordinary_kafka_options_are_accepted(tmp_path: Path) -> None:
    data = _billing()
    opts = {"security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512", "client.id": "p"}
    data["kafka"]["options"] = opts
    assert dict(load_config(_write(tmp_path, data), env=ENV).kafka.options) == opts


def test_shadow_write_concurrency_above_the_connection_pool_is_an_error_naming_both(tmp_path: Path) -> None:
    data = _billing()
    data["dynamodb"]["max_pool_connections"] = 16
    data["daemon"] = {"shadow_write_concurrency": 64}
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, data), env=ENV)
    assert str(err.value) == (
        "billing.yaml: daemon.shadow_write_concurrency: 64 is above dynamodb.max_pool_connections (16): "
        "raise dynamodb.max_pool_connections or lower daemon.shadow_write_concurrency"
    )


@pytest.mark.parametrize(
    ("pool", "daemon", "width"),
    [
        (None, {}, 32),  # both defaults
        (8, {}, 8),  # only the pool set, below the default 32: capped to it
        (64, {}, 32),
        (64, {"shadow_write_concurrency": 64}, 64),
        (16, {"shadow_write_concurrency": 16}, 16),
    ],
)
def test_single_shadow_writes_in_flight(tmp_path: Path, pool: int | None, daemon: dict[str, int], width: int) -> None:
    data = _billing()
    if pool is not None:
        data["dynamodb"]["max_pool_connections"] = pool
    data["daemon"] = daemon
    assert load_config(_write(tmp_path, data), env=ENV).shadow_write_width == width


@pytest.mark.parametrize("value", [0, 257])
def test_shadow_write_concurrency_range(tmp_path: Path, value: int) -> None:
    data = _billing()
    data["daemon"] = {"shadow_write_concurrency": value}
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, data), env=ENV)
    assert str(err.value).startswith("billing.yaml: daemon.shadow_write_concurrency: ")
