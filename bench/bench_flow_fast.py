"""Reward reached per wall-clock second, with and without the fast flow recipes, side by side.

Arms (all on one world's preset: digits-even, or shapes-compose with ``--world shapes``; same seeds, same
steps, run interleaved so they share the machine's load):

- ``standard``: the recipe of trainers that follow the sampler closely: classifier-free guidance in the
  training rollouts (``flow.train_guidance_scale = --cfg``) and training on every noise level of the
  rollout's grid (``flow.train_timesteps = sample_steps``);
- ``cfg-free``: the same, with guidance 1 in training rollouts;
- ``fast``: guidance 1 and ``flow.train_timesteps = --fast-k`` levels per sample.

Every ``--eval-every`` steps each run draws images from one fixed noise batch (guidance
``flow.guidance_scale``, not timed) and records its reward against the summed training step time so far
(the trainer's own ``step_time``: rollout + reward + update): on digits ``--eval-samples`` images of the
null prompt scored P(even) (spread: even-digit entropy); on shapes ``--eval-samples`` images per held-out
compositional prompt (``--eval-prompts`` of them) scored by the shapes:geneval verifier (spread:
ClipDiversity). Reported: the reward at equal steps, the time
to first reach ``--target`` (interpolated between evals), and the ratios against ``standard``.

On digits-even the prompt is "any digit", the null class, so guidance changes nothing in the samples
(``v_null + g (v_null - v_null) = v_null``) and the CFG half of the comparison measures only its cost (a
doubled rollout batch); on a text-to-image world the guided rollouts are also different samples.

Usage: ``python bench/bench_flow_fast.py --steps 200 --seeds 0 1 2`` (writes docs/results/flow_fast.{md,json});
``python bench/bench_flow_fast.py --world shapes --steps 60 --sample-steps 10 --target 0.4`` (flow_fast_shapes.*)
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
from adrpo_engine.diversity import even_spread  # noqa: E402
from adrpo_engine.models.digits_data import DATA_DIM  # noqa: E402
from adrpo_engine.models.digits_pretrain import digit_classifier, load_digits_models  # noqa: E402
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


class DigitsWorld:
    """digits-even: P(even) of the null prompt's samples from one fixed noise batch."""

    preset = "digits-even"
    spread_name = "even spread"
    reference_reward = reference_spread = float("nan")  # set by main() before the runs

    def __init__(self, args: argparse.Namespace) -> None:
        self.samples = args.eval_samples

    def prepare(self) -> None:
        load_digits_models()  # build the cache outside the timed runs

    def reference(self, trainer: FlowTrainer) -> tuple[float, float]:
        return self.measure(trainer, adapter=False)

    def measure(self, trainer: FlowTrainer, adapter: bool = True) -> tuple[float, float]:
        flow, policy = trainer.config.flow, trainer.policy
        noise = torch.randn(self.samples, DATA_DIM, generator=torch.Generator().manual_seed(EVAL_NOISE_SEED))
        with policy.eval_mode():
            samples = policy.sample(
                policy.null_cond(self.samples),
                torch.Generator(),
                flow.sample_steps,
                flow.guidance_scale,
                adapter=adapter,
                noise=noise,
            )
        probabilities = digit_classifier().probabilities(policy.decode(samples))
        return probabilities[:, EVEN].sum(dim=1).mean().item(), even_spread(probabilities)


class ShapesWorld:
    """shapes-compose: the verifier's score on held-out compositional prompts, fixed noise per prompt."""

    preset = "shapes-compose"
    spread_name = "ClipDiversity"
    reference_reward = reference_spread = float("nan")

    def __init__(self, args: argparse.Namespace) -> None:
        import random

        from adrpo_engine.worlds.shapes.data import compositional_prompts

        prompts = compositional_prompts(held_out=True)
        self.prompts = random.Random(EVAL_NOISE_SEED).sample(prompts, min(args.eval_prompts, len(prompts)))
        self.samples = args.eval_samples

    def prepare(self) -> None:
        from adrpo_engine.worlds.shapes.builtins import shapes_clip_path, shapes_sd3_path

        shapes_clip_path()
        shapes_sd3_path()

    def reference(self, trainer: FlowTrainer) -> tuple[float, float]:
        return self.measure(trainer, adapter=False)

    def measure(self, trainer: FlowTrainer, adapter: bool = True) -> tuple[float, float]:
        from adrpo_engine.worlds.shapes.evaluate import evaluate

        flow = trainer.config.flow
        result = evaluate(
            trainer.policy,
            self.prompts,
            samples=self.samples,
            seed=EVAL_NOISE_SEED,
            steps=flow.sample_steps,
            guidance=flow.guidance_scale,
            adapter=adapter,
        )
        return result["verifier"], result["diversity"]


