"""Assemble a :class:`Config` from defaults, a YAML file, ``FAULTLENS_*`` variables and flags.

Later sources win: file < environment < command-line flags. Environment variables name a
key path with double underscores: ``FAULTLENS_STORE__DATA_DIR=/var/lib/faultlens`` sets
``store.data_dir``; values are parsed as YAML scalars, so ``8080`` is a number and
``[a, b]`` a list.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from faultlens.config.model import Config
from faultlens.errors import ConfigError

ENV_PREFIX = "FAULTLENS_"


def _set_path(tree: dict[str, Any], path: list[str], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(".".join(path), f"'{part}' is not a section")
        node = child
    node[path[-1]] = value


def _from_env(environ: Mapping[str, str], names: dict[str, str] | None = None) -> dict[str, Any]:
    """The ``FAULTLENS_*`` variables as a tree; ``names`` gets each key path's variable."""
    tree: dict[str, Any] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if not path:
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            value = raw
        _set_path(tree, path, value)
        if names is not None:
            names[".".join(path)] = name
    return tree


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError("", f"cannot read config file {path}: {e.strerror or e}") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError("", f"{path} is not valid YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("", f"{path} must hold a mapping at the top level")
    return data


def _describe(error: ValidationError, env_names: Mapping[str, str]) -> ConfigError:
    """Every problem pydantic found, each naming its key path, and the environment variable
    it came from when it came from one."""
    problems: list[tuple[str, str]] = []
    for e in error.errors():
        key = ".".join(str(p) for p in e["loc"])
        problem = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        source = next((v for k, v in env_names.items() if key == k or key.startswith(k + ".")), None)
        problems.append((key, f"{problem} (set by {source})" if source else problem))
    (key, problem), *more = problems
    return ConfigError(key, problem, tuple(more))


def load_config(
    path: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Build the config. ``overrides`` is a nested mapping from command-line flags.

    Raises :class:`ConfigError` naming the key path of the first problem (and listing the
    others in its message).
    """
    env = os.environ if environ is None else environ
    if path is None and env.get(ENV_PREFIX + "CONFIG"):
        path = Path(env[ENV_PREFIX + "CONFIG"])
    tree: dict[str, Any] = _read_file(path) if path is not None else {}
    env_names: dict[str, str] = {}
    tree = _merge(tree, _from_env(env, env_names))
    if overrides:
        tree = _merge(tree, overrides)
    try:
        return Config.model_validate(tree)
    except ValidationError as e:
        raise _describe(e, env_names) from None
