"""The job lifecycle against a real SQLite store, training in-process through the worker's task body."""

from __future__ import annotations

import zipfile
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from adrpo_engine import metrics as M
from worker.lifecycle import claim_job, requeue_stale_jobs
from worker.models import Job, Metric, utcnow
from worker.service import InvalidState, JobNotFound
from worker.tasks import generate_comparison, train_job

from .conftest import tiny_digits


def metric_steps(service, job_id):
    return {name: [step for step, _ in points] for name, points in service.get_metrics(job_id).items()}


def test_a_job_runs_to_success_with_every_step_once(service, worker_context):
    job = service.submit(preset="digits-even", overrides=tiny_digits())
    assert job.status == "queued" and job.total_steps == 6

    assert train_job(worker_context, job.id) == "succeeded"

    done = service.get_job(job.id)
    assert done.status == "succeeded" and done.current_step == 6 and done.error is None
    assert done.started_at is not None and done.finished_at >= done.started_at
    assert done.latest_reward is not None and done.attempts == 1
    steps = metric_steps(service, job.id)
    for name in M.FLOW:
        assert steps[name] == [1, 2, 3, 4, 5, 6], name
    assert [c.step for c in service.list_checkpoints(job.id)] == [2, 4, 6]
    assert all(len(c.sha256) == 64 for c in service.list_checkpoints(job.id))
    samples = service.get_samples(job.id)
    assert {s.step for s in samples} == {0, 3, 6}
    assert {s.role for s in samples if s.step == 0} == {"reference"}
    assert all(s.kind == "image" and s.image_path and s.image_path.startswith("/") for s in samples)
    assert service.get_samples(job.id, since_step=3) == [s for s in samples if s.step > 3]
    assert "checkpoint step 6" in service.log_tail(job.id)


def test_metrics_since_step_and_adapter_zip_of_a_chosen_checkpoint(service, worker_context):
    job = service.submit(preset="digits-even", overrides=tiny_digits())
    train_job(worker_context, job.id)

    later = service.get_metrics(job.id, since_step=4)
    assert later[M.REWARD_MEAN] == [(s, v) for s, v in service.get_metrics(job.id)[M.REWARD_MEAN] if s > 4]
    latest = service.adapter_zip(job.id)
    assert latest.name == f"{job.name}-{job.id[:8]}-step-000006.zip"
    with zipfile.ZipFile(service.adapter_zip(job.id, step=2)) as archive:
        names = set(archive.namelist())
    assert {"adapter_config.json", "adapter_model.safetensors"} <= names
    assert "trainer_state.pt" not in names
    with pytest.raises(JobNotFound, match="step"):
        service.adapter_zip(job.id, step=3)


def test_cancel_a_running_job_stops_after_one_step_and_keeps_a_checkpoint(service, worker_context, monkeypatch):
    from worker import tasks

    job = service.submit(preset="digits-even", overrides=tiny_digits(steps=6, checkpoint_every=50))

    def claim_then_cancel(store, job_id, *args, **kwargs):
        # The cancel arrives once the worker owns the job and training is about to start.
        claimed = claim_job(store, job_id, *args, **kwargs)
        service.cancel(job_id)
        return claimed

    monkeypatch.setattr(tasks, "claim_job", claim_then_cancel)
    assert train_job(worker_context, job.id) == "cancelled"
    monkeypatch.undo()
    cancelled = service.get_job(job.id)
    assert cancelled.status == "cancelled" and cancelled.current_step == 1
    assert [c.step for c in service.list_checkpoints(job.id)] == [1]

    resumed = service.resume(job.id)
    assert resumed.status == "queued"
    assert train_job(worker_context, job.id) == "succeeded"
    job = service.get_job(job.id)
    assert job.status == "succeeded" and job.attempts == 2
    assert all(steps == [1, 2, 3, 4, 5, 6] for steps in metric_steps(service, job.id).values())
    assert "from step 1" in service.log_tail(job.id)


def test_cancel_a_queued_job_is_immediate_and_the_task_then_skips_it(service, worker_context):
    job = service.submit(preset="digits-even", overrides=tiny_digits())
    assert service.cancel(job.id).status == "cancelled"
    assert train_job(worker_context, job.id) == "skipped"
    with pytest.raises(InvalidState, match="status"):
        service.cancel(job.id)
    with pytest.raises(InvalidState):
        service.resume(service.submit(preset="digits-even", overrides=tiny_digits()).id)


def test_a_duplicate_delivery_does_not_run_the_job_twice(service, worker_context):
    job = service.submit(preset="digits-even", overrides=tiny_digits())
    assert claim_job(worker_context.store, job.id, worker="other-host:1") is not None
    assert train_job(worker_context, job.id) == "skipped"


def test_a_resumed_run_replaces_the_points_logged_after_its_checkpoint(service, worker_context):
    """A worker died after step 5 with its last checkpoint at step 4: step 5's metrics are replaced."""
    job = service.submit(preset="digits-even", overrides=tiny_digits(steps=6, checkpoint_every=4))
    train_job(worker_context, job.id)
    run_dir = service.settings.run_dir(job.id)
    import shutil

    shutil.rmtree(run_dir / "checkpoints" / "step-000006")
    with service.store.session() as session:
        session.execute(
            update(Job)
            .where(Job.id == job.id)
            .values(
                status="running", current_step=5, heartbeat_at=utcnow() - timedelta(seconds=30), worker="dead-host:1"
            )
        )
        session.execute(update(Metric).where(Metric.job_id == job.id, Metric.step == 5).values(value=-123.0))
    assert requeue_stale_jobs(service.store, 1.0, service.settings.artifacts_dir) == [job.id]
    assert service.get_job(job.id).status == "queued"

    assert train_job(worker_context, job.id) == "succeeded"
    with service.store.session() as session:
        count = session.scalar(select(func.count()).select_from(Metric).where(Metric.job_id == job.id))
        assert session.scalar(select(func.min(Metric.value)).where(Metric.job_id == job.id, Metric.step == 5)) != -123.0
    assert count == 6 * len(metric_steps(service, job.id))
    assert "stopped answering" in service.log_tail(job.id)


