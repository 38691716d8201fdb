"""The step/checkpoint/metrics protocol both trainers share.

A subclass loads its model in :meth:`BaseTrainer.setup`, does one optimisation step in
:meth:`BaseTrainer.train_step` (returning its metric dict: the names in ``metrics``), and knows how to save and load its
adapter. The loop here owns seeding, metrics.jsonl, sample logging, checkpoints and resume, so every
trainer behaves the same for the CLI, the job service and tests.

Checkpoint layout (``run_dir/checkpoints/step-000010/``): the adapter files the subclass writes
(PEFT's ``adapter_model.safetensors`` + ``adapter_config.json``, and for diffusers models also
``pytorch_lora_weights.safetensors``) plus ``trainer_state.pt`` (step, optimizer, scheduler, RNG
states, subclass extras). A checkpoint is written to a temporary folder and renamed, so a crash never
leaves a half-written one behind.
"""

from __future__ import annotations

import math
import random
import shutil
import tempfile
import threading
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import metrics as M
from ..checkpoints import TRAINER_STATE, checkpoint_dir, list_checkpoints
from ..config import JobConfig, ModelConfig
from ..distributed import Distributed
from ..integrity import load_trainer_state, numpy_rng_state, set_numpy_rng_state, verify_checkpoint, write_manifest
from ..paths import publish_cache, staging_dir
from ..progress import (
    EVALUATING,
    LOADING,
    TRAINING,
    FanOutSink,
    JsonlMetricsSink,
    NullSink,
    Phase,
    ProgressSink,
    Sample,
    phase_handler,
    reporting_phases,
)
from ..sharding import ShardReport, shard_frozen_weights
from ..threads import thread_limit
from ..trackers import build_trackers


class TrainingError(RuntimeError):
    """A run that cannot go on (non-finite loss, unusable model or reward); the message is for people."""


@dataclass
class RunResult:
    status: str  # "succeeded" | "cancelled"
    last_step: int
    checkpoint: Path | None
    first_metrics: dict[str, float]
    last_metrics: dict[str, float]


def step_seed(seed: int, step: int) -> int:
    """The seed of one step: a resumed run replays a step exactly without restoring generator state."""
    return (seed * 1_000_003 + step * 7_919) % (2**31 - 1)


def group_seed(seed: int, step: int, group: int) -> int:
    """The seed of prompt group ``group`` (its index in the step's whole batch) at ``step``: the draws of a group
    do not depend on which process samples it or on what else is in its batch."""
    return (step_seed(seed, step) * 1_000_033 + (group + 1) * 104_729) % (2**31 - 1)


def group_generators(seed: int, step: int, groups: range) -> list[torch.Generator]:
    """One CPU generator per prompt group of ``groups`` (global indices), seeded by :func:`group_seed`."""
    return [torch.Generator().manual_seed(group_seed(seed, step, group)) for group in groups]


def rank_step_seed(seed: int, step: int, rank: int) -> int:
    """The step seed of one process (rank 0: :func:`step_seed`), so ranks do not share dropout masks."""
    return (step_seed(seed, step) + rank * 7_368_787) % (2**31 - 1)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def resolve_device(model: ModelConfig) -> torch.device:
    if model.device == "cuda" or (model.device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def resolve_dtype(model: ModelConfig, device: torch.device) -> torch.dtype:
    if model.dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, model.dtype)


def micro_batches(rows: int, chunks: int) -> list[slice]:
    """``rows`` split into at most ``chunks`` consecutive, near-equal slices (``grad_accum``)."""
    chunks = max(1, min(chunks, rows))
    bounds = [round(i * rows / chunks) for i in range(chunks + 1)]
    return [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]


CORRUPT_PREFIX = "corrupt-"  # a checkpoint that failed verification is renamed to corrupt-step-NNNNNN


def quarantine_checkpoint(path: Path) -> Path:
    """Rename a bad checkpoint folder to ``corrupt-step-NNNNNN[-k]`` beside it (kept for inspection)."""
    target = path.with_name(CORRUPT_PREFIX + path.name)
    suffix = 1
    while target.exists():
        target = path.with_name(f"{CORRUPT_PREFIX}{path.name}-{suffix}")
        suffix += 1
    path.rename(target)
    return target


