"""`adrpo serve` end to end on the embedded defaults (SQLite + filesystem broker + one worker process):
submit over HTTP, poll to success, download and load the adapter; SIGTERM stops the worker too."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest
import torch

from tests.worker.conftest import models_cache, service_data_dir, tiny_digits  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children_of(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid):
            found.append(int(status.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in state


def wait_for(predicate, timeout: float, interval: float = 0.3, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def server(tmp_path, models_cache):  # noqa: F811
    data_dir = service_data_dir(tmp_path, models_cache)
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("ADRPO_")}
    env.update(ADRPO_DATA_DIR=str(data_dir), ADRPO_HEARTBEAT_INTERVAL_S="0.5", ADRPO_HEARTBEAT_TIMEOUT_S="10",
               PYTHONPATH=str(REPO))
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port)], cwd=REPO, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def healthy():
        if process.poll() is not None:
            raise AssertionError(f"adrpo serve exited: {(tmp_path / 'serve.log').read_text()[-3000:]}")
        try:
            return httpx.get(f"{base}/api/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, 90, what="adrpo serve to answer")
    yield process, base, data_dir
    if process.poll() is None:
        process.kill()
        process.wait()
    log.close()


def test_serve_trains_a_submitted_job_and_serves_its_adapter_then_stops_cleanly(server, tmp_path):
    process, base, data_dir = server
    worker_pids = wait_for(lambda: children_of(process.pid), 30, what="the embedded worker")

    submitted = httpx.post(f"{base}/api/jobs", json={"preset": "digits-even", "overrides": tiny_digits()}, timeout=30)
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["id"]

    def finished():
        job = httpx.get(f"{base}/api/jobs/{job_id}", timeout=10).json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    job = wait_for(finished, 120, what="the job to finish")
    assert job["status"] == "succeeded", job["error"]
    assert job["current_step"] == 6 and job["worker"].endswith(f":{worker_pids[0]}")
    metrics = httpx.get(f"{base}/api/jobs/{job_id}/metrics", timeout=10).json()
    assert [step for step, _ in metrics["reward/mean"]] == [1, 2, 3, 4, 5, 6]

    archive = httpx.get(f"{base}/api/jobs/{job_id}/adapter.zip", timeout=30)
    assert archive.status_code == 200
    adapter_dir = tmp_path / "adapter"
    (tmp_path / "adapter.zip").write_bytes(archive.content)
    with zipfile.ZipFile(tmp_path / "adapter.zip") as unpacked:
        unpacked.extractall(adapter_dir)
    assert_adapter_loads_and_changes_the_model(adapter_dir, job["config"])

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    wait_for(lambda: not any(alive(pid) for pid in worker_pids), 30, what="the worker to exit")


def assert_adapter_loads_and_changes_the_model(adapter_dir: Path, config_data: dict) -> None:
    from peft import PeftConfig

    from adrpo_engine.config import validate_config
    from adrpo_engine.trainers.flow import prepare_policy

    assert PeftConfig.from_pretrained(str(adapter_dir)).peft_type.value == "LORA"
    config = validate_config(config_data)
    policy = prepare_policy(config, torch.device("cpu"), torch.float32)
    policy.load_adapter(adapter_dir)
    x = torch.randn(4, *policy.latent_shape())
    t = torch.full((4,), 0.5)
    cond = policy.encode_prompts(["any digit"] * 4)
    with torch.no_grad():
        tuned = policy.velocity(x, t, cond, adapter=True)
        reference = policy.velocity(x, t, cond, adapter=False)
    assert not torch.allclose(tuned, reference)
