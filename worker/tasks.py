"""Celery tasks: train a job, generate a comparison, run a reward dry run, export an adapter zip or a
merged LLM.

Each task reads and writes the job store; its return value is informational only (no result backend).
The worker process's settings come from the environment (``adrpo worker`` / ``adrpo serve`` set it).
"""

from __future__ import annotations

import logging
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from celery.signals import worker_shutting_down
from sqlalchemy import select, update

from adrpo_engine.config import ConfigError, validate_config

from .artifacts import append_log, build_adapter_zip, build_merged_zip, merged_files
from .celery_app import (
    EXPORT_ADAPTER,
    EXPORT_MERGED,
    RUN_COMPARISON,
    RUN_DRY_RUN,
    RUN_EVAL,
    RUN_JOB,
    celery_app,
    configure,
)
from .db import Store, existing, rows_changed
from .evals import REFERENCE_STEP, request_eval, run_eval
from .group import MAX_GROUP_ATTEMPTS, run_group
from .lifecycle import (
    WORKER_ID,
    Heartbeat,
    StoreSink,
    claim_comparison,
    claim_job,
    finish_comparison,
    finish_job,
    release_job,
    sample_rows,
)
from .model_card import export_stem
from .models import Checkpoint, Comparison, DryRun, Job, utcnow
from .policy import Policy, check_policy
from .settings import Settings
from .status import JobStatus
from .validation import SubmissionError

log = logging.getLogger(__name__)


@dataclass
class WorkerContext:
    settings: Settings
    store: Store
    shutting_down: threading.Event = field(default_factory=threading.Event)
    heartbeat: Heartbeat | None = None


_context: WorkerContext | None = None
_context_lock = threading.Lock()


def init_worker(settings: Settings | None = None) -> WorkerContext:
    """Settings and store of this worker process (configures the Celery app too)."""
    global _context
    with _context_lock:
        if _context is None or settings is not None:
            settings = settings or Settings()
            configure(celery_app, settings)
            _context = WorkerContext(settings=settings, store=Store(settings.database_url))
        return _context


def context() -> WorkerContext:
    return _context or init_worker()


@worker_shutting_down.connect
def _note_shutdown(**_kwargs) -> None:
    # A warm shutdown waits for the running task: make training stop after its current step instead.
    if _context is not None:
        _context.shutting_down.set()


def enqueue_job(job_id: str) -> None:
    celery_app.send_task(RUN_JOB, args=[job_id])


def enqueue_eval(eval_id: str) -> None:
    celery_app.send_task(RUN_EVAL, args=[eval_id])


@celery_app.task(name=RUN_EVAL, acks_late=True, reject_on_worker_lost=True)
def run_evaluation(eval_id: str) -> str:
    ctx = context()
    if ctx.heartbeat is not None:
        ctx.heartbeat.current_eval = eval_id  # stamped while it runs: the watchdog covers a dead worker
    try:
        return run_eval(ctx.store, ctx.settings.run_dir, eval_id)
    finally:
        if ctx.heartbeat is not None:
            ctx.heartbeat.current_eval = None


def queue_eval(ctx: WorkerContext, job_id: str, step: int, reason: str, run_dir: Path) -> None:
    """Ask for an eval from inside a training task; a broker hiccup is logged, never fatal to training."""
    try:
        request_eval(ctx.store, enqueue_eval, job_id, step, reason)
    except Exception as error:
        append_log(run_dir, f"could not queue the eval of step {step}: {type(error).__name__}: {error}")


@celery_app.task(name=RUN_JOB, acks_late=True, reject_on_worker_lost=True)
def run_job(job_id: str) -> str:
    return train_job(context(), job_id)


def train_job(ctx: WorkerContext, job_id: str) -> str:
    """Claim, train (resuming from the last checkpoint), and record the outcome of one job."""
    if ctx.shutting_down.is_set():
        # A worker in warm shutdown may still take one more message (e.g. the job it just released):
        # hand it back to the queue for the next worker instead of starting it.
        enqueue_job(job_id)
        return "deferred"
    job = claim_job(ctx.store, job_id)
    if job is None:
        return "skipped"
    run_dir = ctx.settings.run_dir(job_id)
    if ctx.heartbeat is not None:
        ctx.heartbeat.current_job = job_id
    sink = StoreSink(ctx.store, job_id, run_dir, interrupted=ctx.shutting_down.is_set)
    try:
        return _train(ctx, job, run_dir, sink)
    finally:
        if ctx.heartbeat is not None:
            ctx.heartbeat.current_job = None


