"""Scores of builtin:shapes-sd3 on the shapes world, before and (with --adapter) after fine-tuning.

Evaluates the pre-trained model (adapter off) on the single-object prompts, the seen compositional
prompts and the held-out compositional prompts, with fixed noise (``worlds.shapes.evaluate``); with
``--adapter CHECKPOINT`` also the fine-tuned model on the same prompts and noise. Prints one JSON line
per (model, prompt set) and writes them to ``--out`` (JSON) if given. Usage:

    python bench/shapes_quality.py                                    # the pre-trained model
    python -m app.cli train --preset shapes-compose --out runs/shapes
    python bench/shapes_quality.py --adapter runs/shapes/checkpoints/step-000150
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adrpo_engine.models.sd3 import SD3Policy, load_pipeline
from adrpo_engine.presets import preset_config
from adrpo_engine.threads import torch_threads
from adrpo_engine.worlds.shapes.builtins import shapes_sd3_path
from adrpo_engine.worlds.shapes.data import compositional_prompts, single_prompts
from adrpo_engine.worlds.shapes.evaluate import evaluate


def prompt_sets(every: int) -> dict[str, list[str]]:
    return {
        "single": single_prompts(),
        "compositional-seen": compositional_prompts(held_out=False)[:: every * 3],
        "compositional-held-out": compositional_prompts(held_out=True)[::every],
    }


GRID_PROMPTS = [
    "a red circle",
    "a blue square",
    "a yellow triangle",
    "two green circles",
    "a red circle to the left of a blue square",
    "three blue squares",
]


def write_grid(policy: SD3Policy, path: Path, config, with_adapter: bool) -> None:
    """Rows of 8 samples (seed 0) per prompt: the reference, and below it the fine-tuned model if any."""
    from adrpo_engine.images import save_grid
    from adrpo_engine.models.flow_policy import repeat_cond

    rows = []
    for prompt in GRID_PROMPTS:
        for adapter in (False, True) if with_adapter else (False,):
            cond = repeat_cond(policy.encode_prompts([prompt]), 8)
            with policy.eval_mode():
                latents = policy.sample(
                    cond,
                    torch.Generator().manual_seed(0),
                    config.flow.sample_steps,
                    config.flow.guidance_scale,
                    adapter=adapter,
                )
            rows.append(policy.decode(latents))
    save_grid(rows, path)
    print(f"grid ({', '.join(GRID_PROMPTS)}): {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--adapter", type=Path, help="a checkpoint folder of a shapes-compose run")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--every", type=int, default=2, help="use every k-th compositional prompt")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--grid", type=Path, help="write a PNG: one row of samples per grid prompt (and model)")
    parser.add_argument("--guidance", type=float, help="CFG scale of the samples (default: the preset's)")
    args = parser.parse_args()
    config = preset_config("shapes-compose")
    if args.guidance is not None:
        config.flow.guidance_scale = args.guidance
    started = time.perf_counter()
    with torch_threads(1):
        shapes_sd3_path()
        build_seconds = time.perf_counter() - started
        policy = SD3Policy(load_pipeline("builtin:shapes-sd3"), torch.device("cpu"), torch.float32)
        if args.adapter:
            policy.add_lora(config.lora)
            policy.load_adapter(args.adapter)
        rows = []
        for role, adapter in [("reference", False)] + ([("fine-tuned", True)] if args.adapter else []):
            for name, prompts in prompt_sets(args.every).items():
                result = evaluate(
                    policy,
                    prompts,
                    samples=args.samples,
                    steps=config.flow.sample_steps,
                    guidance=config.flow.guidance_scale,
                    adapter=adapter,
                )
                row = {
                    "model": role,
                    "guidance": config.flow.guidance_scale,
                    "prompts": name,
                    "count": len(prompts),
                    **{k: round(v, 4) for k, v in result.items()},
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
        if args.grid:
            write_grid(policy, args.grid, config, bool(args.adapter))
    print(f"model load/build: {build_seconds:.1f} s")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
