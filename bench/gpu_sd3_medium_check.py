"""GPU check: ADRPO-FM steps on an SD3-medium-sized transformer built from config (no download).

The transformer has SD3-medium's shape (24 joint blocks, 24 heads x 64 = 1536 wide, 16 latent channels,
patch 2, joint_attention_dim 4096, pooled 2048; ~2B parameters, random weights). The two text encoders are
1-layer CLIPs of hidden 2048 (their concatenation fills joint_attention_dim 4096, where real SD3 pads
CLIP's 2048 with T5's tokens) and the VAE a small 8x-downsampling one with 16 latent channels, so the
pipeline, the sampler, the LoRA update and the decode all run at 512 px with the real transformer cost.
Reward: tiny-CLIP score (cheap; speed, not quality, is measured).

Reports images/s of the rollout (sampling + decode) and of a whole training step, in bf16.

    python bench/gpu_sd3_medium_check.py                  # GPU: SD3-medium size, 512 px
    python bench/gpu_sd3_medium_check.py --tiny --steps 2 # CPU smoke test of the same script (also without CUDA)
    python bench/gpu_sd3_medium_check.py --processes 2 --fsdp  # also on 2 GPUs, data parallel and FSDP2-sharded
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adrpo_engine.config import validate_config  # noqa: E402
from adrpo_engine.models.sd3 import SD3Policy  # noqa: E402
from adrpo_engine.models.tiny_sd3 import load_clip_tokenizer, write_clip_tokenizer  # noqa: E402
from adrpo_engine.progress import NullSink  # noqa: E402
from adrpo_engine.trainers.base import seed_everything  # noqa: E402
from adrpo_engine.trainers.flow import FlowTrainer  # noqa: E402
from bench.multi_process import compare_processes  # noqa: E402

if TYPE_CHECKING:
    from diffusers import StableDiffusion3Pipeline

MEDIUM = dict(
    num_layers=24,
    attention_head_dim=64,
    num_attention_heads=24,
    joint_attention_dim=4096,
    caption_projection_dim=1536,
    pooled_projection_dim=2048,
    in_channels=16,
    out_channels=16,
    patch_size=2,
    sample_size=128,
    pos_embed_max_size=192,
)
TINY = dict(
    num_layers=1,
    attention_head_dim=8,
    num_attention_heads=4,
    joint_attention_dim=64,
    caption_projection_dim=32,
    pooled_projection_dim=64,
    in_channels=16,
    out_channels=16,
    patch_size=2,
    sample_size=32,
    pos_embed_max_size=64,
)


def build_pipeline(shape: dict, workdir: Path, dtype: torch.dtype) -> StableDiffusion3Pipeline:
    """An SD3 pipeline with a transformer of ``shape`` and minimal text encoders / VAE that fit it."""
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    torch.manual_seed(0)
    tokenizer = load_clip_tokenizer(write_clip_tokenizer(workdir / "tokenizer"))
    # SD3 concatenates the two CLIP hidden states (-> joint_attention_dim) and the two projections (-> pooled)
    hidden = shape["joint_attention_dim"] // 2
    text_config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden,
        num_hidden_layers=1,
        num_attention_heads=8,
        max_position_embeddings=77,
        projection_dim=shape["pooled_projection_dim"] // 2,
        bos_token_id=0,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
    )
    # As a config mapping: diffusers annotates the per-block tuples as one-element tuple[int].
    vae_config: dict[str, Any] = {
        "in_channels": 3,
        "out_channels": 3,
        "latent_channels": shape["in_channels"],
        "block_out_channels": (32, 32, 32, 32),
        "layers_per_block": 1,
        "down_block_types": ("DownEncoderBlock2D",) * 4,
        "up_block_types": ("UpDecoderBlock2D",) * 4,
        "norm_num_groups": 8,
        "scaling_factor": 1.5305,
        "shift_factor": 0.0609,
    }
    vae = AutoencoderKL(**vae_config)
    pipeline = StableDiffusion3Pipeline(
        transformer=SD3Transformer2DModel(**shape),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=vae,
        text_encoder=CLIPTextModelWithProjection(text_config),
        tokenizer=tokenizer,
        text_encoder_2=CLIPTextModelWithProjection(text_config),
        tokenizer_2=tokenizer,
        text_encoder_3=None,  # pyright: ignore[reportArgumentType] (SD3 runs without T5; diffusers allows None)
        tokenizer_3=None,
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(dtype)


class CheckTrainer(FlowTrainer):
    """FlowTrainer on the in-memory pipeline; records rollout time per step."""

    pipeline: StableDiffusion3Pipeline | None = None  # set before the trainer is built

    def build_policy(self):
        if self.pipeline is None:
            raise RuntimeError("CheckTrainer.pipeline is not set")
        policy = SD3Policy(self.pipeline, self.device, self.dtype, self.config.flow.resolution)
        policy.add_lora(self.config.lora)
        return policy

    def rollout(self, rows, generator):
        self._sync()
        started = time.perf_counter()
        result = super().rollout(rows, generator)
        self._sync()
        self.rollout_seconds = time.perf_counter() - started
        return result

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny transformer at 64 px (CPU smoke test)")
    parser.add_argument("--steps", type=int, default=3, help="training steps timed (after one warm-up)")
    parser.add_argument("--sample-steps", type=int, default=20)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--prompts-per-step", type=int, default=2)
    parser.add_argument(
        "--checkpointing",
        action="store_true",
        help="model.gradient_checkpointing on the SD3 transformer (run once with and once without to compare)",
    )
    parser.add_argument("--processes", type=int, default=1, help="also train on this many processes (one GPU each)")
    parser.add_argument("--fsdp", action="store_true", help="with --processes: also with the transformer sharded")
    args = parser.parse_args()
    if not args.tiny and not torch.cuda.is_available():
        print("no CUDA device: running the CPU smoke test instead (--tiny)")
        args.tiny = True
    cuda = not args.tiny
    dtype = torch.bfloat16 if cuda else torch.float32
    shape, resolution = (TINY, 64) if args.tiny else (MEDIUM, 512)

    config = validate_config(
        {
            "kind": "flow",
            "model": {
                "name_or_path": "sd3-medium-shaped (in memory)",
                "device": "cuda" if cuda else "cpu",
                "dtype": "bfloat16" if cuda else "float32",
                "gradient_checkpointing": args.checkpointing,
            },
            "rewards": [{"name": "clip_score", "model": "builtin:tiny-clip"}],
            "prompts": {"texts": ["a red apple on a wooden table", "a lighthouse on a rocky cliff"]},
            "group_size": args.group_size,
            "prompts_per_step": args.prompts_per_step,
            "steps": args.steps + 1,
            "lr": 1e-4,
            "beta0": 0.04,
            "grad_accum": 2,
            "lora": {"rank": 32, "alpha": 32},
            "flow": {
                "sample_steps": args.sample_steps,
                "guidance_scale": 7.0,
                "resolution": resolution,
                "t_sampling": "logit_normal",
            },
        }
    )
    with tempfile.TemporaryDirectory() as workdir:
        started = time.perf_counter()
        pipeline = CheckTrainer.pipeline = build_pipeline(shape, Path(workdir), dtype)
        if args.processes > 1:  # saved before training adds the LoRA layers, for the runs through `adrpo train`
            pipeline.save_pretrained(Path(workdir) / "pipeline")
        params = sum(p.numel() for p in pipeline.transformer.parameters())
        print(
            f"built pipeline: transformer {params / 1e9:.2f} B parameters, {time.perf_counter() - started:.1f} s; "
            f"device {'cuda: ' + torch.cuda.get_device_name() if cuda else 'cpu'}, {dtype}",
            flush=True,
        )
        trainer = CheckTrainer(config, Path(workdir) / "run", NullSink())
        seed_everything(0)
        trainer.setup()
        if cuda:
            torch.cuda.reset_peak_memory_stats()  # the peak of training steps, not of loading
        samples = config.group_size * config.prompts_per_step
        steps, rollouts = [], []
        for step in range(1, args.steps + 2):
            trainer._sync()
            begun = time.perf_counter()
            metrics = trainer.train_step(step)
            trainer._sync()
            elapsed = time.perf_counter() - begun
            print(
                f"step {step}: {elapsed:.2f} s (rollout {trainer.rollout_seconds:.2f} s), loss {metrics['loss']:.4g}, "
                f"w2 {metrics['w2']:.3g}, grad_norm {metrics['grad_norm']:.3g}",
                flush=True,
            )
            if step > 1:  # step 1 warms up kernels and the prompt cache
                steps.append(elapsed)
                rollouts.append(trainer.rollout_seconds)
        step_s, rollout_s = statistics.median(steps), statistics.median(rollouts)
        memory = f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if cuda else ""
        print(
            f"{samples} images of {resolution} px, {args.sample_steps} Euler steps, CFG 7: "
            f"rollout {samples / rollout_s:.2f} images/s, training step {samples / step_s:.2f} images/s "
            f"(update {step_s - rollout_s:.2f} s){memory}, gradient checkpointing "
            f"{'on' if args.checkpointing else 'off'}"
        )
        if args.processes > 1:  # the same job through `adrpo train`, on the pipeline saved as a local model
            data = config.model_dump(mode="json")
            data["model"]["name_or_path"] = str(Path(workdir) / "pipeline")
            compare_processes(data, Path(workdir) / "runs", args.processes, args.fsdp, samples, "images")


if __name__ == "__main__":
    main()
