"""parity/core is pure: no I/O, clocks or network imports, so it runs anywhere and tests fast."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

CORE = Path(__file__).resolve().parents[2] / "parity" / "core"
FORBIDDEN = frozenset(
    {
        "boto3",
        "botocore",
        "psycopg",
        "kafka",
        "confluent_kafka",
        "prometheus_client",
        "socket",
        "requests",
        "urllib",
        "subprocess",
        "os",
        "pathlib",
        "time",
        "threading",
        "sqlite3",
    }
)
FORBIDDEN_CALLS = frozenset({"open", "exec", "eval", "__import__"})
# plan.py compiles its per-schema decode + expect function from generated source, as dataclasses
# and attrs do. That source is built from the mapping config and the schema's field names only,
# each placed as a repr() literal (tests/unit/test_plan.py tries a hostile column name), so the
# exec there runs nothing a record or a config wrote. No other core module may call exec.
ALLOWED_CALLS: dict[str, frozenset[str]] = {"plan": frozenset({"exec"})}


def violations(source: str, allowed: frozenset[str] = frozenset()) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in FORBIDDEN]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module and node.module.split(".")[0] in FORBIDDEN:
                found.append(f"from {node.module} import ...")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in FORBIDDEN_CALLS - allowed
        ):
            found.append(f"{node.func.id}() at line {node.lineno}")
    return found


MODULES = sorted(CORE.rglob("*.py"))


def test_the_core_has_modules() -> None:
    names = {p.stem for p in MODULES}
    assert {"values", "mapping", "normalize", "compare", "digest", "config", "events"} <= names


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.stem)
def test_core_module_is_pure(module: Path) -> None:
    allowed = ALLOWED_CALLS.get(module.stem, frozenset())
    assert violations(module.read_text(encoding="utf-8"), allowed) == []


def test_exec_is_allowed_in_plan_only() -> None:
    assert violations("exec('x = 1')") == ["exec() at line 1"]
    assert violations("exec('x = 1')", ALLOWED_CALLS["plan"]) == []
    assert violations("eval('1')", ALLOWED_CALLS["plan"]) == ["eval() at line 1"]


@pytest.mark.parametrize(
    "source",
    [
        "import os",
        "import os.path",
        "from time import monotonic",
        "import boto3.session",
        "from urllib.parse import quote",
        "def f():\n    import socket",
        "data = open('x').read()",
    ],
)
def test_the_checker_catches_impurity(source: str) -> None:
    assert violations(source)


def test_the_checker_allows_pure_imports() -> None:
    assert violations("import datetime\nfrom decimal import Decimal\nfrom .values import number\nimport hashlib") == []
