"""Scale-out: PostgreSQL store + Redis broker + two real `adrpo worker` processes.

Needs PostgreSQL (127.0.0.1:5432, trust auth, user postgres) and Redis (127.0.0.1:6379); scripts/ensure_system.sh
starts them. Each session gets a fresh database and Redis db 11, both removed afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.waiting import wait_for
from worker.models import Evaluation, Job, Metric
from worker.settings import Settings

from .conftest import service_data_dir, tiny_digits
from .malformed import MALFORMED

pytestmark = pytest.mark.services

REPO = Path(__file__).resolve().parents[2]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/11"


@pytest.fixture(scope="module")
def database_url():
    psycopg = pytest.importorskip("psycopg")
    name = f"adrpo_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        pytest.skip(f"PostgreSQL is not running on 127.0.0.1:5432 ({error}); run scripts/ensure_system.sh")
    admin.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(scope="module")
def redis_url():
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.flushdb()
    except redis.ConnectionError as error:
        pytest.skip(f"Redis is not running on 127.0.0.1:6379 ({error}); run scripts/ensure_system.sh")
    yield REDIS_URL
    client.flushdb()
    client.close()


class Workers:
    """`adrpo worker` processes sharing the PostgreSQL store and the Redis broker."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.env = {key: value for key, value in os.environ.items() if not key.startswith("ADRPO_")}
        self.env.update(settings.environment(), PYTHONPATH=str(REPO))
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen] = []

    def start(self) -> subprocess.Popen:
        log = (self.log_dir / f"worker-{len(self.processes)}.log").open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", "--loglevel", "INFO"],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        return process

    def wait_ready(self, celery, count: int) -> None:
        wait_for(lambda: len(celery.control.ping(timeout=0.5)) >= count, 180, what=f"{count} workers to answer")

    def keep(self, celery, count: int) -> None:
        """At least ``count`` live workers that answer (the SIGKILL test before leaves one)."""
        while sum(process.poll() is None for process in self.processes) < count:
            self.start()
        self.wait_ready(celery, count)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, models_cache, database_url, redis_url):
    from worker.db import upgrade
    from worker.service import JobService

    root = tmp_path_factory.mktemp("scale-out")
    settings = Settings(
        data_dir=service_data_dir(root, models_cache),
        database_url=database_url,
        broker_url=redis_url,
        heartbeat_interval_s=0.5,
        heartbeat_timeout_s=4.0,
    )
    upgrade(settings.database_url)
    service = JobService(settings, migrate=False)
    workers = Workers(settings, root)
    workers.start()
    workers.start()
    try:
        workers.wait_ready(service.celery, 2)
        yield service, workers
    finally:
        workers.stop()
        service.close()


def wait_finished(service, job_id: str, timeout: float = 240):
    def done():
        job = service.get_job(job_id)
        return job if job.status in ("succeeded", "failed", "cancelled") else None

    return wait_for(done, timeout, what=f"job {job_id} to finish")


def assert_every_step_once(service, job_id: str, steps: int) -> None:
    points = service.get_metrics(job_id)
    assert points and all([s for s, _ in series] == list(range(1, steps + 1)) for series in points.values())
    with service.store.session() as session:
        rows = session.scalar(select(func.count()).select_from(Metric).where(Metric.job_id == job_id))
    assert rows == steps * len(points)


def test_ten_jobs_all_succeed_on_two_workers(cluster):
    service, _ = cluster
    jobs = [service.submit(preset="digits-even", overrides=tiny_digits(steps=4, seed=k)) for k in range(10)]
    finished = [wait_finished(service, job.id) for job in jobs]
    assert [job.status for job in finished] == ["succeeded"] * 10, [job.error for job in finished]
    assert len({job.worker for job in finished}) == 2
    for job in finished:
        assert_every_step_once(service, job.id, 4)


def test_malformed_submissions_are_refused_and_leave_no_row(cluster):
    from app.server import create_app

    service, _ = cluster
    with service.store.session() as session:
        before = session.scalar(select(func.count()).select_from(Job))
    with TestClient(create_app(service.settings, service=service, studio=False)) as client:
        for case, body, field in MALFORMED:
            response = client.post("/api/jobs", json=body)
            assert 400 <= response.status_code < 500 and response.json()["detail"].startswith(field), case
    with service.store.session() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == before


def long_job(service, steps: int = 200, **extra):
    overrides = {"steps": steps, "checkpoint_every": 25, "sample_every": 1000, **extra}
    return service.submit(preset="digits-even", overrides=overrides)


def test_cancel_then_resume_continues_from_the_checkpoint(cluster):
    service, _ = cluster
    job = long_job(service)
    wait_for(lambda: service.get_job(job.id).current_step >= 5, 180, what="training to start")
    service.cancel(job.id)
    cancelled = wait_finished(service, job.id)
    assert cancelled.status == "cancelled" and cancelled.current_step < 200
    assert service.list_checkpoints(job.id)[-1].step == cancelled.current_step

    service.resume(job.id)
    resumed = wait_finished(service, job.id)
    assert resumed.status == "succeeded" and resumed.attempts == 2
    assert f"from step {cancelled.current_step}" in service.log_tail(job.id, 500)
    assert_every_step_once(service, job.id, 200)


