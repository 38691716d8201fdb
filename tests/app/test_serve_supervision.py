"""Issue 9 item 7 end to end: kill -9 of `adrpo serve`'s embedded worker. serve reaps it (no zombie), says
so in /api/health (503 while it restarts), hands the job back at once and starts a new worker, which
resumes the job from its last checkpoint. Prints the measured times (docs/security.md quotes them)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.app.test_serve import Server, children_of
from tests.waiting import wait_for
from tests.worker.conftest import models_cache, service_data_dir, tiny_digits  # noqa: F401 (fixture)


def server_log(server: Server, job_id: str) -> str:
    return httpx.get(f"{server.base}/api/jobs/{job_id}/log", params={"lines": 1000}, timeout=10).text


@pytest.mark.slow
def test_serve_restarts_a_killed_worker_and_its_job_resumes(tmp_path, models_cache):  # noqa: F811
    server = Server(service_data_dir(tmp_path, models_cache), tmp_path / "serve.log")
    try:
        submitted = httpx.post(
            f"{server.base}/api/jobs",
            timeout=30,
            json={"preset": "digits-even", "overrides": tiny_digits(steps=400, checkpoint_every=5, sample_every=500)},
        )
        job_id = submitted.json()["id"]
        wait_for(lambda: server.job(job_id)["current_step"] >= 6, 180, what="training to start")
        [old_pid] = server.worker_pids
        assert server.job(job_id)["worker"].endswith(f":{old_pid}")

        os.kill(old_pid, signal.SIGKILL)
        killed_at = time.monotonic()
        seen_health, handed_back_at, resumed_at = set(), None, None
        while time.monotonic() - killed_at < 300 and resumed_at is None:
            health = httpx.get(f"{server.base}/api/health", timeout=5)
            seen_health.add((health.status_code, health.json().get("worker", {}).get("state")))
            job = server.job(job_id)
            if handed_back_at is None and (job["status"] == "queued" or not job["worker"].endswith(f":{old_pid}")):
                handed_back_at = time.monotonic()
            if handed_back_at is not None and "resumed from" in server_log(server, job_id):
                resumed_at = time.monotonic()
            time.sleep(0.1)
        assert handed_back_at is not None and resumed_at is not None, server.log_path.read_text()[-3000:]
        print(
            f"\nkill -9 -> job handed back: {handed_back_at - killed_at:.2f} s; "
            f"-> resumed from its checkpoint on the new worker: {resumed_at - killed_at:.2f} s; health seen: {sorted(seen_health)}"
        )
        assert not Path(f"/proc/{old_pid}").exists()  # reaped, not a zombie
        assert (503, "restarting") in seen_health and (200, "running") in seen_health
        new_pids = children_of(server.process.pid)
        assert new_pids and old_pid not in new_pids
        server.worker_pids = new_pids
        assert "exited; job queued" in server_log(server, job_id)
        httpx.post(f"{server.base}/api/jobs/{job_id}/cancel", timeout=10)
        wait_for(lambda: server.job(job_id)["status"] == "cancelled", 120, what="the cancel")
        server.stop(signal.SIGTERM)
    finally:
        server.kill()
