"""Reading a course config: YAML, ``key=value`` overrides, and one-line errors that name the key.

Every error is reported on one line naming the key, e.g. ``data.alpha: Input should be greater
than 0 (got -1)``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from fscore.config.course import CourseConfig
from fscore.errors import ConfigError


def _format_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "<config>"
        msg = err["msg"].removeprefix("Value error, ")
        named = re.match(r"^([\w.\-\[\]]+): ", msg)
        if named and (key == "<config>" or named.group(1).startswith(key + ".")):  # a check naming its own key
            key, msg = named.group(1), msg[named.end():]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (misspelled?)"
        elif "password" in key:
            msg = f"{msg} (value hidden: it is a secret)"
        elif err["type"] not in ("missing",) and "input" in err and not isinstance(err["input"], dict):
            msg = f"{msg} (got {err['input']!r})"
        parts.append(f"{key}: {msg}")
    return "; ".join(parts)


def parse_override(text: str) -> tuple[list[str], Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} must look like key=value, e.g. data.alpha=0.5")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc.problem})") from exc
    return key.strip().split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str], values: Mapping[str, Any] | None = None
                    ) -> dict[str, Any]:
    """``overrides`` are ``key=value`` texts with YAML values; ``values`` are dotted keys with literal values."""
    data = json.loads(json.dumps(raw))  # deep copy of plain YAML data
    settings = [(*parse_override(text), text) for text in overrides]
    settings += [(key.split("."), value, key) for key, value in (values or {}).items()]
    for path, value, text in settings:
        node = data
        for i, part in enumerate(path[:-1]):
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {text!r}: {'.'.join(path[: i + 1])} is not a section")
            node = nxt
        node[path[-1]] = value
    return data


def config_from_dict(raw: dict[str, Any], overrides: list[str] | None = None, *,
                     source: str = "<dict>", values: Mapping[str, Any] | None = None) -> CourseConfig:
    data = apply_overrides(raw, overrides or [], values)
    try:
        return CourseConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_format_errors(exc)}") from None


def load_config(path: str | Path, overrides: list[str] | None = None,
                values: Mapping[str, Any] | None = None) -> CourseConfig:
    path = Path(path)
    raw = _read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a course config must be a mapping of keys, not {type(raw).__name__}")
    config = config_from_dict(raw, overrides, source=str(path), values=values)
    _resolve_paths(config, path.parent)
    return config


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text file (byte {exc.start} is 0x{exc.object[exc.start]:02x}, "
                          f"not UTF-8); a course config is a YAML file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror}") from None
    try:
        return yaml.safe_load(text) or {}
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow, e.g. NUL
        line = text.count("\n", 0, exc.position) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise ConfigError(f"{path}: invalid YAML at line {line}: character U+{code:04X} is not allowed "
                          f"({exc.reason})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None


def _resolve_paths(config: CourseConfig, base: Path) -> None:
    for mt in config.message_types:
        resolved = mt.schema_file if mt.schema_file.is_absolute() else base / mt.schema_file
        if not resolved.is_file():
            raise ConfigError(f"message_types[{mt.name}].schema_file: file {str(resolved)!r} not found")
        object.__setattr__(mt, "schema_file", resolved)
    device_file = config.simulation.device_file
    if device_file is not None and not device_file.is_absolute():
        object.__setattr__(config.simulation, "device_file", base / device_file)
