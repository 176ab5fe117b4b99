"""Production code records metrics only through the catalog's methods, and every metric the
catalog declares is recorded by one of them.

The methods check label values against their fixed sets (tests/unit/test_metrics_catalog.py); a
`.labels(...)` call outside the catalog would skip that check in production while the tests of
the catalog kept passing. A declared metric nothing records is a panel or alert reading zero
forever, which looks like health.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from parity.metrics.catalog import Metrics

pytestmark = pytest.mark.unit

PARITY = Path(__file__).resolve().parents[2] / "parity"
CATALOG = PARITY / "metrics" / "catalog.py"
WRITES = frozenset({"labels", "inc", "dec", "set", "observe", "remove", "clear"})


def _metric_attributes() -> set[str]:
    metrics = Metrics(CollectorRegistry())
    return {name for name, value in vars(metrics).items() if isinstance(value, MetricWrapperBase)}


def _direct_writes(tree: ast.AST, attributes: set[str]) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in WRITES
            and isinstance(node.func.value, ast.Attribute)
            and node.func.value.attr in attributes
        ):
            found.append(f"line {node.lineno}: .{node.func.value.attr}.{node.func.attr}(...)")
    return found


def test_the_check_finds_a_direct_write() -> None:
    tree = ast.parse("m.events.labels(table='t', op='c', outcome='x').inc(2)\nm.event('t', 'c', 'match')\n")
    assert _direct_writes(tree, {"events"}) == ["line 1: .events.labels(...)"]


def test_no_module_outside_the_catalog_writes_a_metric_directly() -> None:
    attributes = _metric_attributes()
    assert {"events", "assigned_partitions", "reconcile_interval"} <= attributes
    offenders = {
        str(path.relative_to(PARITY)): writes
        for path in PARITY.rglob("*.py")
        if path != CATALOG and (writes := _direct_writes(ast.parse(path.read_text()), attributes))
    }
    assert offenders == {}


def _called_names(tree: ast.AST) -> set[str]:
    return {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }


def test_every_declared_metric_is_recorded_by_a_method_production_calls() -> None:
    attributes = _metric_attributes()
    catalog = ast.parse(CATALOG.read_text())
    [cls] = [n for n in catalog.body if isinstance(n, ast.ClassDef) and n.name == "Metrics"]
    methods = {f.name: f for f in cls.body if isinstance(f, ast.FunctionDef)}
    called = {"__init__"}  # build_info and the window length are set once, when the catalog is built
    for path in PARITY.rglob("*.py"):
        if path != CATALOG:
            called |= _called_names(ast.parse(path.read_text())) & set(methods)
    while True:  # the catalog's methods call each other (verdicts_batch -> refresh_drift_ratio)
        more = {n for m in called for n in _called_names(methods[m]) if n in methods} - called
        if not more:
            break
        called |= more
    # Module-level helpers of the catalog that write to a metric passed in (they call a write
    # method on something other than `self.<metric>`, e.g. a labelled child kept per table).
    writers = {
        f.name
        for f in catalog.body
        if isinstance(f, ast.FunctionDef)
        and any(
            isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in WRITES - {"labels"}
            for n in ast.walk(f)
        )
    }
    recorded = set()
    for name in called:
        tree = methods[name]
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in WRITES - {"labels", "remove", "clear"}
            ):
                # self.<metric>.set(...) or self.<metric>.labels(...).inc(...)
                target = node.func.value
                if isinstance(target, ast.Call) and isinstance(target.func, ast.Attribute):
                    target = target.func.value
                if isinstance(target, ast.Attribute) and target.attr in attributes:
                    recorded.add(target.attr)
            # _observe_per_table(self.<metric>, ...): a catalog helper that writes the metric it is given
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in writers:
                recorded |= {a.attr for a in node.args if isinstance(a, ast.Attribute) and a.attr in attributes}
    assert sorted(attributes - recorded) == []
