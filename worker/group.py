"""A job on several processes, from the worker's side: launch the group, watch it, stop it, read its outcome.

``resources.processes = N > 1``: the worker that claimed the job starts ``accelerate launch`` (torchrun
underneath) with N ranks of ``worker.rank`` as a child process group of its own (a new session), on the GPUs
it owns (``Settings.owned_gpus``, one per rank) or, on a CPU machine, as gloo processes. While the group runs:

- the worker's heartbeat thread keeps stamping the job (as for a one-process job) and rank 0 reports each step;
- a cancel is seen by rank 0 after the step in progress (the ranks stop together, rank 0 checkpoints); a
  worker shutdown, or the job no longer being this worker's, sends SIGTERM to the group, which stops the same
  way; a group still alive ``group_stop_grace_s`` later is killed (SIGKILL to the whole group);
- if the worker itself dies, the launcher gets SIGTERM (``PR_SET_PDEATHSIG``) and takes its ranks down.

The outcome comes from the ranks' files (``worker.rank``): a training error on any rank fails the job with
its message; a rank that left no file died (killed, out of memory): the job is re-queued and resumes from its
last checkpoint, up to ``MAX_GROUP_ATTEMPTS`` claims; otherwise rank 0's result (succeeded, cancelled,
released on shutdown) is the job's.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from adrpo_engine.config import ConfigError, JobConfig
from adrpo_engine.launch import accelerate_command

from .artifacts import append_log
from .db import Store
from .models import Job
from .settings import Settings
from .status import JobStatus

GROUP_DIR = ".group"
GROUP_LOG = "ranks.log"  # stdout and stderr of the launcher and its ranks
MAX_GROUP_ATTEMPTS = 3  # claims of a job whose ranks keep dying before it is failed
POLL_S = 0.5


def outcome_path(run_dir: Path, rank: int) -> Path:
    return run_dir / GROUP_DIR / f"rank-{rank}.json"


def pid_path(run_dir: Path, rank: int) -> Path:
    return run_dir / GROUP_DIR / f"rank-{rank}.pid"


def write_outcome(path: Path, data: dict) -> None:
    staging = path.with_suffix(".tmp")
    staging.write_text(json.dumps(data))
    staging.replace(path)


@dataclass
class GroupOutcome:
    """What became of the group: ``status`` is succeeded | failed | cancelled | released | lost | crashed."""

    status: str
    message: str = ""
    last_step: int | None = None


def uses_cuda(config: JobConfig) -> bool:
    if config.model.device == "cpu":
        return False
    import torch

    return torch.cuda.is_available()


def gpus_for(config: JobConfig, settings: Settings) -> list[str] | None:
    """The GPU ids of the job's ranks (None on CPU); a ConfigError when the worker owns too few."""
    if not uses_cuda(config):
        return None
    owned = settings.owned_gpus()
    wanted = config.resources.processes
    if wanted > len(owned):
        raise ConfigError(
            f"resources.processes: the job asks for {wanted} processes (one GPU each) but this worker owns "
            f"{len(owned)} GPU(s) ({', '.join(owned) or 'none'}; set ADRPO_WORKER_GPUS)"
        )
    return owned[:wanted]


try:  # loaded here, not in the forked child (which must not take locks before exec)
    _LIBC = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:  # not Linux
    _LIBC = None


