"""The engine from Python, in the call shape of TRL's ``GRPOTrainer``::

    from adrpo_engine import ADRPOConfig, ADRPOTrainer

    def short(prompts, completions, **kwargs):          # TRL's reward signature
        return [-len(c) / 100 for c in completions]

    trainer = ADRPOTrainer(model="Qwen/Qwen2.5-0.5B-Instruct", reward_funcs=short,
                           args=ADRPOConfig(output_dir="runs/short", max_steps=50),
                           train_dataset=["Say hi.", "Name a fruit."])
    result = trainer.train()

``ADRPOConfig`` takes TRL's argument names where one exists (``num_generations``, ``learning_rate``,
``max_completion_length``, ``beta``...) and maps them onto the one job schema (``adrpo_engine.config``);
any other key of that schema goes in ``overrides`` as a dotted key. Reward functions passed as Python
callables live only in this process: they are registered under a ``python:`` name that no job submitted
to the service can name, since its workers are other processes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import ConfigError, JobConfig, validate_config
from .config_io import apply_overrides
from .kinds import builtin_model, get_kind
from .progress import TEXT_SAMPLE

PYTHON_REWARD_PREFIX = "python:"
_counter = itertools.count(1)


@dataclass
class ADRPOConfig:
    """Training arguments; names follow TRL's ``GRPOConfig`` where one exists."""

    output_dir: str = "runs/python"
    algorithm: str = "adrpo"  # "adrpo" | "fixed" (GRPO with a fixed beta) | "orw" | "dpo" (flows)
    beta: float = 0.04  # beta0: the base regularisation strength (KL for LLMs, W2 for flows)
    a_min: float | None = None  # the advantage clip range of beta_i = beta0 - clip(A_i)
    a_max: float | None = None
    max_steps: int = 100
    learning_rate: float = 1e-4
    num_generations: int = 8  # the group size G
    prompts_per_step: int = 4
    max_completion_length: int = 64
    temperature: float = 1.0
    lora_rank: int = 8
    seed: int = 0
    save_steps: int = 50
    logging_steps: int = 10  # sample-logging period
    report_to: list[str] = field(default_factory=list)
    kind: str | None = None  # "llm" or "flow"; None: the built-in model's kind, else "llm"
    run_name: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # any other key: {"llm.top_p": 0.9}


RewardFunc = Callable[..., Sequence[float | None]]


def register_python_reward(function: RewardFunc, sample_kind: str) -> str:
    """Register ``function`` (scoring "text" or "image" samples) for this process; returns the reward
    name a job config can use."""
    from .rewards import register_reward

    label = getattr(function, "__name__", "reward").strip("<>") or "reward"
    name = f"{PYTHON_REWARD_PREFIX}{label}-{next(_counter)}"
    summary = f"Python callable {getattr(function, '__qualname__', label)} (this process only)."
    register_reward(name, sample_kind, summary, needs="user_function")(lambda: function)
    return name


def _prompts_of(train_dataset: Any) -> list[str]:
    """A list of prompts, of {"prompt": ...} rows, or a ``datasets.Dataset`` with a "prompt" column."""
    if train_dataset is None:
        return []
    if hasattr(train_dataset, "column_names"):
        if "prompt" not in train_dataset.column_names:
            raise ConfigError("train_dataset: the dataset has no 'prompt' column")
        return [str(p) for p in train_dataset["prompt"]]
    prompts = []
    for row in train_dataset:
        prompts.append(str(row["prompt"]) if isinstance(row, dict) else str(row))
    return prompts


def _kind_of(model: str, args: ADRPOConfig) -> str:
    if args.kind:
        return args.kind
    builtin = builtin_model(model)
    return builtin.kind if builtin is not None and builtin.kind else "llm"  # a hub id or folder: an LLM


def job_config(model: str, reward_names: list[str], args: ADRPOConfig, prompts: list[str]) -> JobConfig:
    """The job this trainer runs, through the same schema and validation as the CLI and the API."""
    kind = _kind_of(model, args)
    data: dict[str, Any] = {
        "name": args.run_name or Path(args.output_dir).name or "python",
        "kind": kind,
        "algorithm": args.algorithm,
        "beta0": args.beta,
        "a_min": args.a_min,
        "a_max": args.a_max,
        "steps": args.max_steps,
        "lr": args.learning_rate,
        "group_size": args.num_generations,
        "prompts_per_step": args.prompts_per_step,
        "seed": args.seed,
        "checkpoint_every": args.save_steps,
        "sample_every": args.logging_steps,
        "report_to": list(args.report_to),
        "model": {"name_or_path": model},
        "lora": {"rank": args.lora_rank},
        "rewards": [{"name": name} for name in reward_names],
        "prompts": {"texts": prompts},
    }
    if get_kind(kind).sample_kind == TEXT_SAMPLE:  # TRL's generation arguments are the text kinds' llm section
        data["llm"] = {"max_new_tokens": args.max_completion_length, "temperature": args.temperature}
    return validate_config(apply_overrides(data, args.overrides))


class ADRPOTrainer:
    """``ADRPOTrainer(model, reward_funcs, args, train_dataset).train()``, as TRL's GRPOTrainer.

    ``reward_funcs``: one or a list of callables with TRL's signature (``prompts, completions, **kwargs``
    for LLMs; flows get ``images, prompts``) or names of registered rewards (``adrpo rewards``).
    ``train_dataset``: prompts (strings, ``{"prompt": ...}`` rows or a ``datasets.Dataset``); None keeps
    the built-in model's own prompts when ``overrides`` names a prompt source."""

    def __init__(
        self,
        model: str,
        reward_funcs: RewardFunc | str | Iterable[RewardFunc | str],
        args: ADRPOConfig | None = None,
        train_dataset: Any = None,
    ) -> None:
        self.args = args or ADRPOConfig()
        kind = _kind_of(model, self.args)
        funcs = [reward_funcs] if callable(reward_funcs) or isinstance(reward_funcs, str) else list(reward_funcs)
        sample_kind = get_kind(kind).sample_kind
        names = [f if isinstance(f, str) else register_python_reward(f, sample_kind) for f in funcs]
        self.config = job_config(model, names, self.args, _prompts_of(train_dataset))

    def train(self, resume: bool = True):
        """Train (or resume from ``output_dir``'s latest checkpoint); returns the run's ``RunResult``."""
        from .runner import train

        return train(self.config, Path(self.args.output_dir), resume=resume)
