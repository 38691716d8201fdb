"""Start the real server (`adrpo serve`: REST API + studio + one embedded worker) in a subprocess
on a free port, with its own data directory, for the studio's client and browser tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
# The built-in demo models are built once into the test cache (tests/conftest.py) and shared.
MODELS_CACHE = REPO / ".adrpo-data" / "test" / "models"
START_TIMEOUT_S = 120


@dataclass
class Studio:
    url: str
    data_dir: Path
    log_path: Path
    auth: tuple[str, str] | None
    process: subprocess.Popen | None = None  # the `adrpo serve` process (tests of its shutdown signal it)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(data_dir: Path, auth: tuple[str, str] | None) -> dict[str, str]:
    env = {
        **os.environ,
        "ADRPO_DATA_DIR": str(data_dir),
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "PYTHONUNBUFFERED": "1",
    }
    for key in (
        "ADRPO_DATABASE_URL",
        "ADRPO_BROKER_URL",
        "ADRPO_ARTIFACTS_DIR",
        "ADRPO_AUTH_USER",
        "ADRPO_AUTH_PASSWORD",
    ):
        env.pop(key, None)  # this server's defaults live in its own data directory
    if auth:
        env["ADRPO_AUTH_USER"], env["ADRPO_AUTH_PASSWORD"] = auth
    return env


def share_model_cache(data_dir: Path) -> None:
    """Link the shared built-in model cache into the server's data directory (saves ~30 s a server)."""
    MODELS_CACHE.mkdir(parents=True, exist_ok=True)
    (data_dir / "models").symlink_to(MODELS_CACHE, target_is_directory=True)


@contextlib.contextmanager
def running_studio(data_dir: Path, auth: tuple[str, str] | None = None, worker: bool = True) -> Iterator[Studio]:
    """``worker=False`` serves the API and studio only (enough for tests that train nothing)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    share_model_cache(data_dir)
    port = free_port()
    log_path = data_dir / "server.log"
    command = [
        sys.executable,
        "-c",
        "from app.cli import main; main()",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--worker" if worker else "--no-worker",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env=server_env(data_dir, auth),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    studio = Studio(f"http://127.0.0.1:{port}", data_dir, log_path, auth, process)
    try:
        wait_until_up(studio, process)
        yield studio
    finally:
        stop(process)


def wait_until_up(studio: Studio, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{studio.log()[-4000:]}")
        try:
            response = httpx.get(studio.url + "/config", auth=studio.auth, timeout=2)
            if response.status_code in (200, 401):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"server did not answer within {START_TIMEOUT_S} s:\n{studio.log()[-4000:]}")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group (uvicorn and its embedded worker), then SIGKILL stragglers."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