def _die_with_parent() -> None:
    """In the launcher, before exec: SIGTERM when the worker process dies (Linux; elsewhere a no-op)."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def run_group(
    store: Store,
    settings: Settings,
    job_id: str,
    owner: str,
    config: JobConfig,
    run_dir: Path,
    shutting_down: Callable[[], bool],
) -> GroupOutcome:
    """Launch the job's ranks, wait for them (stopping them when asked), and say what became of them."""
    gpu_ids = gpus_for(config, settings)
    group_dir = run_dir / GROUP_DIR
    shutil.rmtree(group_dir, ignore_errors=True)
    group_dir.mkdir(parents=True, exist_ok=True)
    processes = config.resources.processes
    command = accelerate_command(
        processes,
        "worker.rank",
        [job_id, owner],
        accelerate_config=config.resources.accelerate_config,
        gpu_ids=gpu_ids,
    )
    env = {**os.environ, **settings.environment(), "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_source_root(), env.get("PYTHONPATH", "")]))
    append_log(run_dir, f"launching {processes} processes: {' '.join(command[1:])}")
    with open(run_dir / GROUP_LOG, "ab") as output:
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: one signal reaches the launcher and every rank
            preexec_fn=_die_with_parent,
        )
    stop_sent_at: float | None = None
    stop_why = ""
    last_look = 0.0
    while process.poll() is None:
        time.sleep(POLL_S)
        now = time.monotonic()
        if stop_sent_at is None and now - last_look >= 1.0:
            last_look = now
            reason = _stop_reason(store, job_id, owner, shutting_down)
            if reason == "cancel":
                stop_sent_at, stop_why = now, "cancel"  # rank 0 sees the cancel itself after this step
            elif reason:
                stop_sent_at, stop_why = now, reason
                append_log(run_dir, f"stopping the job's processes ({reason}): SIGTERM to the group")
                _signal_group(process, signal.SIGTERM)
        if stop_sent_at is not None and now - stop_sent_at > settings.group_stop_grace_s:
            append_log(run_dir, f"the job's processes did not stop within {settings.group_stop_grace_s:.0f} s: SIGKILL")
            _signal_group(process, signal.SIGKILL)
            process.wait()
    _signal_group(process, signal.SIGKILL)  # nothing of the group outlives it
    _kill_leftovers(run_dir, processes)
    return read_outcome(run_dir, processes, process.returncode, stop_why)


def _source_root() -> str:
    """The folder holding the ``worker`` package (the ranks import it as the worker does)."""
    return str(Path(__file__).resolve().parents[1])


def _stop_reason(store: Store, job_id: str, owner: str, shutting_down: Callable[[], bool]) -> str | None:
    with store.session() as session:
        row = session.execute(
            select(Job.cancel_requested, Job.worker, Job.status).where(Job.id == job_id)
        ).one_or_none()
    if row is None or row.worker != owner or row.status != JobStatus.RUNNING:
        return "lost"
    if row.cancel_requested:
        return "cancel"
    if shutting_down():
        return "shutdown"
    return None


def _kill_leftovers(run_dir: Path, processes: int) -> None:
    """A rank that left the group's session (it should not) is still found by the pid it wrote."""
    for rank in range(processes):
        try:
            pid = int(pid_path(run_dir, rank).read_text())
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass


def read_outcome(run_dir: Path, processes: int, returncode: int | None, stop_why: str = "") -> GroupOutcome:
    """The job's result from the ranks' files (see the module docstring for the rules)."""
    files: dict[int, dict] = {}
    for rank in range(processes):
        try:
            files[rank] = json.loads(outcome_path(run_dir, rank).read_text())
        except (OSError, ValueError):
            pass
    training = [files[r] for r in sorted(files) if files[r].get("kind") == "training"]
    if training:
        return GroupOutcome(JobStatus.FAILED, training[0]["error"])
    silent = [rank for rank in range(processes) if rank not in files]
    if silent:
        if stop_why in ("cancel", "lost", "shutdown"):
            # killed after the grace period: the last checkpoint stands
            return GroupOutcome(
                {"cancel": JobStatus.CANCELLED, "lost": "lost", "shutdown": "released"}[stop_why],
                f"stopped ({stop_why}) by killing the process group",
            )
        return GroupOutcome(
            "crashed",
            f"rank {', '.join(map(str, silent))} of {processes} died without a word (launcher exit code "
            f"{returncode}; see {GROUP_LOG})",
        )
    errors = [files[r] for r in sorted(files) if "error" in files[r]]
    if errors:
        return GroupOutcome(JobStatus.FAILED, errors[0]["error"])
    main = files[0]
    if main["status"] == JobStatus.SUCCEEDED:
        return GroupOutcome(JobStatus.SUCCEEDED, last_step=main["last_step"])
    reason = main.get("stop_reason") or stop_why or "shutdown"  # another rank was signalled
    status = {"cancel": JobStatus.CANCELLED, "lost": "lost"}.get(reason, "released")
    return GroupOutcome(status, f"stopped ({reason}) after step {main['last_step']}", main["last_step"])
