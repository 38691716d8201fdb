"""A 2-process job (resources.processes = 2) submitted over HTTP to `adrpo serve` on the embedded defaults: the
embedded worker launches its gloo ranks with `accelerate launch`, the job succeeds with every metric step once,
and no rank outlives it."""

from __future__ import annotations

import signal

import httpx

from tests.app.test_serve import Server, alive
from tests.waiting import wait_for
from tests.worker.conftest import models_cache, service_data_dir, tiny_digits  # noqa: F401 (fixture)
from worker.group import pid_path


def test_a_two_process_job_over_http_succeeds_with_every_step_once(tmp_path, models_cache):  # noqa: F811
    data_dir = service_data_dir(tmp_path, models_cache)
    server = Server(data_dir, tmp_path / "serve.log")
    try:
        submitted = httpx.post(
            f"{server.base}/api/jobs",
            timeout=30,
            json={"preset": "digits-even", "overrides": tiny_digits(**{"resources.processes": 2, "steps": 8})},
        )
        assert submitted.status_code == 201, submitted.text
        job_id = submitted.json()["id"]

        def finished():
            job = server.job(job_id)
            return job if job["status"] in ("succeeded", "failed", "cancelled") else None

        job = wait_for(finished, 300, what="the 2-process job to finish")
        assert job["status"] == "succeeded", job["error"]
        metrics = httpx.get(f"{server.base}/api/jobs/{job_id}/metrics", timeout=10).json()
        assert all([step for step, _ in points] == list(range(1, 9)) for points in metrics.values())
        log = httpx.get(f"{server.base}/api/jobs/{job_id}/log", params={"lines": 1000}, timeout=10).text
        assert "launching 2 processes" in log and "data parallel on 2 processes" in log
        run_dir = data_dir / "runs" / job_id
        pids = [int(pid_path(run_dir, rank).read_text()) for rank in range(2)]
        assert not any(alive(pid) for pid in pids)
        server.stop(signal.SIGTERM)
    finally:
        server.kill()
