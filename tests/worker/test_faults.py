"""Issue 9 items 7-9 in one process: the supervisor of `adrpo serve`'s worker, comparisons under the
watchdog and cancellable, adapter downloads checked against the recorded digest."""

from __future__ import annotations

import subprocess
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from tests.waiting import wait_for
from worker.evals import claim_eval, request_eval, run_eval
from worker.lifecycle import (
    MAX_CLAIM_ATTEMPTS,
    Heartbeat,
    claim_comparison,
    claim_job,
    requeue_jobs_of_worker,
    requeue_stale_comparisons,
    requeue_stale_evals,
)
from worker.models import Comparison, Evaluation, Job, SampleRow, utcnow
from worker.service import InvalidState
from worker.tasks import generate_comparison, train_job

from .conftest import tiny_digits

# ---------------------------------------------------------------- 7. a watched worker


def test_the_supervisor_reaps_a_dead_worker_hands_back_its_work_and_restarts_it():
    from app.cli import stop_worker_process
    from app.supervisor import WorkerSupervisor

    exits, started = [], []
    supervisor = WorkerSupervisor(
        lambda: started.append(subprocess.Popen(["sleep", "60"])) or started[-1],
        on_exit=exits.append,
        stop_process=stop_worker_process,
        backoff_s=(0.5, 1.0),
        poll_s=0.05,
    )
    supervisor.start()
    try:
        first = supervisor.process
        assert supervisor.state()["state"] == "running"
        first.kill()  # kill -9
        wait_for(lambda: exits == [first.pid], 10, what="the supervisor to notice", interval=0.02)
        assert first.returncode is not None  # reaped: no zombie left
        assert supervisor.state()["state"] == "restarting"
        wait_for(lambda: supervisor.state()["state"] == "running", 10, what="the restart")
        assert supervisor.process.pid != first.pid and supervisor.restarts == 1
        supervisor.process.kill()  # dies again at once: the next wait is longer (back-off)
        wait_for(lambda: len(exits) == 2, 10, what="the second exit", interval=0.02)
        assert supervisor.state()["next_start_in_s"] > 0.5
    finally:
        supervisor.stop()
    assert supervisor.state()["state"] == "stopped" and len(started) == 2  # no restart after stop()
    assert all(process.poll() is not None for process in started)


def test_the_jobs_of_a_worker_known_dead_are_requeued_without_waiting_for_the_timeout(service, worker_context):
    job = service.submit(preset="digits-even", overrides=tiny_digits())
    other = service.submit(preset="digits-even", overrides=tiny_digits())
    claim_job(worker_context.store, job.id, worker="host:111")
    claim_job(worker_context.store, other.id, worker="host:222")
    assert requeue_jobs_of_worker(service.store, "host:111", service.settings.artifacts_dir) == [job.id]
    assert service.get_job(job.id).status == "queued" and service.get_job(other.id).status == "running"
    assert "exited; job queued" in service.log_tail(job.id)


def test_health_reports_the_embedded_worker_state(service):
    from fastapi.testclient import TestClient

    from app.server import create_app

    app = create_app(service.settings, service=service, studio=False)
    with TestClient(app) as client:
        assert "worker" not in client.get("/api/health").json()  # no embedded worker (--no-worker, tests)
        service.worker_state = lambda: {"state": "restarting", "restarts": 1, "last_exit": -9}
        down = client.get("/api/health")
        assert down.status_code == 503 and down.json()["worker"]["state"] == "restarting"
        service.worker_state = lambda: {"state": "running", "pid": 1, "restarts": 1, "last_exit": -9}
        assert client.get("/api/health").status_code == 200


# ---------------------------------------------------------------- 9. comparisons under the watchdog


def _comparison_running_on_a_dead_worker(service, worker_context, seconds_ago=30):
    job = service.submit(preset="digits-even", overrides=tiny_digits())
    comparison = service.request_comparison(job.id, step=None, prompt="any digit", seed=1)
    assert claim_comparison(worker_context.store, comparison.id, worker="gone:9")
    with service.store.session() as session:
        session.execute(update(Comparison).values(heartbeat_at=utcnow() - timedelta(seconds=seconds_ago)))
    return job, comparison


