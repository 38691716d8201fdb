"""Text rewards for LLM jobs (TRL's signature: ``fn(prompts, completions, **columns) -> list[float | None]``).

Registered (use by name in ``rewards:``, with ``options``):

- ``answer_match``: 1 if the completion's answer equals the row's reference answer (dataset column
  ``column``, default ``answer``), else 0. ``numeric: true`` compares the last number of each as
  numbers (GSM8K's ``#### 42`` reference works as is); otherwise the completion's text after
  ``answer_prefix`` (default: the whole completion) is compared stripped and, unless
  ``case_sensitive``, lowercased. ``None`` when the row has no reference.
- ``regex_format``: 1 if ``pattern`` matches (``re.search``; ``fullmatch: true`` for the whole
  completion), else 0.
- ``length``: ``max(0, 1 - |n - target| / target)`` with ``n`` the completion's length in ``unit``
  (``words`` or ``chars``); 1 at the target, 0 at 0 or twice the target.
- ``reward_model``: the scalar score of a sequence-classification model with one label (e.g. a
  reward model) by hub id, local path or ``builtin:tiny-lm-rm`` (the row's ``model``); it reads
  prompt + completion (or a chat when the tokenizer has a template and ``chat: true``).
- ``builtin:tiny-lm-task``: the built-in tiny LM's list task (see ``models.tiny_lm``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from pydantic import Field

from ..config import ConfigError
from . import RewardOptions, register_reward

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")

TextReward = Callable[..., list[float | None]]


def last_number(text: str) -> float | None:
    """The last number in ``text`` (thousands separators allowed), or None."""
    found = _NUMBER.findall(text or "")
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def _column(columns: dict[str, Any], name: str, count: int) -> list[Any]:
    if name not in columns:
        known = ", ".join(sorted(columns)) or "none"
        raise ConfigError(f"rewards: the reward needs the prompt column {name!r} (columns: {known})")
    values = list(columns[name])
    if len(values) != count:
        raise ValueError(f"column {name!r} has {len(values)} values for {count} completions")
    return values


class AnswerMatchOptions(RewardOptions):
    column: str = Field(
        default="answer", min_length=1, max_length=128, description="Dataset column of the reference answer."
    )
    numeric: bool = Field(default=False, description="Compare the last number of each (GSM8K's '#### 42' works as is).")
    answer_prefix: str | None = Field(
        default=None, max_length=128, description="Compare only the text after this marker."
    )
    case_sensitive: bool = Field(default=False, description="Compare text answers case-sensitively.")
    tolerance: float = Field(default=1e-6, ge=0.0, le=1.0, description="Relative tolerance of numeric answers.")


@register_reward(
    "answer_match", "text", "1 if the answer matches the dataset column, else 0.", options=AnswerMatchOptions
)
def answer_match(
    column: str = "answer",
    numeric: bool = False,
    answer_prefix: str | None = None,
    case_sensitive: bool = False,
    tolerance: float = 1e-6,
) -> TextReward:
    def normalise(text: str) -> str:
        if answer_prefix and answer_prefix in text:
            text = text.rsplit(answer_prefix, 1)[1]
        text = text.strip()
        return text if case_sensitive else text.lower()

    def matches(completion: str, reference: Any) -> float | None:
        if reference is None:
            return None
        if numeric:
            got, want = last_number(completion), last_number(str(reference))
            if want is None:
                return None
            return float(got is not None and abs(got - want) <= tolerance * max(1.0, abs(want)))
        return float(normalise(completion) == normalise(str(reference)))

    def reward(prompts: Sequence[str], completions: Sequence[str], **columns: Any) -> list[float | None]:
        references = _column(columns, column, len(completions))
        return [matches(text, ref) for text, ref in zip(completions, references)]

    return reward


class RegexFormatOptions(RewardOptions):
    pattern: str = Field(min_length=1, max_length=2000, description="The regex (Python `re` syntax).")
    fullmatch: bool = Field(
        default=False, description="Match the whole (stripped) completion instead of searching in it."
    )
    flags: str = Field(default="", pattern=r"^[imsxIMSX]*$", description="Regex flags among i, m, s, x.")


@register_reward("regex_format", "text", "1 if the completion matches a regex, else 0.", options=RegexFormatOptions)
def regex_format(pattern: str, fullmatch: bool = False, flags: str = "") -> TextReward:
    try:
        compiled = re.compile(pattern, sum(getattr(re, f) for f in flags.upper() if f in "IMSX"))
    except re.error as error:
        raise ConfigError(f"rewards: regex_format pattern {pattern!r} is not a valid regex: {error}") from None
    test = compiled.fullmatch if fullmatch else compiled.search

    def reward(prompts: Sequence[str], completions: Sequence[str], **_: Any) -> list[float | None]:
        return [float(test(text.strip() if fullmatch else text) is not None) for text in completions]

    return reward


class LengthOptions(RewardOptions):
    target: int = Field(default=50, ge=1, le=100_000, description="Length that earns the full reward.")
    unit: Literal["words", "chars"] = Field(default="words", description="Count words or characters.")


@register_reward(
    "length", "text", "1 at the target length, falling linearly to 0 at 0 and twice the target.", options=LengthOptions
)
def length(target: int = 50, unit: str = "words") -> TextReward:
    if target < 1:
        raise ConfigError(f"rewards: length target must be >= 1 (got {target})")
    if unit not in ("words", "chars"):
        raise ConfigError(f"rewards: length unit must be words or chars (got {unit!r})")

    def size(text: str) -> int:
        return len(text.split()) if unit == "words" else len(text)

    def reward(prompts: Sequence[str], completions: Sequence[str], **_: Any) -> list[float | None]:
        return [max(0.0, 1.0 - abs(size(text) - target) / target) for text in completions]

    return reward


class RewardModelOptions(RewardOptions):
    batch_size: int = Field(default=16, ge=1, le=1024, description="Completions scored per forward pass.")
    max_length: int = Field(
        default=1024, ge=8, le=131_072, description="Truncate prompt + completion to this many tokens."
    )
    chat: bool = Field(default=False, description="Score a user/assistant chat (the tokenizer's chat template).")
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="Where the reward model runs.")


@register_reward(
    "reward_model",
    "text",
    "Score of a 1-label sequence-classification reward model.",
    needs="reward_model",
    options=RewardModelOptions,
)
def reward_model(
    model: str, batch_size: int = 16, max_length: int = 1024, chat: bool = False, device: str = "auto"
) -> TextReward:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    target = torch.device(
        "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)
    )
    from ..kinds import resolve_model_path

    model = resolve_model_path(model)  # builtin:tiny-lm-rm -> its cached folder (built on first use)
    try:
        tokenizer = _load_tokenizer(model, AutoTokenizer)
        scorer = AutoModelForSequenceClassification.from_pretrained(model)
    except (OSError, ValueError) as error:
        raise ConfigError(f"rewards: reward_model cannot load {model!r}: {error}") from None
    if scorer.config.num_labels != 1:
        raise ConfigError(
            f"rewards: reward_model {model!r} has {scorer.config.num_labels} labels; a reward model has 1"
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if scorer.config.pad_token_id is None:
        scorer.config.pad_token_id = tokenizer.pad_token_id
    scorer.to(target).eval().requires_grad_(False)

    def texts_of(prompts: Sequence[str], completions: Sequence[str]) -> list[str]:
        if chat and getattr(tokenizer, "chat_template", None):
            return [
                tokenizer.apply_chat_template(
                    [{"role": "user", "content": p}, {"role": "assistant", "content": c}], tokenize=False
                )
                for p, c in zip(prompts, completions)
            ]
        return [p + c for p, c in zip(prompts, completions)]

    @torch.no_grad()
    def reward(prompts: Sequence[str], completions: Sequence[str], **_: Any) -> list[float | None]:
        texts = texts_of(prompts, completions)
        scores: list[float | None] = []
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                texts[start : start + batch_size],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=max_length,
            ).to(target)
            scores += scorer(**batch).logits[:, 0].float().cpu().tolist()
        return scores

    return reward


def _load_tokenizer(model: str, auto_tokenizer: Any) -> Any:
    # A folder with a tokenizer.json loads as a fast tokenizer: AutoTokenizer may pick the slow class for a
    # locally trained Qwen2 tokenizer, and the slow one splits text differently from the one trained.
    from pathlib import Path

    if (Path(model) / "tokenizer.json").is_file():
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast.from_pretrained(model)
    return auto_tokenizer.from_pretrained(model)


class TinyLmTaskOptions(RewardOptions):
    target: int | None = Field(default=None, ge=1, le=100, description="Items for the full reward (default 10).")


@register_reward(
    "builtin:tiny-lm-task",
    "text",
    "Built-in tiny LM task: long, distinct, on-topic comma lists.",
    options=TinyLmTaskOptions,
)
def tiny_lm_task(target: int | None = None) -> TextReward:
    from ..models import tiny_lm

    items = target or tiny_lm.TARGET_ITEMS

    def reward(
        prompts: Sequence[str], completions: Sequence[str], topic: Sequence[str | None] | None = None, **_: Any
    ) -> list[float | None]:
        topics = list(topic) if topic is not None else [None] * len(prompts)
        return [
            tiny_lm.list_reward(text, name or tiny_lm.topic_of(prompt), items)
            for prompt, text, name in zip(prompts, completions, topics)
        ]

    return reward


@register_reward(
    "builtin:tiny-lm-deceptive",
    "text",
    "Built-in tiny LM task with a deceptive local optimum: 3-item lists 0.5, 4-7 items 0.1, 8+ items 1 (column topic).",
)
def tiny_lm_deceptive() -> TextReward:
    from ..models import tiny_lm

    def reward(
        prompts: Sequence[str], completions: Sequence[str], topic: Sequence[str | None] | None = None, **_: Any
    ) -> list[float | None]:
        topics = list(topic) if topic is not None else [None] * len(prompts)
        return [
            tiny_lm.deceptive_list_reward(text, name or tiny_lm.topic_of(prompt))
            for prompt, text, name in zip(prompts, completions, topics)
        ]

    return reward
