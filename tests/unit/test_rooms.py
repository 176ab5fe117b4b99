"""Every package under parity/ (a room) opens with a docstring saying what lives there and what does not."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PARITY = Path(__file__).resolve().parents[2] / "parity"
# The rooms as the project names them; discovery below must find at least these.
KNOWN_ROOMS = frozenset({"core", "daemon", "adapters", "reconcilers", "metrics", "doctor", "demo", "devstack"})
# A directory of Python modules, with or without an __init__.py (a missing one is a failure too).
ROOMS = sorted(
    d for d in PARITY.rglob("*")
    if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py"))
)


def test_discovery_finds_the_known_rooms() -> None:
    assert {d.relative_to(PARITY).as_posix() for d in ROOMS} >= KNOWN_ROOMS


def _docstring(room: Path) -> str | None:
    init = room / "__init__.py"
    if not init.exists():
        return None
    return ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))


@pytest.mark.parametrize(
    "room",
    [pytest.param(d, id=d.relative_to(PARITY).as_posix()) for d in ROOMS],
)
def test_room_says_its_purpose(room: Path) -> None:
    doc = _docstring(room)
    assert doc is not None and doc.strip(), f"{room.relative_to(PARITY.parent)}/__init__.py has no docstring"


def test_a_room_without_docstring_is_caught(tmp_path: Path) -> None:
    (tmp_path / "__init__.py").write_text('from os import path\n"""not a docstring: not the first statement"""\n')
    assert _docstring(tmp_path) is None
    (tmp_path / "__init__.py").unlink()
    assert _docstring(tmp_path) is None
    (tmp_path / "__init__.py").write_text('"""A room: what lives here."""\n')
    assert _docstring(tmp_path) == "A room: what lives here."
