"""The `accelerate launch` command line of a job on several processes (``resources.processes > 1``).

The CLI (``adrpo train``) and the job service's worker start a multi-process job the same way: one
``accelerate launch`` (torchrun underneath, one process per GPU, or gloo processes on a CPU machine) running an
entry module on every rank. The entry builds the trainer as in one process; ``distributed.Distributed``
finds the group from the launcher's environment.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Sequence


def free_port() -> int:
    """A TCP port free on this machine now, for the group's rendezvous (rank 0 listens on it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def accelerate_command(
    processes: int,
    module: str,
    args: Sequence[str],
    *,
    accelerate_config: str | None = None,
    gpu_ids: Sequence[str] | None = None,
    port: int | None = None,
) -> list[str]:
    """``python -m accelerate.commands.launch ... -m MODULE ARGS``: ``processes`` ranks on this machine.

    ``--multi_gpu`` makes accelerate start them through torchrun; on a machine without CUDA (or a job on
    ``model.device: cpu``) each rank asks accelerate for the CPU (gloo) backend. ``gpu_ids`` limits the ranks
    to the GPUs a worker owns. Precision is the job's ``model.dtype``, not accelerate's ``mixed_precision``."""
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    if accelerate_config:
        command += ["--config_file", accelerate_config]
    else:  # said explicitly, so accelerate does not warn about guessing them
        command += ["--mixed_precision", "no", "--dynamo_backend", "no"]
    command += [
        "--num_machines",
        "1",
        "--num_processes",
        str(processes),
        "--main_process_port",
        str(port or free_port()),
    ]
    if processes > 1:
        command.append("--multi_gpu")
    if gpu_ids:
        command += ["--gpu_ids", ",".join(gpu_ids)]
    return [*command, "-m", module, *args]
