"""How every first build of a built-in model runs (the models in ``models/`` and ``worlds/``): once, in a
staging folder, in an isolated setting, then published whole into the model cache."""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from .paths import publish_cache, staging_dir
from .threads import torch_threads

COMPLETE = ".complete"


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


def build_once(target: Path, build: Callable[[Path], object], marker: str = COMPLETE) -> Path:
    """``target``, built first by ``build(staging)`` if the cache lacks it; returns ``target``.

    ``marker`` is the file whose presence means a finished cache, so it is written last: ``build`` writes it
    itself when it has something to say there (the LM and digits builds write their ``info.json``), else this
    writes ``ok``. The staging folder is published by one rename (paths.publish_cache), so a reader never sees
    half a model and two processes building at once keep one copy."""
    if (target / marker).is_file():
        return target
    staging = staging_dir(target)
    try:
        with isolated_build():
            build(staging)
        if not (staging / marker).is_file():
            (staging / marker).write_text("ok\n")
        publish_cache(staging, target, complete=lambda folder: (folder / marker).is_file())
    except BaseException:
        # Each build stages under a fresh name, so nothing would ever reuse or remove a failed one's folder.
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
