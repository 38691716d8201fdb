"""What a reward row may say, checked before a job runs: the reward's kind, its model's architecture,
its options (the reward's own pydantic schema), the weights. One function, :func:`check_reward_rows`,
is called by the CLI and the job service at submission; :func:`describe_options` is what
``adrpo rewards``, docs/config.md, ``GET /api/rewards`` and the studio's Launch form show of each
reward's options. Fields are named as the schema's own errors name them: ``rewards.1.model``.

A model's architecture is checked when it can be without loading weights or a network: a
``builtin:`` reward model (its kind is declared), a local folder (its ``config.json``), or a hub id
already in the local hub cache (the cached ``config.json``). Anything else is checked when the job
loads it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic.fields import FieldInfo

from ..config import ConfigError, RewardSpec
from ..kinds import BUILTIN_PREFIX, builtin_model, builtin_reward_models, get_kind
from . import NEEDS, RegisteredReward, available_rewards, parse_options, registered_reward, split_model

USER_FUNCTION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")

# Models the studio suggests for each need, after the built-in ones: well-known hub ids.
HUB_SUGGESTIONS: dict[str, tuple[str, ...]] = {
    "reward_model": (
        "OpenAssistant/reward-model-deberta-v3-large-v2",
        "Skywork/Skywork-Reward-V2-Qwen3-0.6B",
        "Ray2333/GRM-Gemma2-2B-rewardmodel-ft",
    ),
    "clip_model": (
        "openai/clip-vit-large-patch14",
        "openai/clip-vit-base-patch32",
        "laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
    ),
}


class RewardRowError(ConfigError):
    """A reward row that cannot run; ``field`` is e.g. ``rewards[1].model``."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class OptionField:
    """One option of a reward, as a form or a listing shows it."""

    name: str
    type: str  # "bool" | "int" | "float" | "str" | "choice"
    default: Any
    required: bool
    help: str
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = False

    def describe(self) -> str:
        """``target (int, default 50, 1..100000): help``."""
        bits = [self.type if self.type != "choice" else "|".join(map(str, self.choices))]
        bits.append("required" if self.required else f"default {self.default!r}")
        if self.minimum is not None or self.maximum is not None:
            bits.append(f"{_bound(self.minimum)}..{_bound(self.maximum)}")
        return f"{self.name} ({', '.join(bits)}): {self.help}"


