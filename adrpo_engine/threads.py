"""Torch's intra-op thread count for the built-in demo models.

Their matmuls are tiny, so extra threads only add synchronisation: on a busy 2-core machine the digits
model ran 9x slower with 2 threads than with 1. Each built-in model states its count in ``kinds``
(``BuiltinModel.threads``); hub models keep the process default.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch

from .config import JobConfig
from .kinds import threads_for


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run a block with ``count`` intra-op threads, then restore the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def thread_limit(config: JobConfig) -> AbstractContextManager[None]:
    """The thread count the job's built-in model asks for, the process default otherwise."""
    count = threads_for(config.model.name_or_path)
    return torch_threads(count) if count is not None else nullcontext()
