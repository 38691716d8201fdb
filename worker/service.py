"""The job service: what the REST API and the studio call. Synchronous and thread-safe (each call uses its
own session); training and generation run on Celery workers, never in the caller's process."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from celery import Celery
from sqlalchemy import delete, select, update

from .artifacts import LOG_FILE, ArtifactError, build_adapter_zip, tail
from .celery_app import RUN_COMPARISON, RUN_DRY_RUN, RUN_JOB, create_celery
from .db import Store, upgrade
from .models import Checkpoint, Comparison, DryRun, Job, SampleRow, utcnow
from .queries import fetch_metrics
from .settings import Settings
from .validation import SubmissionError, resolve_submission
from .views import CheckpointView, ComparisonView, DryRunView, JobView, SampleView

__all__ = [
    "JobService", "JobView", "SampleView", "CheckpointView", "ComparisonView", "DryRunView", "SubmissionError",
    "JobNotFound",
    "InvalidState", "BrokerUnavailable",
]

MAX_COMPARISON_SAMPLES = 16
MAX_DRY_RUN_SAMPLES = 16
MAX_PROMPT_CHARS = 4000


class JobNotFound(LookupError):
    """No job (or comparison, or checkpoint) with that id/step."""


class InvalidState(ValueError):
    """The action does not apply to the job in its current state (e.g. resuming a running job)."""


class BrokerUnavailable(RuntimeError):
    """The task could not be enqueued (broker down); the job row records why."""


def new_id() -> str:
    return uuid.uuid4().hex[:16]


class JobService:
    def __init__(self, settings: Settings, *, migrate: bool = True, celery: Celery | None = None) -> None:
        self.settings = settings
        if migrate:
            upgrade(settings.database_url)
        self.store = Store(settings.database_url)
        self.celery = celery or create_celery(settings)

    @classmethod
    def from_env(cls) -> JobService:
        return cls(Settings())

    # ------------------------------------------------------------------ submit and control

    def submit(self, config: dict | None = None, *, preset: str | None = None,
               overrides: dict | None = None, parent_id: str | None = None) -> JobView:
        job_config = resolve_submission(config, preset, overrides)
        job = Job(
            id=new_id(), name=job_config.name, kind=job_config.kind, algorithm=job_config.algorithm,
            preset=preset, config=job_config.model_dump(mode="json"), status="queued",
            total_steps=job_config.steps, current_step=0, cancel_requested=False, attempts=0, parent_id=parent_id,
        )
        with self.store.session() as session:
            session.add(job)
        self._enqueue_or_fail(job.id)
        return self.get_job(job.id)

    def _enqueue_or_fail(self, job_id: str) -> None:
        try:
            self.celery.send_task(RUN_JOB, args=[job_id])
        except Exception as error:  # broker down: the row must not sit in "queued" forever
            message = f"broker: could not enqueue job {job_id} ({type(error).__name__}: {error})"
            with self.store.session() as session:
                session.execute(update(Job).where(Job.id == job_id).values(status="failed", error=message))
            raise BrokerUnavailable(message) from error

    def cancel(self, job_id: str) -> JobView:
        """Queued: cancelled at once. Running: the worker stops after the current step and keeps a checkpoint."""
        with self.store.session() as session:
            job = self._job(session, job_id)
            if job.status == "queued":
                job.status = "cancelled"
                job.cancel_requested = True
                job.finished_at = utcnow()
            elif job.status == "running":
                job.cancel_requested = True
            else:
                raise InvalidState(f"status: job {job_id} is {job.status}; only queued or running jobs can be cancelled")
        return self.get_job(job_id)

    def resume(self, job_id: str) -> JobView:
        """Queue a cancelled or failed job again; it continues from its last checkpoint."""
        with self.store.session() as session:
            job = self._job(session, job_id)
            if job.status not in ("cancelled", "failed"):
                raise InvalidState(f"status: job {job_id} is {job.status}; only cancelled or failed jobs can be resumed")
            job.status, job.cancel_requested, job.error, job.finished_at = "queued", False, None, None
        self._enqueue_or_fail(job_id)
        return self.get_job(job_id)

    def clone(self, job_id: str, overrides: dict | None = None) -> JobView:
        """A new job with this job's config (plus dotted-key overrides), from step 0."""
        source = self.get_job(job_id)
        return self.submit(source.config, overrides=overrides, parent_id=job_id)

    # ------------------------------------------------------------------ reads

    def list_jobs(self, limit: int = 200) -> list[JobView]:
        with self.store.session() as session:
            jobs = session.scalars(select(Job).order_by(Job.created_at.desc(), Job.id).limit(max(1, min(limit, 10_000))))
            return [JobView.of(job) for job in jobs]

    def get_job(self, job_id: str) -> JobView:
        with self.store.session() as session:
            return JobView.of(self._job(session, job_id))

    def get_metrics(self, job_id: str, since_step: int = 0) -> dict[str, list[tuple[int, float]]]:
        self.get_job(job_id)
        return fetch_metrics(self.store.engine, job_id, since_step)

    def get_samples(self, job_id: str, since_step: int = -1) -> list[SampleView]:
        run_dir = self.settings.run_dir(job_id)
        with self.store.session() as session:
            self._job(session, job_id)
            rows = session.scalars(
                select(SampleRow)
                .where(SampleRow.job_id == job_id, SampleRow.comparison_id.is_(None), SampleRow.step > since_step)
                .order_by(SampleRow.step, SampleRow.id)
            )
            return [SampleView.of(row, run_dir) for row in rows]

    def list_checkpoints(self, job_id: str) -> list[CheckpointView]:
        run_dir = self.settings.run_dir(job_id)
        with self.store.session() as session:
            self._job(session, job_id)
            rows = session.scalars(select(Checkpoint).where(Checkpoint.job_id == job_id).order_by(Checkpoint.step))
            return [CheckpointView.of(row, run_dir) for row in rows]

    def adapter_zip(self, job_id: str, step: int | None = None) -> Path:
        """The zip of a checkpoint's adapter files (the latest checkpoint when ``step`` is None)."""
        with self.store.session() as session:
            self._job(session, job_id)
            query = select(Checkpoint).where(Checkpoint.job_id == job_id)
            query = query.where(Checkpoint.step == step) if step is not None else query.order_by(Checkpoint.step.desc())
            checkpoint = session.scalars(query.limit(1)).first()
        if checkpoint is None:
            what = f"no checkpoint at step {step}" if step is not None else "no checkpoint yet"
            raise JobNotFound(f"step: job {job_id} has {what}")
        try:
            return build_adapter_zip(self.settings.run_dir(job_id), checkpoint.path, checkpoint.step)
        except ArtifactError as error:
            raise JobNotFound(f"step: {error}") from None

    def log_tail(self, job_id: str, lines: int = 200) -> str:
        self.get_job(job_id)
        return tail(self.settings.run_dir(job_id) / LOG_FILE, max(1, min(lines, 10_000)))

    # ------------------------------------------------------------------ comparisons

    def request_comparison(self, job_id: str, *, step: int | None, prompt: str, seed: int,
                           num_samples: int = 1) -> ComparisonView:
        """Queue reference-vs-fine-tuned generation at ``step`` (None = latest checkpoint)."""
        _check_comparison(prompt, seed, num_samples)
        with self.store.session() as session:
            self._job(session, job_id)
            if step is not None and session.scalars(
                select(Checkpoint.id).where(Checkpoint.job_id == job_id, Checkpoint.step == step)
            ).first() is None:
                raise SubmissionError("step", f"job {job_id} has no checkpoint at step {step}")
            row = Comparison(id=new_id(), job_id=job_id, step=step, prompt=prompt, seed=seed,
                             num_samples=num_samples, status="queued")
            session.add(row)
        try:
            self.celery.send_task(RUN_COMPARISON, args=[row.id])
        except Exception as error:
            with self.store.session() as session:
                session.execute(delete(Comparison).where(Comparison.id == row.id))
            raise BrokerUnavailable(f"broker: could not enqueue the comparison ({type(error).__name__}: {error})") from error
        return self.get_comparison(row.id)

    def get_comparison(self, comparison_id: str) -> ComparisonView:
        with self.store.session() as session:
            row = session.get(Comparison, comparison_id)
            if row is None:
                raise JobNotFound(f"comparison {comparison_id!r} does not exist")
            run_dir = self.settings.run_dir(row.job_id)
            samples = session.scalars(
                select(SampleRow).where(SampleRow.comparison_id == comparison_id).order_by(SampleRow.id)
            )
            return ComparisonView.of(row, [SampleView.of(sample, run_dir) for sample in samples])

    def list_comparisons(self, job_id: str) -> list[ComparisonView]:
        """The job's comparisons, newest first."""
        with self.store.session() as session:
            self._job(session, job_id)
            ids = session.scalars(select(Comparison.id).where(Comparison.job_id == job_id)
                                  .order_by(Comparison.created_at.desc(), Comparison.id)).all()
        return [self.get_comparison(comparison_id) for comparison_id in ids]

    # ------------------------------------------------------------------ reward dry runs

    def request_dry_run(self, config: dict | None = None, *, preset: str | None = None,
                        overrides: dict | None = None, num_samples: int = 4, seed: int = 0) -> DryRunView:
        """Queue a reward dry run of a job config (checked exactly as a submission is; nothing is trained)."""
        _check_count("num_samples", num_samples, MAX_DRY_RUN_SAMPLES)
        _check_seed(seed)
        job_config = resolve_submission(config, preset, overrides)
        row = DryRun(id=new_id(), config=job_config.model_dump(mode="json"), num_samples=num_samples, seed=seed,
                     status="queued")
        with self.store.session() as session:
            session.add(row)
        try:
            self.celery.send_task(RUN_DRY_RUN, args=[row.id])
        except Exception as error:
            with self.store.session() as session:
                session.execute(delete(DryRun).where(DryRun.id == row.id))
            raise BrokerUnavailable(f"broker: could not enqueue the dry run ({type(error).__name__}: {error})") from error
        return self.get_dry_run(row.id)

    def get_dry_run(self, dry_run_id: str) -> DryRunView:
        with self.store.session() as session:
            row = session.get(DryRun, dry_run_id) if isinstance(dry_run_id, str) else None
            if row is None:
                raise JobNotFound(f"dry run {dry_run_id!r} does not exist")
            return DryRunView.of(row)

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _job(session, job_id: str) -> Job:
        job = session.get(Job, job_id) if isinstance(job_id, str) else None
        if job is None:
            raise JobNotFound(f"job {job_id!r} does not exist")
        return job

    def close(self) -> None:
        self.store.engine.dispose()


def _check_comparison(prompt: Any, seed: Any, num_samples: Any) -> None:
    if not isinstance(prompt, str) or not prompt.strip():
        raise SubmissionError("prompt", "must be a non-empty string")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise SubmissionError("prompt", f"at most {MAX_PROMPT_CHARS} characters")
    _check_seed(seed)
    _check_count("num_samples", num_samples, MAX_COMPARISON_SAMPLES)


def _check_seed(seed: Any) -> None:
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= 2**31 - 1:
        raise SubmissionError("seed", f"must be an integer in [0, {2**31 - 1}] (got {seed!r})")


def _check_count(field: str, value: Any, most: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
        raise SubmissionError(field, f"must be an integer in [1, {most}] (got {value!r})")
