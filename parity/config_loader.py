"""Read a YAML configuration file into a frozen `ParityConfig`, or one clear `ConfigError`.

`${NAME}` and `${NAME:-default}` in any string are replaced from the environment before
validation; a missing variable is an error naming the field that used it. Errors never echo a
value (a DSN password could be in it), only the path and the reason.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from parity.core.config import ParityConfig, _PathError
from parity.core.errors import ConfigError

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


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


def _interpolate(node: Any, path: list[int | str], env: Mapping[str, str]) -> Any:
    if isinstance(node, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(f"environment variable {name} is not set", path=_loc(path))

        return _ENV.sub(sub, node)
    if isinstance(node, list):
        return [_interpolate(v, [*path, i], env) for i, v in enumerate(node)]
    if isinstance(node, dict):
        return {k: _interpolate(v, [*path, k], env) for k, v in node.items()}
    return node


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
