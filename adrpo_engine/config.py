"""The job config: one pydantic schema shared by the CLI, the job service and the studio.

Every knob has a documented default and an allowed range here, and nowhere else. Unknown keys are
errors (``extra="forbid"``), so a typo in ``--set bta0=0.02`` fails loudly instead of training with
the default. Parse errors are turned into one line per field by :func:`format_validation_error`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError
from .kinds import ALGORITHM_NAMES, KINDS, builtin_models, get_kind

Algorithm = Literal["adrpo", "fixed", "orw"]
AdvScale = Literal["group", "batch", "none"]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Strict):
    name_or_path: str = Field(
        description="Hub id (e.g. 'Qwen/Qwen2.5-0.5B-Instruct'), local directory, or 'builtin:NAME' "
        f"for a model the project builds itself ({', '.join(m.name for m in builtin_models())}).",
        min_length=1,
        max_length=512,
    )
    revision: str | None = Field(None, max_length=128, description="Hub revision (branch, tag or commit).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="'auto' = bfloat16 on CUDA, float32 on CPU."
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="'auto' = CUDA when present.")


class LoraConfig(_Strict):
    rank: int = Field(16, ge=1, le=1024, description="LoRA rank r.")
    alpha: float = Field(32.0, gt=0, le=4096, description="LoRA alpha (scale = alpha / rank).")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    target_modules: list[str] | None = Field(
        None, description="Module names to adapt; None = the default for the architecture."
    )


class RewardSpec(_Strict):
    name: str = Field(
        description="A registered reward (see `adrpo rewards`) or a user function 'module:function'.",
        min_length=1,
        max_length=256,
    )
    model: str | None = Field(
        None,
        min_length=1,
        max_length=512,
        description="The reward's model, for rewards that need one (reward_model, clip_score, ...): a hub id, "
        "a local path or 'builtin:NAME'; empty = the reward's default. `adrpo rewards` lists who needs one.",
    )
    weight: float = Field(1.0, ge=-100.0, le=100.0, description="Weight in the summed reward.")
    options: dict[str, Any] = Field(
        default_factory=dict, description="The reward's other options (its schema: `adrpo rewards`, below)."
    )

    @model_validator(mode="before")
    @classmethod
    def _model_out_of_options(cls, data: Any) -> Any:
        # Configs written before `model` was a field of its own say `options: {model: ...}`: read them as is.
        if isinstance(data, dict) and isinstance(data.get("options"), dict) and "model" in data["options"]:
            if data.get("model") is None:
                options = dict(data["options"])
                data = {**data, "model": options.pop("model"), "options": options}
        return data


class PromptsConfig(_Strict):
    texts: list[str] = Field(default_factory=list, description="Training prompts given inline.")
    file: str | None = Field(None, description="A .txt (one prompt a line) or .jsonl file of prompts.")
    dataset: str | None = Field(None, description="A `datasets` id or local path to load prompts from.")
    split: str = Field("train", description="Dataset split.")
    column: str = Field("prompt", description="Prompt column in the file (.jsonl) or dataset.")
    limit: int | None = Field(None, ge=1, le=10_000_000, description="Use at most this many prompts.")
    eval: list[str] = Field(
        default_factory=list,
        description="Prompts whose samples are logged every `sample_every` steps (default: the first few "
        "training prompts).",
    )

    @field_validator("texts", "eval")
    @classmethod
    def _bounded_prompts(cls, prompts: list[str]) -> list[str]:
        if any(len(p) > 4000 for p in prompts):
            raise ValueError("each prompt must be at most 4000 characters")
        return prompts


class LLMConfig(_Strict):
    max_new_tokens: int = Field(64, ge=1, le=8192, description="Completion length cap.")
    temperature: float = Field(1.0, gt=0.0, le=10.0, description="Sampling temperature of rollouts.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling of rollouts.")
    eps_low: float = Field(0.2, ge=0.0, le=1.0, description="PPO clip: lower ratio bound 1 - eps_low.")
    eps_high: float = Field(0.2, ge=0.0, le=10.0, description="PPO clip: upper ratio bound 1 + eps_high.")
    num_iterations: int = Field(1, ge=1, le=64, description="Optimisation passes over each rollout batch.")
    loss_agg: Literal["grpo", "dapo"] = Field(
        "grpo", description="grpo: token mean per sequence, then mean; dapo: sum over tokens / token count."
    )
    skip_zero_beta_reference: bool = Field(
        True,
        description="ADRPO: skip the reference forward for samples whose beta_i is 0 (their KL term vanishes; "
        "with the default clip about half of them). `kl` is then the mean over the other samples.",
    )
    fold_lora_for_sampling: bool = Field(
        True, description="Sample rollouts with the LoRA update folded into the weights (faster; weights restored exactly)."
    )
    decode: Literal["loop", "generate"] = Field(
        "loop", description="Rollout decoder: a KV-cached sampling loop, or transformers' generate (any architecture)."
    )
    chat_template: bool = Field(
        False, description="Wrap each prompt as a user message with the tokenizer's chat template."
    )
    max_prompt_tokens: int | None = Field(
        None, ge=1, le=131072, description="Truncate prompts to this many tokens (None: keep them whole)."
    )
    eval_samples: int = Field(2, ge=1, le=64, description="Completions logged per eval prompt at each sample step.")


class FlowConfig(_Strict):
    sample_steps: int = Field(20, ge=1, le=1000, description="Euler steps of the rollout ODE sampler.")
    guidance_scale: float = Field(1.0, ge=0.0, le=50.0, description="Classifier-free guidance of rollouts.")
    t_sampling: Literal["uniform", "logit_normal"] = Field(
        "uniform", description="How training times t are drawn."
    )
    logit_mean: float = Field(0.0, ge=-10.0, le=10.0, description="Mean of the logit-normal t.")
    logit_std: float = Field(1.0, gt=0.0, le=10.0, description="Std of the logit-normal t.")
    train_draws: int = Field(1, ge=1, le=64, description="Fresh (noise, t) draws per sample per step.")
    resolution: int | None = Field(None, ge=8, le=4096, description="Image side in pixels (T2I models).")
    orw_tau: float = Field(1.0, ge=0.0, le=1000.0, description="ORW-CFM-W2 weight temperature: w = exp(tau*r).")
    orw_normalize: bool = Field(True, description="ORW-CFM-W2: normalise the weights to mean 1 over the batch.")


class EvalConfig(_Strict):
    """Evaluation on held-out prompts with fixed noise (``adrpo_engine.evaluation``)."""

    every_checkpoint: bool = Field(
        False, description="Queue an eval of each checkpoint (and of the reference) on a worker as it is written; "
        "training does not wait for it."
    )
    on_finish: bool = Field(
        False, description="Queue an eval of the final checkpoint and of the reference when the job succeeds "
        "(sweeps set it)."
    )
    prompts: list[str] = Field(
        default_factory=list,
        description="Held-out eval prompts given inline (default: eval.file / eval.dataset, else prompts.eval, "
        "else the training prompts, reported as not held out).",
    )
    file: str | None = Field(None, description="A .txt or .jsonl file of held-out prompts.")
    dataset: str | None = Field(None, description="A `datasets` id or local path holding the held-out split.")
    split: str = Field("test", description="Dataset split of the held-out prompts.")
    limit: int | None = Field(None, ge=1, le=100_000, description="Evaluate at most this many prompts.")
    samples_per_prompt: int = Field(16, ge=2, le=1024, description="Samples drawn per held-out prompt (N).")
    seed: int = Field(
        2026, ge=0, le=2**31 - 1,
        description="Noise seed of the eval: prompt j uses seed + j for every checkpoint and every job.",
    )
    rewards: list[RewardSpec] = Field(
        default_factory=list, max_length=16,
        description="Eval-only rewards, reported as eval/<name> beside the job's own rewards.",
    )

    @field_validator("prompts")
    @classmethod
    def _bounded_prompts(cls, prompts: list[str]) -> list[str]:
        if any(len(p) > 4000 for p in prompts):
            raise ValueError("each prompt must be at most 4000 characters")
        if len(prompts) > 10_000:
            raise ValueError("at most 10000 inline eval prompts")
        return prompts


class JobConfig(_Strict):
    """A training job. Core keys are top level (``--set beta0=0.02``); sections are dotted (``lora.rank``)."""

    name: str = Field("run", pattern=NAME_PATTERN, description="Run name: letters, digits, '.', '_', '-'.")
    kind: str = Field(
        description=" or ".join(f"'{k.name}' ({k.summary})" for k in KINDS.values()) + ".",
        json_schema_extra={"enum": list(KINDS)},
    )
    algorithm: Algorithm = Field(
        "adrpo",
        description="adrpo: beta_i = beta0 - clip(A_i); fixed: beta_i = beta0; orw: ORW-CFM-W2 (flow only; "
        "beta0 is its W2 weight alpha).",
    )
    beta0: float = Field(0.04, ge=0.0, le=10.0, description="Base regularisation strength beta0.")
    a_min: float | None = Field(
        None, ge=-10.0, le=10.0,
        description="Lower clip of the advantage in beta_i (default -beta0; -beta0/2 for fixed-beta flow, "
        "whose loss needs a_min > -beta0).",
    )
    a_max: float | None = Field(
        None, ge=-10.0, le=10.0, description="Upper clip of the advantage in beta_i (default +beta0)."
    )
    adv_scale: AdvScale = Field(
        "group", description="Divide centred rewards by the group std, the batch std, or nothing."
    )
    group_size: int = Field(8, ge=2, le=512, description="Samples per prompt (G).")
    prompts_per_step: int = Field(4, ge=1, le=4096, description="Prompts per optimisation step.")
    steps: int = Field(100, ge=1, le=1_000_000, description="Optimisation steps.")
    lr: float = Field(1e-4, gt=0.0, le=1.0, description="AdamW learning rate.")
    warmup_steps: int = Field(0, ge=0, le=1_000_000, description="Linear warm-up steps.")
    weight_decay: float = Field(0.0, ge=0.0, le=1.0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0.0, le=1e6, description="Gradient clipping norm.")
    grad_accum: int = Field(1, ge=1, le=1024, description="Micro-batches per optimisation step.")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seed of everything random in the run.")
    checkpoint_every: int = Field(50, ge=1, le=1_000_000, description="Checkpoint period in steps.")
    sample_every: int = Field(10, ge=1, le=1_000_000, description="Sample-logging period in steps.")
    model: ModelConfig
    lora: LoraConfig = Field(default_factory=LoraConfig)
    rewards: list[RewardSpec] = Field(min_length=1, max_length=16, description="Summed, weighted rewards.")
    prompts: PromptsConfig = Field(
        default_factory=PromptsConfig,
        validate_default=True,
        description="Where training prompts come from: texts, a file or a dataset (one at least).",
    )
    llm: LLMConfig = Field(default_factory=LLMConfig)
    flow: FlowConfig = Field(default_factory=FlowConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @field_validator("kind")
    @classmethod
    def _registered_kind(cls, kind: str) -> str:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r} (choose from {', '.join(KINDS)})")
        return kind

    @field_validator("prompts")
    @classmethod
    def _has_prompt_source(cls, prompts: PromptsConfig) -> PromptsConfig:
        # Caught here, at submission, rather than minutes later when the trainer loads its prompts.
        if not (prompts.texts or prompts.file or prompts.dataset):
            raise ValueError("no prompts given: set prompts.texts, prompts.file or prompts.dataset")
        return prompts

    @model_validator(mode="after")
    def _consistent(self) -> JobConfig:
        if self.clip_low > self.clip_high:
            raise ValueError(f"a_min ({self.clip_low}) must be <= a_max ({self.clip_high})")
        spec = get_kind(self.kind)
        if self.algorithm not in spec.algorithms:
            where = ", ".join(f"'{k.name}'" for k in KINDS.values() if self.algorithm in k.algorithms)
            raise ValueError(f"algorithm '{self.algorithm}' ({ALGORITHM_NAMES[self.algorithm]}) is for kind {where} only")
        if spec.a_min_bounded(self.algorithm) and self.clip_low <= -self.beta0:
            raise ValueError(
                f"a_min must be > -beta0 (= {-self.beta0}) for the {ALGORITHM_NAMES[self.algorithm]} {self.kind} loss, "
                f"else the loss is unbounded below (got {self.clip_low})"
            )
        return self

    @property
    def clip_low(self) -> float:
        """A_min in use: the given one, else the kind's default (-beta0; -beta0/2 where the loss needs
        a_min > -beta0: fixed-beta flow)."""
        if self.a_min is not None:
            return self.a_min
        return get_kind(self.kind).default_a_min(self.algorithm, self.beta0)

    @property
    def clip_high(self) -> float:
        """A_max in use: the given one, else +beta0."""
        return self.beta0 if self.a_max is None else self.a_max

    @property
    def adaptive(self) -> bool:
        return self.algorithm == "adrpo"

    def advisories(self) -> list[str]:
        """Valid but risky settings, shown by the CLI and logged at the start of a run."""
        notes = []
        if self.adaptive and self.clip_high > self.beta0:
            notes.append(
                f"a_max ({self.clip_high}) > beta0 ({self.beta0}): beta_i is negative for the best samples, "
                "which are pushed away from the reference (see beta_eff/frac_neg)"
            )
        return notes

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_yaml())


def location(parts: tuple[Any, ...] | list[Any]) -> str:
    """A field's dotted key with list positions in brackets: ``rewards[1].model``."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "config"


