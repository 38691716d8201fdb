"""The setting every first build of a built-in model runs in (the models in ``models/`` and ``worlds/``)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from .threads import torch_threads


@contextmanager
def isolated_build() -> Iterator[None]:
    """One torch thread (the models are small: threads.py), and the caller's random states as they were.

    A build seeds and draws from the global generators. Without this, a job whose base model is built on first
    use would draw its LoRA initialisation from other states than the same job on the cached model: the same
    config and seed would train a different adapter depending on whether the cache existed."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]), torch_threads(1):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
