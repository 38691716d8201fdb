"""The job service: what the REST API and the studio call. Synchronous and thread-safe (each call uses its
own session); training and generation run on Celery workers, never in the caller's process."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery import Celery
from sqlalchemy import delete, select, update

from adrpo_engine.errors import ConfigError

from .artifacts import (
    LOG_FILE,
    ArtifactError,
    CorruptCheckpoint,
    ZipExtras,
    build_adapter_zip,
    build_comfyui_lora,
    merged_files,
    tail,
)
from .celery_app import EXPORT_MERGED, RUN_COMPARISON, RUN_DRY_RUN, RUN_EVAL, RUN_JOB, create_celery
from .db import Store, existing, upgrade
from .evals import EvalRequestError, eval_metrics, request_eval
from .inputs import MAX_SQL_INT, check_id, check_text
from .model_card import export_stem, model_card, zip_name
from .models import Checkpoint, Comparison, DryRun, Evaluation, Job, SampleRow, Sweep, utcnow
from .policy import Policy
from .queries import fetch_metrics
from .settings import Settings
from .status import JobStatus
from .uploads import store_uploads
from .validation import SubmissionError, resolve_submission, resolve_sweep
from .views import (
    CheckpointView,
    ComparisonView,
    DryRunView,
    EvalView,
    JobView,
    MergedModelView,
    SampleView,
    SweepJobView,
    SweepStatus,
    SweepView,
    as_utc,
)

__all__ = [
    "JobService",
    "JobView",
    "SampleView",
    "CheckpointView",
    "ComparisonView",
    "DryRunView",
    "EvalView",
    "MergedModelView",
    "SweepView",
    "SubmissionError",
    "JobNotFound",
    "InvalidState",
    "BrokerUnavailable",
]

MAX_COMPARISON_SAMPLES = 16
# A merge whose marker is older than this is taken for one whose worker died: a new request sends it again.
MERGE_STALE_S = 3600
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
        self.policy = Policy.of(settings)
        # Set by `adrpo serve` (a WorkerSupervisor): the embedded worker's state, for /api/health.
        self.worker_state: Callable[[], dict[str, Any]] | None = None

    @classmethod
    def from_env(cls) -> JobService:
        return cls(Settings())

    # ------------------------------------------------------------------ submit and control

    def submit(
        self,
        config: dict | None = None,
        *,
        preset: str | None = None,
        overrides: dict | None = None,
        parent_id: str | None = None,
        uploads: dict[str, bytes] | None = None,
    ) -> JobView:
        """Validate and queue a job. ``uploads`` (file name -> bytes): files that travel with the job, e.g. an
        audio job's clips; they are stored under ``ADRPO_UPLOADS_DIR/jobs/<job id>/`` and every inline row
        (``prompts.rows``) whose ``audio.column`` names one of them gets that file's path."""
        job_id = new_id()
        stored = self.settings.uploads_dir / "jobs" / job_id if uploads else None
        try:
            if stored is not None:
                config, overrides = store_uploads(stored, uploads or {}, config, preset, overrides)
            job_config = resolve_submission(config, preset, overrides, policy=self.policy)
        except BaseException:
            if stored is not None:
                shutil.rmtree(stored, ignore_errors=True)
            raise
        job = Job(
            id=job_id,
            name=job_config.name,
            kind=job_config.kind,
            algorithm=job_config.algorithm,
            preset=preset,
            config=job_config.model_dump(mode="json"),
            status=JobStatus.QUEUED,
            total_steps=job_config.steps,
            current_step=0,
            cancel_requested=False,
            attempts=0,
            parent_id=parent_id,
        )
        # The row and its broker message are one unit: the row is committed first (so a worker that gets
        # the message at once finds it), and removed again if the message cannot be sent or anything
        # else fails before the caller has its answer. Nothing stays behind from a refused submission.
        with self.store.session() as session:
            session.add(job)
        try:
            self._enqueue(job.id)
            return self.get_job(job.id)
        except BaseException:
            with self.store.session() as session:
                session.execute(delete(Job).where(Job.id == job.id))
            raise

    def _enqueue(self, job_id: str) -> None:
        try:
            self.celery.send_task(RUN_JOB, args=[job_id])
        except Exception as error:
            raise BrokerUnavailable(
                f"broker: could not enqueue job {job_id} ({type(error).__name__}: {error})"
            ) from error

    def cancel(self, job_id: str) -> JobView:
        """Queued: cancelled at once. Running: the worker stops after the current step and keeps a checkpoint."""
        with self.store.session() as session:
            job = self._job(session, job_id)
            if job.status == JobStatus.QUEUED:
                job.status = JobStatus.CANCELLED
                job.cancel_requested = True
                job.finished_at = utcnow()
            elif job.status == JobStatus.RUNNING:
                job.cancel_requested = True
            else:
                raise InvalidState(
                    f"status: job {job_id} is {job.status}; only queued or running jobs can be cancelled"
                )
        return self.get_job(job_id)

    def resume(self, job_id: str) -> JobView:
        """Queue a cancelled or failed job again; it continues from its last checkpoint."""
        with self.store.session() as session:
            job = self._job(session, job_id)
            if job.status not in (JobStatus.CANCELLED, JobStatus.FAILED):
                raise InvalidState(
                    f"status: job {job_id} is {job.status}; only cancelled or failed jobs can be resumed"
                )
            before = (job.status, job.cancel_requested, job.error, job.finished_at)
            job.status, job.cancel_requested, job.error, job.finished_at = "queued", False, None, None
        try:
            self._enqueue(job_id)
        except BrokerUnavailable:
            # Not resumed after all: the job keeps the state it had (unless a worker took it meanwhile).
            status, cancel_requested, error, finished_at = before
            with self.store.session() as session:
                session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.status == "queued")
                    .values(status=status, cancel_requested=cancel_requested, error=error, finished_at=finished_at)
                )
            raise
        return self.get_job(job_id)

    def clone(self, job_id: str, overrides: dict | None = None) -> JobView:
        """A new job with this job's config (plus dotted-key overrides), from step 0."""
        if overrides is not None and not isinstance(overrides, dict):
            raise SubmissionError("overrides", "expected a mapping of dotted keys to values")
        source = self.get_job(job_id)
        return self.submit(source.config, overrides=overrides, parent_id=job_id)

    # ------------------------------------------------------------------ reads

    def list_jobs(self, limit: int = 200) -> list[JobView]:
        with self.store.session() as session:
            jobs = session.scalars(
                select(Job).order_by(Job.created_at.desc(), Job.id).limit(max(1, min(limit, 10_000)))
            )
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

    def _checkpoint_row(self, job_id: str, step: int | None) -> Checkpoint:
        """The checkpoint at ``step`` (the latest when None), or JobNotFound naming the field."""
        with self.store.session() as session:
            self._job(session, job_id)
            query = select(Checkpoint).where(Checkpoint.job_id == job_id)
            query = query.where(Checkpoint.step == step) if step is not None else query.order_by(Checkpoint.step.desc())
            checkpoint = session.scalars(query.limit(1)).first()
        if checkpoint is None:
            what = f"no checkpoint at step {step}" if step is not None else "no checkpoint yet"
            raise JobNotFound(f"step: job {job_id} has {what}")
        return checkpoint

    def comfyui_lora(self, job_id: str, step: int | None = None) -> Path:
        """An SD3 job's checkpoint LoRA as one ComfyUI-loadable .safetensors (named like the zip)."""
        checkpoint = self._checkpoint_row(job_id, step)
        job = self.get_job(job_id)
        stem = export_stem(job.name, job.id, checkpoint.step)
        try:
            return build_comfyui_lora(
                self.settings.run_dir(job_id), checkpoint.path, checkpoint.step, stem, checkpoint.sha256
            )
        except ArtifactError as error:
            raise InvalidState(f"step: {error}") from None
        except CorruptCheckpoint as error:
            raise InvalidState(f"step: {error}") from None
        except ConfigError as error:  # the exporter's own checks (e.g. per-module ranks)
            raise InvalidState(str(error)) from None

    def adapter_zip(self, job_id: str, step: int | None = None) -> Path:
        """The zip of a checkpoint's adapter files (the latest checkpoint when ``step`` is None)."""
        checkpoint = self._checkpoint_row(job_id, step)
        try:
            return build_adapter_zip(
                self.settings.run_dir(job_id),
                checkpoint.path,
                checkpoint.step,
                self._zip_extras(job_id, checkpoint.step),
                expected_sha256=checkpoint.sha256,
            )
        except ArtifactError as error:
            raise JobNotFound(f"step: {error}") from None
        except CorruptCheckpoint as error:
            raise InvalidState(f"step: {error}") from None

    def merged_model(self, job_id: str, step: int | None = None, *, build: bool = False) -> MergedModelView:
        """An LLM checkpoint (the latest when ``step`` is None) merged into its base model, by its files;
        with ``build``, a worker on the generate queue is asked to build it unless it is built or being
        built (a failed one is tried again). The merge loads the whole base model: never in this process."""
        from adrpo_engine.export import can_merge

        job = self.get_job(job_id)
        if not can_merge(job.kind):
            raise InvalidState(f"kind: a merged model is for LLM jobs; job {job_id} is a {job.kind!r} job")
        checkpoint = self._checkpoint_row(job_id, step)
        files = merged_files(self.settings.run_dir(job_id), export_stem(job.name, job.id, checkpoint.step))
        view = MergedModelView.of(job_id, checkpoint.step, files)
        stale = view.status == "building" and time.time() - files.building.stat().st_mtime > MERGE_STALE_S
        if not build or view.status not in ("absent", "failed") and not stale:
            return view
        files.zip.parent.mkdir(parents=True, exist_ok=True)
        files.error.unlink(missing_ok=True)
        files.building.write_text(f"requested {utcnow().isoformat()}\n")
        try:
            self.celery.send_task(EXPORT_MERGED, args=[job_id, checkpoint.step])
        except Exception as error:
            files.building.unlink(missing_ok=True)
            raise BrokerUnavailable(f"broker: could not queue the merge ({type(error).__name__}: {error})") from error
        return MergedModelView.of(job_id, checkpoint.step, files)

    def merged_model_zip(self, job_id: str, step: int | None = None) -> Path:
        view = self.merged_model(job_id, step)
        if view.status != "ready":
            raise InvalidState(
                f"step: the merged model of step {view.step} is {view.status}, not ready "
                "(POST /api/jobs/{id}/merged-model to build it)"
            )
        return merged_files(self.settings.run_dir(job_id), view.file.removesuffix("-merged.zip")).zip

    def _zip_extras(self, job_id: str, step: int) -> ZipExtras:
        """Name, model card and base model of a checkpoint's zip (the card quotes that step's metrics)."""
        job = self.get_job(job_id)
        points = self.get_metrics(job_id, since_step=0)
        at_step = {name: value for name, values in points.items() for s, value in values if s == step}
        samples = [s for s in self.get_samples(job_id) if s.step <= step]
        latest = max((s.step for s in samples if s.role == "policy"), default=None)
        shown = [s for s in samples if s.step == 0 or s.step == latest]
        grid = self.settings.run_dir(job_id) / "samples" / "before_after.png"
        has_grid = grid.is_file() and step == job.total_steps
        return ZipExtras(
            name=zip_name(job.name, job.id, step),
            card=model_card(job, step, at_step, shown, has_grid),
            base_model=job.config["model"]["name_or_path"],
            grid=grid if has_grid else None,
        )

    def log_tail(self, job_id: str, lines: int = 200) -> str:
        self.get_job(job_id)
        return tail(self.settings.run_dir(job_id) / LOG_FILE, max(1, min(lines, 10_000)))

    # ------------------------------------------------------------------ comparisons

    def request_comparison(
        self, job_id: str, *, step: int | None, prompt: str, seed: int, num_samples: int = 1
    ) -> ComparisonView:
        """Queue reference-vs-fine-tuned generation at ``step`` (None = latest checkpoint)."""
        _check_comparison(prompt, seed, num_samples)
        if step is not None and (not isinstance(step, int) or isinstance(step, bool) or not 0 <= step <= MAX_SQL_INT):
            raise SubmissionError("step", f"must be null or an integer in [0, {MAX_SQL_INT}] (got {step!r})")
        with self.store.session() as session:
            self._job(session, job_id)
            if (
                step is not None
                and session.scalars(
                    select(Checkpoint.id).where(Checkpoint.job_id == job_id, Checkpoint.step == step)
                ).first()
                is None
            ):
                raise SubmissionError("step", f"job {job_id} has no checkpoint at step {step}")
            row = Comparison(
                id=new_id(),
                job_id=job_id,
                step=step,
                prompt=prompt,
                seed=seed,
                num_samples=num_samples,
                status=JobStatus.QUEUED,
            )
            session.add(row)
        try:
            self.celery.send_task(RUN_COMPARISON, args=[row.id])
        except Exception as error:
            with self.store.session() as session:
                session.execute(delete(Comparison).where(Comparison.id == row.id))
            raise BrokerUnavailable(
                f"broker: could not enqueue the comparison ({type(error).__name__}: {error})"
            ) from error
        return self.get_comparison(row.id)

    def get_comparison(self, comparison_id: str) -> ComparisonView:
        with self.store.session() as session:
            row = session.get(Comparison, comparison_id) if check_id(comparison_id) else None
            if row is None:
                raise JobNotFound(f"comparison {comparison_id!r} does not exist")
            run_dir = self.settings.run_dir(row.job_id)
            samples = session.scalars(
                select(SampleRow).where(SampleRow.comparison_id == comparison_id).order_by(SampleRow.id)
            )
            return ComparisonView.of(row, [SampleView.of(sample, run_dir) for sample in samples])

    def cancel_comparison(self, comparison_id: str) -> ComparisonView:
        """Queued or running: cancelled at once. A running generation cannot be interrupted mid-way; its
        worker finds the comparison no longer running when it ends and drops the result."""
        with self.store.session() as session:
            row = session.get(Comparison, comparison_id) if check_id(comparison_id) else None
            if row is None:
                raise JobNotFound(f"comparison {comparison_id!r} does not exist")
            if row.status not in ("queued", "running"):
                raise InvalidState(
                    f"status: comparison {comparison_id} is {row.status}; "
                    "only queued or running comparisons can be cancelled"
                )
            row.status, row.error, row.finished_at, row.heartbeat_at = (
                "cancelled",
                "cancelled on request",
                utcnow(),
                None,
            )
        return self.get_comparison(comparison_id)

    def list_comparisons(self, job_id: str) -> list[ComparisonView]:
        """The job's comparisons, newest first."""
        with self.store.session() as session:
            self._job(session, job_id)
            ids = session.scalars(
                select(Comparison.id)
                .where(Comparison.job_id == job_id)
                .order_by(Comparison.created_at.desc(), Comparison.id)
            ).all()
        return [self.get_comparison(comparison_id) for comparison_id in ids]

    # ------------------------------------------------------------------ reward dry runs

    def request_dry_run(
        self,
        config: dict | None = None,
        *,
        preset: str | None = None,
        overrides: dict | None = None,
        num_samples: int = 4,
        seed: int = 0,
    ) -> DryRunView:
        """Queue a reward dry run of a job config: checked exactly as a submission is (the same field-named
        refusals, the same policy), then a worker scores reference samples of its first prompt; nothing trains."""
        _check_count("num_samples", num_samples, MAX_DRY_RUN_SAMPLES)
        _check_seed(seed)
        job_config = resolve_submission(config, preset, overrides, policy=self.policy)
        row = DryRun(
            id=new_id(),
            config=job_config.model_dump(mode="json"),
            num_samples=num_samples,
            seed=seed,
            status=JobStatus.QUEUED,
        )
        with self.store.session() as session:
            session.add(row)
        try:
            self.celery.send_task(RUN_DRY_RUN, args=[row.id])
        except Exception as error:
            with self.store.session() as session:
                session.execute(delete(DryRun).where(DryRun.id == row.id))
            raise BrokerUnavailable(
                f"broker: could not enqueue the dry run ({type(error).__name__}: {error})"
            ) from error
        return self.get_dry_run(row.id)

    def get_dry_run(self, dry_run_id: str) -> DryRunView:
        with self.store.session() as session:
            row = session.get(DryRun, dry_run_id) if check_id(dry_run_id) else None
            if row is None:
                raise JobNotFound(f"dry run {dry_run_id!r} does not exist")
            return DryRunView.of(row)

    def dry_run_image(self, dry_run_id: str, index: int) -> Path:
        """The file of one scored image of a finished dry run (only paths the worker recorded are served)."""
        view = self.get_dry_run(dry_run_id)
        sample = next((s for s in view.samples if s.index == index), None)
        if sample is None or sample.image_path is None:
            raise JobNotFound(f"dry run {dry_run_id!r} has no image {index!r}")
        path = Path(sample.image_path)
        root = (self.settings.artifacts_dir / "dry-runs" / dry_run_id).resolve()
        if not path.resolve().is_relative_to(root) or not path.is_file():
            raise JobNotFound(f"dry run {dry_run_id!r} has no image {index!r}")
        return path

    # ------------------------------------------------------------------ evaluations

    def request_evals(self, job_id: str, steps: list[int] | None = None, reference: bool = True) -> list[EvalView]:
        """Queue evals of the job's checkpoints at ``steps`` (None = every checkpoint) and of the reference
        (step 0); a (job, step) already evaluated or queued is returned as it is, not run twice."""
        with self.store.session() as session:
            self._job(session, job_id)
            known = list(session.scalars(select(Checkpoint.step).where(Checkpoint.job_id == job_id)))
        if steps is not None:
            if (
                not isinstance(steps, list)
                or len(steps) > 1000
                or any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in steps)
            ):
                raise SubmissionError("steps", "expected a list of checkpoint steps (integers >= 1), or null for all")
            missing = sorted(set(steps) - set(known))
            if missing:
                raise SubmissionError(
                    "steps",
                    f"job {job_id} has no checkpoint at step {missing[0]} (checkpoints: {sorted(known) or 'none yet'})",
                )
        wanted = ([0] if reference else []) + sorted(set(known if steps is None else steps))
        if not wanted:
            raise SubmissionError("steps", f"job {job_id} has no checkpoint yet; ask for the reference or wait")
        ids = []
        for step in wanted:
            try:
                eval_id, _ = request_eval(self.store, self._send_eval, job_id, step)
            except EvalRequestError as error:
                raise SubmissionError("steps", str(error).removeprefix("steps: ")) from None
            ids.append(eval_id)
        return [view for view in self.list_evals(job_id) if view.id in ids]

    def _send_eval(self, eval_id: str) -> None:
        try:
            self.celery.send_task(RUN_EVAL, args=[eval_id])
        except Exception as error:
            with self.store.session() as session:
                session.execute(
                    update(Evaluation)
                    .where(Evaluation.id == eval_id)
                    .values(status="failed", error=f"broker: {type(error).__name__}: {error}", finished_at=utcnow())
                )
            raise BrokerUnavailable(f"broker: could not enqueue the eval ({type(error).__name__}: {error})") from error

    def list_evals(self, job_id: str) -> list[EvalView]:
        """The job's evals by step (0 = the reference), with their metrics and sample counts."""
        with self.store.session() as session:
            self._job(session, job_id)
            rows = list(
                session.scalars(select(Evaluation).where(Evaluation.job_id == job_id).order_by(Evaluation.step))
            )
            metrics = eval_metrics(session, [row.id for row in rows])
            return [EvalView.of(row, metrics[row.id]) for row in rows]

    # ------------------------------------------------------------------ sweeps

    def submit_sweep(
        self,
        *,
        grid: Any,
        seeds: Any,
        config: dict | None = None,
        preset: str | None = None,
        overrides: dict | None = None,
        name: str | None = None,
    ) -> SweepView:
        """Validate every job of the grid, then create the sweep and its jobs (ordinary queued jobs that
        evaluate their final checkpoint and the reference when they succeed) and enqueue them."""
        planned = resolve_sweep(config, preset, overrides, grid, seeds, name, policy=self.policy)
        sweep_id = new_id()
        members = []
        with self.store.session() as session:
            session.add(
                Sweep(
                    id=sweep_id,
                    name=planned.name,
                    kind=planned.jobs[0].config.kind,
                    preset=preset,
                    spec={"grid": planned.grid, "seeds": planned.seeds, "overrides": dict(overrides or {})},
                    members={"jobs": []},
                    cancel_requested=False,
                )
            )
            session.flush()
            for job in planned.jobs:
                row = Job(
                    id=new_id(),
                    name=job.config.name,
                    kind=job.config.kind,
                    algorithm=job.config.algorithm,
                    preset=preset,
                    config=job.config.model_dump(mode="json"),
                    status="queued",
                    total_steps=job.config.steps,
                    current_step=0,
                    cancel_requested=False,
                    attempts=0,
                    sweep_id=sweep_id,
                )
                session.add(row)
                members.append({"job_id": row.id, "params": job.params, "seed": job.seed})
            existing(session, Sweep, sweep_id).members = {"jobs": members}
        try:
            for member in members:
                self._enqueue(member["job_id"])
        except BrokerUnavailable:
            # As for one job: the sweep and its jobs are one unit with their messages (messages already
            # sent find no row and are dropped by the claim).
            with self.store.session() as session:
                session.execute(delete(Job).where(Job.sweep_id == sweep_id))
                session.execute(delete(Sweep).where(Sweep.id == sweep_id))
            raise
        return self.get_sweep(sweep_id)

    def list_sweeps(self, limit: int = 100) -> list[dict[str, Any]]:
        with self.store.session() as session:
            rows = session.scalars(
                select(Sweep).order_by(Sweep.created_at.desc(), Sweep.id).limit(max(1, min(limit, 1000)))
            )
            return [
                {
                    "id": row.id,
                    "name": row.name,
                    "kind": row.kind,
                    "jobs": len(row.members.get("jobs", [])),
                    "created_at": row.created_at,
                }
                for row in rows
            ]

    def get_sweep(self, sweep_id: str) -> SweepView:
        from adrpo_engine.sweep import planes, summarise_sweep

        with self.store.session() as session:
            sweep = self._sweep(session, sweep_id)
            members = sweep.members.get("jobs", [])
            jobs = {job.id: job for job in session.scalars(select(Job).where(Job.sweep_id == sweep_id))}
            evals = list(session.scalars(select(Evaluation).where(Evaluation.job_id.in_(list(jobs)))))
            metrics = eval_metrics(session, [row.id for row in evals if row.status == "succeeded"])
        by_job_step = {(row.job_id, row.step): row for row in evals}
        views, records, reference = [], [], None
        for member in members:
            job = jobs.get(member["job_id"])
            if job is None:
                continue
            final = by_job_step.get((job.id, job.total_steps))
            values = (
                {k: v for k, (v, _) in metrics[final.id].items()} if final is not None and final.id in metrics else None
            )
            start = by_job_step.get((job.id, 0))
            if reference is None and start is not None and start.id in metrics:
                reference = {k: v for k, (v, _) in metrics[start.id].items()}
            views.append(
                SweepJobView(
                    job_id=job.id,
                    name=job.name,
                    params=member["params"],
                    seed=member["seed"],
                    method=job.algorithm,
                    status=job.status,
                    current_step=job.current_step,
                    total_steps=job.total_steps,
                    eval_status=final.status if final else None,
                    eval=values,
                )
            )
            records.append(
                {
                    "params": member["params"],
                    "seed": member["seed"],
                    "method": job.algorithm,
                    "eval": values if job.status == "succeeded" else None,
                }
            )
        grid = sweep.spec.get("grid", {})
        summary = summarise_sweep(sweep.kind, list(grid), records, reference)
        progress: dict[str, int] = {}
        for view in views:
            progress[view.status] = progress.get(view.status, 0) + 1
        progress["evaluated"] = sum(view.eval is not None for view in views)
        return SweepView(
            id=sweep.id,
            name=sweep.name,
            kind=sweep.kind,
            preset=sweep.preset,
            grid=grid,
            seeds=sweep.spec.get("seeds", []),
            overrides=sweep.spec.get("overrides", {}),
            created_at=as_utc(sweep.created_at),
            cancel_requested=sweep.cancel_requested,
            status=_sweep_status(sweep.cancel_requested, views),
            progress=progress,
            jobs=views,
            reference=reference,
            points=summary["points"],
            planes=planes(sweep.kind),
        )

    def cancel_sweep(self, sweep_id: str) -> SweepView:
        """Cancel every queued or running job of the sweep (finished jobs keep their results)."""
        with self.store.session() as session:
            sweep = self._sweep(session, sweep_id)
            sweep.cancel_requested = True
            ids = list(
                session.scalars(select(Job.id).where(Job.sweep_id == sweep_id, Job.status.in_(("queued", "running"))))
            )
        for job_id in ids:
            try:
                self.cancel(job_id)
            except InvalidState:  # it finished meanwhile
                pass
        return self.get_sweep(sweep_id)

    def sweep_points_csv(self, sweep_id: str) -> str:
        from adrpo_engine.sweep import points_csv

        view = self.get_sweep(sweep_id)
        return points_csv({"points": view.points, "planes": view.planes}, list(view.grid))

    @staticmethod
    def _sweep(session, sweep_id: str) -> Sweep:
        sweep = session.get(Sweep, sweep_id) if isinstance(sweep_id, str) else None
        if sweep is None:
            raise JobNotFound(f"sweep {sweep_id!r} does not exist")
        return sweep

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _job(session, job_id: str) -> Job:
        # An id that cannot be one (NUL, 10 kB, non-ASCII) is not looked up: PostgreSQL would answer 500.
        job = session.get(Job, job_id) if check_id(job_id) else None
        if job is None:
            raise JobNotFound(f"job {job_id!r} does not exist")
        return job

    def close(self) -> None:
        self.store.engine.dispose()


def _sweep_status(cancelled: bool, jobs: list[SweepJobView]) -> SweepStatus:
    if cancelled:
        return "cancelled"
    states = {job.status for job in jobs}
    if "running" in states:
        return "running"
    if states == {"queued"}:
        return "queued"
    if "queued" in states:
        return "running"
    pending = [job for job in jobs if job.status == "succeeded" and job.eval is None and job.eval_status != "failed"]
    return "evaluating" if pending else "finished"


def _check_comparison(prompt: Any, seed: Any, num_samples: Any) -> None:
    if not isinstance(prompt, str) or not prompt.strip():
        raise SubmissionError("prompt", "must be a non-empty string")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise SubmissionError("prompt", f"at most {MAX_PROMPT_CHARS} characters")
    check_text("prompt", prompt)
    _check_seed(seed)
    _check_count("num_samples", num_samples, MAX_COMPARISON_SAMPLES)


def _check_seed(seed: Any) -> None:
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= 2**31 - 1:
        raise SubmissionError("seed", f"must be an integer in [0, {2**31 - 1}] (got {seed!r})")


def _check_count(field: str, value: Any, most: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
        raise SubmissionError(field, f"must be an integer in [1, {most}] (got {value!r})")