def _train(ctx: WorkerContext, job: Job, run_dir: Path, sink: StoreSink) -> str:
    from adrpo_engine.runner import train
    from adrpo_engine.trainers.base import TrainingError

    try:
        config = validate_config(job.config)
        check_policy(config, Policy.of(ctx.settings))  # again here: the row may predate the policy
        if config.eval.every_checkpoint:
            # Queued beside training, run by whichever worker is free: the loop never waits for an eval.
            queue_eval(ctx, job.id, REFERENCE_STEP, "checkpoint", run_dir)
            sink.after_checkpoint = lambda step: queue_eval(ctx, job.id, step, "checkpoint", run_dir)
        if config.resources.processes > 1:
            return _train_group(ctx, job, config, run_dir)
        result = train(config, run_dir, sink, resume=True)
    except SubmissionError as error:
        return _fail(ctx, job.id, run_dir, f"refused by the worker's policy: {error}")
    except (TrainingError, ConfigError) as error:
        return _fail(ctx, job.id, run_dir, str(error))
    except Exception as error:  # anything else still ends the job as failed, with the reason
        append_log(run_dir, traceback.format_exc())
        return _fail(ctx, job.id, run_dir, describe_failure(error))
    if result.status == JobStatus.SUCCEEDED:
        finish_job(ctx.store, job.id, JobStatus.SUCCEEDED)
        if config.eval.on_finish:
            queue_eval(ctx, job.id, REFERENCE_STEP, "finish", run_dir)
            queue_eval(ctx, job.id, result.last_step, "finish", run_dir)
        return JobStatus.SUCCEEDED
    if sink.stop_reason == "cancel":
        finish_job(ctx.store, job.id, JobStatus.CANCELLED)
        return JobStatus.CANCELLED
    if sink.stop_reason == "shutdown" and release_job(ctx.store, job.id):
        sink.on_log(f"worker shutting down after step {result.last_step}; job queued to resume")
        enqueue_job(job.id)
        return "released"
    return "lost"


def _train_group(ctx: WorkerContext, job: Job, config, run_dir: Path) -> str:
    """A job on ``resources.processes`` processes (``worker.group``): its outcome mapped onto the job's state as
    for a one-process job; a crashed group is re-queued to resume from its last checkpoint."""
    outcome = run_group(ctx.store, ctx.settings, job.id, WORKER_ID, config, run_dir, ctx.shutting_down.is_set)
    if outcome.status == JobStatus.SUCCEEDED:
        finish_job(ctx.store, job.id, JobStatus.SUCCEEDED)
        if config.eval.on_finish:
            queue_eval(ctx, job.id, REFERENCE_STEP, "finish", run_dir)
            queue_eval(ctx, job.id, outcome.last_step or config.steps, "finish", run_dir)
        return JobStatus.SUCCEEDED
    if outcome.status == JobStatus.FAILED:
        return _fail(ctx, job.id, run_dir, outcome.message)
    if outcome.status == JobStatus.CANCELLED:
        finish_job(ctx.store, job.id, JobStatus.CANCELLED)
        return JobStatus.CANCELLED
    if outcome.status == "crashed":
        append_log(run_dir, f"{outcome.message}")
        if job.attempts >= MAX_GROUP_ATTEMPTS:
            return _fail(ctx, job.id, run_dir, f"{outcome.message}; gave up after {job.attempts} attempts")
    if outcome.status in ("crashed", "released") and release_job(ctx.store, job.id):
        append_log(run_dir, f"job queued to resume from its last checkpoint ({outcome.message})")
        enqueue_job(job.id)
        return "released"
    return "lost"


def _fail(ctx: WorkerContext, job_id: str, run_dir: Path, message: str) -> str:
    append_log(run_dir, f"failed: {message}")
    finish_job(ctx.store, job_id, JobStatus.FAILED, error=message)
    return JobStatus.FAILED


