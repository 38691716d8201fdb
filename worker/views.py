"""What the service returns to the API and the studio (pydantic models, detached from the database)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast, overload

from pydantic import BaseModel

from adrpo_engine.checkpoints import DIFFUSERS_WEIGHTS
from adrpo_engine.progress import AUDIO_SAMPLE, TRAINING

from .artifacts import MergedFiles
from .models import Checkpoint, Comparison, DryRun, Evaluation, Job, SampleRow
from .status import JobStatus

# Columns hold these as plain strings; the views name the values they can take (pydantic checks them).
SampleRole = Literal["policy", "reference"]
SampleKind = Literal["text", "image", "audio"]
ComparisonStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]  # JobStatus values
EvalStatus = Literal["queued", "running", "succeeded", "failed"]
SweepStatus = Literal["queued", "running", "evaluating", "finished", "cancelled"]
MergedStatus = Literal["absent", "building", "ready", "failed"]


@overload
def as_utc(moment: datetime) -> datetime: ...
@overload
def as_utc(moment: None) -> None: ...
@overload
def as_utc(moment: datetime | None) -> datetime | None: ...
def as_utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything the service stores is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


class JobView(BaseModel):
    id: str
    name: str
    kind: str  # a registered kind (adrpo_engine.kinds)
    algorithm: str
    status: JobStatus
    preset: str | None
    config: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    current_step: int
    total_steps: int
    latest_reward: float | None
    eta_seconds: float | None
    phase: str | None = None  # while running: "loading model", "building model", "evaluating", "training"
    phase_detail: str | None = None  # e.g. "builtin:tiny-lm is built once: pre-training step 300/1500"
    error: str | None
    cancel_requested: bool = False
    attempts: int = 0
    worker: str | None = None
    parent_id: str | None = None

    @classmethod
    def of(cls, job: Job) -> JobView:
        eta = None
        running = job.status == JobStatus.RUNNING
        phase = (job.phase or "starting") if running else None
        # The ETA counts training steps: it starts once training has (not while a model is being built).
        if phase == TRAINING and job.seconds_per_step is not None:
            eta = max(0.0, (job.total_steps - job.current_step) * job.seconds_per_step)
        return cls(
            id=job.id,
            name=job.name,
            kind=job.kind,
            algorithm=job.algorithm,
            status=JobStatus(job.status),
            preset=job.preset,
            config=job.config,
            created_at=as_utc(job.created_at),
            started_at=as_utc(job.started_at),
            finished_at=as_utc(job.finished_at),
            current_step=job.current_step,
            total_steps=job.total_steps,
            latest_reward=job.latest_reward,
            eta_seconds=eta,
            phase=phase,
            phase_detail=job.phase_detail if running else None,
            error=job.error,
            cancel_requested=job.cancel_requested,
            attempts=job.attempts,
            worker=job.worker,
            parent_id=job.parent_id,
        )


class SampleView(BaseModel):
    step: int
    role: SampleRole
    prompt: str
    seed: int
    kind: SampleKind
    text: str | None
    image_path: str | None  # absolute
    reward: float | None
    audio_path: str | None = None  # absolute: the clip an audio sample answered

    @classmethod
    def of(cls, row: SampleRow, run_dir: Path) -> SampleView:
        media = str((run_dir / row.image_path).resolve()) if row.image_path else None
        audio = row.kind == AUDIO_SAMPLE
        return cls(
            step=row.step,
            role=cast(SampleRole, row.role),
            prompt=row.prompt,
            seed=row.seed,
            kind=cast(SampleKind, row.kind),
            text=row.text,
            image_path=None if audio else media,
            audio_path=media if audio else None,
            reward=row.reward,
        )


class CheckpointView(BaseModel):
    step: int
    path: str  # absolute
    sha256: str
    created_at: datetime
    comfyui: bool = False  # an SD3 LoRA: also downloadable for ComfyUI (GET .../comfyui-lora.safetensors)

    @classmethod
    def of(cls, row: Checkpoint, run_dir: Path) -> CheckpointView:
        return cls(
            step=row.step,
            path=str((run_dir / row.path).resolve()),
            sha256=row.sha256,
            created_at=as_utc(row.created_at),
            comfyui=(run_dir / row.path / DIFFUSERS_WEIGHTS).is_file(),
        )


class MergedModelView(BaseModel):
    """An LLM checkpoint merged into its base model (one zip of a transformers folder), by its files."""

    job_id: str
    step: int
    status: MergedStatus
    file: str  # the zip's name (GET /api/jobs/{id}/merged-model.zip?step=N once ready)
    error: str | None = None

    @classmethod
    def of(cls, job_id: str, step: int, files: MergedFiles) -> MergedModelView:
        if files.zip.is_file():
            status: MergedStatus = "ready"
        elif files.building.is_file():
            status = "building"
        else:
            status = "failed" if files.error.is_file() else "absent"
        error = files.error.read_text().strip() if status == "failed" else None
        return cls(job_id=job_id, step=step, status=status, file=files.zip.name, error=error)


class ComparisonView(BaseModel):
    id: str
    job_id: str
    step: int | None
    prompt: str
    seed: int
    num_samples: int
    status: ComparisonStatus
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    samples: list[SampleView]

    @classmethod
    def of(cls, row: Comparison, samples: list[SampleView]) -> ComparisonView:
        return cls(
            id=row.id,
            job_id=row.job_id,
            step=row.step,
            prompt=row.prompt,
            seed=row.seed,
            num_samples=row.num_samples,
            status=cast(ComparisonStatus, JobStatus(row.status).value),
            error=row.error,
            created_at=as_utc(row.created_at),
            finished_at=as_utc(row.finished_at),
            samples=samples,
        )


class EvalView(BaseModel):
    id: str
    job_id: str
    step: int  # 0 = the reference (adapter off)
    role: Literal["reference", "policy"]
    status: EvalStatus
    reason: str
    prompts: int | None
    samples_per_prompt: int | None
    held_out: bool | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    metrics: dict[str, float]
    counts: dict[str, int]

    @classmethod
    def of(cls, row: Evaluation, metrics: dict[str, tuple[float, int]]) -> EvalView:
        return cls(
            id=row.id,
            job_id=row.job_id,
            step=row.step,
            role="reference" if row.step == 0 else "policy",
            status=cast(EvalStatus, row.status),
            reason=row.reason,
            prompts=row.prompts,
            samples_per_prompt=row.samples_per_prompt,
            held_out=row.held_out,
            error=row.error,
            created_at=as_utc(row.created_at),
            finished_at=as_utc(row.finished_at),
            metrics={k: v for k, (v, _) in metrics.items()},
            counts={k: c for k, (_, c) in metrics.items()},
        )


class SweepJobView(BaseModel):
    job_id: str
    name: str
    params: dict[str, Any]
    seed: int
    method: str
    status: str
    current_step: int
    total_steps: int
    eval_status: str | None  # of the eval of its final checkpoint
    eval: dict[str, float] | None  # that eval's metrics, once it succeeded


class SweepView(BaseModel):
    id: str
    name: str
    kind: str  # a registered kind (adrpo_engine.kinds)
    preset: str | None
    grid: dict[str, list[Any]]
    seeds: list[int]
    overrides: dict[str, Any]
    created_at: datetime
    cancel_requested: bool
    status: SweepStatus
    progress: dict[str, int]  # jobs per status, plus "evaluated"
    jobs: list[SweepJobView]
    reference: dict[str, float] | None
    points: list[dict[str, Any]]  # one per grid point: params, method, seeds, mean, std, n, frontier flags
    planes: dict[str, dict[str, str]]


class DryRunSample(BaseModel):
    index: int
    scores: dict[str, float]  # per reward row, keyed like the per-reward metrics (reward/<name>)
    total: float  # the weighted sum the trainer would use
    text: str | None = None  # the completion (LLM), or what the model reads in the image (built-in worlds)
    image_path: str | None = None  # absolute, on the worker's artifacts path; GET .../images/{index} serves it


class DryRunView(BaseModel):
    id: str
    status: Literal["queued", "running", "succeeded", "failed"]
    error: str | None
    num_samples: int
    seed: int
    prompt: str | None  # the config's first prompt, once the worker has read it
    rewards: list[dict[str, Any]]  # one per row: label (reward/<name>), name, model, weight
    samples: list[DryRunSample]
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, row: DryRun) -> DryRunView:
        result = row.result or {}
        return cls(
            id=row.id,
            status=cast(EvalStatus, row.status),  # the same four states as an eval
            error=row.error,
            num_samples=row.num_samples,
            seed=row.seed,
            prompt=result.get("prompt"),
            rewards=result.get("rewards", []),
            samples=[DryRunSample(**sample) for sample in result.get("samples", [])],
            created_at=as_utc(row.created_at),
            finished_at=as_utc(row.finished_at),
        )
