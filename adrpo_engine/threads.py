"""Torch's intra-op thread count for the built-in demo models.

Their matmuls are tiny, so extra threads only add synchronisation: on a busy 2-core machine the digits
model ran 9x slower with 2 threads than with 1. Hub models keep the process default.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch

from .config import JobConfig

TINY_BUILTIN_MODELS = frozenset({"builtin:digits-flow", "builtin:tiny-lm", "builtin:shapes-sd3"})


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
    """One thread for a job on a built-in tiny model, the process default otherwise."""
    return torch_threads(1) if config.model.name_or_path in TINY_BUILTIN_MODELS else nullcontext()
