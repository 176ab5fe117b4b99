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

from parity.clients import INVALID_DSN, parse_dsn
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


def _resolver(path: list[int | str], env: Mapping[str, str]) -> Callable[[re.Match[str]], str]:
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
            raise ConfigError(f"environment variable {name} is not set")
        except ConfigError as exc:
            raise ConfigError(exc.reason, path=_loc(path)) from None

    return resolve


def _interpolate(node: Any, path: list[int | str], env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        if tuple(path) == _DSN_PATH:
            return _interpolate_dsn(node, path, env)
        return _ENV.sub(_resolver(path, env), node)
    if isinstance(node, list):
        return [_interpolate(v, [*path, i], env) for i, v in enumerate(node)]
    if isinstance(node, dict):
        return {k: _interpolate(v, [*path, k], env) for k, v in node.items()}
    return node


def _interpolate_dsn(template: str, path: list[int | str], env: Mapping[str, str]) -> str:
    from psycopg.conninfo import make_conninfo

    resolve = _resolver(path, env)
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


def parse_config(data: Any, *, source: str = "<config>", env: Mapping[str, str] | None = None) -> ParityConfig:
    if not isinstance(data, dict):
        raise ConfigError("the file must hold a mapping (postgres, kafka, tables, ...)", source=source)
    try:
        data = _interpolate(data, [], os.environ if env is None else env)
    except ConfigError as exc:
        raise ConfigError(exc.reason, source=source, path=exc.path) from None
    try:
        return ParityConfig.model_validate(data)
    except ValidationError as exc:
        path, msg = _message(exc.errors(include_url=False, include_input=False)[0])
        more = exc.error_count() - 1
        if more:
            msg += f" (and {more} more error{'s' if more > 1 else ''})"
        raise ConfigError(msg, source=source, path=path or None) from None


def load_config(path: str | Path, *, env: Mapping[str, str] | None = None) -> ParityConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", source=p.name) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start})", source=p.name) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else None
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(str(problem), source=p.name, path=where) from None
    return parse_config(data, source=p.name, env=env)
