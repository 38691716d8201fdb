"""Where the engine caches the models it builds itself (ADRPO_DATA_DIR, default ~/.adrpo)."""

import os
import shutil
import time
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


def staging_dir(target: Path) -> Path:
    """A fresh sibling folder to build ``target`` in, so readers never see a half-built cache."""
    staging = target.with_name(f".tmp-{target.name}-{os.getpid()}-{time.time_ns()}")
    staging.mkdir(parents=True)
    return staging


def publish_cache(staging: Path, target: Path) -> None:
    """Rename a finished ``staging`` folder to ``target``; if another process published first, keep its
    copy (both were built from the same recipe) and drop ours."""
    if target.exists():
        shutil.rmtree(staging, ignore_errors=True)
        return
    try:
        staging.rename(target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not target.exists():
            raise
