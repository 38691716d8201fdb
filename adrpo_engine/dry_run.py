"""Reward dry run: score a few of the reference model's samples for the job's first prompt with each of
the job's rewards, before a training run is spent on them.

The samples come from the reference model (the base model, adapter off) exactly as the first training
step would draw them; every reward row is built and called as the trainer calls it, so a reward that
fails to load or scores nothing useful shows here. The result lists, per sample, each row's score
(keyed like the per-reward metrics, ``reward/<name>``), and the weighted total the trainer would use.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .config import ConfigError, JobConfig
from .data import PromptRow, load_prompts, repeat_columns
from .kinds import get_kind, load_target
from .rewards import WeightedRewards
from .threads import thread_limit

MAX_DRY_RUN_SAMPLES = 16


@dataclass
class ScoredSample:
    index: int
    scores: dict[str, float]  # per reward row, keyed reward/<name>
    total: float  # the weighted sum the trainer uses
    text: str | None = None
    image_path: str | None = None  # absolute


@dataclass
class DryRunResult:
    prompt: str
    seed: int
    rewards: list[dict[str, Any]]  # one per row: label, name, model, weight
    samples: list[ScoredSample] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DryRunResult:
        samples = [ScoredSample(**sample) for sample in data.get("samples", [])]
        return cls(data["prompt"], data["seed"], data["rewards"], samples)

    def table_lines(self) -> list[str]:
        """A plain-text table: one line per sample with each reward's score and the weighted total."""
        labels = [row["label"] for row in self.rewards]
        weights = "  ".join(f"{row['label']} x {row['weight']:g}" for row in self.rewards)
        lines = [f"weights: {weights}", "  ".join(["#", *labels, "total", "sample"])]
        for sample in self.samples:
            shown = sample.text if sample.image_path is None else f"{sample.image_path} ({sample.text or 'image'})"
            scores = [f"{sample.scores[label]:.4f}" for label in labels]
            lines.append("  ".join([str(sample.index), *scores, f"{sample.total:.4f}", repr(shown)]))
        return lines


def first_prompt(config: JobConfig) -> PromptRow:
    """The job's first training prompt (with its dataset columns, for rewards that read them)."""
    return load_prompts(config.prompts)[0]


def reward_dry_run(
    config: JobConfig, num_samples: int = 4, seed: int = 0, out_dir: str | Path = "dry-run"
) -> DryRunResult:
    """Reference samples of the first prompt scored by each reward row; images go to ``out_dir``."""
    if not 1 <= num_samples <= MAX_DRY_RUN_SAMPLES:
        raise ConfigError(f"num_samples: must be in [1, {MAX_DRY_RUN_SAMPLES}] (got {num_samples})")
    spec = get_kind(config.kind)
    if spec.reference_sampler is None:
        raise ConfigError(f"kind: {config.kind} jobs have no reward dry run")
    sampler = load_target(spec.reference_sampler)
    row = first_prompt(config)
    out = Path(out_dir)
    with thread_limit(config):
        rewards = WeightedRewards(config.rewards, spec.reward_kind)
        outputs, arguments, columns = sampler(config, row, seed, num_samples, out)
        total, parts = rewards(*arguments, **columns)
    result = DryRunResult(
        row.prompt,
        seed,
        [
            {"label": label, "name": reward.name, "model": reward.model, "weight": reward.weight}
            for label, reward in zip(rewards.labels, config.rewards)
        ],
    )
    for k, output in enumerate(outputs):
        scores = {label: float(values[k]) for label, values in parts.items()}
        result.samples.append(ScoredSample(index=k, scores=scores, total=float(total[k]), **output))
    out.mkdir(parents=True, exist_ok=True)
    (out / "dry_run.json").write_text(json.dumps(result.to_dict(), indent=2))
    return result


# A kind's reference sampler: (config, prompt row, seed, count, out_dir) -> (one dict of ScoredSample fields per
# sample, the rewards' positional arguments, the columns the rewards get as keyword arguments).
Sampled = tuple[list[dict], tuple, dict[str, list]]


def text_samples(config: JobConfig, row: PromptRow, seed: int, count: int, out_dir: Path) -> Sampled:
    """The LLM kind's reference sampler: ``count`` completions of the row's prompt with the adapter off."""
    from .trainers.base import resolve_device, resolve_dtype
    from .trainers.llm import TextPolicy

    device = resolve_device(config.model)
    policy = TextPolicy(config, device, resolve_dtype(config.model, device))
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        texts = policy.texts(policy.sample([row.prompt], count, adapter=False))
    return [{"text": text} for text in texts], ([row.prompt] * count, texts), repeat_columns([row], count)


def audio_samples(config: JobConfig, row: PromptRow, seed: int, count: int, out_dir: Path) -> Sampled:
    """The audio kind's reference sampler: ``count`` answers to the row's clip and question, adapter off; the
    rewards get the row's columns but the clip, as in training (``AudioLMTrainer.reward_columns``)."""
    from .trainers.audio_lm import AudioPolicy
    from .trainers.base import resolve_device, resolve_dtype

    device = resolve_device(config.model)
    policy = AudioPolicy(config, device, resolve_dtype(config.model, device))
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        texts = policy.texts(policy.sample_rows([row], count, adapter=False))
    columns = repeat_columns([row], count)
    columns.pop(config.audio.column, None)
    return [{"text": text} for text in texts], ([row.prompt] * count, texts), columns


def image_samples(config: JobConfig, row: PromptRow, seed: int, count: int, out_dir: Path) -> Sampled:
    """The flow kind's reference sampler: ``count`` images of the row's prompt (PNGs in ``out_dir``), adapter off."""
    from .images import images_to_pngs
    from .trainers.base import resolve_device, resolve_dtype
    from .trainers.flow import generate_images, prepare_policy

    device = resolve_device(config.model)
    policy = prepare_policy(config, device, resolve_dtype(config.model, device))
    _, images = generate_images(policy, config, row.prompt, seed, count, adapter=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"reference-{k}.png" for k in range(count)]
    images_to_pngs(images, paths)
    notes = policy.describe_images(images) or [None] * count  # e.g. "looks like 4 (97%)"
    outputs = [{"image_path": str(path.resolve()), "text": note} for path, note in zip(paths, notes)]
    return outputs, (images, [row.prompt] * count), repeat_columns([row], count)
