"""Eval jobs and sweeps in the job service, against a real SQLite store, task bodies run in-process."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from adrpo_engine import metrics as M
from worker import tasks
from worker.evals import run_eval
from worker.models import EvalMetric, Evaluation, Job
from worker.service import InvalidState, JobNotFound, SubmissionError
from worker.tasks import train_job

from .conftest import tiny_digits


def tiny_eval(**overrides):
    return tiny_digits(**{"eval.samples_per_prompt": 6, **overrides})


@pytest.fixture
def queued_evals(monkeypatch):
    """Eval ids the training task queued (the broker is not running in these tests)."""
    sent: list[str] = []
    monkeypatch.setattr(tasks, "enqueue_eval", sent.append)
    return sent


def run_queued(worker_context, sent):
    results = [run_eval(worker_context.store, worker_context.settings.run_dir, eval_id) for eval_id in sent]
    sent.clear()
    return results


def test_every_checkpoint_queues_an_eval_beside_training(service, worker_context, queued_evals):
    job = service.submit(preset="digits-even", overrides=tiny_eval(**{"eval.every_checkpoint": True}))
    assert train_job(worker_context, job.id) == "succeeded"
    # Queued while training ran (reference first, then each checkpoint), not run by the training task.
    assert len(queued_evals) == 4
    assert [e.step for e in service.list_evals(job.id)] == [0, 2, 4, 6]
    assert {e.status for e in service.list_evals(job.id)} == {"queued"}
    assert run_queued(worker_context, queued_evals) == ["succeeded"] * 4
    evals = service.list_evals(job.id)
    reference, *checkpoints = evals
    assert reference.role == "reference" and reference.metrics[M.W2] == 0.0
    assert reference.counts[M.REWARD_MEAN] == 6 and reference.samples_per_prompt == 6 and reference.prompts == 1
    assert all(e.metrics[M.W2] > 0 and e.counts[M.W2] == 6 and e.reason == "checkpoint" for e in checkpoints)


def test_evals_on_request_run_once_per_step(service, worker_context, queued_evals, monkeypatch):
    job = service.submit(preset="digits-even", overrides=tiny_eval())
    train_job(worker_context, job.id)
    assert queued_evals == []  # neither every_checkpoint nor on_finish
    sent = []
    monkeypatch.setattr(service, "_send_eval", sent.append)
    first = service.request_evals(job.id, steps=[6])
    assert [(e.step, e.status) for e in first] == [(0, "queued"), (6, "queued")] and len(sent) == 2
    again = service.request_evals(job.id, steps=[6])  # already queued: the same rows, nothing sent
    assert [e.id for e in again] == [e.id for e in first] and len(sent) == 2
    for eval_id in sent:
        run_eval(worker_context.store, worker_context.settings.run_dir, eval_id)
    assert run_eval(worker_context.store, worker_context.settings.run_dir, sent[0]) == "skipped"  # a duplicate delivery
    everything = service.request_evals(job.id)  # every checkpoint: 2 and 4 are new
    assert [e.step for e in everything] == [0, 2, 4, 6] and len(sent) == 4
    with service.store.session() as session:
        assert session.scalar(select(func.count()).select_from(Evaluation)) == 4
        names = session.scalar(select(func.count()).select_from(EvalMetric).where(EvalMetric.eval_id == first[1].id))
    assert names == len(service.list_evals(job.id)[-1].metrics)
    with pytest.raises(SubmissionError, match="steps: job .* no checkpoint at step 3"):
        service.request_evals(job.id, steps=[3])
    with pytest.raises(SubmissionError, match="steps"):
        service.request_evals(job.id, steps=["x"])
    with pytest.raises(JobNotFound):
        service.request_evals("nope")


def sweep_body(**extra):
    return {"preset": "digits-even", "overrides": tiny_eval(steps=2, checkpoint_every=2),
            "grid": {"algorithm": ["adrpo", "fixed"], "beta0": [0.05, 0.1]}, "seeds": [0, 1], **extra}


def test_a_sweep_is_ordinary_jobs_evaluated_into_points(service, worker_context, queued_evals):
    sweep = service.submit_sweep(**sweep_body(name="grid"))
    assert sweep.status == "queued" and len(sweep.jobs) == 8 and sweep.name == "grid"
    assert sweep.progress == {"queued": 8, "evaluated": 0} and sweep.points == []
    assert [(j.params, j.seed) for j in sweep.jobs[:2]] == [({"algorithm": "adrpo", "beta0": 0.05}, 0),
                                                            ({"algorithm": "adrpo", "beta0": 0.05}, 1)]
    for member in sweep.jobs:
        assert service.get_job(member.job_id).config["eval"]["on_finish"] is True
        assert train_job(worker_context, member.job_id) == "succeeded"
    assert service.get_sweep(sweep.id).status == "evaluating"
    assert len(queued_evals) == 16  # reference + final checkpoint of each job
    assert set(run_queued(worker_context, queued_evals)) == {"succeeded"}
    done = service.get_sweep(sweep.id)
    assert done.status == "finished" and done.progress["evaluated"] == 8
    assert len(done.points) == 4 and all(p["seeds"] == 2 for p in done.points)
    assert done.reference[M.W2] == 0.0
    for point in done.points:
        assert set(point["frontier"]) == {"diversity", "divergence"}
        assert point["std"][M.REWARD_MEAN] >= 0 and point["n"][M.REWARD_MEAN] == 2
    assert any(p["frontier"]["diversity"]["on_method_frontier"] for p in done.points)
    csv_text = service.sweep_points_csv(sweep.id)
    assert csv_text.splitlines()[0].startswith("algorithm,beta0,method,seeds,") and len(csv_text.splitlines()) == 5


def test_an_invalid_grid_creates_nothing(service):
    with pytest.raises(SubmissionError, match="grid: grid point algorithm='adrpo', beta0=-1"):
        service.submit_sweep(**sweep_body(grid={"algorithm": ["adrpo"], "beta0": [0.1, -1]}))
    with pytest.raises(SubmissionError, match="^seeds: "):
        service.submit_sweep(**sweep_body(seeds=[0, 0]))
    with pytest.raises(SubmissionError, match="grid.model.name_or_path"):
        service.submit_sweep(**sweep_body(grid={"model.name_or_path": ["builtin:tiny-lm"]}))
    with pytest.raises(SubmissionError, match="rewards.0.name"):
        service.submit_sweep(**sweep_body(grid={"beta0": [0.1]}, overrides={"rewards": [{"name": "nope"}]}))
    with service.store.session() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0
    assert service.list_sweeps() == []


def test_cancelling_a_sweep_cancels_its_jobs(service, worker_context, queued_evals):
    sweep = service.submit_sweep(**sweep_body(grid={"beta0": [0.05, 0.1]}, seeds=[0]))
    first, second = sweep.jobs
    assert train_job(worker_context, first.job_id) == "succeeded"
    cancelled = service.cancel_sweep(sweep.id)
    assert cancelled.status == "cancelled" and cancelled.cancel_requested
    assert {j.job_id: j.status for j in cancelled.jobs} == {first.job_id: "succeeded", second.job_id: "cancelled"}
    assert train_job(worker_context, second.job_id) == "skipped"  # its queued message finds it cancelled
    with pytest.raises(InvalidState):
        service.cancel(second.job_id)
    with pytest.raises(JobNotFound, match="sweep"):
        service.get_sweep("missing")