def test_a_fresh_heartbeat_is_not_requeued(service, worker_context):
    job = service.submit(preset="digits-even", overrides=tiny_digits())
    claim_job(worker_context.store, job.id, worker="busy-host:1")
    assert requeue_stale_jobs(service.store, 60.0, service.settings.artifacts_dir) == []
    assert service.get_job(job.id).status == "running"


@pytest.mark.parametrize(
    ("reward", "reason"), [("nan_after_a_few", "non-finite"), ("oom_after_a_few", "out of memory")]
)
def test_a_broken_run_fails_readably_and_keeps_the_last_checkpoint(service, worker_context, reward, reason):
    from tests.worker import failing_rewards

    failing_rewards.CALLS["count"] = 0
    job = service.submit(
        preset="digits-even",
        overrides=tiny_digits(
            sample_every=50, checkpoint_every=1, rewards=[{"name": f"tests.worker.failing_rewards:{reward}"}]
        ),
    )
    assert train_job(worker_context, job.id) == "failed"
    failed = service.get_job(job.id)
    assert failed.status == "failed" and reason in failed.error and "\n" not in failed.error
    kept = [c.step for c in service.list_checkpoints(job.id)]
    assert kept and max(kept) == failed.current_step < 6
    assert service.adapter_zip(job.id).is_file()


def test_an_unknown_hub_model_fails_fast_with_the_reason(service, worker_context):
    job = service.submit(
        preset="digits-even", overrides=tiny_digits(**{"model.name_or_path": "no-such-org/no-such-model"})
    )
    assert train_job(worker_context, job.id) == "failed"
    error = service.get_job(job.id).error
    assert error and "no-such-org/no-such-model" in error


def test_comparison_generates_reference_and_policy_with_the_same_seed(service, worker_context):
    job = service.submit(preset="digits-even", overrides=tiny_digits())
    train_job(worker_context, job.id)
    requested = service.request_comparison(job.id, step=4, prompt="any digit", seed=7, num_samples=2)
    assert requested.status == "queued"
    assert generate_comparison(worker_context, requested.id) == "succeeded"
    result = service.get_comparison(requested.id)
    assert result.status == "succeeded" and result.step == 4
    assert sorted(s.role for s in result.samples) == ["policy", "policy", "reference", "reference"]
    assert all(s.seed == 7 and s.reward is not None and s.image_path.endswith(".png") for s in result.samples)
    with pytest.raises(ValueError, match="step"):
        service.request_comparison(job.id, step=5, prompt="any digit", seed=7)


def test_clone_copies_the_config_with_overrides(service):
    job = service.submit(preset="digits-even", overrides=tiny_digits())
    clone = service.clone(job.id, {"beta0": 0.2})
    assert clone.id != job.id and clone.parent_id == job.id and clone.status == "queued"
    assert clone.config["beta0"] == 0.2 and clone.config["steps"] == 6
    assert [j.id for j in service.list_jobs()][:2] == [clone.id, job.id]


def test_unknown_ids_raise_job_not_found(service):
    for call in (
        service.get_job,
        service.get_metrics,
        service.get_samples,
        service.list_checkpoints,
        service.cancel,
        service.resume,
        service.log_tail,
        service.get_comparison,
    ):
        with pytest.raises(JobNotFound):
            call("nope")


def test_export_task_builds_the_zip_of_the_latest_or_a_chosen_checkpoint(service, worker_context):
    from worker.tasks import export_adapter_zip

    job = service.submit(preset="digits-even", overrides=tiny_digits())
    assert export_adapter_zip(worker_context, job.id) == "no checkpoint"
    train_job(worker_context, job.id)
    assert export_adapter_zip(worker_context, job.id).endswith("adapter-step-000006.zip")
    assert export_adapter_zip(worker_context, job.id, 2).endswith("adapter-step-000002.zip")


def test_the_heartbeat_thread_stamps_its_job_and_requeues_a_vanished_worker_s(service, worker_context):
    import threading

    from worker.lifecycle import Heartbeat

    mine = service.submit(preset="digits-even", overrides=tiny_digits())
    orphan = service.submit(preset="digits-even", overrides=tiny_digits())
    claim_job(worker_context.store, mine.id, worker="me:1")
    claim_job(worker_context.store, orphan.id, worker="gone:2")
    with service.store.session() as session:
        session.execute(update(Job).values(heartbeat_at=utcnow() - timedelta(seconds=30)))
    enqueued = []
    requeued = threading.Event()
    heartbeat = Heartbeat(
        worker_context.store,
        0.1,
        5.0,
        service.settings.artifacts_dir,
        enqueue=lambda job_id: (enqueued.append(job_id), requeued.set()),
        worker="me:1",
    )
    heartbeat.current_job = mine.id
    heartbeat.start()
    try:
        assert requeued.wait(10)
    finally:
        heartbeat.stop()
        heartbeat.join(5)
    assert enqueued == [orphan.id]
    assert service.get_job(orphan.id).status == "queued"
    assert service.get_job(mine.id).status == "running"
