"""Reward registry: named rewards with a typed option schema, user functions ``"module:function"``, weighted sums.

Two call signatures, one per model kind:

- text (LLM): ``fn(prompts: list[str], completions: list[str], **columns) -> list[float | None]``
  (TRL's signature; ``columns`` are the prompt rows' other dataset columns, e.g. ``answer``).
- image (flow): ``fn(images: Tensor, prompts: list[str], **columns) -> list[float | None]`` with
  ``images`` a float tensor ``(B, C, H, W)`` in ``[0, 1]``.

``None`` means "no reward for this sample" and counts as 0 in the sum. A registered reward is a
factory: ``factory(**options) -> fn``, so models load once per job, not per call.

Declaring a reward (the one place its options are described; the submission checks, ``adrpo rewards``,
the studio's Launch form and docs/config.md all read it)::

    class MyOptions(RewardOptions):
        target: int = Field(50, ge=1, le=100_000, description="One line of help.")

    @register_reward("my_reward", "text", "What it scores, in one line.", needs="rule", options=MyOptions)
    def my_reward(target: int) -> RewardFn: ...

``needs`` says what the reward needs (:data:`NEEDS`). A reward that needs a model (``reward_model``,
``clip_model``) gets the row's ``model`` (``RewardSpec.model``, else ``default_model``) as the
factory's ``model=`` argument; its options schema does not repeat it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, ValidationError

from .. import metrics as M
from ..config import ConfigError, RewardSpec

RewardFn = Callable[..., Sequence[float | None]]

# What a reward needs, with the label the studio groups its reward list by. A reward that needs a
# model is given one in the row's ``model`` field.
NEEDS: dict[str, str] = {
    "rule": "Rule (no model)",
    "builtin": "Built-in scorer",
    "reward_model": "Reward model (sequence classification)",
    "clip_model": "CLIP-family model",
    "remote": "Remote reward server",
    "user_function": "Your function (module:function)",
}
MODEL_NEEDS = ("reward_model", "clip_model")

# The reward kind each job kind takes.
REWARD_KIND_OF_JOB = {"llm": "text", "flow": "image"}


class RewardOptions(BaseModel):
    """Base of every reward's options schema: unknown options are errors."""

    model_config = ConfigDict(extra="forbid")


class NoOptions(RewardOptions):
    """A reward without options."""


@dataclass(frozen=True)
class RegisteredReward:
    name: str
    kind: str  # "text" | "image"
    summary: str
    factory: Callable[..., RewardFn]
    needs: str = "rule"
    options: type[RewardOptions] = NoOptions
    default_model: str | None = None

    @property
    def takes_model(self) -> bool:
        return self.needs in MODEL_NEEDS


REGISTRY: dict[str, RegisteredReward] = {}

# Modules whose import registers their rewards; loaded on first lookup so importing the registry
# stays cheap (the image module pulls in CLIP and the digit classifier).
_PROVIDERS = ("adrpo_engine.rewards.text", "adrpo_engine.rewards.image")


def register_reward(
    name: str, kind: str, summary: str, *, needs: str = "rule", options: type[RewardOptions] = NoOptions,
    default_model: str | None = None,
) -> Callable[[Callable[..., RewardFn]], Callable[..., RewardFn]]:
    if needs not in NEEDS:
        raise ValueError(f"register_reward({name!r}): needs must be one of {', '.join(NEEDS)} (got {needs!r})")

    def decorate(factory: Callable[..., RewardFn]) -> Callable[..., RewardFn]:
        REGISTRY[name] = RegisteredReward(name, kind, summary, factory, needs, options, default_model)
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
    return [reward for reward in REGISTRY.values() if kind is None or reward.kind == kind]


def registered_reward(name: str) -> RegisteredReward | None:
    _load_providers()
    return REGISTRY.get(name)


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


def parse_options(registered: RegisteredReward, options: dict[str, Any], where: str = "options") -> RewardOptions:
    """The reward's options validated by its schema; ConfigError names the option (``where.key: ...``)."""
    try:
        return registered.options.model_validate(options)
    except ValidationError as error:
        item = error.errors()[0]
        key = ".".join(str(part) for part in item["loc"])
        message = "unknown option" if item["type"] == "extra_forbidden" else item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            known = ", ".join(registered.options.model_fields) or "none"
            message += f" of {registered.name!r} (its options: {known})"
        elif item["type"] != "missing":
            message += f" (got {item.get('input')!r})"
        raise ConfigError(f"{where}.{key}: {message}" if key else f"{where}: {message}") from None


def model_of(spec: RewardSpec, registered: RegisteredReward) -> str | None:
    """The model a row's reward uses: the row's, else the reward's default."""
    return spec.model or registered.default_model


def build_reward(spec: RewardSpec, kind: str) -> RewardFn:
    """The callable of one reward spec; raises ConfigError naming the reward if it is unknown."""
    registered = registered_reward(spec.name)
    if registered is not None:
        if registered.kind != kind:
            raise ConfigError(f"rewards: {spec.name!r} is a {registered.kind} reward, not for a {kind} model")
        options = parse_options(registered, spec.options, f"rewards: {spec.name} options").model_dump()
        if registered.takes_model:
            model = model_of(spec, registered)
            if model is None:
                raise ConfigError(f"rewards: {spec.name!r} needs a model (set the reward's model)")
            options["model"] = model
        elif spec.model:
            raise ConfigError(f"rewards: {spec.name!r} takes no model (got {spec.model!r})")
        return registered.factory(**options)
    if ":" in spec.name:
        function = load_user_function(spec.name)
        bound = {**spec.options, **({"model": spec.model} if spec.model else {})}
        if bound:
            return lambda *args, **kwargs: function(*args, **{**bound, **kwargs})
        return function
    names = ", ".join(sorted(r.name for r in available_rewards(kind)))
    raise ConfigError(f"rewards: unknown reward {spec.name!r} for {kind} models (choose from {names}, or 'module:function')")


class WeightedRewards:
    """The job's rewards summed with their weights; also returns each component, keyed by its metric name
    (:func:`adrpo_engine.metrics.reward_component_names`), for logging."""

    def __init__(self, specs: Sequence[RewardSpec], kind: str) -> None:
        self.specs = list(specs)
        self.labels = M.reward_component_names([spec.name for spec in self.specs])
        self.functions = [build_reward(spec, kind) for spec in self.specs]

    def __call__(self, *args: Any, **columns: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        parts: dict[str, torch.Tensor] = {}
        total = None
        for label, spec, function in zip(self.labels, self.specs, self.functions):
            values = function(*args, **columns)
            scores = torch.tensor([0.0 if v is None else float(v) for v in values], dtype=torch.float32)
            parts[label] = scores
            total = spec.weight * scores if total is None else total + spec.weight * scores
        return total, parts
