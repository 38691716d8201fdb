"""Files of a job on disk: run directory, log, checkpoint digests and adapter zips.

Every path handed out is resolved inside the job's run directory (nothing a client sends can point
elsewhere)."""

from __future__ import annotations

import hashlib
import tempfile
import zipfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from adrpo_engine.checkpoints import DIFFUSERS_WEIGHTS
from adrpo_engine.integrity import MANIFEST
from adrpo_engine.trainers.base import TRAINER_STATE

from .model_card import with_base_model

LOG_FILE = "job.log"
EXPORTS = "exports"


class ArtifactError(LookupError):
    """A file the request names does not exist (or is outside the job's directory)."""


class CorruptCheckpoint(ValueError):
    """A checkpoint's files no longer match the sha256 recorded when it was saved."""


def inside(run_dir: Path, relative: str | Path) -> Path:
    """``run_dir / relative`` resolved, refused if it escapes ``run_dir``."""
    root = run_dir.resolve()
    path = (root / relative).resolve()
    if path != root and not path.is_relative_to(root):
        raise ArtifactError(f"path {str(relative)!r} is outside the job's directory")
    return path


def relative_to_run(run_dir: Path, path: str | Path) -> str:
    """How the store records a file: relative to the run directory when inside it (portable across
    machines that mount the artifacts elsewhere), else absolute."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(run_dir.resolve()))
    except ValueError:
        return str(resolved)


def adapter_files(checkpoint_dir: Path) -> list[Path]:
    """The files of a checkpoint that make up the adapter (the optimizer/RNG state stays behind)."""
    return sorted(p for p in checkpoint_dir.iterdir() if p.is_file() and p.name not in (TRAINER_STATE, MANIFEST))


def checkpoint_sha256(checkpoint_dir: Path) -> str:
    """One digest over the adapter files (names and bytes, in name order)."""
    digest = hashlib.sha256()
    for path in adapter_files(checkpoint_dir):
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ZipExtras:
    """What a zip holds beside the adapter files: its name, the model card, the base model id."""

    name: str
    card: str
    base_model: str
    grid: Path | None = None  # a reference-vs-adapter sample grid (flow jobs), stored as samples.png


def build_adapter_zip(
    run_dir: Path,
    checkpoint_relpath: str,
    step: int,
    extras: ZipExtras | None = None,
    expected_sha256: str | None = None,
) -> Path:
    """``run_dir/exports/<name>.zip`` with the checkpoint's adapter files at the top level (so the
    unpacked folder loads with PeftModel.from_pretrained / load_lora_weights), and with ``extras`` the
    model card (README.md, replacing PEFT's empty template), the job's config.yaml and the base model
    in adapter_config.json. Built once.

    With ``expected_sha256`` (the digest recorded at save time) the files are checked first, on every
    call, and a mismatch raises CorruptCheckpoint instead of handing out a truncated adapter."""
    checkpoint = inside(run_dir, checkpoint_relpath)
    if not checkpoint.is_dir():
        raise ArtifactError(f"checkpoint of step {step} is missing on disk")
    if expected_sha256 is not None and checkpoint_sha256(checkpoint) != expected_sha256:
        raise CorruptCheckpoint(
            f"checkpoint of step {step} no longer matches the sha256 recorded when it was "
            "saved (damaged on disk); download another step"
        )
    name = extras.name if extras else f"adapter-step-{step:06d}.zip"
    target = inside(run_dir, Path(EXPORTS) / name)
    if target.is_file() and _zip_is_intact(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.tmp")
    with zipfile.ZipFile(staging, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in adapter_files(checkpoint):
            if extras and path.name == "README.md":
                continue  # PEFT's template ("[More Information Needed]"): our card replaces it
            if extras and path.name == "adapter_config.json":
                archive.writestr(path.name, with_base_model(path.read_bytes(), extras.base_model))
                continue
            archive.write(path, arcname=path.name)
        if extras:
            archive.writestr("README.md", extras.card)
            if (run_dir / "config.yaml").is_file():
                archive.write(run_dir / "config.yaml", arcname="config.yaml")
            if extras.grid is not None and extras.grid.is_file():
                archive.write(extras.grid, arcname="samples.png")
    staging.replace(target)
    return target


def build_comfyui_lora(
    run_dir: Path, checkpoint_relpath: str, step: int, stem: str, expected_sha256: str | None = None
) -> Path:
    """``run_dir/exports/<stem>-comfyui.safetensors``: an SD3 checkpoint's LoRA in ComfyUI's key layout
    (adrpo_engine.export), built once; checked against ``expected_sha256`` first, as the zip is."""
    from adrpo_engine.export import export_comfyui_lora

    checkpoint = inside(run_dir, checkpoint_relpath)
    if not (checkpoint / DIFFUSERS_WEIGHTS).is_file():
        raise ArtifactError(f"checkpoint of step {step} has no SD3 LoRA to export (only SD3 jobs have one)")
    if expected_sha256 is not None and checkpoint_sha256(checkpoint) != expected_sha256:
        raise CorruptCheckpoint(
            f"checkpoint of step {step} no longer matches the sha256 recorded when it was "
            "saved (damaged on disk); download another step"
        )
    target = inside(run_dir, Path(EXPORTS) / f"{stem}-comfyui.safetensors")
    if target.is_file():
        return target
    staging = target.with_name(f".{target.stem}.tmp.safetensors")
    staging.unlink(missing_ok=True)
    export_comfyui_lora(run_dir, staging, step)
    staging.replace(target)
    return target


@dataclass(frozen=True)
class MergedFiles:
    """An LLM checkpoint merged into its base model, as files in ``exports/`` (their presence is the state:
    the zip when built, ``.building`` while a worker builds it, ``.error`` with the message if it failed)."""

    zip: Path
    building: Path
    error: Path


def merged_files(run_dir: Path, stem: str) -> MergedFiles:
    base = inside(run_dir, Path(EXPORTS) / f"{stem}-merged.zip")
    return MergedFiles(base, base.with_name(f"{base.name}.building"), base.with_name(f"{base.name}.error"))


def build_merged_zip(
    run_dir: Path, checkpoint_relpath: str, step: int, stem: str, expected_sha256: str | None = None
) -> Path:
    """``exports/<stem>-merged.zip``: the checkpoint's adapter merged into the base weights
    (adrpo_engine.export: safetensors, tokenizer, the job's config) in one folder ``<stem>-merged/``."""
    from adrpo_engine.export import export_merged_llm

    target = merged_files(run_dir, stem).zip
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    if expected_sha256 is not None and checkpoint_sha256(inside(run_dir, checkpoint_relpath)) != expected_sha256:
        raise CorruptCheckpoint(f"checkpoint of step {step} no longer matches the sha256 recorded when it was saved")
    with tempfile.TemporaryDirectory(prefix=".merge-", dir=target.parent) as scratch:
        folder = export_merged_llm(run_dir, Path(scratch) / f"{stem}-merged", step)
        staging = Path(scratch) / target.name
        # Stored, not deflated: safetensors weights barely compress, and a 7B model would take minutes more.
        with zipfile.ZipFile(staging, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(folder.parent).as_posix())
        staging.replace(target)
    return target


def _zip_is_intact(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (OSError, zipfile.BadZipFile):
        return False


def append_log(run_dir: Path, line: str) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / LOG_FILE).open("a", encoding="utf-8") as handle:
        handle.write(line.rstrip("\n") + "\n")


def tail(path: Path, lines: int) -> str:
    if not path.is_file():
        return ""
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        return "".join(deque(handle, maxlen=max(0, lines)))
