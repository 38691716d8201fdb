"""What the studio's file route (``/gradio_api/file=<path>``) may serve: only what its pages show.

Gradio serves any file under ``allowed_paths`` (and it must be given the run directories, else it
refuses to copy sample images into its cache for the page). A run directory also holds the trainer
state, the config and the log, and the data directory the database and the broker's messages, so a
middleware in front of the route decides instead, on the resolved path (symlinks followed):

- Gradio's own upload and cache folders (the copies of what pages showed, and files a user uploaded);
- under the artifacts directory, per job: ``samples/**`` and ``comparisons/**`` images and clips (WAV),
  ``exports/*.zip`` / ``exports/*.safetensors`` (the adapter zips and ComfyUI LoRAs); and the images of
  reward dry runs (``dry-runs/<id>/*.png``);
- nothing else: 403 ``File not allowed``, the same answer for a file that exists and one that does not.
"""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif")
AUDIO_SUFFIXES = (".wav",)  # the clips of audio samples and comparisons (written by the engine as WAV)
SHOWN_FOLDERS = ("samples", "comparisons")
EXPORT_SUFFIXES = (".zip", ".safetensors")
DRY_RUNS = "dry-runs"  # worker.tasks.reward_dry_run writes artifacts_dir/dry-runs/<id>/reference-K.png
# Both spellings Gradio 6 answers: /gradio_api/file=<path> and the deprecated /gradio_api/file/<path>.
FILE_ROUTE = re.compile(r"/gradio_api/file(?:=|/)(?P<target>.*)$", re.DOTALL)


def _real(path: str | Path) -> Path:
    return Path(os.path.realpath(os.path.abspath(str(path))))


def gradio_folders() -> list[Path]:
    from gradio.utils import get_cache_folder, get_upload_folder

    return [_real(get_upload_folder()), _real(get_cache_folder())]


def shown_file(target: str, artifacts_dir: Path, gradio_dirs: list[Path]) -> bool:
    """Whether the studio may serve ``target`` (a path as the client sent it)."""
    if "\x00" in target or target.startswith(("http://", "https://")):
        return False
    path = _real(target)
    if any(path.is_relative_to(folder) for folder in gradio_dirs):
        return True
    root = _real(artifacts_dir)
    if not path.is_relative_to(root):
        return False
    parts = path.relative_to(root).parts
    if len(parts) == 3 and parts[0] == DRY_RUNS:  # job ids are hex: never this name
        return path.suffix.lower() in IMAGE_SUFFIXES
    if len(parts) >= 3 and parts[1] in SHOWN_FOLDERS:
        return path.suffix.lower() in IMAGE_SUFFIXES + AUDIO_SUFFIXES
    return len(parts) == 3 and parts[1] == "exports" and path.suffix.lower() in EXPORT_SUFFIXES


def install_file_guard(app: FastAPI, artifacts_dir: Path) -> None:
    """Put the rule above in front of Gradio's file routes on ``app``."""
    folders = gradio_folders()

    @app.middleware("http")
    async def _guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Any:
        found = FILE_ROUTE.search(request.url.path)
        if found and not shown_file(found.group("target"), artifacts_dir, folders):
            return PlainTextResponse("File not allowed.", status_code=403)
        return await call_next(request)
