"""Reward registry: named rewards with options, user functions ``"module:function"``, weighted sums.

Two call signatures, one per model kind:

- text (LLM): ``fn(prompts: list[str], completions: list[str], **columns) -> list[float | None]``
  (TRL's signature; ``columns`` are the prompt rows' other dataset columns, e.g. ``answer``).
- image (flow): ``fn(images: Tensor, prompts: list[str], **columns) -> list[float | None]`` with
  ``images`` a float tensor ``(B, C, H, W)`` in ``[0, 1]``.

``None`` means "no reward for this sample" and counts as 0 in the sum. A registered reward is a
factory: ``factory(**options) -> fn``, so models load once per job, not per call. A remote reward
(``remote:URL`` or ``http(s)://...``, ``rewards/remote.py``) works for both kinds; its name is its URL.
A reward function may also expose ``last_breakdown: dict[str, float]`` (e.g. ``shapes:geneval``'s
per-constraint means, ``{"geneval/position": 0.4, ...}``), refreshed by each call; :class:`WeightedRewards`
collects them and the trainers log them as ``reward/<key>``.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..config import ConfigError, RewardSpec

RewardFn = Callable[..., Sequence[float | None]]


@dataclass(frozen=True)
class RegisteredReward:
    name: str
    kind: str  # "text" | "image" | "any" (the remote reward)
    summary: str
    factory: Callable[..., RewardFn]
    options: str | None = None  # shown by `adrpo rewards`; None: read from the factory's signature

    def usable_for(self, kind: str) -> bool:
        return self.kind in (kind, "any")

    def options_text(self) -> str:
        """``name=default, ...`` of the reward's options."""
        if self.options is not None:
            return self.options
        parameters = inspect.signature(self.factory).parameters.values()
        return ", ".join(
            p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}"
            for p in parameters
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        )


REGISTRY: dict[str, RegisteredReward] = {}

# Modules whose import registers their rewards; loaded on first lookup so importing the registry
# stays cheap (the image module pulls in CLIP and the digit classifier).
_PROVIDERS = (
    "adrpo_engine.rewards.text",
    "adrpo_engine.rewards.choice",
    "adrpo_engine.rewards.image",
    "adrpo_engine.rewards.preference",
    "adrpo_engine.rewards.remote",
    "adrpo_engine.rewards.geneval",
)


def register_reward(
    name: str, kind: str, summary: str, options: str | None = None
) -> Callable[[Callable[..., RewardFn]], Callable[..., RewardFn]]:
    def decorate(factory: Callable[..., RewardFn]) -> Callable[..., RewardFn]:
        REGISTRY[name] = RegisteredReward(name, kind, summary, factory, options)
        return factory

    return decorate


def _load_providers() -> None:
    for module in _PROVIDERS:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module:
                raise


def available_rewards(kind: str | None = None) -> list[RegisteredReward]:
    _load_providers()
    return [reward for reward in REGISTRY.values() if kind is None or reward.usable_for(kind)]


def load_user_function(target: str) -> RewardFn:
    """Import ``"package.module:function"``."""
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"rewards: cannot import module {module_name!r} ({error})") from None
    function = getattr(module, attr, None)
    if not callable(function):
        raise ConfigError(f"rewards: {target!r} is not a callable in module {module_name!r}")
    return function


def build_reward(spec: RewardSpec, kind: str) -> RewardFn:
    """The callable of one reward spec; raises ConfigError naming the reward if it is unknown."""
    _load_providers()
    from .remote import is_remote, remote_reward

    if is_remote(spec.name):
        return remote_reward(spec.name, kind, **spec.options)
    if spec.name in REGISTRY:
        registered = REGISTRY[spec.name]
        if not registered.usable_for(kind):
            raise ConfigError(f"rewards: {spec.name!r} is a {registered.kind} reward, not for a {kind} model")
        try:
            return registered.factory(**spec.options)
        except TypeError as error:
            raise ConfigError(f"rewards: bad options for {spec.name!r}: {error}") from None
    if ":" in spec.name:
        if spec.options:
            function = load_user_function(spec.name)
            return lambda *args, **kwargs: function(*args, **{**spec.options, **kwargs})
        return load_user_function(spec.name)
    names = ", ".join(sorted(r.name for r in available_rewards(kind)))
    raise ConfigError(
        f"rewards: unknown reward {spec.name!r} for {kind} models (choose from {names}, "
        "'remote:http://host:port/path', or 'module:function')"
    )


class WeightedRewards:
    """The job's rewards summed with their weights; also returns each component for logging."""

    def __init__(self, specs: Sequence[RewardSpec], kind: str) -> None:
        self.specs = list(specs)
        self.functions = [build_reward(spec, kind) for spec in self.specs]
        self.breakdown: dict[str, float] = {}  # the last call's reward breakdowns (see the module docstring)

    def __call__(self, *args: Any, **columns: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        parts: dict[str, torch.Tensor] = {}
        total = None
        self.breakdown = {}
        for spec, function in zip(self.specs, self.functions):
            values = function(*args, **columns)
            self.breakdown.update(getattr(function, "last_breakdown", None) or {})
            scores = torch.tensor([0.0 if v is None else float(v) for v in values], dtype=torch.float32)
            parts[spec.name] = scores
            total = spec.weight * scores if total is None else total + spec.weight * scores
        return total, parts
