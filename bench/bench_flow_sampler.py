"""Rollout sampler vs the diffusers pipeline call, and the cost of a training step relative to its rollout.

1. Same tiny SD3 pipeline (``builtin:tiny-sd3``), same prompts, batch, Euler steps and CFG scale:
   ``pipeline(prompts, num_images_per_prompt=G, ..., output_type="pt")`` vs our sampler
   (``SD3Policy.sample`` from cached prompt embeddings + VAE decode). Calls alternate, the median of
   ``--reps`` is used; the ratio is images/s of ours over images/s of the pipeline (target >= 1.0).
   Ours is also timed with the LoRA adapter attached (what the trainer runs).
2. One full ``FlowTrainer.train_step`` (rollout + reward + W2-regularised update) vs its rollout, for the
   tiny SD3 with a tiny-CLIP reward and for the digits-even preset.

Usage (about a minute on one core): ``python bench/bench_flow_sampler.py``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adrpo_engine.config import validate_config  # noqa: E402
from adrpo_engine.models.sd3 import SD3Policy, load_pipeline  # noqa: E402
from adrpo_engine.presets import preset_config  # noqa: E402
from adrpo_engine.progress import NullSink  # noqa: E402
from adrpo_engine.trainers.base import seed_everything  # noqa: E402
from adrpo_engine.trainers.flow import FlowTrainer  # noqa: E402

PROMPTS = ["a red apple on a wooden table", "a lighthouse on a rocky cliff"]


def median_seconds(function, reps: int) -> float:
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def wider_transformer(pipeline, heads: int, layers: int):
    """A randomly initialised SD3 transformer of ``heads`` x 32 width that fits the tiny pipeline's
    text encoders and VAE: LoRA and per-call overheads then weigh as little as in real models."""
    from diffusers import SD3Transformer2DModel

    old = pipeline.transformer.config
    torch.manual_seed(0)
    return SD3Transformer2DModel(
        sample_size=old.sample_size,
        patch_size=old.patch_size,
        in_channels=old.in_channels,
        num_layers=layers,
        attention_head_dim=32,
        num_attention_heads=heads,
        joint_attention_dim=old.joint_attention_dim,
        caption_projection_dim=heads * 32,
        pooled_projection_dim=old.pooled_projection_dim,
        out_channels=old.out_channels,
        pos_embed_max_size=old.pos_embed_max_size,
    ).eval()


def bench_sampler(args: argparse.Namespace) -> dict[str, float]:
    from diffusers.pipelines.stable_diffusion_3.pipeline_output import StableDiffusion3PipelineOutput

    pipeline = load_pipeline("builtin:tiny-sd3")
    if args.heads:
        pipeline.transformer = wider_transformer(pipeline, args.heads, args.layers)
    policy = SD3Policy(pipeline, torch.device("cpu"), torch.float32)
    group = args.images_per_prompt
    images = len(PROMPTS) * group

    def run_pipeline() -> torch.Tensor:
        output = pipeline(
            PROMPTS,
            num_images_per_prompt=group,
            num_inference_steps=args.steps,
            guidance_scale=args.guidance,
            generator=torch.Generator().manual_seed(0),
            output_type="pt",
        )
        # return_dict (the default) gives the output object, output_type="pt" a tensor of images
        assert isinstance(output, StableDiffusion3PipelineOutput) and isinstance(output.images, torch.Tensor)
        return output.images

    def run_ours():
        cond = {k: v.repeat_interleave(group, 0) for k, v in policy.encode_prompts(PROMPTS).items()}
        return policy.decode(policy.sample(cond, torch.Generator().manual_seed(0), args.steps, args.guidance))

    same = torch.allclose(run_pipeline(), run_ours(), atol=1e-4)  # also warms both up
    pipe_times, our_times = [], []
    for _ in range(args.reps):  # alternate, so machine load hits both alike
        pipe_times.append(median_seconds(run_pipeline, 1))
        our_times.append(median_seconds(run_ours, 1))
    from adrpo_engine.config import LoraConfig

    policy.add_lora(LoraConfig(rank=8, alpha=16))
    lora_time = median_seconds(run_ours, args.reps)
    pipe, ours = statistics.median(pipe_times), statistics.median(our_times)
    return {
        "images": images,
        "pipeline_s": pipe,
        "ours_s": ours,
        "ours_lora_s": lora_time,
        "ratio": pipe / ours,
        "ratio_lora": pipe / lora_time,
        "same_images": same,
    }


class TimedTrainer(FlowTrainer):
    """Records how long the rollout (sampling + decode) of each step took."""

    def rollout(self, rows, generator):
        started = time.perf_counter()
        result = super().rollout(rows, generator)
        self.rollout_seconds = time.perf_counter() - started
        return result

    def score(self, rows, images):
        started = time.perf_counter()
        result = super().score(rows, images)
        self.score_seconds = time.perf_counter() - started
        return result


def bench_train_step(config, reps: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = TimedTrainer(config, run_dir, NullSink())
        seed_everything(0)
        trainer.setup()
        trainer.train_step(1)  # warm-up (prompt embeddings, allocator)
        steps, rollouts, scores = [], [], []
        for step in range(2, reps + 2):
            started = time.perf_counter()
            trainer.train_step(step)
            steps.append(time.perf_counter() - started)
            rollouts.append(trainer.rollout_seconds)
            scores.append(trainer.score_seconds)
    step_s, rollout_s, score_s = map(statistics.median, (steps, rollouts, scores))
    return {
        "samples": config.group_size * config.prompts_per_step,
        "step_s": step_s,
        "rollout_s": rollout_s,
        "reward_s": score_s,
        "update_s": step_s - rollout_s - score_s,
        "step_over_rollout": step_s / rollout_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8, help="Euler steps")
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument(
        "--images-per-prompt", type=int, default=4, help="also the training step's group size (at least 2)"
    )
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument(
        "--heads",
        type=int,
        default=0,
        help="0: the tiny transformer as built; N: swap in an N x 32 wide one (sampler bench only)",
    )
    parser.add_argument("--layers", type=int, default=2, help="layers of the --heads transformer")
    args = parser.parse_args()
    torch.set_num_threads(1)

    sampler = bench_sampler(args)
    width = f" with a {args.heads * 32}-wide {args.layers}-layer transformer" if args.heads else ""
    print(f"tiny SD3{width}, {sampler['images']} images of 32x32, {args.steps} Euler steps, CFG {args.guidance}:")
    print(
        f"  diffusers pipeline call   {sampler['pipeline_s'] * 1000:8.1f} ms  "
        f"({sampler['images'] / sampler['pipeline_s']:.1f} images/s)"
    )
    print(
        f"  our sampler (no adapter)  {sampler['ours_s'] * 1000:8.1f} ms  "
        f"({sampler['images'] / sampler['ours_s']:.1f} images/s)  ratio {sampler['ratio']:.2f}x"
    )
    print(
        f"  our sampler (LoRA r=8)    {sampler['ours_lora_s'] * 1000:8.1f} ms  "
        f"({sampler['images'] / sampler['ours_lora_s']:.1f} images/s)  ratio {sampler['ratio_lora']:.2f}x"
    )
    print(f"  same images as the pipeline: {sampler['same_images']}")

    tiny = validate_config(
        {
            "kind": "flow",
            "model": {"name_or_path": "builtin:tiny-sd3"},
            "rewards": [{"name": "clip_score", "model": "builtin:tiny-clip"}],
            "prompts": {"texts": PROMPTS},
            "group_size": args.images_per_prompt,
            "prompts_per_step": len(PROMPTS),
            "lora": {"rank": 8, "alpha": 16},
            "flow": {"sample_steps": args.steps, "guidance_scale": args.guidance},
        }
    )
    for name, config in (("tiny SD3 + tiny-CLIP reward", tiny), ("digits-even preset", preset_config("digits-even"))):
        cost = bench_train_step(config, args.reps)
        print(
            f"training step, {name} ({cost['samples']} samples, {config.flow.sample_steps} Euler steps, "
            f"CFG {config.flow.guidance_scale}): step {cost['step_s'] * 1000:.1f} ms = rollout "
            f"{cost['rollout_s'] * 1000:.1f} + reward {cost['reward_s'] * 1000:.1f} + update "
            f"{cost['update_s'] * 1000:.1f} ms; step / rollout = {cost['step_over_rollout']:.2f}x"
        )


if __name__ == "__main__":
    main()
