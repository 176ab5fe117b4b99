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


def violations(source: str) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in FORBIDDEN]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module and node.module.split(".")[0] in FORBIDDEN:
                found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
            found.append(f"{node.func.id}() at line {node.lineno}")
    return found


MODULES = sorted(CORE.rglob("*.py"))


def test_the_core_has_modules() -> None:
    names = {p.stem for p in MODULES}
    assert {"values", "mapping", "normalize", "compare", "digest", "config", "events"} <= names


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.stem)
def test_core_module_is_pure(module: Path) -> None:
    assert violations(module.read_text(encoding="utf-8")) == []


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
