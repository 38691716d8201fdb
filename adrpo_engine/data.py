"""Prompts: from the config's inline texts, a .txt/.jsonl file, a `datasets` id/path, or a built-in source.

Each prompt is a :class:`PromptRow`: the prompt text plus the row's other columns (e.g. ``answer``),
which text rewards receive as keyword arguments. Batches are a pure function of (seed, step), so a
resumed run sees exactly the prompts the uninterrupted run would have seen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .config import ConfigError, PromptsConfig
from .kinds import BUILTIN_PREFIX, PROMPT_SOURCES, load_target


@dataclass(frozen=True)
class PromptRow:
    prompt: str
    columns: dict[str, Any] = field(default_factory=dict)


def _builtin_rows(name: str) -> list[dict[str, Any]]:
    """The rows of a built-in source (``kinds.PROMPT_SOURCES``), imported on use."""
    source = PROMPT_SOURCES.get(name)
    if source is None:
        known = ", ".join(sorted(PROMPT_SOURCES)) or "none"
        raise ConfigError(f"prompts: unknown built-in source {name!r} (known: {known})")
    return load_target(source.rows)()


def _rows_from_file(path_text: str, column: str) -> list[dict[str, Any]]:
    if path_text.startswith(BUILTIN_PREFIX):
        return _builtin_rows(path_text)
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise ConfigError(f"prompts.file: {path_text!r} does not exist")
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise ConfigError(f"prompts.file: line {number} of {path_text!r} is not JSON") from None
        return rows
    return [{column: line.strip()} for line in path.read_text().splitlines() if line.strip()]


def _rows_from_dataset(name: str, split: str) -> list[dict[str, Any]]:
    if name.startswith(BUILTIN_PREFIX):
        return _builtin_rows(name)
    import datasets

    try:
        if Path(name).expanduser().is_dir() and (Path(name).expanduser() / "dataset_info.json").exists():
            loaded = datasets.load_from_disk(str(Path(name).expanduser()))
            loaded = loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
        else:
            loaded = datasets.load_dataset(name, split=split)
    except Exception as error:  # datasets raises many types: hub, file, split errors
        raise ConfigError(f"prompts.dataset: cannot load {name!r} split {split!r}: {error}") from None
    # Audio columns as {"path", "bytes"}: decoding is adrpo_engine.audio_io's (no audio backend of datasets needed).
    for column, feature in loaded.features.items():
        if isinstance(feature, datasets.Audio) and feature.decode:
            loaded = loaded.cast_column(column, datasets.Audio(decode=False))
    return [dict(row) for row in loaded]


def load_prompts(cfg: PromptsConfig) -> list[PromptRow]:
    """All training prompts of a job, in a stable order."""
    rows: list[dict[str, Any]] = [{cfg.column: text} for text in cfg.texts] + [dict(row) for row in cfg.rows]
    if cfg.file:
        rows += _rows_from_file(cfg.file, cfg.column)
    if cfg.dataset:
        rows += _rows_from_dataset(cfg.dataset, cfg.split)
    if cfg.limit is not None:
        rows = rows[: cfg.limit]
    if not rows:
        raise ConfigError(
            "prompts: no prompts given (set prompts.texts, prompts.rows, prompts.file or prompts.dataset)"
        )
    prompts = []
    for row in rows:
        if cfg.column not in row:
            raise ConfigError(f"prompts.column: {cfg.column!r} is not a column (columns: {', '.join(map(str, row))})")
        text = str(row[cfg.column])
        prompts.append(PromptRow(text, {k: v for k, v in row.items() if k != cfg.column}))
    return prompts


def eval_prompts(cfg: PromptsConfig, rows: list[PromptRow], count: int = 4) -> list[PromptRow]:
    """Prompts whose samples are logged: the configured ``prompts.eval``, else the first ``count`` rows."""
    if cfg.eval:
        return [PromptRow(text) for text in cfg.eval]
    return rows[:count]


class PromptSampler:
    """Prompts for step ``s`` (1-based): consecutive slices of a per-epoch permutation seeded by ``seed``."""

    def __init__(self, rows: list[PromptRow], seed: int) -> None:
        self.rows = rows
        self.seed = seed

    def _order(self, epoch: int) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        return torch.randperm(len(self.rows), generator=generator).tolist()

    def batch(self, step: int, size: int) -> list[PromptRow]:
        start = (step - 1) * size
        picked = []
        for position in range(start, start + size):
            epoch, index = divmod(position, len(self.rows))
            picked.append(self.rows[self._order(epoch)[index]])
        return picked


def repeat_columns(rows: list[PromptRow], repeat: int) -> dict[str, list[Any]]:
    """The rows' extra columns as per-sample lists, each row repeated ``repeat`` times (a group), for
    rewards that take dataset columns as keyword arguments (e.g. ``answer``)."""
    keys = sorted({key for row in rows for key in row.columns})
    return {key: [row.columns.get(key) for row in rows for _ in range(repeat)] for key in keys}
