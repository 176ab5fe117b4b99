"""The compose demo's init script and workload against real PostgreSQL and DynamoDB Local: the tables
are created (idempotently), and after a run with injected drift exactly the payments the workload
drifted differ between the stores, judged by parity's own mapping and comparison."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from parity.config_loader import load_config
from parity.core.compare import Match, compare
from parity.core.mapping import ItemMapper
from parity.devstack.dynamodb import CREDENTIALS
from tests.conftest import unique

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _workload() -> ModuleType:
    name = "_deploy_workload"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "compose" / "workload.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def payments_db(pg: Any) -> Any:
    name = unique("payments")
    with pg.connect() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    dsn = make_conninfo(pg.dsn, dbname=name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute((ROOT / "examples" / "payments.sql").read_text())
    yield dsn
    with pg.connect() as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def _create_tables(endpoint: str, request_file: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PARITY_DYNAMODB_ENDPOINT": endpoint, "AWS_REGION": CREDENTIALS["region_name"],
           "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
           "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"]}
    return subprocess.run([sys.executable, str(ROOT / "compose" / "create_tables.py"), str(request_file)],
                          env=env, capture_output=True, text=True, timeout=120)


def test_workload_drift_is_exactly_what_parity_reports(payments_db: str, dynamodb: Any, tmp_path: Path) -> None:
    table_name = unique("Payments")
    requests = json.loads((ROOT / "examples" / "payments.dynamodb.json").read_text())
    requests[0]["TableName"] = table_name
    request_file = tmp_path / "tables.json"
    request_file.write_text(json.dumps(requests))

    first = _create_tables(dynamodb.endpoint, request_file)
    assert first.returncode == 0 and f"{table_name}: created" in first.stdout, first.stderr
    again = _create_tables(dynamodb.endpoint, request_file)
    assert again.returncode == 0 and f"{table_name}: exists" in again.stdout, again.stderr

    wl = _workload()
    table = boto3.resource("dynamodb", endpoint_url=dynamodb.endpoint, **CREDENTIALS).Table(table_name)
    with psycopg.connect(payments_db) as conn:
        app = wl.Application(conn, table, random.Random(20261122), drift_rate=0.25)
        for _ in range(120):
            app.step()
        with conn.cursor() as cur:
            cur.execute(f"SELECT {wl.COLUMNS} FROM public.payments")
            assert cur.description is not None
            names = [d.name for d in cur.description]
            rows = {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}

    # An update or delete finds no candidate row now and then (early on): then nothing changes.
    assert 100 <= app.tally.changes == sum(app.tally.by_op.values()) <= 120
    assert set(app.tally.by_op) == {"insert", "update", "delete"}
    assert app.tally.drifted_ids, "the seed injected no drift that survived"

    items: dict[int, dict[str, Any]] = {}
    scan: dict[str, Any] = {"Limit": 1000}
    while True:
        page = table.scan(**scan)
        items.update({int(i["PaymentId"]): i for i in page["Items"]})
        if "LastEvaluatedKey" not in page:
            break
        scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    cfg = load_config(ROOT / "compose" / "parity.yaml",
                      env={"POSTGRES_DB": "x", "POSTGRES_USER": "x", "POSTGRES_PASSWORD": "x"})
    mapper = ItemMapper(cfg.table("public.payments"))
    differing = {
        pid for pid in rows.keys() | items.keys()
        if not isinstance(compare(mapper, mapper.item(rows[pid]) if pid in rows else None, items.get(pid)), Match)
    }
    assert differing == app.tally.drifted_ids
