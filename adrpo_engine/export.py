"""A fine-tuned LLM as one ordinary model folder: the run's LoRA adapter merged into the base weights
(``merge_and_unload``) and saved with ``save_pretrained`` (safetensors) beside the tokenizer, so vLLM,
Ollama's importer or ``AutoModelForCausalLM.from_pretrained(folder)`` serve it without peft or this
project. The checkpoint's sha256 manifest is checked before anything is loaded from it."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from .checkpoints import DIFFUSERS_WEIGHTS, checkpoint_dir, latest_checkpoint
from .config import ConfigError, JobConfig, validate_config
from .config_io import load_yaml
from .integrity import verify_checkpoint
from .kinds import get_kind
from .paths import publish_cache, staging_dir
from .progress import TEXT_SAMPLE

CONFIG_FILE = "config.yaml"  # the run's job config, as the trainer wrote it


def run_config(run_dir: Path) -> JobConfig:
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"run: {str(run_dir)!r} is not a run directory (no {CONFIG_FILE})")
    return validate_config(load_yaml(path))


def chosen_checkpoint(run_dir: Path, step: int | None) -> tuple[int, Path]:
    """The checkpoint at ``step`` (None: the newest), verified against its manifest."""
    if step is None:
        latest = latest_checkpoint(run_dir)
        if latest is None:
            raise ConfigError(f"checkpoint: {str(run_dir)!r} has no checkpoint yet")
        step, folder = latest
    else:
        folder = checkpoint_dir(run_dir, step)
        if not folder.is_dir():
            raise ConfigError(f"checkpoint: {str(run_dir)!r} has no checkpoint at step {step}")
    problem = verify_checkpoint(folder)
    if problem:
        raise ConfigError(f"checkpoint: step {step} does not match its manifest ({problem})")
    return step, folder


def can_merge(kind: str) -> bool:
    """Whether a job of ``kind`` can become one merged transformers model (its policy is a causal LM)."""
    return get_kind(kind).sample_kind == TEXT_SAMPLE


def export_merged_llm(run_dir: str | Path, out_dir: str | Path, step: int | None = None) -> Path:
    """Merge the adapter of ``run_dir``'s checkpoint (newest, or ``step``) into its base model and save
    the result to ``out_dir`` (model, tokenizer, the job's config); returns ``out_dir``."""
    from peft import PeftModel

    from .models.causal_lm import load_causal_lm

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    job = run_config(run_dir)
    if not can_merge(job.kind):
        raise ConfigError(f"kind: a merged export is for LLM jobs; this run is a {job.kind!r} job")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ConfigError(f"out: {str(out_dir)!r} exists and is not empty")
    _, folder = chosen_checkpoint(run_dir, step)
    model, tokenizer = load_causal_lm(job.model, torch.device("cpu"), torch.float32)
    merged = PeftModel.from_pretrained(model, str(folder)).merge_and_unload()
    staging = staging_dir(out_dir)
    merged.save_pretrained(str(staging), safe_serialization=True)
    tokenizer.save_pretrained(str(staging))
    shutil.copy2(run_dir / CONFIG_FILE, staging / "adrpo_job.yaml")
    publish_cache(staging, out_dir, complete=lambda path: path.is_dir() and any(path.iterdir()))
    return out_dir


# ComfyUI reads SD3 LoRAs in several key layouts (comfy/lora.py, model_lora_keys_unet for SD3); this is the
# OneTrainer/kohya one, which kohya-style UIs read too: per diffusers module path P of the transformer,
# ``lora_transformer_<P with '_' for '.'>.lora_down.weight`` (peft's lora_A), ``.lora_up.weight``
# (lora_B) and ``.alpha`` (a scalar: both apply W + alpha / rank * up @ down, as peft does).
COMFY_PREFIX = "lora_transformer_"
DIFFUSERS_PREFIX = "transformer."
_COMFY_PARTS = {"lora_A.weight": "lora_down.weight", "lora_B.weight": "lora_up.weight"}


def comfyui_lora_state(diffusers_state: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """Keys of ``pipe.save_lora_weights``' file (``transformer.P.lora_A.weight``) in ComfyUI's layout."""
    out: dict[str, torch.Tensor] = {}
    for key, value in diffusers_state.items():
        if not key.startswith(DIFFUSERS_PREFIX):
            raise ConfigError(f"checkpoint: {key!r} is not a transformer LoRA key (only the transformer is adapted)")
        module, _, part = key[len(DIFFUSERS_PREFIX) :].rpartition(".lora_")
        comfy_part = _COMFY_PARTS.get(f"lora_{part}")
        if comfy_part is None:
            raise ConfigError(f"checkpoint: unexpected LoRA tensor {key!r}")
        name = COMFY_PREFIX + module.replace(".", "_")
        out[f"{name}.{comfy_part}"] = value.contiguous()
        out.setdefault(f"{name}.alpha", torch.tensor(float(alpha)))
    return out


def export_comfyui_lora(run_dir: str | Path, out_file: str | Path, step: int | None = None) -> Path:
    """The SD3 LoRA of ``run_dir``'s checkpoint as one ComfyUI-loadable ``.safetensors`` file."""
    import json

    from safetensors.torch import load_file, save_file

    run_dir, out_file = Path(run_dir), Path(out_file)
    if out_file.suffix != ".safetensors":
        raise ConfigError(f"out: {str(out_file)!r} must end in .safetensors (ComfyUI's models/loras/ format)")
    if out_file.exists():
        raise ConfigError(f"out: {str(out_file)!r} exists")
    _, folder = chosen_checkpoint(run_dir, step)
    weights = folder / DIFFUSERS_WEIGHTS
    if not weights.is_file():
        raise ConfigError(f"checkpoint: {str(folder)!r} has no {DIFFUSERS_WEIGHTS} (not an SD3 run)")
    adapter = json.loads((folder / "adapter_config.json").read_text())
    if adapter.get("rank_pattern") or adapter.get("alpha_pattern") or adapter.get("use_rslora"):
        raise ConfigError("checkpoint: per-module ranks/alphas or rsLoRA have no ComfyUI equivalent here")
    state = comfyui_lora_state(load_file(str(weights)), float(adapter["lora_alpha"]))
    out_file.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out_file), metadata={"format": "pt", "adrpo_job": (run_dir / CONFIG_FILE).read_text()})
    return out_file
