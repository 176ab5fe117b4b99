"""Read a YAML configuration file into a frozen `ParityConfig`, or one clear `ConfigError`.

Substitutions, in any string, before validation:

- `${NAME}` / `${NAME:-default}`: the environment variable. When NAME is unset and NAME_FILE is
  set (the Docker / Kubernetes convention), the content of the file NAME_FILE names; both set is an
  error. A missing variable is an error naming the field that used it.
- `${file:/path}`: the content of a file (a mounted Kubernetes or Docker secret). One trailing
  newline (`\n` or `\r\n`) is removed, because `echo` and most secret tooling add one. A relative
  path is relative to the current directory.

`postgres.dsn` is a connection string, so a substitution inside it is made into the parsed DSN,
not into its text: a value is taken literally, whatever it holds (spaces, quotes, `%`, `@`, `#`,
`=`, backslashes), in the key=value form and in the URL form alike (no percent-decoding). Only a
DSN whose structure comes from variables (`${PARITY_PG_DSN}`, `host=db ${EXTRA}`) is substituted
as text and must then be valid by itself. Either way the DSN is parsed when the config is loaded:
a malformed one is `postgres.dsn: not a valid connection string (value not shown)`.

Errors never echo a value (a DSN password could be in it), only the path and the reason.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from parity.adapters.clients import INVALID_DSN, parse_dsn
from parity.core.config import ParityConfig, _PathError
from parity.core.errors import ConfigError

_ENV = re.compile(r"\$\{(?:file:(?P<file>[^}]+)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?)\}")
_DSN_PATH = ("postgres", "dsn")


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_\-]+")


def _loc(parts: tuple[int | str, ...] | list[int | str]) -> str:
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif _PLAIN_KEY.fullmatch(str(p)):
            out += ("." if out else "") + str(p)
        else:
            # A key with dots, spaces or control characters: quoted, so the error stays one line.
            out += f"[{json.dumps(str(p))}]"
    return out


def read_secret_file(path: str) -> str:
    """A secret file's text without its one trailing newline; ConfigError naming the path (never
    the content) when it cannot be read."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read secret file {path}: {exc.strerror or type(exc).__name__}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"secret file {path} is not UTF-8 text") from None
    return text.removesuffix("\n").removesuffix("\r")


PLACEHOLDER = "placeholder"
# Placeholders that make a field valid by itself (`parity config check` without the environment).
_PLACEHOLDERS = {("postgres", "dsn"): "host=placeholder dbname=placeholder",
                 ("kafka", "bootstrap_servers"): "placeholder:9092"}


