"""`adrpo serve` watches its embedded worker: a thread that notices the worker process exit (and reaps it,
so no zombie is left), hands what it was running back to the queue at once, and starts a new worker
after a back-off (1, 2, 4, ... 60 s; reset once a worker has stayed up for a minute).

Without this, a worker killed with SIGKILL left its job `running` until some *other* worker's watchdog
saw the heartbeat go stale; with one embedded worker there was no other, so nothing happened until
serve was restarted. The supervisor knows the dead worker's id (host:pid), so it needs no timeout.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 60.0)
STABLE_S = 60.0  # a worker up this long resets the back-off
POLL_S = 0.5


class WorkerSupervisor(threading.Thread):
    """Keeps one worker process alive. ``start_process()`` starts one; ``on_exit(pid)`` is called (in this
    thread) after a worker ended without being asked to, before the next one starts."""

    def __init__(
        self,
        start_process: Callable[[], subprocess.Popen],
        on_exit: Callable[[int], None],
        stop_process: Callable[[subprocess.Popen], None],
        backoff_s: tuple[float, ...] = BACKOFF_S,
        poll_s: float = POLL_S,
        stable_s: float = STABLE_S,
    ) -> None:
        super().__init__(name="adrpo-worker-supervisor", daemon=True)
        self.start_process = start_process
        self.on_exit = on_exit
        self.stop_process = stop_process
        self.backoff_s = backoff_s
        self.poll_s = poll_s
        self.stable_s = stable_s
        self.process: subprocess.Popen | None = None
        self.restarts = 0
        self.last_exit: int | None = None
        self._failures = 0
        self._started_at = 0.0
        self._next_start_at: float | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> None:
        self._spawn()
        super().start()

    def _spawn(self) -> None:
        with self._lock:
            self.process = self.start_process()
            self._started_at = time.monotonic()
            self._next_start_at = None

    def run(self) -> None:
        while not self._stopping.wait(self.poll_s):
            process = self.process
            if process is None or process.poll() is None:
                continue
            self._handle_exit(process)

    def _handle_exit(self, process: subprocess.Popen) -> None:
        self.last_exit = process.returncode
        lived = time.monotonic() - self._started_at
        self._failures = 0 if lived >= self.stable_s else self._failures + 1
        delay = self.backoff_s[min(max(self._failures - 1, 0), len(self.backoff_s) - 1)]
        log.warning(
            "embedded worker (pid %s) exited with %s after %.1f s; restarting it in %.1f s",
            process.pid,
            process.returncode,
            lived,
            delay,
        )
        with self._lock:
            self.process = None
            self._next_start_at = time.monotonic() + delay
        try:
            self.on_exit(process.pid)
        except Exception:  # the store may be briefly unreachable; the heartbeat watchdog is the backstop
            log.exception("could not hand back the dead worker's jobs")
        if self._stopping.wait(delay):
            return
        self.restarts += 1
        self._spawn()

    def state(self) -> dict[str, Any]:
        """For /api/health: running (with pid), restarting (with seconds to the next start) or stopped."""
        with self._lock:
            process, next_start = self.process, self._next_start_at
        body: dict[str, Any] = {"restarts": self.restarts, "last_exit": self.last_exit}
        if self._stopping.is_set():
            return {"state": "stopped", **body}
        if process is not None and process.poll() is None:
            return {"state": "running", "pid": process.pid, **body}
        wait = max(0.0, next_start - time.monotonic()) if next_start is not None else 0.0
        return {"state": "restarting", "next_start_in_s": round(wait, 1), **body}

    def stop(self) -> None:
        """Stop supervising and stop the worker (SIGTERM, then SIGKILL after the grace period)."""
        self._stopping.set()
        if self.is_alive():
            self.join(timeout=10 * self.poll_s)  # so no restart can start after this
        with self._lock:
            process = self.process
        if process is not None:
            self.stop_process(process)
