"""Entry points the CLI and the job service call: build the trainer for a config and run it."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any

from .config import JobConfig
from .progress import ProgressSink
from .trainers.base import BaseTrainer, RunResult

# Imported lazily: the LLM path needs no diffusers import and the flow path no generation stack.
TRAINERS = {
    "llm": "adrpo_engine.trainers.llm:LLMTrainer",
    "flow": "adrpo_engine.trainers.flow:FlowTrainer",
}


def _load(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(import_module(module), attr)


def create_trainer(config: JobConfig, run_dir: str | Path, sink: ProgressSink | None = None) -> BaseTrainer:
    return _load(TRAINERS[config.kind])(config, run_dir, sink)


def train(
    config: JobConfig, run_dir: str | Path, sink: ProgressSink | None = None, resume: bool = True
) -> RunResult:
    """Run (or resume, from the run directory's latest checkpoint) a training job."""
    return create_trainer(config, run_dir, sink).run(resume=resume)


COMPARERS = {
    "llm": "adrpo_engine.trainers.llm:generate_comparison",
    "flow": "adrpo_engine.trainers.flow:generate_comparison",
}


def compare(
    config: JobConfig,
    adapter_dir: str | Path | None,
    prompt: str,
    seed: int,
    num_samples: int,
    out_dir: str | Path,
) -> list:
    """Generate from the reference (adapter off) and the fine-tuned model (``adapter_dir``) with the
    same prompt and seed; returns :class:`~adrpo_engine.progress.Sample` objects with role
    ``reference`` or ``policy`` and their rewards (images are written under ``out_dir``)."""
    return _load(COMPARERS[config.kind])(config, adapter_dir, prompt, seed, num_samples, Path(out_dir))