def describe_failure(error: BaseException) -> str:
    """A readable one-line reason for a failed job."""
    import torch

    if isinstance(error, torch.cuda.OutOfMemoryError) or isinstance(error, MemoryError):
        return (
            "out of memory: lower group_size or prompts_per_step, raise grad_accum, or use a smaller model "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
        )
    if isinstance(error, OSError) and "offline" in str(error).lower():
        return f"model not available offline: {error}"
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first_line}"[:2000]


@celery_app.task(name=RUN_COMPARISON, acks_late=True, reject_on_worker_lost=True)
def run_comparison(comparison_id: str) -> str:
    return generate_comparison(context(), comparison_id)


def enqueue_comparison(comparison_id: str) -> None:
    celery_app.send_task(RUN_COMPARISON, args=[comparison_id])


def generate_comparison(ctx: WorkerContext, comparison_id: str) -> str:
    """Reference vs the adapter of the chosen checkpoint on the same prompt and seed.

    Claimed like a job (queued -> running, owned by this worker) and stamped by the heartbeat while it
    runs, so the watchdog re-queues it if this worker dies; a cancel meanwhile wins (the result is dropped)."""
    from adrpo_engine.runner import compare

    if not claim_comparison(ctx.store, comparison_id):
        return "skipped"
    with ctx.store.session() as session:
        row = existing(session, Comparison, comparison_id)
        job = existing(session, Job, row.job_id)
        checkpoint = _checkpoint_for(session, row.job_id, row.step)
        prompt, seed, count, job_id, config_data = row.prompt, row.seed, row.num_samples, row.job_id, job.config
    run_dir = ctx.settings.run_dir(job_id)
    if ctx.heartbeat is not None:
        ctx.heartbeat.current_comparison = comparison_id
    try:
        config = validate_config(config_data)
        check_policy(config, Policy.of(ctx.settings))
        adapter_dir = run_dir / checkpoint.path if checkpoint is not None else None
        out_dir = run_dir / "comparisons" / comparison_id
        samples = compare(config, adapter_dir, prompt, seed, count, out_dir)
    except Exception as error:
        append_log(run_dir, f"comparison {comparison_id} failed: {traceback.format_exc()}")
        finish_comparison(ctx.store, comparison_id, "failed", describe_failure(error))
        return "failed"
    finally:
        if ctx.heartbeat is not None:
            ctx.heartbeat.current_comparison = None
    step = checkpoint.step if checkpoint is not None else 0
    with ctx.store.session() as session:
        # Samples and status in one transaction, and only while the comparison is still ours and running.
        still_ours = (
            rows_changed(
                session,
                update(Comparison)
                .where(Comparison.id == comparison_id, Comparison.worker == WORKER_ID, Comparison.status == "running")
                .values(status="succeeded", step=step, finished_at=utcnow(), heartbeat_at=None),
            )
            == 1
        )
        if not still_ours:
            return "dropped"
        session.add_all(sample_rows(job_id, run_dir, samples, step=step, comparison_id=comparison_id))
    return "succeeded"


@celery_app.task(name=RUN_DRY_RUN, acks_late=True, reject_on_worker_lost=True)
def run_reward_dry_run(dry_run_id: str) -> str:
    return reward_dry_run(context(), dry_run_id)


def reward_dry_run(ctx: WorkerContext, dry_run_id: str) -> str:
    """Score reference samples of the config's first prompt with each reward; the result goes in the row.
    Claimed queued -> running by one worker; the policy is checked again here, as for jobs."""
    from adrpo_engine.dry_run import reward_dry_run as score_reference_samples

    with ctx.store.session() as session:
        claimed = rows_changed(
            session,
            update(DryRun)
            .where(DryRun.id == dry_run_id, DryRun.status == JobStatus.QUEUED)
            .values(status="running", worker=WORKER_ID, heartbeat_at=utcnow()),
        )
        if claimed != 1:
            return "skipped"
        row = existing(session, DryRun, dry_run_id)
        config_data, count, seed = row.config, row.num_samples, row.seed
    out_dir = ctx.settings.artifacts_dir / "dry-runs" / dry_run_id
    if ctx.heartbeat is not None:  # stamped while it runs: the watchdog fails it if this worker dies
        ctx.heartbeat.current_dry_run = dry_run_id
    try:
        config = validate_config(config_data)
        check_policy(config, Policy.of(ctx.settings))
        result = score_reference_samples(config, count, seed, out_dir)
    except Exception as error:  # a reward (or its model) failing to load is what a dry run is there to show
        log.warning("dry run %s failed: %s", dry_run_id, traceback.format_exc())
        message = str(error) if isinstance(error, (ConfigError, SubmissionError)) else describe_failure(error)
        values = {"status": "failed", "error": message[:2000], "finished_at": utcnow()}
    else:
        values = {"status": "succeeded", "result": result.to_dict(), "finished_at": utcnow()}
    finally:
        if ctx.heartbeat is not None:
            ctx.heartbeat.current_dry_run = None
    with ctx.store.session() as session:
        session.execute(
            update(DryRun)
            .where(DryRun.id == dry_run_id, DryRun.worker == WORKER_ID, DryRun.status == "running")
            .values(heartbeat_at=None, **values)
        )
    return values["status"]


