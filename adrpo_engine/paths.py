"""Where the engine caches the models it builds itself (ADRPO_DATA_DIR, default ~/.adrpo), and the one
way the engine publishes a folder atomically (model caches, checkpoints): build it in a sibling staging
folder, then rename, so a reader never sees half of one."""

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

DATA_DIR_ENV = "ADRPO_DATA_DIR"


def data_dir() -> Path:
    """The data directory: $ADRPO_DATA_DIR, else ~/.adrpo. Created on first use."""
    path = Path(os.environ.get(DATA_DIR_ENV) or Path.home() / ".adrpo").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def builtin_models_dir() -> Path:
    """Cache of the built-in demo models (built once, then loaded)."""
    path = data_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def staging_dir(target: Path, exclusive: bool = False) -> Path:
    """A fresh sibling folder to build ``target`` in. Several processes may build the same cache at once,
    so each gets its own name; an ``exclusive`` writer (a run's checkpoints) reuses one name, clearing
    what a crash left there."""
    if exclusive:
        staging = target.with_name(f".tmp-{target.name}")
        shutil.rmtree(staging, ignore_errors=True)
    else:
        staging = target.with_name(f".tmp-{target.name}-{os.getpid()}-{time.time_ns()}")
    staging.mkdir(parents=True)
    return staging


def publish_cache(staging: Path, target: Path, complete: Callable[[Path], bool] = Path.exists) -> None:
    """Rename a finished ``staging`` folder to ``target``. If a ``complete`` one is there already (another
    process published first, from the same recipe), keep it and drop ours; an incomplete one is replaced."""
    if complete(target):
        shutil.rmtree(staging, ignore_errors=True)
        return
    if target.exists():
        shutil.rmtree(target)
    try:
        staging.rename(target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not complete(target):
            raise
