"""One job on several processes: data parallel over torch.distributed, the process group set up by accelerate.

A job with ``resources.processes = N > 1`` runs as N copies of the same trainer, started by ``accelerate launch``
(which sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` and the rendezvous address). :class:`Distributed` is the
little a trainer needs from the group, and is the identity when the job runs in one process:

- each process takes a contiguous block of whole prompt groups (``prompts_per_step / N`` of them): a group is
  never split, so advantages stay per group;
- rewards are gathered, so advantages (``adv_scale: batch`` too) and reward metrics are the whole batch's;
- every rank writes its loss as its share of the whole batch's loss, and the gradients of the trainable
  parameters are summed across ranks once per optimisation step (one all-reduce of one flat buffer per dtype:
  what DDP does with ``no_sync`` over the micro-batches), so every rank holds the same gradient and takes the
  same AdamW step, and N processes train the same adapter as one process on the same global batch;
- only rank 0 writes the run directory (config, metrics.jsonl, samples, checkpoints) and reports through the
  progress sink; a stop (cancel, shutdown, SIGTERM on any rank) is agreed on by all ranks after each step.

On CPU the backend is gloo (``PartialState(cpu=True)``), on CUDA nccl with one GPU per process.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

WORLD_SIZE_ENV = "WORLD_SIZE"


def launched_world_size() -> int:
    """The number of processes the launcher started (1 when the job was not launched by accelerate/torchrun)."""
    try:
        return max(1, int(os.environ.get(WORLD_SIZE_ENV, "1")))
    except ValueError:
        return 1


class Distributed:
    """This process's place in the job's process group; every method is the identity in one process."""

    def __init__(self, world_size: int = 1, rank: int = 0, local_rank: int = 0, comm_device: str = "cpu") -> None:
        self.world_size = world_size
        self.rank = rank
        self.local_rank = local_rank
        self.comm_device = torch.device(comm_device)

    @classmethod
    def from_environment(cls, use_cpu: bool) -> Distributed:
        """The group ``accelerate launch`` set up (initialised here on first use), or a single process."""
        if launched_world_size() == 1:
            return cls()
        from accelerate import PartialState

        state = PartialState(cpu=use_cpu)
        device = "cpu" if use_cpu else str(state.device)
        return cls(state.num_processes, state.process_index, state.local_process_index, device)

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device_for(self, device: torch.device) -> torch.device:
        """The device of this rank: ``cuda:LOCAL_RANK`` for CUDA jobs (one GPU per process)."""
        if device.type == "cuda" and self.active:
            return torch.device("cuda", self.local_rank)
        return device

    def shard(self, count: int) -> slice:
        """This rank's block of ``count`` items (prompt groups); ``count`` is a multiple of the world size."""
        if count % self.world_size:
            raise ValueError(f"{count} prompt groups cannot be shared evenly by {self.world_size} processes")
        per = count // self.world_size
        return slice(self.rank * per, (self.rank + 1) * per)

    # ---------------------------------------------------------------- collectives

    def gather(self, tensor: Tensor) -> Tensor:
        """Every rank's ``tensor`` (same shape on all ranks) concatenated along dim 0, in rank order."""
        if not self.active:
            return tensor
        from accelerate.utils import gather

        gathered = gather(tensor.contiguous().to(self.comm_device))
        assert isinstance(gathered, Tensor)
        return gathered.to(tensor.device)

    def gather_objects(self, items: list[Any]) -> list[Any]:
        """Every rank's list, concatenated in rank order (picklable items)."""
        if not self.active:
            return list(items)
        from accelerate.utils import gather_object

        return gather_object(list(items))

    def sum(self, values: dict[str, float]) -> dict[str, float]:
        """Each value summed over the ranks (one all-reduce; keys must be the same on every rank)."""
        if not self.active or not values:
            return dict(values)
        keys = sorted(values)
        packed = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=self.comm_device)
        torch.distributed.all_reduce(packed, op=torch.distributed.ReduceOp.SUM)
        return dict(zip(keys, packed.tolist()))

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        return {key: value / self.world_size for key, value in self.sum(values).items()}

    def maximum(self, value: float) -> float:
        """The largest ``value`` over the ranks."""
        if not self.active:
            return value
        packed = torch.tensor([float(value)], dtype=torch.float64, device=self.comm_device)
        torch.distributed.all_reduce(packed, op=torch.distributed.ReduceOp.MAX)
        return float(packed.item())

    def any(self, flag: bool) -> bool:
        """True on every rank when it is True on at least one."""
        if not self.active:
            return flag
        packed = torch.tensor([1.0 if flag else 0.0], device=self.comm_device)
        torch.distributed.all_reduce(packed, op=torch.distributed.ReduceOp.MAX)
        return bool(packed.item() > 0)

    def broadcast_object(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank."""
        if not self.active:
            return value
        from accelerate.utils import broadcast_object_list

        return broadcast_object_list([value], from_process=0)[0]

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()

    def sum_gradients(self, parameters: Sequence[torch.nn.Parameter]) -> None:
        """Sum the gradients of ``parameters`` over the ranks, in place (one flat all-reduce per dtype)."""
        if not self.active:
            return
        by_dtype: dict[torch.dtype, list[Tensor]] = {}
        for parameter in parameters:
            if parameter.grad is None:  # a rank that did not touch a parameter still takes part
                parameter.grad = torch.zeros_like(parameter)
            grad = parameter.grad
            by_dtype.setdefault(grad.dtype, []).append(grad)
        for grads in by_dtype.values():
            flat = torch.cat([grad.reshape(-1) for grad in grads]).to(self.comm_device)
            torch.distributed.all_reduce(flat, op=torch.distributed.ReduceOp.SUM)
            offset = 0
            for grad in grads:
                size = grad.numel()
                grad.copy_(flat[offset : offset + size].view_as(grad))
                offset += size

    def broadcast_parameters(self, parameters: Sequence[torch.nn.Parameter]) -> None:
        """Rank 0's values of ``parameters`` on every rank (the adapters start identical)."""
        if not self.active:
            return
        for parameter in parameters:
            data = parameter.data.to(self.comm_device)
            torch.distributed.broadcast(data, src=0)
            parameter.data.copy_(data)

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (a built-in model's first build fills the cache), then the others."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()


@contextmanager
def stop_on_signals(event: threading.Event, signals: Sequence[int] = (signal.SIGTERM,)) -> Iterator[None]:
    """Set ``event`` on SIGTERM instead of dying, for the duration of the block (main thread only): a rank
    told to stop finishes its step, takes part in the checkpoint and exits."""
    previous = {sig: signal.signal(sig, lambda *_: event.set()) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
