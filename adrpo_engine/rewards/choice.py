"""Multiple-choice rewards (MMAU's convention), text signature: usable by LLM and audio-language jobs.

- ``mc_answer``: 1 if the option a completion chooses is the row's answer, else 0 (``None`` when the row
  has no answer). The choice is read from the last ``<answer>...</answer>`` (option ``tag``; without a tag
  the whole completion is read unless ``require_tag``), then matched against the options: a letter
  (``B``, ``(B)``, ``B.``), the option's text (``the second``), or ``(B) the second``. Without one clear
  match, e.g. two options named, nothing is chosen (0). Options come from the ``choices`` column, else
  they are parsed from the prompt's ``(A) ... (B) ...`` list; the answer (column ``answer``) may be the
  option's text or its letter.
- ``mc_format``: 1 if the completion holds exactly one ``<answer>...</answer>`` with something in it
  (optionally after one ``<think>...</think>``), else 0.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from ..config import ConfigError
from . import RewardOptions, register_reward

LETTERS = "ABCDEFGHIJ"
_OPTION = re.compile(r"\(([A-J])\)\s*(.*?)\s*(?=\([A-J]\)|$)", re.S)
_LETTER_ONLY = re.compile(r"^\(?([A-J])\)?[.:)]?$")
_LETTER_PREFIX = re.compile(r"^\(([A-J])\)\s*(.*)$", re.S)


def parse_choices(prompt: str) -> list[str]:
    """The options of a prompt's ``(A) x (B) y`` list, in letter order (empty if it has none)."""
    found = {letter: text.strip() for letter, text in _OPTION.findall(prompt or "")}
    options = []
    for letter in LETTERS:
        if letter not in found:
            break
        options.append(found[letter])
    return options


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", text.lower())).strip()


def extract_tagged(completion: str, tag: str = "answer") -> str | None:
    """The text of the last ``<tag>...</tag>``, or None."""
    found = re.findall(rf"<{tag}>(.*?)</{tag}>", completion or "", re.S)
    return found[-1].strip() if found else None


def chosen_option(text: str, options: Sequence[str]) -> int | None:
    """The index of the option ``text`` names (a letter, the option's text, or both), or None."""
    text = text.strip()
    letter = _LETTER_ONLY.match(text)
    if letter:
        index = LETTERS.index(letter.group(1))
        return index if index < len(options) else None
    prefixed = _LETTER_PREFIX.match(text)
    if prefixed:
        index = LETTERS.index(prefixed.group(1))
        if index < len(options) and (not prefixed.group(2) or _norm(prefixed.group(2)) == _norm(options[index])):
            return index
        return None
    said = _norm(text)
    exact = [i for i, option in enumerate(options) if _norm(option) == said]
    if exact:
        return exact[0]
    # Free text naming one option ("I hear 3 beeps"): the options found as whole words, kept if exactly one.
    named = [i for i, option in enumerate(options) if re.search(rf"(?<!\w){re.escape(_norm(option))}(?!\w)", said)]
    return named[0] if len(named) == 1 else None


def answer_index(answer: Any, options: Sequence[str]) -> int | None:
    if answer is None:
        return None
    text = str(answer).strip()
    if len(text) == 1 and text.upper() in LETTERS[: len(options)] and not any(_norm(o) == _norm(text) for o in options):
        return LETTERS.index(text.upper())
    return chosen_option(text, options)


def choices_list(value: Any) -> list[str]:
    """A row's options: a list, or a string holding a JSON/Python list (MMAU's hub copies store one) or an
    ``(A) x (B) y`` list; empty if there are none."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                parsed = None
            if isinstance(parsed, (list, tuple)):
                return [str(item) for item in parsed]
        return parse_choices(text)
    return [str(item) for item in value]


def _options_of(prompt: str, row_choices: Any) -> list[str]:
    return choices_list(row_choices) or parse_choices(prompt)


TAG_PATTERN = r"^\w+$"  # a tag is one word: it is put into a regex as <tag>...</tag>


class MCAnswerOptions(RewardOptions):
    column: str = Field(
        default="answer",
        min_length=1,
        max_length=128,
        description="Dataset column of the right option (its text or its letter).",
    )
    choices_column: str = Field(
        default="choices",
        min_length=1,
        max_length=128,
        description="Dataset column of the options (a list); rows without it use the prompt's (A) ... (B) ... list.",
    )
    tag: str = Field(
        default="answer",
        max_length=32,
        pattern=TAG_PATTERN,
        description="The choice is read from the last `<tag>...</tag>` of the completion (one word).",
    )
    require_tag: bool = Field(
        default=False, description="Score 0 without the tag instead of reading the whole completion."
    )


class MCFormatOptions(RewardOptions):
    tag: str = Field(
        default="answer",
        max_length=32,
        pattern=TAG_PATTERN,
        description="The tag the completion must hold exactly once, non-empty (one word).",
    )


@register_reward(
    "mc_answer",
    "text",
    "1 if the chosen option (`<answer>` tag, letter or option text) is the answer column, else 0.",
    options=MCAnswerOptions,
)
def mc_answer(column: str = "answer", choices_column: str = "choices", tag: str = "answer", require_tag: bool = False):
    def reward(prompts: Sequence[str], completions: Sequence[str], **columns: Any) -> list[float | None]:
        if column not in columns:
            known = ", ".join(sorted(columns)) or "none"
            raise ConfigError(f"rewards: mc_answer needs the prompt column {column!r} (columns: {known})")
        answers = list(columns[column])
        choices = list(columns.get(choices_column) or [None] * len(completions))
        scores: list[float | None] = []
        for prompt, completion, answer, row_choices in zip(prompts, completions, answers, choices):
            options = _options_of(prompt, row_choices)
            want = answer_index(answer, options) if options else None
            if want is None:
                scores.append(None)
                continue
            said = extract_tagged(completion, tag)
            if said is None and not require_tag:
                said = completion
            got = chosen_option(said, options) if said is not None else None
            scores.append(float(got == want))
        return scores

    return reward


@register_reward(
    "mc_format",
    "text",
    "1 if the completion holds exactly one non-empty `<answer>...</answer>` (option tag), else 0.",
    options=MCFormatOptions,
)
def mc_format(tag: str = "answer"):
    pattern = re.compile(rf"^\s*(<think>.*?</think>\s*)?<{tag}>(?P<body>(?:(?!<{tag}>).)+?)</{tag}>\s*$", re.S)

    def reward(prompts: Sequence[str], completions: Sequence[str], **_: Any) -> list[float | None]:
        return [float(bool((m := pattern.match(text)) and m.group("body").strip())) for text in completions]

    return reward
