"""Files that travel with a submitted job (an audio job's clips): checked, stored, and wired into its rows.

``JobService.submit(..., uploads={name: bytes})`` stores each file under ``ADRPO_UPLOADS_DIR/jobs/<job id>/``
(the operator's uploads root, so the trust boundary of ``policy`` admits exactly these paths) and replaces
every inline row value (``prompts.rows[*][audio.column]``) that names an uploaded file with its stored path.
The clips themselves (format, sample rate, duration) are checked by the kind's input check at submission
(``adrpo_engine.audio_io.check_inline_clips``), so a bad clip is refused with the row and file it came from.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from adrpo_engine.audio_io import AUDIO_SUFFIXES
from adrpo_engine.presets import PRESETS

from .inputs import SubmissionError

MAX_FILES = 256
MAX_FILE_BYTES = 32 * 1024 * 1024
MAX_TOTAL_BYTES = 512 * 1024 * 1024
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,127}$")


def check_uploads(uploads: dict[str, bytes]) -> None:
    if len(uploads) > MAX_FILES:
        raise SubmissionError("uploads", f"at most {MAX_FILES} files per job")
    total = 0
    for name, data in uploads.items():
        field = f"uploads.{name}"
        if not isinstance(name, str) or not FILE_NAME.fullmatch(name) or ".." in name:
            raise SubmissionError("uploads", f"bad file name {name!r}: letters, digits, '.', '_', '-', ' '")
        if Path(name).suffix.lower() not in AUDIO_SUFFIXES:
            raise SubmissionError(field, f"not an audio file (accepted: {', '.join(sorted(AUDIO_SUFFIXES))})")
        if not isinstance(data, (bytes, bytearray)) or not data:
            raise SubmissionError(field, "the file is empty")
        if len(data) > MAX_FILE_BYTES:
            raise SubmissionError(field, f"{len(data)} bytes; at most {MAX_FILE_BYTES} per file")
        total += len(data)
    if total > MAX_TOTAL_BYTES:
        raise SubmissionError("uploads", f"{total} bytes in all; at most {MAX_TOTAL_BYTES}")


def _audio_column(config: dict[str, Any] | None, preset: str | None, overrides: dict[str, Any]) -> str:
    if "audio.column" in overrides:
        return str(overrides["audio.column"])
    base = config if config is not None else (PRESETS[preset].config if preset in PRESETS else {})
    return str((base.get("audio") or {}).get("column", "audio"))


def _wire(rows: Any, column: str, paths: dict[str, Path], field: str) -> Any:
    if not isinstance(rows, list):
        return rows
    wired = []
    for index, row in enumerate(rows):
        if isinstance(row, dict) and isinstance(row.get(column), str) and "/" not in row[column]:
            name = row[column]
            if name not in paths:
                raise SubmissionError(f"{field}.{index}.{column}", f"{name!r} is not among the uploaded files")
            row = {**row, column: str(paths[name])}
        wired.append(row)
    return wired


def store_uploads(
    folder: Path,
    uploads: dict[str, bytes],
    config: dict[str, Any] | None,
    preset: str | None,
    overrides: dict[str, Any] | None,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Check and write ``uploads`` into ``folder``; the config and overrides with rows pointing at them."""
    if not isinstance(uploads, dict):
        raise SubmissionError("uploads", "expected a mapping of file names to contents")
    check_uploads(uploads)
    overrides = dict(overrides or {})
    column = _audio_column(config, preset, overrides)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data in uploads.items():
        paths[name] = folder / name
        paths[name].write_bytes(bytes(data))
    if "prompts.rows" in overrides:
        overrides["prompts.rows"] = _wire(overrides["prompts.rows"], column, paths, "prompts.rows")
    elif config is not None and isinstance(config.get("prompts"), dict) and "rows" in config["prompts"]:
        config = copy.deepcopy(config)
        config["prompts"]["rows"] = _wire(config["prompts"]["rows"], column, paths, "prompts.rows")
    return config, overrides or None
