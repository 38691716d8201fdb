"""`adrpo serve` end to end on the embedded defaults (SQLite + filesystem broker + one worker process):
submit over HTTP; Ctrl-C mid-job pauses it (checkpoint, back to queued) and stops the worker; a second
`adrpo serve` resumes it to success; download and load the adapter; SIGTERM stops server and worker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import torch

from tests.waiting import wait_for
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


class Server:
    """`adrpo serve` as a subprocess on a free port, with its own data directory."""

    def __init__(self, data_dir: Path, log_path: Path) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {key: value for key, value in os.environ.items() if not key.startswith("ADRPO_")}
        env.update(
            ADRPO_DATA_DIR=str(data_dir),
            ADRPO_HEARTBEAT_INTERVAL_S="0.5",
            ADRPO_HEARTBEAT_TIMEOUT_S="10",
            PYTHONPATH=str(REPO),
        )
        self.log = log_path.open("a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(self.port)],
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self.healthy, 180, what="adrpo serve to answer")
        self.worker_pids = wait_for(lambda: children_of(self.process.pid), 30, what="the embedded worker")

    def healthy(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"adrpo serve exited: {self.log_path.read_text()[-3000:]}")
        try:
            return httpx.get(f"{self.base}/api/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def job(self, job_id: str) -> dict:
        return httpx.get(f"{self.base}/api/jobs/{job_id}", timeout=10).json()

    def stop(self, signum: int) -> None:
        """Stop with ``signum``; the server must exit 0 and leave no worker behind."""
        self.process.send_signal(signum)
        assert self.process.wait(timeout=90) == 0, self.log_path.read_text()[-3000:]
        wait_for(lambda: not any(alive(pid) for pid in self.worker_pids), 30, what="the worker to exit")
        self.log.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for pid in self.worker_pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.log.close()


def test_serve_trains_over_http_pauses_on_ctrl_c_resumes_on_restart_and_serves_the_adapter(tmp_path, models_cache):  # noqa: F811
    data_dir = service_data_dir(tmp_path, models_cache)
    first = Server(data_dir, tmp_path / "serve.log")
    try:
        submitted = httpx.post(
            f"{first.base}/api/jobs",
            timeout=30,
            json={"preset": "digits-even", "overrides": tiny_digits(steps=150, checkpoint_every=10, sample_every=50)},
        )
        assert submitted.status_code == 201, submitted.text
        job_id = submitted.json()["id"]
        wait_for(lambda: first.job(job_id)["current_step"] >= 5, 180, what="training to start")
        assert first.job(job_id)["worker"].endswith(f":{first.worker_pids[0]}")
        # Ctrl-C: uvicorn stops, the worker finishes its step, checkpoints, re-queues the job and exits.
        first.stop(signal.SIGINT)
    finally:
        first.kill()

    second = Server(data_dir, tmp_path / "serve.log")
    try:

        def finished():
            job = second.job(job_id)
            return job if job["status"] in ("succeeded", "failed", "cancelled") else None

        job = wait_for(finished, 240, what="the resumed job to finish")
        assert job["status"] == "succeeded", job["error"]
        assert job["attempts"] == 2 and job["worker"].endswith(f":{second.worker_pids[0]}")
        log = httpx.get(f"{second.base}/api/jobs/{job_id}/log", params={"lines": 1000}, timeout=10).text
        assert "job queued to resume" in log and "resumed from" in log
        metrics = httpx.get(f"{second.base}/api/jobs/{job_id}/metrics", timeout=10).json()
        assert [step for step, _ in metrics["reward/mean"]] == list(range(1, 151))

        archive = httpx.get(f"{second.base}/api/jobs/{job_id}/adapter.zip", timeout=30)
        assert archive.status_code == 200
        adapter_dir = tmp_path / "adapter"
        (tmp_path / "adapter.zip").write_bytes(archive.content)
        with zipfile.ZipFile(tmp_path / "adapter.zip") as unpacked:
            unpacked.extractall(adapter_dir)
        assert_adapter_loads_and_changes_the_model(adapter_dir, job["config"])
        second.stop(signal.SIGTERM)
    finally:
        second.kill()


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


def test_a_worker_whose_serve_process_was_killed_stops_by_itself(tmp_path, models_cache):  # noqa: F811
    """`adrpo serve` killed with SIGKILL cannot stop its worker; the worker notices its parent is gone."""
    data_dir = service_data_dir(tmp_path, models_cache)
    env = {key: value for key, value in os.environ.items() if not key.startswith("ADRPO_")}
    env.update(ADRPO_DATA_DIR=str(data_dir), ADRPO_HEARTBEAT_INTERVAL_S="0.3", PYTHONPATH=str(REPO))
    # A stand-in parent (a shell) that starts the worker the way serve does, then dies without cleanup.
    parent = subprocess.Popen(
        ["sh", "-c", f'"{sys.executable}" -m app.cli worker --parent-pid $$ --loglevel WARNING & wait'],
        cwd=REPO,
        env=env,
        stdout=(tmp_path / "worker.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    worker_pids = wait_for(lambda: children_of(parent.pid), 30, what="the worker to start")
    wait_for(
        lambda: "ready" in (tmp_path / "worker.log").read_text() or (data_dir / "adrpo.db").exists(),
        60,
        what="the worker to open the store",
    )
    parent.kill()
    parent.wait()
    try:
        wait_for(lambda: not any(alive(pid) for pid in worker_pids), 60, what="the orphaned worker to exit")
    finally:
        for pid in worker_pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
