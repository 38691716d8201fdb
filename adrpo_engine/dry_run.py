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

from .config import JobConfig
from .data import PromptRow, load_prompts, repeat_columns
from .rewards import REWARD_KIND_OF_JOB, WeightedRewards
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
            shown = sample.text if sample.text is not None else sample.image_path
            scores = [f"{sample.scores[label]:.4f}" for label in labels]
            lines.append("  ".join([str(sample.index), *scores, f"{sample.total:.4f}", repr(shown)]))
        return lines


def first_prompt(config: JobConfig) -> PromptRow:
    """The job's first training prompt (with its dataset columns, for rewards that read them)."""
    return load_prompts(config.prompts)[0]


def reward_dry_run(config: JobConfig, num_samples: int = 4, seed: int = 0, out_dir: str | Path = "dry-run") -> DryRunResult:
    """Reference samples of the first prompt scored by each reward row; images go to ``out_dir``."""
    if not 1 <= num_samples <= MAX_DRY_RUN_SAMPLES:
        raise ValueError(f"num_samples must be in [1, {MAX_DRY_RUN_SAMPLES}] (got {num_samples})")
    row = first_prompt(config)
    with thread_limit(config):
        rewards = WeightedRewards(config.rewards, reward_kind(config))
        outputs, arguments = SAMPLERS[config.kind](config, row.prompt, seed, num_samples, Path(out_dir))
        total, parts = rewards(*arguments, **repeat_columns([row], num_samples))
    result = DryRunResult(row.prompt, seed, [
        {"label": label, "name": spec.name, "model": spec.model, "weight": spec.weight}
        for label, spec in zip(rewards.labels, config.rewards)
    ])
    for k, output in enumerate(outputs):
        scores = {label: float(values[k]) for label, values in parts.items()}
        result.samples.append(ScoredSample(index=k, scores=scores, total=float(total[k]), **output))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "dry_run.json").write_text(json.dumps(result.to_dict(), indent=2))
    return result


def reward_kind(config: JobConfig) -> str:
    return REWARD_KIND_OF_JOB[config.kind]


def _text_samples(config: JobConfig, prompt: str, seed: int, count: int, out_dir: Path) -> tuple[list[dict], tuple]:
    from .trainers.base import resolve_device, resolve_dtype
    from .trainers.llm import TextPolicy

    device = resolve_device(config.model)
    policy = TextPolicy(config, device, resolve_dtype(config.model, device))
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        texts = policy.texts(policy.sample([prompt], count, adapter=False))
    return [{"text": text} for text in texts], ([prompt] * count, texts)


def _image_samples(config: JobConfig, prompt: str, seed: int, count: int, out_dir: Path) -> tuple[list[dict], tuple]:
    from .trainers.base import resolve_device, resolve_dtype
    from .trainers.flow import generate_images, images_to_pngs, prepare_policy

    device = resolve_device(config.model)
    policy = prepare_policy(config, device, resolve_dtype(config.model, device))
    _, images = generate_images(policy, config, prompt, seed, count, adapter=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"reference-{k}.png" for k in range(count)]
    images_to_pngs(images, paths)
    return [{"image_path": str(path.resolve())} for path in paths], (images, [prompt] * count)


# The reference sampler of each job kind (the kind registry takes these over when it lands).
SAMPLERS = {"llm": _text_samples, "flow": _image_samples}