WORLDS = {"digits": DigitsWorld, "shapes": ShapesWorld}


class TimedEvalTrainer(FlowTrainer):
    """The real FlowTrainer; records (training seconds so far, eval reward) at each sample step."""

    world: DigitsWorld | ShapesWorld

    def setup(self) -> None:
        super().setup()
        self.trained_seconds = 0.0
        self.curve: list[dict] = []

    def train_step(self, step: int) -> dict[str, float]:
        metrics = super().train_step(step)
        self.trained_seconds += metrics[M.STEP_TIME]
        return metrics

    def log_samples(self, step: int) -> list:
        reward, spread = self.world.measure(self)
        self.curve.append({"step": step, "seconds": self.trained_seconds, "reward": reward, "spread": spread})
        return []


def run_one(world, overrides: dict, seed: int, args: argparse.Namespace) -> list[dict]:
    config = preset_config(
        world.preset,
        {
            **overrides,
            "seed": seed,
            "steps": args.steps,
            "sample_every": args.eval_every,
            "checkpoint_every": args.steps,
            "flow.sample_steps": args.sample_steps,
        },
    )
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = TimedEvalTrainer(config, run_dir, NullSink())
        trainer.world = world
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


def report(world, results: dict[str, list[list[dict]]], args: argparse.Namespace, wall: float) -> str:
    per_eval = (
        f"{args.eval_samples} samples per prompt on {len(world.prompts)} held-out prompts, fixed noise"
        if isinstance(world, ShapesWorld)
        else f"{args.eval_samples} samples from one fixed noise batch"
    )
    lines = [
        f"# Fast flow recipes on {world.preset}: reward per wall-clock second",
        "",
        f"`python bench/bench_flow_fast.py {' '.join(sys.argv[1:])}` "
        f"(sample_steps {args.sample_steps}, standard = training-rollout CFG {args.cfg:g} + all "
        f"{args.sample_steps} levels, fast = CFG-free + {args.fast_k} levels; eval: {per_eval} "
        f"every {args.eval_every} steps; time = summed training step time; "
        f"1 torch thread; wall {wall:.0f} s for the whole bench on the shared 2-core box; "
        f"reference model (adapter off): reward {world.reference_reward:.3f}, {world.spread_name} "
        f"{world.reference_spread:.3f}).",
        "",
        f"| arm | train s / step | reward at step {args.steps} | {world.spread_name} | s to reward {args.target:g} | "
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
            f"{mean_std([run[-1]['spread'] for run in runs])} | {mean_std(reached)} "
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
    parser.add_argument("--world", choices=sorted(WORLDS), default="digits")
    parser.add_argument("--eval-samples", type=int, default=None, help="default: 512 (digits), 4 (shapes)")
    parser.add_argument("--eval-prompts", type=int, default=24, help="shapes: held-out prompts per eval")
    parser.add_argument("--arms", nargs="+", default=["standard", "cfg-free", "fast"])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    args = parser.parse_args()
    if args.eval_samples is None:
        args.eval_samples = 512 if args.world == "digits" else 4
    torch.set_num_threads(1)
    world = WORLDS[args.world](args)
    world.prepare()  # build the cached models outside the timed runs
    with tempfile.TemporaryDirectory() as run_dir:
        reference = FlowTrainer(preset_config(world.preset, {"steps": 1}), run_dir, NullSink())
        reference.setup()
        world.reference_reward, world.reference_spread = world.reference(reference)

    started = time.perf_counter()
    settings = arms(args.cfg, args.sample_steps, args.fast_k)
    results: dict[str, list[list[dict]]] = {arm: [] for arm in args.arms}
    for seed in args.seeds:
        for arm in args.arms:  # interleaved: each seed's arms run back to back under the same load
            curve = run_one(world, settings[arm], seed, args)
            results[arm].append(curve)
            print(
                f"{arm:9s} seed {seed}: reward {curve[-1]['reward']:.3f} after {curve[-1]['seconds']:.1f} s "
                f"of training ({curve[-1]['seconds'] / curve[-1]['step'] * 1000:.1f} ms/step)",
                flush=True,
            )
    wall = time.perf_counter() - started
    text = report(world, results, args, wall)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "flow_fast" if args.world == "digits" else f"flow_fast_{args.world}"
    (args.out / f"{stem}.md").write_text(text)
    (args.out / f"{stem}.json").write_text(
        json.dumps(
            {
                "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                "wall_seconds": wall,
                "reference": {"reward": world.reference_reward, "spread": world.reference_spread},
                "curves": results,
            },
            indent=1,
        )
    )
    print(text)


if __name__ == "__main__":
    main()