def _checkpoint_for(session, job_id: str, step: int | None) -> Checkpoint | None:
    query = select(Checkpoint).where(Checkpoint.job_id == job_id)
    query = query.where(Checkpoint.step == step) if step is not None else query.order_by(Checkpoint.step.desc())
    return session.scalars(query.limit(1)).first()


@celery_app.task(name=EXPORT_ADAPTER, acks_late=True)
def export_adapter(job_id: str, step: int | None = None) -> str:
    """Build the adapter zip on a worker (when the web process does not see the artifacts path)."""
    return export_adapter_zip(context(), job_id, step)


def export_adapter_zip(ctx: WorkerContext, job_id: str, step: int | None = None) -> str:
    with ctx.store.session() as session:
        checkpoint = _checkpoint_for(session, job_id, step)
    if checkpoint is None:
        return "no checkpoint"
    return str(
        build_adapter_zip(
            ctx.settings.run_dir(job_id), checkpoint.path, checkpoint.step, expected_sha256=checkpoint.sha256
        )
    )


@celery_app.task(name=EXPORT_MERGED, acks_late=True)
def export_merged(job_id: str, step: int) -> str:
    """An LLM checkpoint merged into its base model, zipped into the run's exports (see merge_checkpoint)."""
    return merge_checkpoint(context(), job_id, step)


def merge_checkpoint(ctx: WorkerContext, job_id: str, step: int) -> str:
    """Build ``exports/<stem>-merged.zip`` for the checkpoint at ``step``; on failure its ``.error`` file
    holds the one-line reason for the page. The ``.building`` marker the request wrote goes either way."""
    with ctx.store.session() as session:
        job = session.get(Job, job_id)
        checkpoint = _checkpoint_for(session, job_id, step)
        if job is None or checkpoint is None:
            return "no checkpoint"
        config_data, name, relpath, sha = job.config, job.name, checkpoint.path, checkpoint.sha256
    run_dir = ctx.settings.run_dir(job_id)
    stem = export_stem(name, job_id, step)
    files = merged_files(run_dir, stem)
    try:
        check_policy(validate_config(config_data), Policy.of(ctx.settings))  # the base model is loaded again
        build_merged_zip(run_dir, relpath, step, stem, sha)
    except Exception as error:
        append_log(run_dir, f"merged export of step {step} failed: {traceback.format_exc()}")
        files.error.write_text(describe_failure(error))
        return "failed"
    finally:
        files.building.unlink(missing_ok=True)
    append_log(run_dir, f"merged model of step {step} exported: {files.zip.name}")
    return "ready"


def start_heartbeat(ctx: WorkerContext, parent_pid: int | None = None, on_orphaned=None) -> Heartbeat:
    heartbeat = Heartbeat(
        ctx.store,
        ctx.settings.heartbeat_interval_s,
        ctx.settings.heartbeat_timeout_s,
        ctx.settings.artifacts_dir,
        enqueue=enqueue_job,
        parent_pid=parent_pid,
        on_orphaned=on_orphaned,
        worker=WORKER_ID,
        enqueue_comparison=enqueue_comparison,
        enqueue_eval=enqueue_eval,
    )
    ctx.heartbeat = heartbeat
    heartbeat.start()
    return heartbeat
