"""Reward registry: named rewards with a typed option schema, user functions ``"module:function"``, weighted sums.

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

Declaring a reward (the one place its options are described; the submission checks, ``adrpo rewards``,
the studio's Launch form, the API's ``GET /api/rewards`` and docs/config.md all read it)::

    class MyOptions(RewardOptions):
        target: int = Field(50, ge=1, le=100_000, description="One line of help.")

    @register_reward("my_reward", "text", "What it scores, in one line.", needs="rule", options=MyOptions)
    def my_reward(target: int) -> RewardFn: ...

``needs`` says what the reward needs (:data:`NEEDS`). A reward that needs a model (``reward_model``,
``clip_model``) gets the row's ``model`` (``RewardSpec.model``, else ``default_model``) as the factory's
``model_option`` argument (``model=`` unless declared otherwise); its options schema does not repeat it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

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
REMOTE_ENTRY = "remote:URL"  # the registry's entry for remote rewards; a job names the URL itself


class RewardOptions(BaseModel):
    """Base of every reward's options schema: unknown options are errors."""

    model_config = ConfigDict(extra="forbid")


class NoOptions(RewardOptions):
    """A reward without options."""


@dataclass(frozen=True)
class RegisteredReward:
    name: str
    kind: str  # "text" | "image" | "any" (the remote reward)
    summary: str
    factory: Callable[..., RewardFn]
    needs: str = "rule"
    options: type[RewardOptions] = NoOptions
    default_model: str | None = None
    model_option: str = "model"  # the factory argument the row's model is given as
    # Models offered for the row's model field; None: the built-in ones of its need and well-known hub ids.
    models: tuple[str, ...] | None = None
    # Whether the model is a transformers folder whose config.json tells its architecture (hpsv2's is not).
    checks_architecture: bool = True

    @property
    def takes_model(self) -> bool:
        return self.needs in MODEL_NEEDS

    def usable_for(self, kind: str) -> bool:
        return self.kind in (kind, "any")

    def options_text(self) -> str:
        """``name=default, ...`` of the reward's options (the model first, for rewards that take one)."""
        parts = [f"model={self.default_model!r}"] if self.takes_model else []
        for name, info in self.options.model_fields.items():
            parts.append(name if info.is_required() else f"{name}={info.get_default(call_default_factory=True)!r}")
        return ", ".join(parts)


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
    name: str,
    kind: str,
    summary: str,
    *,
    needs: str = "rule",
    options: type[RewardOptions] = NoOptions,
    default_model: str | None = None,
    model_option: str = "model",
    models: tuple[str, ...] | None = None,
    checks_architecture: bool = True,
) -> Callable[[Callable[..., RewardFn]], Callable[..., RewardFn]]:
    if needs not in NEEDS:
        raise ValueError(f"register_reward({name!r}): needs must be one of {', '.join(NEEDS)} (got {needs!r})")

    def decorate(factory: Callable[..., RewardFn]) -> Callable[..., RewardFn]:
        REGISTRY[name] = RegisteredReward(
            name, kind, summary, factory, needs, options, default_model, model_option, models, checks_architecture
        )
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


def registered_reward(name: str) -> RegisteredReward | None:
    """The registry entry a row's reward name refers to (a remote URL: the ``remote:URL`` entry), or None."""
    _load_providers()
    from .remote import is_remote

    return REGISTRY.get(REMOTE_ENTRY) if is_remote(name) else REGISTRY.get(name)


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
    return cast(RewardFn, function)  # its return values are checked per call (None or a number per sample)


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


def split_model(spec: RewardSpec, registered: RegisteredReward) -> tuple[str | None, dict[str, Any]]:
    """The model a row's reward uses (the row's ``model``, else an option under the factory's own argument
    name as configs wrote it before ``model`` was a field, else the reward's default) and the other options."""
    options = dict(spec.options)
    legacy = options.pop(registered.model_option, None) if registered.takes_model else None
    model = spec.model or (legacy if isinstance(legacy, str) and legacy else None) or registered.default_model
    return model, options


def build_reward(spec: RewardSpec, kind: str) -> RewardFn:
    """The callable of one reward spec; raises ConfigError naming the reward if it is unknown."""
    from .remote import is_remote, remote_reward

    registered = registered_reward(spec.name)
    if is_remote(spec.name) and registered is not None:
        options = parse_options(registered, spec.options, f"rewards: {spec.name} options").model_dump()
        return remote_reward(spec.name, kind, **options)
    if registered is not None:
        if not registered.usable_for(kind):
            raise ConfigError(f"rewards: {spec.name!r} is a {registered.kind} reward, not for a {kind} model")
        model, rest = split_model(spec, registered)
        options = parse_options(registered, rest, f"rewards: {spec.name} options").model_dump()
        if registered.takes_model:
            if model is None:
                raise ConfigError(f"rewards: {spec.name!r} needs a model (set the reward's model)")
            options[registered.model_option] = model
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
    raise ConfigError(
        f"rewards: unknown reward {spec.name!r} for {kind} models (choose from {names}, "
        "'remote:http://host:port/path', or 'module:function')"
    )


class WeightedRewards:
    """The job's rewards summed with their weights; also returns each component, keyed by its metric name
    (:func:`adrpo_engine.metrics.reward_component_names`), for logging."""

    def __init__(self, specs: Sequence[RewardSpec], kind: str) -> None:
        self.specs = list(specs)
        self.labels = M.reward_component_names([spec.name for spec in self.specs])
        self.functions = [build_reward(spec, kind) for spec in self.specs]
        self.breakdown: dict[str, float] = {}  # the last call's reward breakdowns (see the module docstring)

    def __call__(self, *args: Any, **columns: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        parts: dict[str, torch.Tensor] = {}
        total = torch.tensor(0.0)  # the specs are never empty (rewards has min_length 1)
        self.breakdown = {}
        for label, spec, function in zip(self.labels, self.specs, self.functions):
            values = function(*args, **columns)
            self.breakdown.update(getattr(function, "last_breakdown", None) or {})
            scores = torch.tensor([0.0 if v is None else float(v) for v in values], dtype=torch.float32)
            parts[label] = scores
            total = total + spec.weight * scores
        return total, parts
