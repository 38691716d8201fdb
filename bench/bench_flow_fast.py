"""Reward reached per wall-clock second, with and without the fast flow recipes, side by side.

Arms (all on the digits-even preset, same seeds, same steps, run interleaved so they share the machine's
load):

- ``standard``: the recipe of trainers that follow the sampler closely: classifier-free guidance in the
  training rollouts (``flow.train_guidance_scale = --cfg``) and training on every noise level of the
  rollout's grid (``flow.train_timesteps = sample_steps``);
- ``cfg-free``: the same, with guidance 1 in training rollouts;
- ``fast``: guidance 1 and ``flow.train_timesteps = --fast-k`` levels per sample.

Every ``--eval-every`` steps each run draws ``--eval-samples`` images from one fixed noise batch (guidance
``flow.guidance_scale``, not timed) and records P(even) against the summed training step time so far (the
trainer's own ``step_time``: rollout + reward + update). Reported: the reward at equal steps, the time
to first reach ``--target`` (interpolated between evals), and the ratios against ``standard``.

On digits-even the prompt is "any digit", the null class, so guidance changes nothing in the samples
(``v_null + g (v_null - v_null) = v_null``) and the CFG half of the comparison measures only its cost (a
doubled rollout batch); on a text-to-image world the guided rollouts are also different samples.

Usage: ``python bench/bench_flow_fast.py --steps 200 --seeds 0 1 2`` (writes docs/results/flow_fast.{md,json})
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adrpo_engine import metrics as M  # noqa: E402
from adrpo_engine.models import digits as D  # noqa: E402
from adrpo_engine.presets import preset_config  # noqa: E402
from adrpo_engine.progress import NullSink  # noqa: E402
from adrpo_engine.trainers.flow import FlowTrainer  # noqa: E402

EVAL_NOISE_SEED = 12345
EVEN = [0, 2, 4, 6, 8]


def arms(cfg: float, steps: int, fast_k: int) -> dict[str, dict]:
    return {
        "standard": {"flow.train_guidance_scale": cfg, "flow.train_timesteps": steps},
        "cfg-free": {"flow.train_guidance_scale": 1.0, "flow.train_timesteps": steps},
        "fast": {"flow.train_guidance_scale": 1.0, "flow.train_timesteps": fast_k},
    }


class TimedEvalTrainer(FlowTrainer):
    """The real FlowTrainer; records (training seconds so far, eval reward) at each sample step."""

    eval_samples = 512

    def setup(self) -> None:
        super().setup()
        self.trained_seconds = 0.0
        self.curve: list[dict] = []
        self.eval_noise = torch.randn(self.eval_samples, D.DATA_DIM,
                                      generator=torch.Generator().manual_seed(EVAL_NOISE_SEED))
        self.eval_cond = self.policy.null_cond(self.eval_samples)

    def train_step(self, step: int) -> dict[str, float]:
        metrics = super().train_step(step)
        self.trained_seconds += metrics[M.STEP_TIME]
        return metrics

    def log_samples(self, step: int) -> list:
        flow = self.config.flow
        with self.policy.eval_mode():
            samples = self.policy.sample(self.eval_cond, torch.Generator(), flow.sample_steps, flow.guidance_scale,
                                         adapter=True, noise=self.eval_noise)
        probabilities = D.digit_classifier().probabilities(self.policy.decode(samples))
        self.curve.append({"step": step, "seconds": self.trained_seconds,
                           "reward": probabilities[:, EVEN].sum(dim=1).mean().item(),
                           "even_spread": D.even_spread(probabilities)})
        return []


def run_one(overrides: dict, seed: int, args: argparse.Namespace) -> list[dict]:
    config = preset_config("digits-even", {
        **overrides, "seed": seed, "steps": args.steps, "sample_every": args.eval_every,
        "checkpoint_every": args.steps, "flow.sample_steps": args.sample_steps,
    })
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = TimedEvalTrainer(config, run_dir, NullSink())
        trainer.eval_samples = args.eval_samples
        trainer.run(resume=False)
        return trainer.curve


def time_to_reach(curve: list[dict], target: float) -> float | None:
    """Training seconds at which the eval reward first reaches ``target`` (linear between evals)."""
    for before, after in zip(curve, curve[1:]):
        if after["reward"] >= target > before["reward"]:
            share = (target - before["reward"]) / (after["reward"] - before["reward"])
            return before["seconds"] + share * (after["seconds"] - before["seconds"])
    return None if curve[0]["reward"] < target else 0.0


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} +- {std:.3f}"


def report(results: dict[str, list[list[dict]]], args: argparse.Namespace, wall: float) -> str:
    lines = [
        "# Fast flow recipes on digits-even: reward per wall-clock second",
        "",
        f"`python bench/bench_flow_fast.py --steps {args.steps} --seeds {' '.join(map(str, args.seeds))}` "
        f"(sample_steps {args.sample_steps}, standard = training-rollout CFG {args.cfg:g} + all "
        f"{args.sample_steps} levels, fast = CFG-free + {args.fast_k} levels; eval: {args.eval_samples} samples "
        f"from one fixed noise batch every {args.eval_every} steps; time = summed training step time; "
        f"1 torch thread; wall {wall:.0f} s for the whole bench on the shared 2-core box).",
        "",
        f"| arm | train s / step | reward at step {args.steps} | even spread | s to reward {args.target:g} | "
        "speed-up in s / step | speed-up to target |",
        "|---|---|---|---|---|---|---|",
    ]
    base_step = statistics.fmean(run[-1]["seconds"] / run[-1]["step"] for run in results["standard"])
    base_reach = [time_to_reach(run, args.target) for run in results["standard"]]
    for arm, runs in results.items():
        per_step = [run[-1]["seconds"] / run[-1]["step"] for run in runs]
        reach = [time_to_reach(run, args.target) for run in runs]
        reached = [value for value in reach if value is not None]
        ratio_reach = "-"
        pairs = [(b, r) for b, r in zip(base_reach, reach) if b is not None and r is not None and r > 0]
        if pairs:
            ratio_reach = f"{statistics.fmean(b / r for b, r in pairs):.2f}x"
        lines.append(
            f"| {arm} | {statistics.fmean(per_step) * 1000:.1f} ms | {mean_std([run[-1]['reward'] for run in runs])} | "
            f"{mean_std([run[-1]['even_spread'] for run in runs])} | {mean_std(reached)} "
            f"({len(reached)}/{len(runs)} reached) | {base_step / statistics.fmean(per_step):.2f}x | {ratio_reach} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sample-steps", type=int, default=16)
    parser.add_argument("--cfg", type=float, default=2.0)
    parser.add_argument("--fast-k", type=int, default=2)
    parser.add_argument("--target", type=float, default=0.8)
    parser.add_argument("--eval-every", type=int, default=20)
    parser.add_argument("--eval-samples", type=int, default=512)
    parser.add_argument("--arms", nargs="+", default=["standard", "cfg-free", "fast"])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    args = parser.parse_args()
    torch.set_num_threads(1)
    D.load_digits_models()  # build the cache outside the timed runs

    started = time.perf_counter()
    settings = arms(args.cfg, args.sample_steps, args.fast_k)
    results: dict[str, list[list[dict]]] = {arm: [] for arm in args.arms}
    for seed in args.seeds:
        for arm in args.arms:  # interleaved: each seed's arms run back to back under the same load
            curve = run_one(settings[arm], seed, args)
            results[arm].append(curve)
            print(f"{arm:9s} seed {seed}: reward {curve[-1]['reward']:.3f} after {curve[-1]['seconds']:.1f} s "
                  f"of training ({curve[-1]['seconds'] / curve[-1]['step'] * 1000:.1f} ms/step)", flush=True)
    wall = time.perf_counter() - started
    text = report(results, args, wall)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "flow_fast.md").write_text(text)
    (args.out / "flow_fast.json").write_text(json.dumps(
        {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
         "wall_seconds": wall, "curves": results}, indent=1))
    print(text)


if __name__ == "__main__":
    main()
