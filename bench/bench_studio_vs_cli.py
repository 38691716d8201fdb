"""Step time of one preset trained from the studio's service vs from the CLI, on the same machine.

1. CLI: ``python -m app.cli train --preset PRESET --set steps=N`` in a subprocess.
2. Service: ``adrpo serve`` (web process + embedded worker) in a subprocess, the same preset submitted
   through ``POST /api/jobs``; with ``--browser`` (the default) Chromium keeps the job's page open
   while it trains, as a person watching it would.

Both read the per-step ``step_time`` metric (the trainer's own clock around one optimisation step:
whatever else the machine does, polling pages included, shows up in it). The ratio of the medians is
the number docs/service.md quotes; target <= 1.1x. The built-in model is built once before either run (not timed).

    python bench/bench_studio_vs_cli.py [--preset tiny-lm] [--steps 30] [--no-browser] [--repo DIR]

``--repo`` runs another checkout's code (e.g. an older commit, to measure "before").
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
SKIPPED_STEPS = 2  # the first steps warm caches up in both runs
STEP_METRIC = "step_time"  # adrpo_engine.metrics.STEP_TIME: the trainer's clock around one step


def run_env(data_dir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "ADRPO_DATA_DIR": str(data_dir),
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    for key in (
        "ADRPO_DATABASE_URL",
        "ADRPO_BROKER_URL",
        "ADRPO_ARTIFACTS_DIR",
        "ADRPO_AUTH_USER",
        "ADRPO_AUTH_PASSWORD",
    ):
        env.pop(key, None)
    return env


def build_models(repo: Path, data_dir: Path, preset: str) -> None:
    """Build the preset's built-in model once (a one-step CLI run), so neither timed run includes it."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "train",
            "--preset",
            preset,
            "--set",
            "steps=1",
            "--out",
            str(data_dir / "warmup"),
        ],
        cwd=repo,
        env=run_env(data_dir),
        check=True,
        stdout=subprocess.DEVNULL,
    )


def step_times(rows: list[dict]) -> list[float]:
    return [row[STEP_METRIC] for row in rows if row["step"] > SKIPPED_STEPS and STEP_METRIC in row]


def run_cli(repo: Path, data_dir: Path, preset: str, steps: int) -> list[float]:
    out = data_dir / "cli-run"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "train",
            "--preset",
            preset,
            "--set",
            f"steps={steps}",
            "--out",
            str(out),
            "--fresh",
        ],
        cwd=repo,
        env=run_env(data_dir),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return step_times(rows)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server exited early")
        try:
            if httpx.get(url + "/api/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the server did not come up")


def run_service(repo: Path, data_dir: Path, preset: str, steps: int, browser: bool) -> list[float]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(data_dir / "server.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        cwd=repo,
        env=run_env(data_dir),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until_up(url, process)
        job = httpx.post(url + "/api/jobs", json={"preset": preset, "overrides": {"steps": steps}}, timeout=30).json()
        if browser:
            with _page_open(f"{url}/?job={job['id']}"):
                _wait_finished(url, job["id"])
        else:
            _wait_finished(url, job["id"])
        metrics = httpx.get(f"{url}/api/jobs/{job['id']}/metrics", timeout=30).json()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
        log.close()
    return [value for step, value in metrics.get(STEP_METRIC, []) if step > SKIPPED_STEPS]


class _page_open:
    """Chromium showing the job page (the studio's ``?job=ID`` link opens Job detail) while it trains."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __enter__(self):
        from playwright.sync_api import sync_playwright

        self.playwright = sync_playwright().start()
        self.browser = self.playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = self.browser.new_page(viewport={"width": 1360, "height": 1000})
        page.goto(self.url)
        page.get_by_role("tab", name="Job detail", exact=True).click()
        return page

    def __exit__(self, *_exc) -> None:
        self.browser.close()
        self.playwright.stop()


def _wait_finished(url: str, job_id: str, timeout_s: float = 1800) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}/api/jobs/{job_id}", timeout=30).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            if job["status"] != "succeeded":
                raise RuntimeError(f"job {job['status']}: {job.get('error')}")
            return
        time.sleep(1.0)
    raise RuntimeError("the job did not finish")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--preset", default="tiny-lm")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--no-browser", dest="browser", action="store_false")
    parser.add_argument("--repo", type=Path, default=ROOT, help="the checkout whose code runs")
    parser.add_argument("--data-dir", type=Path, default=None, help="keeps the built model between runs")
    args = parser.parse_args()
    data_dir = (args.data_dir or Path(tempfile.mkdtemp(prefix="adrpo-bench-"))).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    build_models(args.repo, data_dir, args.preset)
    cli = run_cli(args.repo, data_dir, args.preset, args.steps)
    service = run_service(args.repo, data_dir, args.preset, args.steps, args.browser)
    cli_median, service_median = statistics.median(cli), statistics.median(service)
    where = "job page open in Chromium" if args.browser else "no browser"
    print(f"preset {args.preset}, {args.steps} steps, median time/step over steps > {SKIPPED_STEPS} ({where})")
    print(f"  CLI     {cli_median:.3f} s/step")
    print(f"  studio  {service_median:.3f} s/step")
    print(f"  ratio   {service_median / cli_median:.2f}x (target <= 1.1x)")


if __name__ == "__main__":
    main()