def test_the_heartbeat_thread_requeues_a_comparison_whose_worker_died(service, worker_context):
    _job, comparison = _comparison_running_on_a_dead_worker(service, worker_context)
    enqueued, done = [], threading.Event()
    heartbeat = Heartbeat(
        worker_context.store,
        0.1,
        5.0,
        service.settings.artifacts_dir,
        enqueue=lambda _: None,
        enqueue_comparison=lambda cid: (enqueued.append(cid), done.set()),
        worker="me:1",
    )
    heartbeat.start()
    try:
        assert done.wait(10)
    finally:
        heartbeat.stop()
        heartbeat.join(5)
    assert enqueued == [comparison.id] and service.get_comparison(comparison.id).status == "queued"


def test_a_comparison_that_keeps_killing_its_worker_fails_with_the_reason(service, worker_context):
    _job, comparison = _comparison_running_on_a_dead_worker(service, worker_context)
    for attempt in range(1, MAX_CLAIM_ATTEMPTS):
        assert requeue_stale_comparisons(service.store, 5.0) == [comparison.id]
        assert claim_comparison(worker_context.store, comparison.id, worker=f"gone:{attempt + 10}")
        with service.store.session() as session:
            session.execute(update(Comparison).values(heartbeat_at=utcnow() - timedelta(seconds=30)))
    assert requeue_stale_comparisons(service.store, 5.0) == []
    failed = service.get_comparison(comparison.id)
    assert failed.status == "failed" and "died 3 times" in failed.error


def test_a_fresh_comparison_is_left_alone(service, worker_context):
    _job, comparison = _comparison_running_on_a_dead_worker(service, worker_context, seconds_ago=0)
    assert requeue_stale_comparisons(service.store, 5.0) == []
    assert service.get_comparison(comparison.id).status == "running"


# ---------------------------------------------------------------- evals under the same watchdog


def _eval_running_on_a_dead_worker(service, worker_context, seconds_ago=30):
    job = service.submit(preset="digits-even", overrides=tiny_digits(**{"eval.samples_per_prompt": 4}))
    eval_id, sent = request_eval(service.store, lambda _: None, job.id, 0)  # the reference: no checkpoint needed
    assert sent and claim_eval(worker_context.store, eval_id, worker="gone:9")
    with service.store.session() as session:
        session.execute(
            update(Evaluation)
            .where(Evaluation.id == eval_id)
            .values(heartbeat_at=utcnow() - timedelta(seconds=seconds_ago))
        )
    return job, eval_id


def _eval_row(service, eval_id):
    with service.store.session() as session:
        row = session.get(Evaluation, eval_id)
        return row.status, row.error, row.attempts


def test_the_heartbeat_thread_requeues_an_eval_whose_worker_died_and_it_then_runs(service, worker_context):
    _job, eval_id = _eval_running_on_a_dead_worker(service, worker_context)
    fresh_job, fresh_id = _eval_running_on_a_dead_worker(service, worker_context, seconds_ago=0)
    enqueued, done = [], threading.Event()
    heartbeat = Heartbeat(
        worker_context.store,
        0.1,
        5.0,
        service.settings.artifacts_dir,
        enqueue=lambda _: None,
        enqueue_eval=lambda eid: (enqueued.append(eid), done.set()),
        worker="me:1",
    )
    heartbeat.start()
    try:
        assert done.wait(10)
    finally:
        heartbeat.stop()
        heartbeat.join(5)
    assert enqueued == [eval_id] and _eval_row(service, eval_id)[0] == "queued"
    assert _eval_row(service, fresh_id)[0] == "running"  # still stamped: left alone
    assert run_eval(worker_context.store, worker_context.settings.run_dir, eval_id) == "succeeded"
    with service.store.session() as session:
        row = session.get(Evaluation, eval_id)
        assert row.status == "succeeded" and row.heartbeat_at is None and row.attempts == 2


