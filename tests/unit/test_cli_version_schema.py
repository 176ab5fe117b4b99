"""`parity --version` and `parity config schema`: the schema editors get is the one the loader
enforces, so every shipped example validates against it and a misspelt key does not."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from parity.cli import app

pytestmark = pytest.mark.unit

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


def _schema() -> dict[str, Any]:
    result = CliRunner().invoke(app, ["config", "schema"])
    assert result.exit_code == 0, result.output
    schema: dict[str, Any] = json.loads(result.stdout)
    return schema


def test_version_prints_the_installed_package_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"parity {version('parity')}"


def test_schema_is_a_valid_draft_2020_12_schema_of_the_top_level_config() -> None:
    schema = _schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert {"postgres", "kafka", "tables"} <= set(schema["properties"])
    assert set(schema["required"]) >= {"postgres", "kafka", "tables"}


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_validates_against_the_schema(example: Path) -> None:
    validator = jsonschema.Draft202012Validator(_schema())
    config = yaml.safe_load(example.read_text())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(config)]
    assert errors == []


def test_schema_rejects_an_unknown_key_and_a_wrong_type_like_the_loader() -> None:
    validator = jsonschema.Draft202012Validator(_schema())
    config = yaml.safe_load(EXAMPLES[0].read_text())
    config["tables"][0]["modee"] = "verify"
    assert any("modee" in e.message for e in validator.iter_errors(config))
    config = yaml.safe_load(EXAMPLES[0].read_text())
    config["tables"][0]["mode"] = "mirror"
    assert list(validator.iter_errors(config))


def test_a_bare_column_entry_is_valid_as_the_loader_accepts_it() -> None:
    """`column:` with nothing after it is YAML null: the loader takes it as the default rule."""
    validator = jsonschema.Draft202012Validator(_schema())
    config = yaml.safe_load(EXAMPLES[0].read_text())
    first = next(iter(config["tables"][0]["columns"]))
    config["tables"][0]["columns"][first] = None
    assert list(validator.iter_errors(config)) == []


def test_a_key_is_required_in_each_table_unless_defaults_set_it() -> None:
    validator = jsonschema.Draft202012Validator(_schema())
    config = yaml.safe_load(EXAMPLES[0].read_text())
    config.pop("defaults", None)
    table = config["tables"][0]
    target = table.pop("target", None) or "Payments"
    assert any("'target' is a required property" in e.message for e in validator.iter_errors(config))
    config["defaults"] = {"target": target}
    assert list(validator.iter_errors(config)) == []
    config["defaults"] = {"targett": target}
    assert list(validator.iter_errors(config))