def _bound(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else str(value)


def describe_options(reward: RegisteredReward) -> list[OptionField]:
    """The reward's options schema as a list of fields (types, defaults, ranges, one-line help)."""
    return [_option_field(name, info) for name, info in reward.options.model_fields.items()]


def _option_field(name: str, info: FieldInfo) -> OptionField:
    annotation, nullable = info.annotation, False
    args = get_args(annotation)
    if type(None) in args:
        nullable = True
        rest = [arg for arg in args if arg is not type(None)]
        annotation = rest[0] if len(rest) == 1 else str
    choices: tuple[Any, ...] = ()
    if get_origin(annotation) is Literal:
        kind, choices = "choice", get_args(annotation)
    else:
        kind = {bool: "bool", int: "int", float: "float"}.get(annotation, "str")
    minimum = maximum = None
    for meta in info.metadata:
        for attr in ("ge", "gt"):
            if getattr(meta, attr, None) is not None:
                minimum = getattr(meta, attr)
        for attr in ("le", "lt"):
            if getattr(meta, attr, None) is not None:
                maximum = getattr(meta, attr)
    required = info.is_required()
    return OptionField(
        name,
        kind,
        None if required else info.get_default(call_default_factory=True),
        required,
        info.description or "",
        choices,
        minimum,
        maximum,
        nullable,
    )


def model_suggestions(reward: RegisteredReward | str) -> list[str]:
    """Models offered for a reward's row (a reward, or a need such as ``"reward_model"``): the reward's
    own list if it declares one, else the built-in models of its need, then well-known hub ids."""
    if isinstance(reward, RegisteredReward) and reward.models is not None:
        return list(reward.models)
    needs = reward.needs if isinstance(reward, RegisteredReward) else reward
    builtins = [model.name for model in builtin_reward_models(needs)]
    return builtins + list(HUB_SUGGESTIONS.get(needs, ()))


def reward_groups(job_kind: str) -> list[tuple[str, list[RegisteredReward]]]:
    """The registered rewards usable with ``job_kind``, grouped by what they need, in :data:`NEEDS` order
    (user functions are not registered: the caller offers them where they are allowed)."""
    rewards = available_rewards(get_kind(job_kind).reward_kind)
    groups = []
    for needs, label in NEEDS.items():
        members = sorted((r for r in rewards if r.needs == needs), key=lambda r: r.name)
        if members:
            groups.append((label, members))
    return groups


# ----------------------------------------------------------------------------------------------
# Checks


def check_reward_rows(
    rewards: Sequence[RewardSpec], job_kind: str, *, section: str = "rewards", read_local: bool = True
) -> None:
    """Raise :class:`RewardRowError` naming the row and field (``rewards.1.model``) for a reward list the
    job could not run. Whether user functions may be imported at all is the caller's policy."""
    if section == "rewards" and rewards and all(spec.weight == 0 for spec in rewards):
        raise RewardRowError(section, "every weight is 0: the summed reward would be constant (nothing to learn)")
    for index, spec in enumerate(rewards):
        check_reward_row(index, spec, job_kind, section=section, read_local=read_local)


def check_reward_row(
    index: int, spec: RewardSpec, job_kind: str, *, section: str = "rewards", read_local: bool = True
) -> None:
    """``read_local=False``: a local folder's config.json is not read (a caller that has not checked the
    path against a policy: the studio's live preview; the submission checks it after the policy)."""
    from .remote import is_remote, remote_url

    where = f"{section}.{index}"
    expected = get_kind(job_kind).reward_kind
    registered = registered_reward(spec.name)
    if is_remote(spec.name):
        try:
            remote_url(spec.name)
        except ConfigError as error:
            raise RewardRowError(f"{where}.name", str(error).removeprefix("rewards: ")) from None
    elif registered is None:
        _check_user_function(where, spec, expected)
        return
    assert registered is not None
    if not registered.usable_for(expected):
        raise RewardRowError(
            f"{where}.name",
            f"{spec.name!r} scores {registered.kind}s; this {job_kind} job needs a reward of {expected}s "
            f"(choose from {_names(expected)})",
        )
    model, options = split_model(spec, registered)
    try:
        parse_options(registered, options, f"{where}.options")
    except ConfigError as error:
        field, _, message = str(error).partition(": ")
        raise RewardRowError(field, message) from None
    if registered.takes_model:
        if model is None:
            raise RewardRowError(
                f"{where}.model",
                f"{spec.name!r} needs a {NEEDS[registered.needs].lower()}: "
                f"give one (e.g. {', '.join(model_suggestions(registered)[:2])})",
            )
        problem = architecture_problem(model, registered, read_local=read_local)
        if problem:
            raise RewardRowError(f"{where}.model", problem)
    elif spec.model:
        raise RewardRowError(
            f"{where}.model", f"{spec.name!r} takes no model ({NEEDS[registered.needs].lower()}); leave it empty"
        )


def _check_user_function(where: str, spec: RewardSpec, expected: str) -> None:
    if not USER_FUNCTION.fullmatch(spec.name):
        raise RewardRowError(
            f"{where}.name",
            f"unknown reward {spec.name!r} (choose from {_names(expected)}, "
            "'remote:http://host:port/path', or 'module:function')",
        )
    if len(json.dumps(spec.options, default=str)) > 16 * 1024:
        raise RewardRowError(f"{where}.options", "at most 16 KiB of options")


def _names(reward_kind: str | None) -> str:
    return ", ".join(sorted(r.name for r in available_rewards(reward_kind) if r.name != "remote:URL"))


def architecture_problem(model: str, reward: RegisteredReward, *, read_local: bool = True) -> str | None:
    """Why ``model`` is not the architecture ``reward`` needs, when that can be told without loading it:
    a built-in model (its need is declared), a local folder or a hub id in the local cache (its config.json)."""
    needs = reward.needs
    if model.startswith(BUILTIN_PREFIX):
        known = ", ".join(m.name for m in builtin_reward_models(needs)) or "none"
        entry = builtin_model(model)
        if entry is None:
            return f"unknown built-in model {model!r} (built-in {NEEDS[needs].lower()}s: {known})"
        if entry.serves != needs:
            what = NEEDS[entry.serves].lower() if entry.serves else f"a base model of {entry.kind} jobs"
            article = "a " if entry.serves else ""
            return f"{model!r} is {article}{what}, not a {NEEDS[needs].lower()} (built-in ones: {known})"
        return None
    if not reward.checks_architecture:
        return None
    if model.startswith("/") and not read_local:
        return None
    config = _readable_config(model)
    if config is None:
        return None
    return _config_problem(model, config, needs)


def _readable_config(model: str) -> dict[str, Any] | None:
    """The model's config.json from a local folder or the local hub cache, else None (not checkable)."""
    path: Path | None = None
    if model.startswith("/"):
        candidate = Path(model) / "config.json"
        path = candidate if candidate.is_file() else None
    elif "/" in model or re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", model):
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(model, "config.json")
        except Exception:  # an id the hub library refuses is reported by the loader later
            cached = None
        path = Path(cached) if isinstance(cached, str) else None
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _config_problem(model: str, config: dict[str, Any], needs: str) -> str | None:
    architectures = [str(a) for a in config.get("architectures") or []]
    model_type = str(config.get("model_type", "?"))
    shown = f"{', '.join(architectures) or 'no architectures'}, model_type {model_type}"
    if needs == "reward_model":
        if not any(a.endswith("ForSequenceClassification") for a in architectures):
            return (
                f"{model!r} is not a sequence-classification reward model ({shown}); "
                "a reward model is an AutoModelForSequenceClassification with 1 label"
            )
        labels = config.get("id2label")
        count = len(labels) if isinstance(labels, dict) else config.get("num_labels")
        if isinstance(count, int) and count != 1:
            return f"{model!r} has {count} labels; a reward model has 1 (its single logit is the reward)"
    if needs == "clip_model":
        if model_type != "clip" and "CLIPModel" not in architectures:
            return f"{model!r} is not a CLIP model ({shown}); the reward needs a transformers CLIPModel"
    return None


def rewards_reference_markdown() -> str:
    """The registered rewards and their options (a section of docs/config.md)."""
    lines = [
        "",
        "## Registered rewards",
        "",
        "`adrpo rewards` prints this list. `needs` says what the reward needs; rewards that need a model",
        "take it in the row's `model` (default shown).",
        "",
    ]
    # Python callables registered in-process (trainer_api's ADRPOTrainer) are not part of the reference.
    for reward in sorted(
        (r for r in available_rewards() if r.needs != "user_function"), key=lambda r: (r.kind, r.name)
    ):
        model = ""
        if reward.takes_model:
            model = f" Model: default `{reward.default_model}`." if reward.default_model else " Model: required."
        lines.append(f"### `{reward.name}` ({reward.kind}, needs {reward.needs})")
        lines += ["", f"{reward.summary}{model}", ""]
        fields = describe_options(reward)
        if fields:
            lines += ["| option | type | default | allowed | meaning |", "| --- | --- | --- | --- | --- |"]
            for field in fields:
                kind = "one of " + ", ".join(f"`{c}`" for c in field.choices) if field.type == "choice" else field.type
                default = "required" if field.required else f"`{field.default!r}`"
                allowed = (
                    ""
                    if field.minimum is None and field.maximum is None
                    else f"{_bound(field.minimum)}..{_bound(field.maximum)}"
                )
                lines.append(
                    f"| `{field.name}` | {kind}{' or null' if field.nullable else ''} | {default} | "
                    f"{allowed} | {field.help} |"
                )
            lines.append("")
    return "\n".join(lines)


def reward_catalog() -> list[dict[str, Any]]:
    """Every registered reward as plain data (the API's GET /api/rewards)."""
    from dataclasses import asdict

    return [
        {
            "name": reward.name,
            "kind": reward.kind,
            "needs": reward.needs,
            "needs_label": NEEDS[reward.needs],
            "summary": reward.summary,
            "takes_model": reward.takes_model,
            "default_model": reward.default_model,
            "models": model_suggestions(reward) if reward.takes_model else [],
            "options": [asdict(field) for field in describe_options(reward)],
        }
        for reward in sorted(available_rewards(), key=lambda r: (r.kind, r.name))
    ]
