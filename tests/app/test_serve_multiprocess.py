"""A 2-process job (resources.processes = 2) submitted over HTTP to `adrpo serve` on the embedded defaults: the
embedded worker launches its gloo ranks with `accelerate launch`, the job succeeds with every metric step once,
and no rank outlives it."""

from __future__ import annotations

import os
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


def test_when_the_worker_dies_its_ranks_go_too_and_the_restarted_worker_resumes_the_job(tmp_path, models_cache):  # noqa: F811
    data_dir = service_data_dir(tmp_path, models_cache)
    server = Server(data_dir, tmp_path / "serve.log")
    try:
        overrides = tiny_digits(**{"resources.processes": 2, "steps": 300, "checkpoint_every": 10, "sample_every": 100})
        submitted = httpx.post(
            f"{server.base}/api/jobs", timeout=30, json={"preset": "digits-even", "overrides": overrides}
        )
        assert submitted.status_code == 201, submitted.text
        job_id = submitted.json()["id"]
        run_dir = data_dir / "runs" / job_id
        wait_for(lambda: server.job(job_id)["current_step"] >= 12, 300, what="the 2-process job to train")
        pids = [int(pid_path(run_dir, rank).read_text()) for rank in range(2)]
        worker = server.worker_pids[0]
        assert server.job(job_id)["worker"].endswith(f":{worker}")
        os.kill(worker, signal.SIGKILL)  # the worker dies without a word: its launcher gets SIGTERM (pdeathsig)
        wait_for(lambda: not any(alive(pid) for pid in pids), 120, what="the ranks of the dead worker to exit")

        def finished():
            job = server.job(job_id)
            return job if job["status"] in ("succeeded", "failed", "cancelled") else None

        job = wait_for(finished, 600, what="the restarted worker to finish the job")
        assert job["status"] == "succeeded", job["error"]
        assert job["attempts"] == 2
        metrics = httpx.get(f"{server.base}/api/jobs/{job_id}/metrics", timeout=10).json()
        assert [step for step, _ in metrics["reward/mean"]] == list(range(1, 301))
        log = httpx.get(f"{server.base}/api/jobs/{job_id}/log", params={"lines": 2000}, timeout=10).text
        assert "resumed from" in log
        server.stop(signal.SIGTERM)
    finally:
        server.kill()