class _Unset:
    """`parity config check`: an unset `${VAR}` is checked with a placeholder, and noted."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.paths: set[str] = set()

    def value(self, name: str, path: list[int | str], whole: bool) -> str:
        self.paths.add(_loc(path))
        self.notes.append(f"{_loc(path)}: ${{{name}}} is unset, checked with a placeholder")
        return _PLACEHOLDERS.get(tuple(path), PLACEHOLDER) if whole else PLACEHOLDER  # type: ignore[arg-type]


def _resolver(path: list[int | str], env: Mapping[str, str], unset: _Unset | None = None,
              whole: bool = False) -> Callable[[re.Match[str]], str]:
    def resolve(m: re.Match[str]) -> str:
        try:
            if m.group("file") is not None:
                return read_secret_file(m.group("file").strip())
            name, default = m.group("name"), m.group("default")
            from_file = env.get(f"{name}_FILE")
            if name in env and from_file is not None:
                raise ConfigError(f"both {name} and {name}_FILE are set; set one")
            if name in env:
                return env[name]
            if from_file is not None:
                return read_secret_file(from_file)
            if default is not None:
                return default
            if unset is not None:
                return unset.value(name, path, whole)
            raise ConfigError(f"environment variable {name} is not set")
        except ConfigError as exc:
            raise ConfigError(exc.reason, path=_loc(path)) from None

    return resolve


def _interpolate(node: Any, path: list[int | str], env: Mapping[str, str], problems: list[ConfigError],
                 unset: _Unset | None = None) -> Any:
    """`node` with every substitution made; a substitution that fails is collected in `problems`
    (so every error of the file is reported at once) and its text left as it was."""
    if isinstance(node, str):
        try:
            if tuple(path) == _DSN_PATH:
                return _interpolate_dsn(node, path, env, unset)
            whole = _ENV.fullmatch(node) is not None
            return _ENV.sub(_resolver(path, env, unset, whole), node)
        except ConfigError as exc:
            problems.append(exc)
            return node
    if isinstance(node, list):
        return [_interpolate(v, [*path, i], env, problems, unset) for i, v in enumerate(node)]
    if isinstance(node, dict):
        return {k: _interpolate(v, [*path, k], env, problems, unset) for k, v in node.items()}
    return node


def _interpolate_dsn(template: str, path: list[int | str], env: Mapping[str, str], unset: _Unset | None) -> str:
    from psycopg.conninfo import make_conninfo

    resolve = _resolver(path, env, unset, whole=_ENV.fullmatch(template) is not None)
    values: list[str] = []
    marker = "parityvar"
    while marker in template:  # a marker must not already occur in the text
        marker += "x"

    def hold(m: re.Match[str]) -> str:
        values.append(resolve(m))
        return f"{marker}{len(values) - 1}z"

    held = _ENV.sub(hold, template)
    hole = re.compile(re.escape(marker) + r"(\d+)z")

    def fill(text: str) -> str:
        return hole.sub(lambda h: values[int(h.group(1))], text)

    parsed = parse_dsn(held) if values else None
    if parsed is not None:
        # Each variable sits inside one value: substitute into the parsed values, and let
        # make_conninfo quote them, so a space or a quote in a password stays part of it.
        return make_conninfo("", **{k: fill(str(v)) for k, v in parsed.items()})
    text = fill(held)
    if not text.strip():
        raise ConfigError("empty", path=_loc(path))
    if parse_dsn(text) is None:
        raise ConfigError(INVALID_DSN, path=_loc(path))
    return text


def _message(err: Mapping[str, Any]) -> tuple[str, str]:
    loc = [p for p in err.get("loc", ()) if p not in ("function-after", "function-before")]
    exc = (err.get("ctx") or {}).get("error")
    path = _loc(loc)
    if isinstance(exc, _PathError):
        path = f"{path}.{exc.sub_path}" if path else exc.sub_path
        return path, str(exc)
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return path, "unknown key"
    if kind == "missing":
        return path, "required"
    msg = str(err.get("msg", "invalid"))
    msg = msg.removeprefix("Value error, ")
    return path, msg


_TABLE_FIELD = re.compile(r"tables\[(?P<i>\d+)\]\.(?P<field>[A-Za-z0-9_\-]+)")


def _from_defaults(data: Mapping[str, Any], path: str) -> str:
    """`tables[i].<field>...` of a value that came from `defaults:` (the table does not set it) is
    reported as `defaults.<field>...`, where it must be fixed."""
    m = _TABLE_FIELD.match(path)
    defaults, tables = data.get("defaults"), data.get("tables")
    if m is None or not isinstance(defaults, dict) or not isinstance(tables, list):
        return path
    i, field = int(m.group("i")), m.group("field")
    if i < len(tables) and isinstance(tables[i], dict) and field in defaults and field not in tables[i]:
        return "defaults" + path[len(f"tables[{i}]"):]
    return path


def _validation_errors(exc: ValidationError, data: Mapping[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    errs = exc.errors(include_url=False, include_input=False)
    paths = [_message(e)[0] for e in errs]
    for err, path in zip(errs, paths, strict=True):
        if err.get("type") == "too_short" and any(p.startswith(path + "[") for p in paths):
            continue  # "tables: at least 1 item" because its one item is invalid: that item's error says it
        path, msg = _message(err)
        entry = (_from_defaults(data, path), msg)
        if entry not in out:  # one default wrong in every table is one error
            out.append(entry)
    return out


def parse_config(data: Any, *, source: str = "<config>", env: Mapping[str, str] | None = None,
                 notes: list[str] | None = None) -> ParityConfig:
    """A validated config, or a ConfigError carrying every error of the file (`.lines`). With
    `notes` (`parity config check`), an unset `${VAR}` is checked with a placeholder and a note is
    added instead of an error."""
    if not isinstance(data, dict):
        raise ConfigError("the file must hold a mapping (postgres, kafka, tables, ...)", source=source)
    problems: list[ConfigError] = []
    unset = _Unset() if notes is not None else None
    data = _interpolate(data, [], os.environ if env is None else env, problems, unset)
    if unset is not None and notes is not None:
        notes.extend(unset.notes)
    errors = [(e.path or "", e.reason) for e in problems]
    placeheld = unset.paths if unset is not None else set()
    try:
        config = ParityConfig.model_validate(data)
    except ValidationError as exc:
        bad = {p for p, _ in errors}
        for p, m in _validation_errors(exc, data):
            if p in bad:
                continue  # its substitution failed: that error says it already
            if p in placeheld and notes is not None:
                # The placeholder does not fit the field (a number, a choice): not checked, noted.
                notes.append(f"{p}: not checked: the placeholder of the unset variable is refused ({m})")
                continue
            errors.append((p, m))
        config = None
    if errors:
        first, *rest = [ConfigError(m, source=source, path=p or None) for p, m in errors]
        raise ConfigError(first.reason, source=source, path=first.path, more=tuple(rest))
    if config is None:
        # Only placeholders were refused: check the rest with those fields left at their defaults.
        trimmed = _without(data, placeheld)
        try:
            config = ParityConfig.model_validate(trimmed)
        except ValidationError as exc:
            first, *rest = [ConfigError(m, source=source, path=p or None)
                            for p, m in _validation_errors(exc, trimmed)]
            raise ConfigError(first.reason, source=source, path=first.path, more=tuple(rest)) from None
    return config


def _without(node: Any, paths: set[str], path: tuple[int | str, ...] = ()) -> Any:
    """`node` without the mapping entries at `paths` (list items stay: removing one would shift the
    indexes of the others)."""
    if isinstance(node, dict):
        return {k: _without(v, paths, (*path, k)) for k, v in node.items() if _loc([*path, k]) not in paths}
    if isinstance(node, list):
        return [_without(v, paths, (*path, i)) for i, v in enumerate(node)]
    return node


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader keeps the last of two equal keys silently; this one records each
    duplicate (line and key) and the loader refuses the file."""

    duplicates: list[tuple[int, str]]

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _value in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    self.duplicates.append((key_node.start_mark.line + 1, str(key)))
                seen.add(key)
            except TypeError:  # an unhashable key: SafeLoader's own error follows
                pass
        return super().construct_mapping(node, deep=deep)


def _yaml(text: str, source: str) -> Any:
    loader: _UniqueKeyLoader | None = None
    try:
        loader = _UniqueKeyLoader(text)  # the reader already rejects unprintable characters
        loader.duplicates = []
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else None
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(str(problem), source=source, path=where) from None
    finally:
        if loader is not None:
            loader.dispose()
    if loader.duplicates:
        first, *rest = [ConfigError(f"duplicate key {key!r} (a YAML mapping holds each key once)",
                                    source=source, path=f"line {line}") for line, key in loader.duplicates]
        raise ConfigError(first.reason, source=source, path=first.path, more=tuple(rest))
    return data


def load_config(path: str | Path, *, env: Mapping[str, str] | None = None,
                notes: list[str] | None = None) -> ParityConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", source=p.name) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start})", source=p.name) from None
    return parse_config(_yaml(text, p.name), source=p.name, env=env, notes=notes)
