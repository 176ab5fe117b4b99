"""The deployment files agree with each other and with the code: docker-compose.yml, the Dockerfile,
the Kafka Connect connector (vs the local bridge's settings), compose/parity.yaml, the workload's
items (vs parity's mapping) and the IAM policies (vs the DynamoDB operations the code calls)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import re
import sys
import tomllib
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from parity.config_loader import load_config
from parity.core.compare import Match, Mismatch, MismatchKind, compare
from parity.core.config import ParityConfig
from parity.core.mapping import ItemMapper

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
ONE_SHOT_LABEL = "parity.one-shot"


def _module(path: Path) -> ModuleType:
    """A script outside the package, loaded by path (dataclasses need it in sys.modules)."""
    name = f"_deploy_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


register = _module(ROOT / "debezium" / "register_connector.py")
workload = _module(ROOT / "compose" / "workload.py")


def _env_file() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value
    return env


def _compose_config() -> ParityConfig:
    env = {**_env_file(), **{k: str(v) for k, v in SERVICES["parity-1"]["environment"].items()}}
    return load_config(ROOT / "compose" / "parity.yaml", env=env)


def _depends(service: dict[str, Any]) -> dict[str, dict[str, str]]:
    deps = service.get("depends_on", {})
    assert isinstance(deps, dict), "depends_on must name a condition for each dependency"
    return deps


# --- docker-compose.yml ---------------------------------------------------------------------------


def test_the_stack_has_every_component_of_the_deployment() -> None:
    images = " ".join(str(s.get("image", "")) for s in SERVICES.values())
    for component in ("postgres:", "apache/kafka:", "debezium/connect:", "amazon/dynamodb-local:",
                      "prom/prometheus:", "prom/alertmanager:", "grafana/grafana:"):
        assert component in images, component
    daemons = [s for s in SERVICES.values() if s.get("command", [None])[0] == "run"]
    assert len(daemons) >= 2, "horizontal scaling needs at least two daemon replicas"
    assert "workload" in SERVICES


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_has_a_healthcheck_or_is_a_documented_one_shot(name: str) -> None:
    service = SERVICES[name]
    if ONE_SHOT_LABEL in (service.get("labels") or {}):
        assert "healthcheck" not in service
        assert service.get("restart") == "no", "a one-shot must not be restarted after it exits"
        waiting = [n for n, s in SERVICES.items()
                   if _depends(s).get(name, {}).get("condition") == "service_completed_successfully"]
        assert waiting, f"{name} is a one-shot that nothing waits for"
        assert service["labels"][ONE_SHOT_LABEL].strip()
    else:
        check = service.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL")


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_image_is_pinned_to_a_version(name: str) -> None:
    image = SERVICES[name]["image"]
    assert "$" not in image, "a pinned image does not depend on the environment"
    repo, sep, tag = image.rpartition(":")
    assert sep and repo and "/" not in tag, f"{image}: no tag"
    assert tag.lower() != "latest" and re.search(r"\d+\.\d+", tag), f"{image}: not a version tag"


def test_the_locally_built_image_carries_the_project_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    built = {s["image"] for s in SERVICES.values() if "build" in s}
    assert built == {f"parity:{version}"}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_dependencies_wait_on_health_or_completion(name: str) -> None:
    for dep, spec in _depends(SERVICES[name]).items():
        assert dep in SERVICES, dep
        condition = spec.get("condition")
        assert condition in ("service_healthy", "service_completed_successfully"), (name, dep, condition)
        if condition == "service_healthy":
            assert "healthcheck" in SERVICES[dep], f"{name} waits for {dep}'s health, which has no check"


def test_no_secret_is_written_inline() -> None:
    secretish = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY", re.IGNORECASE)
    for name, service in SERVICES.items():
        for key in service.get("environment") or {}:
            assert not secretish.search(key), f"{name}: {key} belongs in the env file"
    needs_db = ("postgres", "connect", "parity-1", "parity-2", "workload")
    for name in needs_db:
        assert SERVICES[name]["env_file"] == "${PARITY_ENV_FILE:-.env.example}", name
    env = _env_file()
    for var in ("POSTGRES_PASSWORD", "POSTGRES_USER", "POSTGRES_DB", "GF_SECURITY_ADMIN_PASSWORD"):
        assert env.get(var), var


def test_dot_env_stays_out_of_git_and_of_the_image() -> None:
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".env" in ignored and ".venv" in ignored and ".git" in ignored


def test_every_bind_mount_source_exists() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"


def test_the_replicas_share_a_group_but_not_their_state() -> None:
    daemons = [n for n, s in SERVICES.items() if s.get("command", [None])[0] == "run"]
    states = [next(v for v in SERVICES[n]["volumes"] if v.endswith(":/var/lib/parity")) for n in daemons]
    assert len(set(states)) == len(daemons), "each replica needs its own state volume"
    cfg = _compose_config()
    assert cfg.kafka.group_id  # one config file, one group for every replica
    assert all(SERVICES[n]["volumes"][0].startswith("./compose/parity.yaml:") for n in daemons)


def test_the_kraft_cluster_id_is_a_base64_uuid() -> None:
    import base64

    cluster_id = SERVICES["kafka"]["environment"]["CLUSTER_ID"]
    assert len(cluster_id) == 22  # Kafka's storage format refuses anything else
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
    assert SERVICES["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_the_change_topic_has_a_partition_for_every_replica() -> None:
    daemons = [n for n, s in SERVICES.items() if s.get("command", [None])[0] == "run"]
    script = SERVICES["kafka-init"]["command"][0]
    partitions = int(re.search(r"--partitions (\d+)", script).group(1))  # type: ignore[union-attr]
    assert partitions >= len(daemons)
    for topic in _compose_config().topics():
        assert topic in script.split(), f"{topic} is not created up front"


def test_prometheus_scrapes_every_replica_on_its_http_port() -> None:
    prom = yaml.safe_load((ROOT / "compose" / "prometheus.yml").read_text())
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "parity")
    targets = {t for sc in job["static_configs"] for t in sc["targets"]}
    cfg = _compose_config()
    daemons = [n for n, s in SERVICES.items() if s.get("command", [None])[0] == "run"]
    assert targets == {f"{SERVICES[n]['hostname']}:{cfg.daemon.http.port}" for n in daemons}
    assert prom["rule_files"] == ["alerts.yml"]
    mounts = SERVICES["prometheus"]["volumes"]
    assert "./prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in mounts


def test_grafana_gets_the_provisioning_and_dashboards() -> None:
    mounts = SERVICES["grafana"]["volumes"]
    for folder in ("./grafana/provisioning/datasources", "./grafana/provisioning/dashboards", "./grafana/dashboards"):
        assert any(m.startswith(folder + ":") for m in mounts), folder
    provider = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/parity.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert f"./grafana/dashboards:{path}:ro" in mounts


# --- compose/parity.yaml --------------------------------------------------------------------------


def test_compose_config_is_valid_and_listens_beyond_loopback() -> None:
    cfg = _compose_config()
    assert cfg.daemon.http.host == "0.0.0.0"  # noqa: S104 (inside a container network, on purpose)
    health = " ".join(SERVICES["parity-1"]["healthcheck"]["test"])
    assert f":{cfg.daemon.http.port}/healthz" in health
    assert cfg.dynamodb.endpoint == "http://dynamodb:8000"
    assert cfg.daemon.state_dir.startswith("/var/lib/parity/")


def test_compose_config_maps_the_tables_exactly_as_the_example() -> None:
    example = load_config(ROOT / "examples" / "payments.yaml",
                          env={"PARITY_PG_DSN": "host=x", "PARITY_KAFKA_BOOTSTRAP": "k:9092"})
    assert _compose_config().tables == example.tables


# --- Kafka Connect connector vs the local bridge ---------------------------------------------------


def test_the_connector_and_the_bridge_read_the_same_settings_file() -> None:
    from parity.devstack import connector as bridge

    assert bridge.SETTINGS_FILE.resolve() == register.SETTINGS_FILE.resolve()
    _name, merged = register.load()
    shared = bridge.load_settings()
    assert shared, "no shared settings"
    for key, value in shared.items():
        assert merged.get(key) == value, f"{key}: Connect gets {merged.get(key)!r}, the bridge uses {value!r}"


def test_converter_and_decoding_settings_are_shared_not_per_deployment() -> None:
    shared = json.loads((ROOT / "debezium" / "connector-settings.json").read_text())
    for key in ("decimal.handling.mode", "time.precision.mode", "tombstones.on.delete", "topic.prefix",
                "key.converter.schemas.enable", "value.converter.schemas.enable"):
        assert key in shared, key
    deployment = json.loads((ROOT / "debezium" / "connector.json").read_text())["config"]
    assert not set(deployment) & set(shared), "a shared key repeated in connector.json can drift apart"


def test_a_deployment_key_contradicting_a_shared_one_is_refused() -> None:
    with pytest.raises(register.ConnectorConfigError, match=r"decimal\.handling\.mode"):
        register.merge({"decimal.handling.mode": "precise"}, {"decimal.handling.mode": "string"})
    assert register.merge({"tombstones.on.delete": True}, {"tombstones.on.delete": "true"}) == {
        "tombstones.on.delete": "true"
    }


def test_the_connector_captures_what_the_daemons_verify() -> None:
    cfg = _compose_config()
    _name, merged = register.load()
    assert merged["topic.prefix"] == cfg.kafka.topic_prefix
    captured = set(merged["table.include.list"].split(","))
    assert {t.source for t in cfg.tables} <= captured
    assert int(merged["topic.creation.default.partitions"]) >= 2


def test_connector_secrets_are_worker_side_placeholders() -> None:
    _name, merged = register.load()
    env = _env_file()
    assert merged["database.password"] == "${env:POSTGRES_PASSWORD}"
    for value in merged.values():
        for var in re.findall(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}", value):
            assert var in env, f"{var} is not in .env.example"
    connect = SERVICES["connect"]["environment"]
    assert connect["CONNECT_CONFIG_PROVIDERS"] == "env"
    assert connect["CONNECT_CONFIG_PROVIDERS_ENV_CLASS"].endswith("EnvVarConfigProvider")


# --- Dockerfile -------------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_pinned_non_root_with_healthz() -> None:
    text = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base and re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base.group(1))
    stages = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert len(stages) >= 2 and all(s == "${PYTHON_IMAGE}" for s in stages)
    user = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert user and user[-1].split(":")[0] not in ("root", "0")
    assert re.search(r'^ENTRYPOINT \["parity"\]$', text, re.MULTILINE)
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", text, re.MULTILINE)


# --- the workload's items vs parity's mapping ---------------------------------------------------------


def _row(**overrides: Any) -> dict[str, Any]:
    utc = dt.UTC
    row: dict[str, Any] = {
        "payment_id": 4711,
        "customer_id": 42,
        "loan_id": 900,
        "amount": Decimal("1250.50"),
        "payment_date": dt.datetime(2024, 3, 1, 12, 0, 5, tzinfo=utc),
        "method": "ACH",
        "status": "SETTLED",
        "transaction_reference": "TX-00ab",
        "processed_date": dt.datetime(2024, 3, 1, 12, 1, 0, 123456, tzinfo=utc),
        "created_at": dt.datetime(2024, 3, 1, 12, 0, 5, 999999, tzinfo=utc),
        "updated_at": dt.datetime(2024, 3, 1, 14, 0, 0, 1000, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    }
    row.update(overrides)
    return row


@pytest.mark.parametrize("row", [_row(), _row(processed_date=None, transaction_reference=None, amount=Decimal("7"))])
def test_the_workloads_item_is_what_parity_expects(row: dict[str, Any]) -> None:
    mapper = ItemMapper(_compose_config().table("public.payments"))
    written = workload.payment_item(row)
    assert isinstance(compare(mapper, mapper.item(row), written), Match)
    assert workload.payment_key(row) == mapper.key(row)


def test_an_injected_wrong_amount_is_a_value_mismatch() -> None:
    mapper = ItemMapper(_compose_config().table("public.payments"))
    row = _row()
    written = workload.payment_item(row)
    written["Amount"] += Decimal("0.01")
    result = compare(mapper, mapper.item(row), written)
    assert isinstance(result, Mismatch) and result.kind is MismatchKind.VALUE_MISMATCH
    assert [d.attribute for d in result.diffs] == ["Amount"]


# --- IAM policies ---------------------------------------------------------------------------------------

IAM = ROOT / "docs" / "iam"
_ARN = re.compile(r"arn:aws:dynamodb:[a-z0-9-]+:\d{12}:table/[A-Za-z0-9_.-]{3,255}(/index/[A-Za-z0-9_.-]{3,255})?")
_WRITES = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem",
           "dynamodb:TransactWriteItems", "dynamodb:ConditionCheckItem"}


def _actions(policy: str) -> set[str]:
    doc = json.loads((IAM / f"{policy}.json").read_text())
    return {a for s in doc["Statement"] if s["Effect"] == "Allow" for a in s["Action"]}


@pytest.mark.parametrize("path", sorted(IAM.glob("*.json")), ids=lambda p: p.name)
def test_iam_policies_are_valid_json_scoped_to_tables_and_indexes(path: Path) -> None:
    doc = json.loads(path.read_text())
    assert doc["Version"] == "2012-10-17"
    assert doc["Statement"]
    for statement in doc["Statement"]:
        assert statement["Effect"] == "Allow" and statement["Sid"]
        assert isinstance(statement["Action"], list) and statement["Action"]
        assert all("*" not in a for a in statement["Action"]), "no wildcard actions"
        assert isinstance(statement["Resource"], list) and statement["Resource"]
        for arn in statement["Resource"]:
            assert _ARN.fullmatch(arn), f"{path.name}: {arn} is not scoped to one table or index"


_OPERATIONS = ("BatchGetItem", "GetItem", "Query", "Scan", "PutItem", "UpdateItem", "DeleteItem",
               "BatchWriteItem", "TransactWriteItems", "TransactGetItems", "DescribeTable")


# A call site: `store.call("Scan", ...)` (the name may be on the next line) or `operation, ... = "PutItem"`;
# not a mere mention such as a tuple of operation names.
_CALLED = re.compile(r'(?:\.call\(\s*|\boperation(?:, \w+)* = )"(\w+)"')


def _operations(*patterns: str) -> set[str]:
    """DynamoDB operations the code names (`store.call("Scan", ...)`, `operation = "PutItem"`), plus
    the one behind the store's `batch_get` helper."""
    ops: set[str] = set()
    for pattern in patterns:
        for path in ROOT.glob(pattern):
            text = path.read_text()
            named = {op for op in _CALLED.findall(text) if op in _OPERATIONS}
            if "TransactWriteItems" in named:
                # No IAM action of that name: each item of a transaction is authorized by its own
                # action (AWS: "Using IAM with DynamoDB transactions").
                named.discard("TransactWriteItems")
                named |= {f"{kind}Item" for kind in ("Update", "Delete", "Put") if f'{{"{kind}":' in text}
            ops |= named
            if ".batch_get(" in text:
                ops.add("BatchGetItem")
    return {f"dynamodb:{op}" for op in ops}


def test_verify_is_read_only_and_covers_what_the_daemon_reads() -> None:
    verify = _actions("verify")
    assert not verify & _WRITES
    reads = _operations("parity/daemon/*.py") - _operations("parity/daemon/shadow.py")
    assert reads, "found no DynamoDB call in the daemon"
    assert reads <= verify
    assert verify == {"dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:DescribeTable"}


def test_shadow_adds_exactly_the_writes_shadow_mode_makes() -> None:
    shadow = _actions("shadow")
    writes = _operations("parity/daemon/shadow.py")
    assert writes, "found no DynamoDB call in shadow mode"
    assert shadow - _actions("verify") == writes


def test_reconcile_is_read_only_and_repair_adds_only_writes() -> None:
    reconcile = _actions("reconcile")
    assert not reconcile & _WRITES
    assert _operations("parity/reconcilers/*.py") - _WRITES <= reconcile
    assert {"dynamodb:Scan", "dynamodb:GetItem", "dynamodb:DescribeTable"} <= reconcile
    repair = _actions("reconcile-repair")
    assert repair - reconcile <= _WRITES and repair >= reconcile
    assert _operations("parity/reconcilers/*.py") <= repair
