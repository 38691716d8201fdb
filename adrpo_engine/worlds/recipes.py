"""Which build recipe a built-in world uses: its environment variable names one (``full`` by default,
``reduced`` in the tests), so one cache folder per recipe and nothing else changes."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TypeVar

R = TypeVar("R")


def recipe_from_env(env: str, recipes: Mapping[str, R]) -> R:
    """The recipe $``env`` names (default ``full``); another name is refused with the choices."""
    name = os.environ.get(env, "full")
    if name not in recipes:
        raise ValueError(f"{env}: {name!r} is not a recipe (choose from {', '.join(recipes)})")
    return recipes[name]
