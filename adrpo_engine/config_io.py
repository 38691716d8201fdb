"""Reading job configs: dotted ``KEY=VALUE`` overrides (the CLI's ``--set``, the API's ``overrides``, the
studio's extra box) and YAML files. The schema they feed is ``config.JobConfig``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError


def parse_override(assignment: str) -> tuple[str, Any]:
    """``"lora.rank=8"`` -> ``("lora.rank", 8)``; the value is read as YAML (numbers, lists, true/false)."""
    key, sep, raw = assignment.partition("=")
    key = key.strip()
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", key):
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE with a dotted key such as lora.rank=8")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of ``data`` with dotted-key overrides set (unknown keys fail later, in validation)."""
    merged = _deep_copy(data)
    for dotted, value in overrides.items():
        node = merged
        *parents, leaf = dotted.split(".")
        for part in parents:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"{dotted}: '{part}' is not a section")
            node = child
        node[leaf] = value
    return merged


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {error}") from None
    return data or {}


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {key: _deep_copy(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_deep_copy(value) for value in data]
    return data