def test_an_eval_that_keeps_killing_its_worker_fails_with_the_reason(service, worker_context):
    _job, eval_id = _eval_running_on_a_dead_worker(service, worker_context)
    for attempt in range(1, MAX_CLAIM_ATTEMPTS):
        assert requeue_stale_evals(service.store, 5.0) == [eval_id]
        assert claim_eval(worker_context.store, eval_id, worker=f"gone:{attempt + 10}")
        with service.store.session() as session:
            session.execute(update(Evaluation).values(heartbeat_at=utcnow() - timedelta(seconds=30)))
    assert requeue_stale_evals(service.store, 5.0) == []
    status, error, attempts = _eval_row(service, eval_id)
    assert status == "failed" and "died 3 times while evaluating it" in error and attempts == MAX_CLAIM_ATTEMPTS
    # Asked for again by hand: queued with a fresh count.
    again, sent = request_eval(service.store, lambda _: None, _job.id, 0)
    assert again == eval_id and sent and _eval_row(service, eval_id) == ("queued", None, 0)


def test_comparisons_can_be_cancelled_over_the_api_queued_or_running(service, worker_context, monkeypatch):
    from fastapi.testclient import TestClient

    from app.server import create_app

    job = service.submit(preset="digits-even", overrides=tiny_digits())
    train_job(worker_context, job.id)
    app = create_app(service.settings, service=service, studio=False)
    with TestClient(app) as client:
        queued = client.post(f"/api/jobs/{job.id}/comparisons", json={"prompt": "any digit", "seed": 1}).json()
        cancelled = client.post(f"/api/comparisons/{queued['id']}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        assert client.post(f"/api/comparisons/{queued['id']}/cancel").status_code == 409
        assert generate_comparison(worker_context, queued["id"]) == "skipped"  # its message finds it cancelled

        running = client.post(f"/api/jobs/{job.id}/comparisons", json={"prompt": "any digit", "seed": 2}).json()
        from adrpo_engine import runner

        real_compare = runner.compare

        def cancel_midway(*args, **kwargs):
            assert client.post(f"/api/comparisons/{running['id']}/cancel").json()["status"] == "cancelled"
            return real_compare(*args, **kwargs)

        monkeypatch.setattr(runner, "compare", cancel_midway)
        assert generate_comparison(worker_context, running["id"]) == "dropped"
        assert client.get(f"/api/comparisons/{running['id']}").json()["status"] == "cancelled"
        with service.store.session() as session:
            assert (
                session.scalar(
                    select(func.count()).select_from(SampleRow).where(SampleRow.comparison_id == running["id"])
                )
                == 0
            )
        assert client.post("/api/comparisons/nope/cancel").status_code == 404


# ---------------------------------------------------------------- 8. downloads verified


def test_a_damaged_checkpoint_is_not_served_as_an_adapter_zip(service, worker_context):
    from fastapi.testclient import TestClient

    from app.server import create_app

    job = service.submit(preset="digits-even", overrides=tiny_digits())
    train_job(worker_context, job.id)
    adapter = service.settings.run_dir(job.id) / "checkpoints" / "step-000004" / "adapter_model.safetensors"
    adapter.write_bytes(adapter.read_bytes()[:100])
    with pytest.raises(InvalidState, match="sha256"):
        service.adapter_zip(job.id, step=4)
    app = create_app(service.settings, service=service, studio=False)
    with TestClient(app) as client:
        response = client.get(f"/api/jobs/{job.id}/adapter.zip", params={"step": 4})
        assert response.status_code == 409 and response.json()["detail"].startswith("step")
        assert client.get(f"/api/jobs/{job.id}/adapter.zip", params={"step": 6}).status_code == 200


def test_a_resumed_job_skips_a_damaged_checkpoint_and_succeeds(service, worker_context):
    job = service.submit(preset="digits-even", overrides=tiny_digits(steps=6))
    train_job(worker_context, job.id)
    state = service.settings.run_dir(job.id) / "checkpoints" / "step-000006" / "trainer_state.pt"
    state.write_bytes(state.read_bytes()[:64])
    with service.store.session() as session:  # as if it had failed at step 6 of 8
        session.execute(
            update(Job)
            .where(Job.id == job.id)
            .values(status="failed", total_steps=8, config={**job.config, "steps": 8})
        )
    service.resume(job.id)
    assert train_job(worker_context, job.id) == "succeeded"
    log = service.log_tail(job.id, 1000)
    assert "checkpoint step 6 is unusable" in log and "resumed from" in log
    assert [c.step for c in service.list_checkpoints(job.id)] == [2, 4, 6, 8]
