"""Eval jobs: rows in ``evaluations`` (one per job and checkpoint step, 0 = the reference) run by the
``adrpo.run_eval`` task on the workers that train, and their metrics in ``eval_metrics``.

A request for a (job, step) that already has an eval returns that row (a failed one is queued again),
so an eval asked for by ``eval.every_checkpoint``, ``eval.on_finish`` and a user at once runs once and
stores each metric once. The task claims its row with one conditional UPDATE (queued -> running), like
training jobs, so a duplicate delivery does nothing.
"""

from __future__ import annotations

import math
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from adrpo_engine.config import validate_config

from .artifacts import append_log
from .db import Store, existing, rows_changed
from .lifecycle import WORKER_ID
from .models import Checkpoint, EvalMetric, Evaluation, Job, utcnow

REFERENCE_STEP = 0
Send = Callable[[str], None]  # enqueue the run_eval task for an eval id


class EvalRequestError(LookupError):
    """The job has no checkpoint at the requested step."""


def request_eval(store: Store, send: Send, job_id: str, step: int, reason: str = "request") -> tuple[str, bool]:
    """The eval of ``job_id`` at ``step`` (0 = the reference): an existing one, else a new queued row
    whose task is sent. Returns ``(eval id, whether a task was sent)``."""
    with store.session() as session:
        if (
            step != REFERENCE_STEP
            and session.scalars(
                select(Checkpoint.id).where(Checkpoint.job_id == job_id, Checkpoint.step == step)
            ).first()
            is None
        ):
            raise EvalRequestError(f"steps: job {job_id} has no checkpoint at step {step}")
        found = session.scalars(select(Evaluation).where(Evaluation.job_id == job_id, Evaluation.step == step)).first()
        if found is not None and found.status != "failed":
            return found.id, False
        if found is not None:
            found.status, found.error, found.finished_at, found.reason = "queued", None, None, reason
            found.attempts = 0  # asked for again: the watchdog's count of worker deaths starts over
            eval_id = found.id
    if found is None:
        eval_id = uuid.uuid4().hex[:16]
        try:
            with store.session() as session:
                session.add(Evaluation(id=eval_id, job_id=job_id, step=step, status="queued", reason=reason))
        except IntegrityError:  # another process asked for the same (job, step) a moment ago
            with store.session() as session:
                earlier = session.scalars(
                    select(Evaluation.id).where(Evaluation.job_id == job_id, Evaluation.step == step)
                ).one()
            return earlier, False
    send(eval_id)
    return eval_id, True


def claim_eval(store: Store, eval_id: str, worker: str = WORKER_ID) -> bool:
    with store.session() as session:
        return (
            rows_changed(
                session,
                update(Evaluation)
                .where(Evaluation.id == eval_id, Evaluation.status == "queued")
                .values(
                    status="running",
                    worker=worker,
                    started_at=utcnow(),
                    heartbeat_at=utcnow(),
                    attempts=Evaluation.attempts + 1,
                    error=None,
                ),
            )
            == 1
        )


def run_eval(store: Store, run_dir_of: Callable[[str], Path], eval_id: str) -> str:
    """Evaluate one checkpoint (or the reference) and store its metrics; the task body."""
    from adrpo_engine.evaluation import evaluate

    if not claim_eval(store, eval_id):
        return "skipped"
    with store.session() as session:
        row = existing(session, Evaluation, eval_id)
        job = existing(session, Job, row.job_id)
        checkpoint = None
        if row.step != REFERENCE_STEP:
            checkpoint = session.scalars(
                select(Checkpoint).where(Checkpoint.job_id == row.job_id, Checkpoint.step == row.step)
            ).first()
        job_id, step, config_data = row.job_id, row.step, job.config
        checkpoint_path = checkpoint.path if checkpoint is not None else None
    run_dir = run_dir_of(job_id)
    try:
        if step != REFERENCE_STEP and checkpoint_path is None:
            raise FileNotFoundError(f"job {job_id} has no checkpoint at step {step}")
        config = validate_config(config_data)
        adapter_dir = run_dir / checkpoint_path if checkpoint_path is not None else None
        (point,) = evaluate(config, [(step, adapter_dir)])
    except Exception as error:
        append_log(run_dir, f"eval of step {step} failed: {traceback.format_exc()}")
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        _finish(store, eval_id, "failed", error=f"{type(error).__name__}: {first}"[:2000])
        return "failed"
    with store.session() as session:
        session.query(EvalMetric).filter(EvalMetric.eval_id == eval_id).delete()
        session.add_all(
            EvalMetric(eval_id=eval_id, name=name, value=float(value), count=int(point.counts.get(name, 0)))
            for name, value in point.metrics.items()
            if math.isfinite(value)
        )
        session.execute(
            update(Evaluation)
            .where(Evaluation.id == eval_id)
            .values(
                status="succeeded",
                finished_at=utcnow(),
                heartbeat_at=None,
                prompts=point.prompts,
                samples_per_prompt=point.samples_per_prompt,
                held_out=point.held_out,
            )
        )
    append_log(
        run_dir,
        f"eval of {'the reference' if step == 0 else f'step {step}'}: "
        f"reward {point.metrics.get('reward/mean', float('nan')):.4f} "
        f"({point.prompts} prompts x {point.samples_per_prompt} samples)",
    )
    return "succeeded"


def _finish(store: Store, eval_id: str, status: str, error: str | None = None) -> None:
    with store.session() as session:
        session.execute(
            update(Evaluation)
            .where(Evaluation.id == eval_id)
            .values(status=status, error=error, finished_at=utcnow(), heartbeat_at=None)
        )


def eval_metrics(session, eval_ids: list[str]) -> dict[str, dict[str, tuple[float, int]]]:
    """``{eval id: {name: (value, count)}}``."""
    found: dict[str, dict[str, tuple[float, int]]] = {eval_id: {} for eval_id in eval_ids}
    if eval_ids:
        for row in session.scalars(select(EvalMetric).where(EvalMetric.eval_id.in_(eval_ids))):
            found[row.eval_id][row.name] = (row.value, row.count)
    return found
