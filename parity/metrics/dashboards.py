"""Reading PromQL out of the Grafana dashboards and alert rules, for checks against the catalog.

- `panel_queries(path)`: every panel target's expression with the template variables replaced by
  concrete values (`.*` for multi-value label variables), so the expressions can be sent to a real
  Prometheus as they are (the e2e check evaluates each one against a live daemon's metrics).
- `alert_expressions(path)`: the `expr` of every alerting/recording rule.
- `metric_names(expr)`: the metric names an expression selects (not functions, labels, keywords).
- `exposed_names(specs)`: the series names the catalog produces (`_bucket`, `_count`, `_sum` for
  histograms).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from parity.metrics.catalog import MetricSpec

# Values for Grafana's built-in and the dashboards' own variables. Label variables become `.*`
# because they are used as `label=~"$var"`.
DEFAULT_VARIABLES: Mapping[str, str] = {
    "table": ".*",
    "instance": ".*",
    "datasource": "prometheus",
    "__rate_interval": "1m",
    "__interval": "30s",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}

_VARIABLE = re.compile(r"\$\{(?P<braced>\w+)(?::\w+)?\}|\[\[(?P<bracketed>\w+)\]\]|\$(?P<plain>\w+)")

_KEYWORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "inf",
        "nan",
        "atan2",
    }
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*+)(?!\s*\()")


def substitute(expr: str, variables: Mapping[str, str] | None = None) -> str:
    values = {**DEFAULT_VARIABLES, **(variables or {})}

    def replace(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bracketed") or match.group("plain")
        if name not in values:
            raise KeyError(f"no value for dashboard variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(replace, expr)


def _panels(panels: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for panel in panels:
        yield panel
        # Collapsed rows keep their panels inside the row.
        yield from _panels(panel.get("panels", []))


def dashboard_panels(path: str | Path) -> list[Mapping[str, Any]]:
    """Every panel of a dashboard except row headers."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    return [p for p in _panels(doc.get("panels", [])) if p.get("type") != "row"]


def panel_queries(path: str | Path, variables: Mapping[str, str] | None = None) -> list[str]:
    """Every PromQL target of every panel, with template variables substituted."""
    return [
        substitute(str(target["expr"]), variables)
        for panel in dashboard_panels(path)
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def alert_expressions(path: str | Path) -> dict[str, str]:
    """alert (or record) name -> expression, from a Prometheus rule file."""
    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    for group in doc.get("groups", []):
        for rule in group.get("rules", []):
            found[str(rule.get("alert") or rule.get("record"))] = str(rule["expr"])
    return found


def metric_names(expr: str) -> set[str]:
    """Metric names selected by a PromQL expression.

    A small lexer, not a parser: strings, label matchers, range/subquery brackets and label lists
    of `by (...)`/`on (...)` are removed first, then any identifier not followed by `(` and not a
    keyword is a metric name. That is exact for the expressions parity's dashboards and rules use.
    """
    text = _STRING.sub('""', expr)
    text = _BRACES.sub("", text)
    text = _BRACKETS.sub("", text)
    text = _LABEL_LIST.sub("", text)
    text = re.sub(r"\b\d+(?:\.\d+)?(?:e[+-]?\d+)?(?:ms|s|m|h|d|w|y)?\b", " ", text)
    return {name for name in _IDENT.findall(text) if name.lower() not in _KEYWORDS}


def exposed_names(specs: Iterable[MetricSpec]) -> set[str]:
    """Series names the catalog produces, as they appear in PromQL."""
    names: set[str] = set()
    for spec in specs:
        if spec.type == "histogram":
            names.update(f"{spec.name}{suffix}" for suffix in ("_bucket", "_count", "_sum"))
        else:
            names.add(spec.name)
    return names