def test_a_sigkilled_worker_s_job_is_resumed_by_the_other_worker(cluster):
    service, workers = cluster
    job = long_job(service)
    running = wait_for(lambda: (j := service.get_job(job.id)).current_step >= 30 and j, 180, what="step 30")
    victim = int(running.worker.rsplit(":", 1)[1])
    assert victim in [p.pid for p in workers.processes]
    os.kill(victim, signal.SIGKILL)

    done = wait_finished(service, job.id, timeout=300)
    assert done.status == "succeeded", done.error
    assert done.attempts == 2 and done.worker != running.worker
    log = service.log_tail(job.id, 1000)
    assert "stopped answering" in log and "resumed from" in log
    assert_every_step_once(service, job.id, 200)


def assert_sweep_complete(
    service, sweep_id: str, jobs: int, steps: int, seeds: int = 2, eval_steps: tuple[int, ...] | None = None
) -> None:
    """Every job of the sweep once and succeeded, each with exactly one succeeded eval per requested step
    (``eval_steps``; default the reference 0 and the final step) and the same metrics in each eval, every
    training step's reward logged once, and one summary point per grid point over all seeds."""
    from worker.models import EvalMetric, Evaluation

    wanted = eval_steps or (0, steps)
    view = service.get_sweep(sweep_id)
    assert view.status == "finished" and len(view.jobs) == jobs and view.progress["evaluated"] == jobs
    assert {j.status for j in view.jobs} == {"succeeded"}
    with service.store.session() as session:
        ids = list(session.scalars(select(Job.id).where(Job.sweep_id == sweep_id)))
        assert sorted(ids) == sorted(j.job_id for j in view.jobs) and len(set(ids)) == jobs
        assert set(session.scalars(select(Job.status).where(Job.sweep_id == sweep_id))) == {"succeeded"}
        rows = session.execute(
            select(Evaluation.id, Evaluation.job_id, Evaluation.step, Evaluation.status).where(
                Evaluation.job_id.in_(ids)
            )
        ).all()
        assert sorted((job, step) for _, job, step, _ in rows) == sorted((job, step) for job in ids for step in wanted)
        assert {status for *_, status in rows} == {"succeeded"}
        eval_ids = [eval_id for eval_id, *_ in rows]
        per_eval = session.execute(
            select(EvalMetric.eval_id, func.count(), func.count(func.distinct(EvalMetric.name)))
            .where(EvalMetric.eval_id.in_(eval_ids))
            .group_by(EvalMetric.eval_id)
        ).all()
        assert len(per_eval) == len(wanted) * jobs  # every eval stored its metrics
        assert len({(count, names) for _, count, names in per_eval}) == 1  # the same metrics, each once
        assert all(count == names for _, count, names in per_eval)
        for job_id in ids:
            steps_logged = session.execute(
                select(Metric.step, func.count())
                .where(Metric.job_id == job_id, Metric.name == "reward/mean")
                .group_by(Metric.step)
            ).all()
            assert sorted(steps_logged) == [(step, 1) for step in range(1, steps + 1)]
    assert len(view.points) == jobs // seeds and all(p["seeds"] == seeds for p in view.points)


# 3 x 3 grid points x 3 seeds = 27 jobs of 2 steps; a checkpoint and an eval at every step, so each job
# asks for the reference (step 0) twice (every_checkpoint and the sweep's on_finish), step 1 once and
# step 2 twice: every (job, step) must still end with exactly one eval row.
SWEEP_27_GRID = {"algorithm": ["adrpo", "fixed", "orw"], "beta0": [0.05, 0.1, 0.2]}
SWEEP_27_SEEDS = [0, 1, 2]


def sweep_27(service):
    overrides = tiny_digits(
        steps=2, checkpoint_every=1, **{"eval.samples_per_prompt": 4, "eval.every_checkpoint": True}
    )
    return service.submit_sweep(preset="digits-even", grid=SWEEP_27_GRID, seeds=SWEEP_27_SEEDS, overrides=overrides)


def assert_sweep_27_complete(service, sweep_id: str) -> None:
    assert_sweep_complete(service, sweep_id, jobs=27, steps=2, seeds=3, eval_steps=(0, 1, 2))


def test_a_sweep_on_two_workers_stores_every_job_and_eval_once(cluster):
    service, workers = cluster
    workers.keep(service.celery, 2)
    sweep = service.submit_sweep(
        preset="digits-even",
        grid={"algorithm": ["adrpo", "fixed"]},
        seeds=[0, 1],
        overrides=tiny_digits(steps=2, checkpoint_every=2, **{"eval.samples_per_prompt": 4}),
    )
    wait_for(lambda: service.get_sweep(sweep.id).status == "finished", 300, what="the sweep to finish")
    assert_sweep_complete(service, sweep.id, jobs=4, steps=2)


@pytest.mark.slow
def test_a_27_job_sweep_on_two_workers_stores_every_job_and_eval_once(cluster):
    service, workers = cluster
    workers.keep(service.celery, 2)
    sweep = sweep_27(service)
    assert len(sweep.jobs) == 27
    wait_for(lambda: service.get_sweep(sweep.id).status == "finished", 500, what="the 27-job sweep to finish")
    assert_sweep_27_complete(service, sweep.id)
    with service.store.session() as session:
        jobs = select(Job.id).where(Job.sweep_id == sweep.id)
        trained_by = set(session.scalars(select(Job.worker).where(Job.sweep_id == sweep.id)))
        evaluated_by = set(session.scalars(select(Evaluation.worker).where(Evaluation.job_id.in_(jobs))))
    # Both workers did some of the 108 tasks (27 jobs, 81 evals); which one took the jobs is the broker's.
    assert len(trained_by | evaluated_by) >= 2
