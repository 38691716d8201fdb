"""Checkpoints that can be trusted on resume: a manifest of sha256 digests written with each checkpoint,
checked before it is loaded, and trainer state loaded without arbitrary unpickling.

``checksums.json`` in a checkpoint folder lists every other file with its size and sha256. A checkpoint
whose files are missing, truncated or altered fails :func:`verify_checkpoint` with a reason naming the
file; the trainer then falls back to the newest checkpoint that passes (see ``BaseTrainer``).

``trainer_state.pt`` is read with ``torch.load(weights_only=True)``: tensors, numbers, strings and
containers only, so a planted pickle cannot run code. New checkpoints store numpy's RNG state as a
tensor; the numpy globals of older checkpoints (an ndarray) are the only extra ones allowed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

MANIFEST = "checksums.json"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(directory: Path) -> None:
    """Record size and sha256 of every file in ``directory`` (call it last, before publishing)."""
    files = {
        path.name: {"size": path.stat().st_size, "sha256": file_sha256(path)}
        for path in sorted(directory.iterdir())
        if path.is_file() and path.name != MANIFEST
    }
    (directory / MANIFEST).write_text(json.dumps({"files": files}, indent=1, sort_keys=True))


def verify_checkpoint(directory: Path) -> str | None:
    """None if every file listed in the manifest is there with its recorded size and digest, else the
    reason. A checkpoint from before manifests existed passes (its load is the check)."""
    manifest = directory / MANIFEST
    if not manifest.is_file():
        return None
    try:
        files = json.loads(manifest.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{MANIFEST} is unreadable"
    for name, expected in sorted(files.items()):
        path = directory / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != expected["size"]:
            return f"{name} has {path.stat().st_size} bytes, {expected['size']} were written"
        if file_sha256(path) != expected["sha256"]:
            return f"{name} does not match the sha256 recorded when it was written"
    return None


def numpy_rng_state() -> tuple[Any, ...]:
    """numpy's global RNG state without an ndarray (so it loads with weights_only=True)."""
    name, keys, position, has_gauss, cached = np.random.get_state(legacy=True)
    return name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(position), int(has_gauss), float(cached)


def set_numpy_rng_state(state: tuple[Any, ...]) -> None:
    name, keys, position, has_gauss, cached = state
    if isinstance(keys, torch.Tensor):
        keys = keys.numpy()
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))


# Only what an older trainer_state.pt (numpy's RNG state as an ndarray) needs beyond weights_only's defaults.
_OLD_NUMPY_GLOBALS = [np.ndarray, np.dtype, np.dtypes.UInt32DType]


def load_trainer_state(path: Path) -> dict[str, Any]:
    """``torch.load`` with ``weights_only=True`` (no code runs while reading it)."""
    from numpy._core.multiarray import _reconstruct

    with torch.serialization.safe_globals([*_OLD_NUMPY_GLOBALS, _reconstruct]):
        return torch.load(path, map_location="cpu", weights_only=True)
