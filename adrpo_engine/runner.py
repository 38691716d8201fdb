"""Entry points the CLI and the job service call: build the trainer for a config and run it.

The kind's spec (``kinds``) names its trainer and comparer; they are imported on first use, so the
LLM path needs no diffusers import and the flow path no generation stack.
"""

from __future__ import annotations

from pathlib import Path

from .config import JobConfig
from .kinds import get_kind
from .progress import ProgressSink, Sample
from .trainers.base import BaseTrainer, RunResult


def create_trainer(config: JobConfig, run_dir: str | Path, sink: ProgressSink | None = None) -> BaseTrainer:
    return get_kind(config.kind).load_trainer()(config, run_dir, sink)


def train(
    config: JobConfig, run_dir: str | Path, sink: ProgressSink | None = None, resume: bool = True
) -> RunResult:
    """Run (or resume, from the run directory's latest checkpoint) a training job."""
    return create_trainer(config, run_dir, sink).run(resume=resume)


def compare(
    config: JobConfig,
    adapter_dir: str | Path | None,
    prompt: str,
    seed: int,
    num_samples: int,
    out_dir: str | Path,
) -> list[Sample]:
    """Generate from the reference (adapter off) and the fine-tuned model (``adapter_dir``) with the
    same prompt and seed; returns :class:`~adrpo_engine.progress.Sample` objects with role
    ``reference`` or ``policy`` and their rewards (images are written under ``out_dir``)."""
    return get_kind(config.kind).load_comparer()(config, adapter_dir, prompt, seed, num_samples, Path(out_dir))