def format_validation_error(error: ValidationError) -> str:
    """One line per failing field: ``beta0: Input should be greater than or equal to 0 (got -1)``."""
    lines = []
    for item in error.errors():
        where = location(item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif item["type"] == "missing":
            message = "required field is missing"
        got = item.get("input")
        quiet = item["type"] in ("missing", "extra_forbidden") or isinstance(got, (dict, BaseModel))
        shown = "" if quiet else f" (got {got!r})"
        lines.append(f"{where}: {message}{shown}")
    return "\n".join(lines)


def validate_config(data: dict[str, Any]) -> JobConfig:
    """Build a JobConfig or raise ConfigError with a readable message."""
    if not isinstance(data, dict):
        raise ConfigError(f"config: expected a mapping of keys to values (got {type(data).__name__})")
    try:
        return JobConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error)) from None


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


def _type_name(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return "one of " + ", ".join(f"`{arg}`" for arg in args)
    if args and type(None) in args:
        rest = [arg for arg in args if arg is not type(None)]
        return " or ".join(_type_name(arg) for arg in rest) + " or null"
    if origin is not None:
        return getattr(origin, "__name__", str(origin))
    return getattr(annotation, "__name__", str(annotation))


def _section_rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            continue
        default = "required" if info.is_required() else repr(info.get_default(call_default_factory=True))
        limits = [f"{sym} {getattr(m, attr)}" for m in info.metadata
                  for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")) if hasattr(m, attr)]
        allowed = ", ".join(limits)
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        choices = extra.get("enum")
        kind = "one of " + ", ".join(f"`{c}`" for c in choices) if isinstance(choices, list) else _type_name(annotation)
        rows.append(f"| `{prefix}{name}` | {kind} | `{default}` | {allowed} | {info.description or ''} |")
    return rows


def config_reference_markdown() -> str:
    """The job-config reference (docs/config.md), generated from the schema so it cannot drift."""
    lines = [
        "# Job config reference",
        "",
        "Generated from `adrpo_engine/config.py` (`python -m adrpo_engine.config > docs/config.md`).",
        "Every key can be set from the CLI with `--set KEY=VALUE` (dotted keys for sections) and in the",
        "studio's form; unknown keys are errors.",
        "",
        "| key | type | default | allowed | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += _section_rows(JobConfig, "")
    sections = {"model": ModelConfig, "lora": LoraConfig, "prompts": PromptsConfig, "llm": LLMConfig, "flow": FlowConfig,
                "eval": EvalConfig}
    for section, model in sections.items():
        lines += _section_rows(model, f"{section}.")
    lines += ["", "`rewards` is a list of `{name, weight, options}`:", ""]
    lines += ["| key | type | default | allowed | meaning |", "| --- | --- | --- | --- | --- |"]
    lines += _section_rows(RewardSpec, "rewards[].")
    from .rewards.schema import rewards_reference_markdown  # the registry imports this module

    lines.append(rewards_reference_markdown().rstrip("\n"))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(config_reference_markdown(), end="")
