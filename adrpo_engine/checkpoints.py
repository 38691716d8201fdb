"""Where a run keeps its checkpoints and how their folder names encode the step.

``run_dir/checkpoints/step-000010/`` holds the adapter files and ``trainer_state.pt``; a folder without
``trainer_state.pt`` is incomplete and ignored. Sample folders use the same ``step-NNNNNN`` names.
"""

from __future__ import annotations

from pathlib import Path

TRAINER_STATE = "trainer_state.pt"
# An SD3 checkpoint also holds its LoRA in diffusers' layout (pipe.load_lora_weights, the ComfyUI export).
DIFFUSERS_WEIGHTS = "pytorch_lora_weights.safetensors"
CHECKPOINTS = "checkpoints"
STEP_PREFIX = "step-"


def step_name(step: int) -> str:
    """``10`` -> ``"step-000010"`` (checkpoint and sample folders)."""
    return f"{STEP_PREFIX}{step:06d}"


def checkpoint_step(path: str | Path | None) -> int | None:
    """The step a ``step-NNNNNN`` folder is of; None for anything else (or None)."""
    if path is None:
        return None
    digits = Path(path).name.removeprefix(STEP_PREFIX)
    return int(digits) if Path(path).name.startswith(STEP_PREFIX) and digits.isdigit() else None


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / step_name(step)


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run, oldest first."""
    found = []
    for path in (Path(run_dir) / CHECKPOINTS).glob(f"{STEP_PREFIX}*"):
        step = checkpoint_step(path)
        if step is not None and (path / TRAINER_STATE).is_file():
            found.append((step, path))
    return sorted(found)


def latest_checkpoint(run_dir: str | Path) -> tuple[int, Path] | None:
    checkpoints = list_checkpoints(run_dir)
    return checkpoints[-1] if checkpoints else None
