"""Job state transitions in the store, the sink a training task reports through, and the heartbeat.

The database, not the broker, decides who runs a job: a task first *claims* its job with one
conditional UPDATE (queued -> running, owner = this worker). A duplicate or late delivery of the same
message (acks_late redelivery after a crash) finds the job not queued and does nothing. A worker that
dies stops stamping ``heartbeat_at``; any live worker's watchdog then puts the job back to queued and
enqueues it again, and the next claimant resumes from the last checkpoint.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select, update

from adrpo_engine import metrics as M
from adrpo_engine.progress import Phase, Sample

from .artifacts import append_log, checkpoint_sha256, relative_to_run
from .db import Store, existing, rows_changed
from .models import Checkpoint, Comparison, DryRun, Evaluation, Job, SampleRow, utcnow
from .queries import forget_after, upsert_metrics
from .status import JobStatus

log = logging.getLogger(__name__)

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"
# A comparison whose worker died this many times is failed instead of re-queued (it may be what kills it).
MAX_CLAIM_ATTEMPTS = 3  # worker deaths a comparison or an eval survives before it is failed


def worker_id_of(pid: int) -> str:
    """The WORKER_ID a worker process with ``pid`` on this host records."""
    return f"{socket.gethostname()}:{pid}"


def claim_job(store: Store, job_id: str, worker: str = WORKER_ID) -> Job | None:
    """Move a queued job to running, owned by ``worker``; None if it is not queued (someone else has it,
    it was cancelled, or it is finished)."""
    now = utcnow()
    with store.session() as session:
        claimed = rows_changed(
            session,
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.QUEUED, Job.cancel_requested.is_(False))
            .values(
                status=JobStatus.RUNNING,
                worker=worker,
                heartbeat_at=now,
                attempts=Job.attempts + 1,
                error=None,
                finished_at=None,
                phase="starting",
                phase_detail=None,
                seconds_per_step=None,
            ),
        )
        if claimed != 1:
            return None
        job = existing(session, Job, job_id)
        if job.started_at is None:
            job.started_at = now
        return job


def finish_job(store: Store, job_id: str, status: str, error: str | None = None, worker: str = WORKER_ID) -> bool:
    """Record the end of a run this worker owns; False if the job was taken over meanwhile."""
    with store.session() as session:
        return (
            rows_changed(
                session,
                update(Job)
                .where(Job.id == job_id, Job.worker == worker, Job.status == JobStatus.RUNNING)
                .values(status=status, error=error, finished_at=utcnow(), heartbeat_at=None),
            )
            == 1
        )


def release_job(store: Store, job_id: str, worker: str = WORKER_ID) -> bool:
    """Give a running job back to the queue (worker shutting down); the caller re-enqueues it."""
    with store.session() as session:
        return (
            rows_changed(
                session,
                update(Job)
                .where(Job.id == job_id, Job.worker == worker, Job.status == JobStatus.RUNNING)
                .values(status=JobStatus.QUEUED, worker=None, heartbeat_at=None),
            )
            == 1
        )


def requeue_stale_jobs(store: Store, timeout_s: float, artifacts_dir: Path) -> list[str]:
    """Running jobs whose heartbeat is older than ``timeout_s`` go back to queued (or to cancelled, if a
    cancel was pending). Returns the ids to enqueue again."""
    cutoff = utcnow() - timedelta(seconds=timeout_s)
    requeued = []
    with store.session() as session:
        stale = session.execute(
            select(Job.id, Job.worker, Job.heartbeat_at, Job.cancel_requested).where(
                Job.status == JobStatus.RUNNING, Job.heartbeat_at < cutoff
            )
        ).all()
        for job_id, worker, beat, cancel in stale:
            status = JobStatus.CANCELLED if cancel else JobStatus.QUEUED
            changed = rows_changed(
                session,
                update(Job)
                .where(Job.id == job_id, Job.status == JobStatus.RUNNING, Job.heartbeat_at == beat)
                .values(status=status, worker=None, heartbeat_at=None, finished_at=utcnow() if cancel else None),
            )
            if changed == 1:
                append_log(artifacts_dir / job_id, f"{_stamp()} worker {worker} stopped answering; job {status}")
                if status == JobStatus.QUEUED:
                    requeued.append(job_id)
    return requeued


def requeue_jobs_of_worker(store: Store, worker: str, artifacts_dir: Path) -> list[str]:
    """Everything a worker known to be dead (``adrpo serve`` saw its process exit) was running goes back
    at once, without waiting for the heartbeat timeout: its jobs to queued (cancelled if a cancel was
    pending), its comparisons to queued. Returns the job ids to enqueue again."""
    requeued = []
    with store.session() as session:
        running = session.execute(
            select(Job.id, Job.cancel_requested).where(Job.status == "running", Job.worker == worker)
        ).all()
        for job_id, cancel in running:
            status = "cancelled" if cancel else "queued"
            changed = rows_changed(
                session,
                update(Job)
                .where(Job.id == job_id, Job.status == "running", Job.worker == worker)
                .values(status=status, worker=None, heartbeat_at=None, finished_at=utcnow() if cancel else None),
            )
            if changed == 1:
                append_log(artifacts_dir / job_id, f"{_stamp()} worker {worker} exited; job {status}")
                if status == "queued":
                    requeued.append(job_id)
    return requeued


def claim_comparison(store: Store, comparison_id: str, worker: str = WORKER_ID) -> bool:
    """queued -> running, owned by ``worker`` (a duplicate delivery finds it not queued)."""
    with store.session() as session:
        return (
            rows_changed(
                session,
                update(Comparison)
                .where(Comparison.id == comparison_id, Comparison.status == "queued")
                .values(status="running", worker=worker, heartbeat_at=utcnow(), attempts=Comparison.attempts + 1),
            )
            == 1
        )


def finish_comparison(
    store: Store,
    comparison_id: str,
    status: str,
    error: str | None = None,
    step: int | None = None,
    worker: str = WORKER_ID,
) -> bool:
    """Record the end of a comparison this worker owns; False if it was cancelled or taken over."""
    values = {"status": status, "error": error, "finished_at": utcnow(), "heartbeat_at": None}
    if step is not None:
        values["step"] = step
    with store.session() as session:
        return (
            rows_changed(
                session,
                update(Comparison)
                .where(Comparison.id == comparison_id, Comparison.worker == worker, Comparison.status == "running")
                .values(**values),
            )
            == 1
        )


def requeue_stale_comparisons(store: Store, timeout_s: float, worker: str | None = None) -> list[str]:
    """Running comparisons not stamped for ``timeout_s`` (or, with ``worker``, all of that dead worker's)
    go back to queued, or to failed with the reason after MAX_CLAIM_ATTEMPTS. Returns ids to enqueue."""
    return _requeue_stale_claims(store, Comparison, "generating it", timeout_s, worker)


def requeue_stale_evals(store: Store, timeout_s: float, worker: str | None = None) -> list[str]:
    """The same for eval rows: a worker killed mid-eval no longer leaves its eval running for ever."""
    return _requeue_stale_claims(store, Evaluation, "evaluating it", timeout_s, worker)


def _requeue_stale_claims(
    store: Store, model: type[Comparison] | type[Evaluation], doing: str, timeout_s: float, worker: str | None
) -> list[str]:
    requeued = []
    with store.session() as session:
        query = select(model.id, model.attempts, model.worker).where(model.status == "running")
        if worker is not None:
            query = query.where(model.worker == worker)
        else:
            query = query.where(model.heartbeat_at < utcnow() - timedelta(seconds=timeout_s))
        for row_id, attempts, owner in session.execute(query).all():
            give_up = attempts >= MAX_CLAIM_ATTEMPTS
            values = (
                {
                    "status": "failed",
                    "finished_at": utcnow(),
                    "error": f"worker: its worker died {attempts} times while {doing} ({owner} last)",
                }
                if give_up
                else {"status": "queued"}
            )
            changed = rows_changed(
                session,
                update(model)
                .where(model.id == row_id, model.status == "running", model.worker == owner)
                .values(worker=None, heartbeat_at=None, **values),
            )
            if changed == 1 and not give_up:
                requeued.append(row_id)
    return requeued


DEAD_DRY_RUN = "its worker stopped answering during the dry run (it died or was stopped); try again"


def fail_stale_dry_runs(store: Store, timeout_s: float) -> list[str]:
    """Running reward dry runs not stamped for ``timeout_s``: failed with the reason (a dry run is quick
    and cheap to ask for again, so it is not re-queued). Returns their ids."""
    cutoff = utcnow() - timedelta(seconds=timeout_s)
    with store.session() as session:
        stale = list(session.scalars(select(DryRun.id).where(DryRun.status == "running", DryRun.heartbeat_at < cutoff)))
        for dry_run_id in stale:
            session.execute(
                update(DryRun)
                .where(DryRun.id == dry_run_id, DryRun.status == "running", DryRun.heartbeat_at < cutoff)
                .values(status="failed", error=DEAD_DRY_RUN, finished_at=utcnow(), heartbeat_at=None)
            )
    return stale


def _stamp() -> str:
    return datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S")


class StoreSink:
    """The engine's ProgressSink writing to the job store: one transaction per step (metrics + progress +
    heartbeat), samples and checkpoint rows as they come, log lines to the run directory's job.log.

    ``should_stop`` reads the job row: a cancel request, or the job no longer being ours (the watchdog
    gave it away), or ``interrupted()`` (the worker is shutting down) stops training after this step."""

    def __init__(
        self,
        store: Store,
        job_id: str,
        run_dir: Path,
        worker: str = WORKER_ID,
        interrupted: Callable[[], bool] = lambda: False,
    ) -> None:
        self.store = store
        self.job_id = job_id
        self.run_dir = run_dir
        self.worker = worker
        self.interrupted = interrupted
        self.stop_reason: str | None = None  # "cancel" | "lost" | "shutdown"
        self._last_step_at: float | None = None
        self._seconds_per_step: float | None = None
        # Called with the step once a checkpoint's row is written (eval.every_checkpoint queues an eval).
        self.after_checkpoint: Callable[[int], None] | None = None
        self._logged_phase: tuple[str, float] | None = None  # (name, when) of the last phase line logged

    PHASE_LOG_EVERY_S = 15.0  # a long build writes a progress line to the log this often

    def on_phase(self, phase: Phase) -> None:
        """Store what the job does now (the job header and the API show it); log it on a change and,
        during a long build, every ``PHASE_LOG_EVERY_S`` seconds."""
        with self.store.session() as session:
            session.execute(
                update(Job)
                .where(Job.id == self.job_id)
                .values(phase=phase.name, phase_detail=phase.detail[:256] or None, heartbeat_at=utcnow())
            )
        now = time.monotonic()
        last = self._logged_phase
        if last is None or last[0] != phase.name or now - last[1] >= self.PHASE_LOG_EVERY_S:
            self._logged_phase = (phase.name, now)
            self.on_log(phase.describe())

    def on_start(self, total_steps: int, start_step: int) -> None:
        with self.store.session() as session:
            forget_after(session, self.job_id, start_step)
            session.execute(delete(Checkpoint).where(Checkpoint.job_id == self.job_id, Checkpoint.step > start_step))
            session.execute(
                update(Job)
                .where(Job.id == self.job_id)
                .values(current_step=start_step, total_steps=total_steps, heartbeat_at=utcnow())
            )
        where = f"from step {start_step}" if start_step else "from the start"
        self.on_log(f"training {total_steps} steps {where} on {self.worker}")
        self._last_step_at = time.monotonic()

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        self._update_speed()
        reward = metrics.get(M.REWARD_MEAN)
        values = {"current_step": step, "heartbeat_at": utcnow(), "seconds_per_step": self._seconds_per_step}
        if reward is not None and math.isfinite(reward):
            values["latest_reward"] = float(reward)
        with self.store.session() as session:
            upsert_metrics(session, self.job_id, step, metrics)
            session.execute(update(Job).where(Job.id == self.job_id).values(**values))

    def _update_speed(self) -> None:
        # Wall time between steps (sampling and checkpoints included): what the ETA should use.
        now = time.monotonic()
        if self._last_step_at is not None:
            elapsed = now - self._last_step_at
            previous = self._seconds_per_step
            self._seconds_per_step = elapsed if previous is None else 0.8 * previous + 0.2 * elapsed
        self._last_step_at = now

    def on_samples(self, step: int, samples: list[Sample]) -> None:
        with self.store.session() as session:
            session.execute(
                delete(SampleRow).where(
                    SampleRow.job_id == self.job_id, SampleRow.comparison_id.is_(None), SampleRow.step == step
                )
            )
            session.add_all(sample_rows(self.job_id, self.run_dir, samples, step=step))

    def on_checkpoint(self, step: int, path: Path) -> None:
        digest = checkpoint_sha256(path)
        with self.store.session() as session:
            session.execute(delete(Checkpoint).where(Checkpoint.job_id == self.job_id, Checkpoint.step == step))
            session.add(
                Checkpoint(job_id=self.job_id, step=step, path=relative_to_run(self.run_dir, path), sha256=digest)
            )
        self.on_log(f"checkpoint step {step} sha256 {digest[:12]}")
        if self.after_checkpoint is not None:
            self.after_checkpoint(step)

    def on_log(self, message: str) -> None:
        append_log(self.run_dir, f"{_stamp()} {message}")

    def should_stop(self) -> bool:
        with self.store.session() as session:
            row = session.execute(
                select(Job.cancel_requested, Job.worker, Job.status).where(Job.id == self.job_id)
            ).one_or_none()
        if row is None or row.worker != self.worker or row.status != JobStatus.RUNNING:
            self.stop_reason = "lost"
        elif row.cancel_requested:
            self.stop_reason = "cancel"
        elif self.interrupted():
            self.stop_reason = "shutdown"
        return self.stop_reason is not None


def sample_rows(
    job_id: str, run_dir: Path, samples: list[Sample], step: int | None = None, comparison_id: str | None = None
) -> list[SampleRow]:
    rows = []
    for sample in samples:
        # The samples table has one media column: an image, or the clip an audio sample answered (kind says which).
        media, image = sample.image_path or sample.audio_path, None
        if media:
            image = relative_to_run(run_dir, run_dir / media)
        rows.append(
            SampleRow(
                job_id=job_id,
                comparison_id=comparison_id,
                step=sample.step if step is None else step,
                role=sample.role,
                prompt=sample.prompt,
                seed=sample.seed,
                kind=sample.kind,
                text=sample.text,
                image_path=image,
                reward=None if sample.reward is None or not math.isfinite(sample.reward) else float(sample.reward),
            )
        )
    return rows


class Heartbeat(threading.Thread):
    """A worker's background thread: stamps the job this worker runs, re-queues jobs of vanished
    workers, and stops the worker if the process that started it (``adrpo serve``) is gone."""

    def __init__(
        self,
        store: Store,
        interval_s: float,
        timeout_s: float,
        artifacts_dir: Path,
        enqueue: Callable[[str], None],
        on_orphaned: Callable[[], None] | None = None,
        parent_pid: int | None = None,
        worker: str = WORKER_ID,
        enqueue_comparison: Callable[[str], None] | None = None,
        enqueue_eval: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(name="adrpo-heartbeat", daemon=True)
        self.enqueue_comparison = enqueue_comparison
        self.enqueue_eval = enqueue_eval
        self.current_comparison: str | None = None
        self.current_eval: str | None = None
        self.current_dry_run: str | None = None
        self.store = store
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.artifacts_dir = artifacts_dir
        self.enqueue = enqueue
        self.on_orphaned = on_orphaned
        self.parent_pid = parent_pid
        self.worker = worker
        self.current_job: str | None = None
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        while not self._halt.wait(self.interval_s):
            try:
                self.beat()
                for job_id in requeue_stale_jobs(self.store, self.timeout_s, self.artifacts_dir):
                    log.warning("re-queueing job %s: its worker stopped answering", job_id)
                    self.enqueue(job_id)
                for comparison_id in requeue_stale_comparisons(self.store, self.timeout_s):
                    log.warning("re-queueing comparison %s: its worker stopped answering", comparison_id)
                    if self.enqueue_comparison is not None:
                        self.enqueue_comparison(comparison_id)
                for eval_id in requeue_stale_evals(self.store, self.timeout_s):
                    log.warning("re-queueing eval %s: its worker stopped answering", eval_id)
                    if self.enqueue_eval is not None:
                        self.enqueue_eval(eval_id)
                for dry_run_id in fail_stale_dry_runs(self.store, self.timeout_s):
                    log.warning("failing reward dry run %s: its worker stopped answering", dry_run_id)
            except Exception:  # a database hiccup must not kill the heartbeat thread
                log.exception("heartbeat failed")
            if self.parent_pid is not None and os.getppid() != self.parent_pid and self.on_orphaned:
                log.warning("parent process %s is gone; stopping", self.parent_pid)
                self.on_orphaned()
                self.parent_pid = None

    def beat(self) -> None:
        job_id, comparison_id, eval_id = self.current_job, self.current_comparison, self.current_eval
        dry_run_id = self.current_dry_run
        if job_id is None and comparison_id is None and eval_id is None and dry_run_id is None:
            return
        with self.store.session() as session:
            if dry_run_id is not None:
                session.execute(
                    update(DryRun)
                    .where(DryRun.id == dry_run_id, DryRun.worker == self.worker)
                    .values(heartbeat_at=utcnow())
                )
            if job_id is not None:
                session.execute(
                    update(Job).where(Job.id == job_id, Job.worker == self.worker).values(heartbeat_at=utcnow())
                )
            if comparison_id is not None:
                session.execute(
                    update(Comparison)
                    .where(Comparison.id == comparison_id, Comparison.worker == self.worker)
                    .values(heartbeat_at=utcnow())
                )
            if eval_id is not None:
                session.execute(
                    update(Evaluation)
                    .where(Evaluation.id == eval_id, Evaluation.worker == self.worker)
                    .values(heartbeat_at=utcnow())
                )
