"""Where the engine caches the models it builds itself (ADRPO_DATA_DIR, default ~/.adrpo)."""

import os
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