def _complete_checkpoint(path: Path) -> bool:
    return (path / TRAINER_STATE).is_file()


class BaseTrainer(ABC):
    def __init__(self, config: JobConfig, run_dir: str | Path, sink: ProgressSink | None = None) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        device = resolve_device(config.model)
        # A job launched on N processes (resources.processes) finds its group here; one process: the identity.
        self.dist = Distributed.from_environment(use_cpu=device.type == "cpu")
        # Rank 0 alone reports (metrics, samples, checkpoints, logs); the other ranks only train.
        self.sink = (sink or NullSink()) if self.dist.is_main else NullSink()
        if self.dist.active and self.dist.world_size != config.resources.processes:
            raise TrainingError(
                f"launched on {self.dist.world_size} processes but resources.processes is {config.resources.processes}"
            )
        self.device = self.dist.device_for(device)
        self.dtype = resolve_dtype(config.model, self.device)
        # Set by a SIGTERM handler (distributed.stop_on_signals) or a caller: stop after the current step.
        self.stop_event = threading.Event()
        # True once FSDP sharded the frozen weights (sharding.py): then every rank takes part in every forward.
        self.sharded = False
        # Set by init_optimizer() in setup(); every use comes after it.
        self.optimizer: torch.optim.Optimizer
        self.scheduler: torch.optim.lr_scheduler.LRScheduler

    # ------------------------------------------------------------------ subclass hooks

    @abstractmethod
    def setup(self) -> None:
        """Load models, rewards and prompts; call :meth:`init_optimizer` with the trainable parameters."""

    @abstractmethod
    def train_step(self, step: int) -> dict[str, float]:
        """One optimisation step (rollouts, rewards, loss, update); returns the kind's metrics (``kinds``)."""

    @abstractmethod
    def save_adapter(self, directory: Path) -> None:
        """Write the adapter files into ``directory`` (which exists)."""

    @abstractmethod
    def load_adapter(self, directory: Path) -> None:
        """Load adapter weights saved by :meth:`save_adapter` into the model being trained."""

    def log_samples(self, step: int) -> list[Sample]:
        """Samples for the studio at ``step`` (step 0 = the reference model); images under run_dir."""
        return []

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def shardable_module(self) -> torch.nn.Module:
        """The network whose frozen weights FSDP shards across the processes (``sharding.py``)."""
        raise TrainingError(f"resources.accelerate_config: FSDP is not supported by {type(self).__name__}")

    def shard_weights(self) -> ShardReport | None:
        """Shard the frozen weights when the job's accelerate config asks for FSDP (and it runs on 2+ processes)."""
        settings = self.config.resources.fsdp() if self.dist.active else None
        if settings is None:
            return None
        report = shard_frozen_weights(self.shardable_module(), settings, self.dist, self.device)
        self.sharded = True
        return report

    # ------------------------------------------------------------------ shared pieces

    def init_optimizer(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """AdamW (torch's, or bitsandbytes' 8-bit one with ``optim: adamw_8bit``) with linear warm-up to ``lr``,
        then constant."""
        self.trainable = [p for p in parameters if p.requires_grad]
        if not self.trainable:
            raise TrainingError("the model has no trainable parameters (check lora.target_modules)")
        cfg = self.config
        if cfg.optim == "adamw_8bit":
            if self.device.type != "cuda":
                raise TrainingError("optim adamw_8bit needs a CUDA device (bitsandbytes' 8-bit kernels)")
            import bitsandbytes  # pyright: ignore[reportMissingImports] (the optional `bnb` extra)

            self.optimizer = bitsandbytes.optim.AdamW8bit(self.trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
        else:
            self.optimizer = torch.optim.AdamW(self.trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
        warmup = self.config.warmup_steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda done: min(1.0, (done + 1) / (warmup + 1)) if warmup else 1.0
        )

    def optimizer_step(self) -> float:
        """Sum the gradients over the processes (each rank's loss is its share of the whole batch's), clip,
        step, schedule, zero; returns the pre-clip gradient norm."""
        self.dist.sum_gradients(self.trainable)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.trainable, self.config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(grad_norm)

    def current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def log(self, message: str) -> None:
        self.sink.on_log(message)

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self, step: int) -> Path:
        """Called on every rank (their RNG states are gathered); rank 0 alone writes (the adapters are equal)."""
        final = checkpoint_dir(self.run_dir, step)
        rng_states = self.dist.gather_objects([self.rng_state()])
        if not self.dist.is_main or _complete_checkpoint(final):
            return final
        # One writer per run: a staging folder or half a checkpoint left by a crash is replaced.
        staging = staging_dir(final, exclusive=True)
        self._write_checkpoint(staging, step, rng_states)
        publish_cache(staging, final, complete=_complete_checkpoint)
        self.sink.on_checkpoint(step, final)
        return final

    def rng_state(self) -> dict[str, Any]:
        devices = [self.device] if self.device.type == "cuda" else []
        return {
            "python": random.getstate(),
            "numpy": numpy_rng_state(),
            "torch": torch.get_rng_state(),
            "cuda": [torch.cuda.get_rng_state(d) for d in devices] if devices else None,
        }

    def _write_checkpoint(self, staging: Path, step: int, rng_states: list[dict[str, Any]]) -> None:
        self.save_adapter(staging)
        state = {
            "step": step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng_states[0],
            "rng_ranks": rng_states,  # one per process, restored rank by rank
            "extra": self.extra_state(),
        }
        torch.save(state, staging / TRAINER_STATE)
        write_manifest(staging)  # the digests resume checks (integrity.py)

    def restore(self, directory: Path) -> int:
        self.load_adapter(directory)
        state = load_trainer_state(directory / TRAINER_STATE)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        ranks = state.get("rng_ranks") or [state["rng"]]
        rng = ranks[self.dist.rank] if len(ranks) == self.dist.world_size else state["rng"]
        random.setstate(rng["python"])
        set_numpy_rng_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])
        if rng.get("cuda") and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"][0], self.device)
        self.load_extra_state(state.get("extra", {}))
        return int(state["step"])

    # ------------------------------------------------------------------ the loop

    def run(self, resume: bool = True) -> RunResult:
        # Phases reported from deep inside setup (a built-in model's first build) reach this run's sink.
        with thread_limit(self.config), reporting_phases(self.report_phase):
            return self._run(resume)

    def report_phase(self, phase: Phase) -> None:
        if self.dist.is_main:
            phase_handler(self.sink)(phase)

    def _run(self, resume: bool) -> RunResult:
        cfg = self.config
        # Load and validate first (model, rewards, prompts): a bad model id or reward must leave no
        # half-written run directory behind.
        seed_everything(cfg.seed)
        self.report_phase(Phase(LOADING, cfg.model.name_or_path))
        with self.dist.main_first():  # a built-in model's first build: once, by rank 0
            self.setup()
        self.dist.broadcast_parameters(self.trainable)
        sharding = self.shard_weights()
        main = self.dist.is_main
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            cfg.save(self.run_dir / "config.yaml")
            for note in cfg.advisories():
                warnings.warn(note, UserWarning, stacklevel=2)
                self.log(f"warning: {note}")
            if self.dist.active:
                self.log(f"data parallel on {self.dist.world_size} processes ({self.device.type})")
            if sharding is not None:
                self.log(sharding.describe(self.dist.world_size))
        elif self.sharded:
            # This rank draws the studio's samples too (each forward all-gathers), into a folder nobody keeps.
            self.run_dir = Path(tempfile.mkdtemp(prefix=f"adrpo-rank{self.dist.rank}-"))

        start_step = 0
        found = self._restore_newest_good() if resume and main else None
        if self.dist.active and resume:
            # Rank 0 picks (and verifies) the checkpoint; every other rank loads the same one.
            chosen = self.dist.broadcast_object(None if found is None else str(found[1]))
            if not main and chosen is not None:
                found = (self.restore(Path(chosen)), Path(chosen))
        if found is not None:
            start_step = found[0]
            self.log(f"resumed from {found[1]} (step {start_step})")
        trackers = build_trackers(cfg, self.run_dir, self.log) if main else []
        reporter: ProgressSink = NullSink()
        if main:
            reporter = FanOutSink(JsonlMetricsSink(self.run_dir / "metrics.jsonl"), self.sink, *trackers)
        status = "failed"
        try:
            result = self._loop(reporter, start_step, found[1] if found else None)
            status = result.status
            return result
        finally:
            for tracker in trackers:
                tracker.close(status)
            if self.sharded and not main:
                shutil.rmtree(self.run_dir, ignore_errors=True)

    def _loop(self, reporter: ProgressSink, start_step: int, checkpoint: Path | None) -> RunResult:
        cfg = self.config
        reporter.on_start(cfg.steps, start_step)

        main = self.dist.is_main
        samples_here = main or self.sharded  # sharded: every rank samples, rank 0's are reported
        if start_step == 0 and samples_here:
            self.report_phase(Phase(EVALUATING, "samples of the reference model (step 0)"))
            seed_everything(step_seed(cfg.seed, 0))
            self._report_samples(reporter, 0)
        self.report_phase(Phase(TRAINING, f"from step {start_step}" if start_step else ""))

        first: dict[str, float] = {}
        last: dict[str, float] = {}
        step = start_step
        cuda = self.device.type == "cuda"
        for step in range(start_step + 1, cfg.steps + 1):
            seed_everything(rank_step_seed(cfg.seed, step, self.dist.rank))
            if cuda:
                torch.cuda.reset_peak_memory_stats(self.device)
            started = time.perf_counter()
            step_metrics = self.train_step(step)
            step_metrics.setdefault(M.STEP_TIME, time.perf_counter() - started)
            step_metrics.setdefault(M.LR, self.current_lr())
            if cuda:  # what a practitioner sizes batches and processes by
                peak = torch.cuda.max_memory_allocated(self.device) / 2**30
                step_metrics[M.GPU_PEAK_GIB] = self.dist.maximum(peak)
            self._check_finite(step, step_metrics)
            reporter.on_step(step, step_metrics)
            first = first or step_metrics
            last = step_metrics
            if samples_here and (step % cfg.sample_every == 0 or step == cfg.steps):
                self._report_samples(reporter, step)
            # Rank 0 asks the sink (cancel, shutdown); any rank may have been signalled: all stop together.
            stop = (reporter.should_stop() if main else False) or self.stop_event.is_set()
            stop = self.dist.any(stop)
            if stop or step % cfg.checkpoint_every == 0 or step == cfg.steps:
                checkpoint = self.save_checkpoint(step)
            if stop:
                self.log(f"stopped on request after step {step}")
                return RunResult("cancelled", step, checkpoint, first, last)
        return RunResult("succeeded", step, checkpoint, first, last)

    def _restore_newest_good(self) -> tuple[int, Path] | None:
        """Restore the newest checkpoint that verifies and loads; move bad ones aside (so they are neither
        picked again nor mistaken for a finished step when it is saved again), saying so in the log."""
        failed_load = None
        for step, path in reversed(list_checkpoints(self.run_dir)):
            problem = verify_checkpoint(path)
            if problem is None:
                try:
                    return self.restore(path), path
                except Exception as error:  # truncated safetensors, unreadable state: an older one may do
                    problem = failed_load = (
                        f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
                    )
            aside = quarantine_checkpoint(path)
            self.log(
                f"checkpoint step {step} is unusable ({problem}); moved to {aside.name}, "
                "falling back to the previous checkpoint"
            )
        if failed_load is not None:
            # A failed load may have left part of its weights in the model: do not train on from there.
            raise TrainingError(
                f"no usable checkpoint (the last one failed to load: {failed_load}); the bad ones "
                "were moved aside, so resuming the job starts again from step 0"
            )
        return None

    def _report_samples(self, reporter: ProgressSink, step: int) -> None:
        samples = self.log_samples(step)
        if samples:
            reporter.on_samples(step, samples)

    @staticmethod
    def _check_finite(step: int, step_metrics: dict[str, float]) -> None:
        loss = step_metrics.get(M.LOSS)
        if loss is not None and not math.isfinite(loss):
            raise TrainingError(
                f"loss is {loss} at step {step}; lower lr or raise beta0 (the last good checkpoint is kept)"
            )
