"""The shape of untrusted input, checked before anything is parsed further or stored: text that every
store and every JSON encoder can hold, nesting the config code can walk, numbers SQL integers can hold,
ids that can name a row, and JSON types that mean what they say (no ``true`` or ``"150"`` for a step count).

Every refusal is a :class:`SubmissionError` (re-exported by worker.validation) naming the field (``prompts.texts.0``).
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any, Union

from pydantic import BaseModel

MAX_DEPTH = 32
# SQL INTEGER columns (steps, seeds) are 32-bit on PostgreSQL; SQLite's are 64-bit. Query parameters
# that are compared with them are bounded by this.
MAX_SQL_INT = 2**31 - 1
# Ids are new_id()'s 16 hex digits; anything else cannot name a row (and NUL would be a 500 on PostgreSQL).
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
# C0 controls and DEL, except tab, newline and carriage return.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class SubmissionError(ValueError):
    """A refused submission; ``field`` is the dotted config key at fault (or 'config'/'preset')."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


def _error(field: str, message: str) -> Exception:
    return SubmissionError(field, message)


def looks_like_path(value: str) -> bool:
    """Whether a name is meant as a local path rather than a hub id or a built-in name."""
    return value.startswith(("/", ".", "~")) or "\\" in value or value.count("/") > 1


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored, or None: it must encode as UTF-8 (no lone surrogates) and hold no
    NUL or other control character except tab and newline."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return f"is not valid Unicode text (a lone surrogate at character {error.start})"
    found = _CONTROL.search(text)
    if found:
        return f"contains a control character (U+{ord(found.group()):04X} at character {found.start()}); only tab and newline are allowed"
    return None


def printable(value: Any) -> str:
    """``value`` as text any response can carry (a lone surrogate or a control character escaped)."""
    text = value if isinstance(value, str) else str(value)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


def check_text(field: str, text: str) -> None:
    problem = text_problem(text)
    if problem:
        raise _error(field, problem)


def check_tree(payload: Any, field: str = "", max_depth: int = MAX_DEPTH) -> None:
    """Walk a JSON-like payload without recursion: nesting at most ``max_depth`` levels, every string and
    key storable text. Errors name the path (``rewards.0.name``; ``field`` prefixes it, "" = the root)."""
    stack: list[tuple[Any, str, int]] = [(payload, field, 0)]
    while stack:
        node, where, depth = stack.pop()
        if depth > max_depth:
            raise _error(where or "config", f"nested deeper than {max_depth} levels")
        if isinstance(node, str):
            check_text(where or "config", node)
        elif isinstance(node, dict):
            for key, value in node.items():
                below = f"{where}.{printable(key)}" if where else printable(key)
                if isinstance(key, str):
                    check_text(below, key)
                stack.append((value, below, depth + 1))
        elif isinstance(node, (list, tuple)):
            stack.extend(
                (value, f"{where}.{index}" if where else str(index), depth + 1) for index, value in enumerate(node)
            )


def check_id(value: Any) -> bool:
    """Whether ``value`` can be a job or comparison id (so it is worth a database lookup)."""
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def check_strict_types(data: Any, model: type[BaseModel], prefix: str = "") -> None:
    """Refuse JSON values pydantic's lax mode would coerce: a bool or a string for a number, anything but
    a bool for a flag. (Integral floats for ints stay accepted: the studio's number boxes send 150.0.)"""
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        info = model.model_fields.get(key) if isinstance(key, str) else None
        if info is None:
            continue  # unknown keys are the schema's job (extra="forbid")
        _check_value(value, info.annotation, f"{prefix}{key}")


def _check_value(value: Any, annotation: Any, field: str) -> None:
    if value is None:
        return
    options = _without_none(annotation)
    if len(options) != 1:
        return
    kind = options[0]
    origin = typing.get_origin(kind)
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        check_strict_types(value, kind, f"{field}.")
    elif origin is list and isinstance(value, list):
        (item,) = typing.get_args(kind) or (Any,)
        for index, element in enumerate(value):
            _check_value(element, item, f"{field}.{index}")
    elif kind is bool and not isinstance(value, bool):
        raise _error(field, f"must be true or false (got {_shown(value)})")
    elif kind in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise _error(field, f"must be a number, not {type(value).__name__} (got {_shown(value)})")


def _without_none(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    return [annotation]


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
