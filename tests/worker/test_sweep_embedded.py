"""A sweep on the embedded default (SQLite store, filesystem broker) with two real `adrpo worker` processes:
every job and every eval row present once."""

from __future__ import annotations

import pytest

from tests.waiting import wait_for
from worker.settings import Settings

from .conftest import service_data_dir, tiny_digits
from .test_scale_out import Workers, assert_sweep_27_complete, assert_sweep_complete, sweep_27


@pytest.fixture
def embedded_cluster(tmp_path, models_cache):
    from worker.db import upgrade
    from worker.service import JobService

    settings = Settings(
        data_dir=service_data_dir(tmp_path, models_cache),
        database_url="",
        broker_url="",
        heartbeat_interval_s=0.5,
        heartbeat_timeout_s=6.0,
    )
    upgrade(settings.database_url)
    service = JobService(settings, migrate=False)
    workers = Workers(settings, tmp_path)
    workers.start()
    workers.start()
    try:
        yield service
    finally:
        workers.stop()
        service.close()


def test_a_sweep_on_the_embedded_default_stores_every_job_and_eval_once(embedded_cluster):
    service = embedded_cluster
    sweep = service.submit_sweep(
        preset="digits-even",
        grid={"algorithm": ["adrpo", "fixed"]},
        seeds=[0, 1],
        overrides=tiny_digits(steps=2, checkpoint_every=2, **{"eval.samples_per_prompt": 4}),
    )
    wait_for(lambda: service.get_sweep(sweep.id).status == "finished", 400, what="the sweep to finish")
    assert_sweep_complete(service, sweep.id, jobs=4, steps=2)


@pytest.mark.slow
def test_a_27_job_sweep_on_the_embedded_default_stores_every_job_and_eval_once(embedded_cluster):
    service = embedded_cluster
    sweep = sweep_27(service)
    assert len(sweep.jobs) == 27
    wait_for(lambda: service.get_sweep(sweep.id).status == "finished", 500, what="the 27-job sweep to finish")
    assert_sweep_27_complete(service, sweep.id)
