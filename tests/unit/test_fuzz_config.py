"""Config fuzz: every example configuration, mutated at random (values of the wrong type,
keys removed, unknown keys, lists for mappings, hostile strings, env references) and random YAML
text. The loader either returns a config or raises one `ConfigError` whose text is one line and
names the field; never a traceback, never another exception."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parity.config_loader import load_config, parse_config
from parity.core.config import ParityConfig
from parity.core.errors import ConfigError

pytestmark = pytest.mark.unit

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ENV = {
    "PARITY_PG_DSN": "postgresql://parity:s3cret@localhost:5432/app",
    "PARITY_KAFKA_BOOTSTRAP": "localhost:9092",
}
BASES = {p.stem: yaml.safe_load(p.read_text()) for p in sorted(EXAMPLES.glob("*.yaml"))}

hostile = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(
        ["", " ", "${NOT_SET}", "${A:-}", "'; DROP TABLE x; --", '"q"', "{x}", "{", "\x00", "é" * 50, "1e999"]
    )
    | st.lists(st.integers(), max_size=3)
    | st.dictionaries(st.text(max_size=5), st.integers(), max_size=3)
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.extend(_paths(v, (*prefix, i)))
    return out


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for p in path[:-1]:
        doc = doc[p]
    return doc


def _assert_one_line(exc: ConfigError) -> None:
    text = str(exc)
    assert text.strip(), "a ConfigError must say what is wrong"
    assert "\n" not in text, f"not one line: {text!r}"
    assert "Traceback" not in text and "pydantic" not in text.lower(), text
    assert "s3cret" not in text, "a config error must not echo the DSN password"


@pytest.mark.parametrize("name", sorted(BASES))
def test_every_example_is_valid(name: str) -> None:
    assert isinstance(parse_config(copy.deepcopy(BASES[name]), source=name, env=ENV), ParityConfig)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(sorted(BASES)),
    st.lists(
        st.tuples(st.integers(0, 10**6), st.sampled_from(["set", "delete", "add", "wrap"]), hostile),
        min_size=1,
        max_size=3,
    ),
)
def test_mutated_configs_give_a_one_line_error_naming_the_field(name: str, mutations: list[Any]) -> None:
    doc = copy.deepcopy(BASES[name])
    for which, how, value in mutations:
        paths = _paths(doc)
        if not paths:
            break
        path = paths[which % len(paths)]
        parent = _parent(doc, path)
        key = path[-1]
        if how == "set":
            parent[key] = value
        elif how == "delete":
            del parent[key]
        elif how == "add" and isinstance(parent, dict):
            parent[f"unknown_{which % 7}"] = value
        elif how == "wrap":
            parent[key] = [parent[key]]
    try:
        parse_config(doc, source=f"{name}.yaml", env=ENV)
    except ConfigError as exc:
        _assert_one_line(exc)
        # The error names where: a field path (a bad document as a whole has none to name).
        assert exc.path or exc.reason.startswith("the file must hold a mapping"), str(exc)
    except Exception as exc:  # the point: nothing else may escape
        pytest.fail(f"{type(exc).__name__} escaped parse_config: {exc}")


YAML_ODDITIES = ["a: [", "- - -", "a: *x", "? ?", "tables: !!python/object:os.system x", "\t:", "a: b: c"]


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.text(max_size=200) | st.sampled_from(YAML_ODDITIES))
def test_random_yaml_text_gives_a_config_error_not_a_traceback(tmp_path: Path, text: str) -> None:
    path = tmp_path / "parity.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path, env=ENV)
    except ConfigError as exc:
        _assert_one_line(exc)
        assert str(exc).startswith("parity.yaml"), str(exc)
    except Exception as exc:
        pytest.fail(f"{type(exc).__name__} escaped load_config: {exc}")


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"postgres:\n  dsn: caf\xe9\n")
    with pytest.raises(ConfigError):
        load_config(bad, env=ENV)
