"""The paper's central flow-matching claim at CPU scale, on the digits-even task.

ADRPO-FM vs fixed-beta W2 (same beta0) vs ORW-CFM-W2 at several alpha (incl. alpha = 0), equal steps,
several seeds, all from the digits-even preset (built-in digits flow model, reward = P(even)). Every
``--eval-every`` steps each run draws ``--eval-samples`` images from one fixed noise batch and
records:

- reward: mean P(even) of the digit classifier;
- diversity: entropy (nats) of the mean predicted-class distribution (the logged ``diversity``);
- even_spread: entropy of that distribution restricted to the five even classes (ln 5 = 1.609 when
  the even digits are equally frequent, 0 when all even samples are one digit);
- feature_dist: mean pairwise distance of classifier features (``diversity/feature_dist``);
- w2_coupling: sqrt(mean ||x_theta(z) - x_ref(z)||^2) over the shared noise z, an upper bound on
  W2(p_theta, p_ref) in pixel space ([-1, 1] per pixel, 64 pixels);
- w2_velocity: E ||v_theta - v_ref||^2 on fresh (noise, t) draws, the integrand of ORW-CFM-W2's bound.

Writes docs/results/digits_pareto.{md,json,png}. Usage (about 1-2 min on one core):

    python bench/reproduce_digits_pareto.py --steps 200 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adrpo_engine import objectives as O  # noqa: E402
from adrpo_engine import diversity as V  # noqa: E402
from adrpo_engine.models import digits_data as Dd  # noqa: E402
from adrpo_engine.models import digits_pretrain as Dp  # noqa: E402
from adrpo_engine.presets import preset_config  # noqa: E402
from adrpo_engine.progress import NullSink  # noqa: E402
from adrpo_engine.trainers.flow import FlowTrainer  # noqa: E402

EVAL_NOISE_SEED = 12345
EVEN = [0, 2, 4, 6, 8]
METRICS = ["reward", "diversity", "even_spread", "feature_dist", "w2_coupling", "w2_velocity"]


def methods(beta0: float, alphas: list[float], dpo_betas: list[float], dpo_pairs: str = "best_worst",
            dpo_margin: float = 0.0) -> list[tuple[str, dict]]:
    runs = [
        (f"ADRPO (beta0={beta0:g})", {"algorithm": "adrpo", "beta0": beta0}),
        (f"fixed-beta W2 (beta0={beta0:g})", {"algorithm": "fixed", "beta0": beta0}),
    ]
    runs += [(f"ORW-CFM-W2 (alpha={alpha:g})", {"algorithm": "orw", "beta0": alpha}) for alpha in alphas]
    # Diffusion-DPO, offline: one pool of reference pairs from as many reward evaluations as an online run
    # of the same length (prompts_per_step x group_size x steps), the same optimisation steps.
    runs += [(f"Diffusion-DPO (beta={beta:g}, {dpo_pairs})",
              {"algorithm": "dpo", "flow.dpo_beta": beta, "flow.dpo_pairs": dpo_pairs, "flow.dpo_margin": dpo_margin})
             for beta in dpo_betas]
    return runs


class EvaluatingTrainer(FlowTrainer):
    """The real FlowTrainer; its sample hook measures a fixed eval batch instead of writing PNGs."""

    eval_samples = 512
    trajectory: list[dict]

    def setup(self) -> None:
        super().setup()
        self.trajectory = []
        self.eval_noise = torch.randn(self.eval_samples, Dd.DATA_DIM, generator=torch.Generator().manual_seed(EVAL_NOISE_SEED))
        self.eval_cond = self.policy.null_cond(self.eval_samples)  # the preset's prompt: "any digit"
        self.reference_samples = self._draw(adapter=False)

    def _draw(self, adapter: bool) -> torch.Tensor:
        flow = self.config.flow
        with self.policy.eval_mode():
            return self.policy.sample(self.eval_cond, torch.Generator(), flow.sample_steps, flow.guidance_scale,
                                      adapter=adapter, noise=self.eval_noise)

    def log_samples(self, step: int) -> list:
        samples = self._draw(adapter=True)
        images = self.policy.decode(samples)
        classifier = Dp.digit_classifier()
        with torch.no_grad():
            features = classifier.features(images)
            probabilities = torch.softmax(classifier.head(features), dim=-1)
            generator = torch.Generator().manual_seed(EVAL_NOISE_SEED + 1)
            noise = torch.randn(samples.shape, generator=generator)
            t = torch.rand(samples.shape[0], generator=generator)
            x_t = O.interpolate(samples, noise, t)
            w2_velocity = O.per_sample_mse(
                self.policy.velocity(x_t, t, self.eval_cond, adapter=True),
                self.policy.velocity(x_t, t, self.eval_cond, adapter=False),
            ).mean().item()
        even = probabilities[:, EVEN]
        self.trajectory.append({
            "step": step,
            "reward": even.sum(dim=1).mean().item(),
            "diversity": V.class_entropy(probabilities),
            "even_spread": V.even_spread(probabilities),
            "feature_dist": V.mean_pairwise_distance(features),
            "w2_coupling": (samples - self.reference_samples).pow(2).sum(dim=1).mean().sqrt().item(),
            "w2_velocity": w2_velocity,
            "class_counts": torch.bincount(probabilities.argmax(-1), minlength=10).tolist(),
        })
        return []


def run_one(overrides: dict, seed: int, steps: int, eval_every: int, eval_samples: int) -> list[dict]:
    config = preset_config("digits-even", {
        **overrides, "seed": seed, "steps": steps, "sample_every": eval_every, "checkpoint_every": steps,
    })
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = EvaluatingTrainer(config, run_dir, NullSink())
        trainer.eval_samples = eval_samples
        trainer.run(resume=False)
        return trainer.trajectory


def spread(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(results: dict[str, list[list[dict]]]) -> dict[str, dict[str, tuple[float, float]]]:
    return {
        name: {metric: spread([trajectory[-1][metric] for trajectory in runs]) for metric in METRICS}
        for name, runs in results.items()
    }


def dominance_lines(summary: dict, adrpo: str) -> list[str]:
    """For each baseline: does ADRPO's final point dominate it on (reward, diversity)?"""
    lines = []
    ours = summary[adrpo]
    for name, point in summary.items():
        if name == adrpo:
            continue
        better_reward = ours["reward"][0] >= point["reward"][0]
        better_diversity = ours["even_spread"][0] >= point["even_spread"][0]
        if better_reward and better_diversity:
            verdict = "ADRPO dominates (higher or equal reward and even-digit spread)"
        elif better_reward:
            verdict = "trade-off: ADRPO has higher reward, the baseline a larger even-digit spread"
        elif better_diversity:
            verdict = "trade-off: the baseline has higher reward, ADRPO a larger even-digit spread"
        else:
            verdict = "the baseline dominates ADRPO"
        lines.append(f"- vs {name}: {verdict} "
                     f"(reward {ours['reward'][0]:.3f} vs {point['reward'][0]:.3f}, "
                     f"even spread {ours['even_spread'][0]:.3f} vs {point['even_spread'][0]:.3f})")
    dominated_by = [name for name, point in summary.items() if name != adrpo
                    and point["reward"][0] > ours["reward"][0] and point["even_spread"][0] > ours["even_spread"][0]]
    lines.append("- ADRPO's point is " + (f"dominated by {', '.join(dominated_by)}" if dominated_by
                 else "Pareto-optimal among these final points (no run has both higher reward and larger spread)"))
    return lines


def markdown_table(summary: dict, results: dict, args: argparse.Namespace, seconds: float) -> str:
    head = (
        f"# digits-even: ADRPO vs fixed-beta W2 vs ORW-CFM-W2 vs Diffusion-DPO\n\n"
        f"Settings: digits-even preset, {args.steps} steps each, seeds {args.seeds}, beta0 = {args.beta0:g} for "
        f"ADRPO and fixed-beta (fixed uses the default a_min = -beta0/2), ORW-CFM-W2 with tau = 1 and batch-normalised "
        f"weights at alpha in {args.alphas}; Diffusion-DPO ({args.dpo_pairs} pairs, margin {args.dpo_margin:g}) at "
        f"dpo_beta in {args.dpo_betas}, offline, one pool of reference pairs from prompts_per_step x group_size x "
        f"steps reward evaluations (as many as each online run); final metrics on {args.eval_samples} samples from one fixed noise batch; "
        f"mean +- std over seeds. Reference model (step 0): reward "
        f"{first_value(results, 'reward'):.3f}, diversity {first_value(results, 'diversity'):.3f}, "
        f"even spread {first_value(results, 'even_spread'):.3f}. Wall time {seconds:.0f} s "
        f"(1 torch thread).\n\n"
        "| method | reward P(even) | diversity (class entropy) | even spread | feature dist | W2 coupling "
        "| W2 velocity | classes at the end (0..9) |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for name, point in summary.items():
        counts = [sum(run[-1]["class_counts"][k] for run in results[name]) for k in range(10)]
        cells = [f"{point[m][0]:.3f} +- {point[m][1]:.3f}" for m in METRICS]
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {counts} |")
    return head + "\n".join(rows) + "\n"


def first_value(results: dict, metric: str) -> float:
    firsts = [run[0][metric] for runs in results.values() for run in runs]
    return statistics.fmean(firsts)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(12, 5))
    for (name, runs), colour in zip(results.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
        for axis, diversity in zip(axes, ("even_spread", "diversity")):
            steps = len(runs[0])
            mean_r = [statistics.fmean(run[i]["reward"] for run in runs) for i in range(steps)]
            mean_d = [statistics.fmean(run[i][diversity] for run in runs) for i in range(steps)]
            axis.plot(mean_d, mean_r, "-", color=colour, alpha=0.5, marker=".", markersize=4)
            final_r = [run[-1]["reward"] for run in runs]
            final_d = [run[-1][diversity] for run in runs]
            axis.errorbar(statistics.fmean(final_d), statistics.fmean(final_r),
                          xerr=statistics.stdev(final_d) if len(runs) > 1 else 0,
                          yerr=statistics.stdev(final_r) if len(runs) > 1 else 0,
                          fmt="o", color=colour, markersize=8, capsize=3, label=name)
            axis.plot(mean_d[0], mean_r[0], "k*", markersize=12)
    axes[0].axvline(math.log(5), color="grey", linestyle=":", linewidth=1)
    axes[0].set_xlabel("even-digit spread: entropy over the 5 even classes (nats; ln 5 = uniform)")
    axes[1].set_xlabel("diversity: entropy of the predicted-class distribution (nats)")
    for axis in axes:
        axis.set_ylabel("reward: P(even)")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower left")
    figure.suptitle("digits-even: trajectories (mean over seeds, every eval step) and final points (mean +- std); "
                    "star = reference", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)


def json_safe(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list):
        return [json_safe(item) for item in value]
    return value


def earlier_runs(paths: list[Path], steps: int) -> dict[tuple[str, int], list[dict]]:
    """(method, seed) -> trajectory from earlier runs' JSON files of the same length; the first file wins."""
    found: dict[tuple[str, int], list[dict]] = {}
    for path in paths:
        earlier = json.loads(path.read_text())
        if earlier["settings"]["steps"] != steps:
            raise SystemExit(f"--reuse {path}: it ran {earlier['settings']['steps']} steps, not {steps}")
        for name, runs in earlier["trajectories"].items():
            for seed, trajectory in zip(earlier["settings"]["seeds"], runs):
                found.setdefault((name, seed), trajectory)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--beta0", type=float, default=0.1)
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.5, 1.0])
    parser.add_argument("--dpo-betas", type=float, nargs="*", default=[100.0, 1000.0, 10000.0])
    parser.add_argument("--dpo-pairs", choices=["best_worst", "all"], default="best_worst")
    parser.add_argument("--dpo-margin", type=float, default=0.0)
    parser.add_argument("--only", nargs="*", default=None, help="run only methods whose name contains one of these")
    parser.add_argument("--reuse", type=Path, nargs="*", default=[],
                        help="digits_pareto.json files of earlier runs (same steps and settings): a (method, seed) "
                             "run found there is taken from it instead of re-run, and the table says so")
    parser.add_argument("--eval-every", type=int, default=20)
    parser.add_argument("--eval-samples", type=int, default=512)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    args = parser.parse_args()
    torch.set_num_threads(1)

    started = time.perf_counter()
    Dp.load_digits_models()  # build the cache outside the timed runs
    results: dict[str, list[list[dict]]] = {}
    earlier = earlier_runs(args.reuse, args.steps)
    reused: list[str] = []
    for name, overrides in methods(args.beta0, args.alphas, args.dpo_betas, args.dpo_pairs, args.dpo_margin):
        if args.only and not any(part in name for part in args.only):
            continue
        results[name] = []
        for seed in args.seeds:
            if (name, seed) in earlier:
                results[name].append(earlier[(name, seed)])
                reused.append(f"{name} seed {seed}")
                continue
            trajectory = run_one(overrides, seed, args.steps, args.eval_every, args.eval_samples)
            results[name].append(trajectory)
            end = trajectory[-1]
            print(f"{name:32s} seed {seed}: reward {end['reward']:.3f}  diversity {end['diversity']:.3f}  "
                  f"even spread {end['even_spread']:.3f}  W2 {end['w2_coupling']:.3f}", flush=True)
    seconds = time.perf_counter() - started

    summary = summarise(results)
    adrpo = next(iter(results))
    table = markdown_table(summary, results, args, seconds)
    verdicts = dominance_lines(summary, adrpo)
    if reused:
        table += (f"\nRuns taken from earlier runs of this script with the same settings ({', '.join(map(str, args.reuse))}; "
                  f"not re-run here to save CPU): {', '.join(reused)}. The wall time above is for the other runs "
                  f"only.\n")
    text = table + "\nDominance of ADRPO's final point (reward vs even-digit spread):\n\n" + "\n".join(verdicts) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "digits_pareto.md").write_text(text)
    (args.out / "digits_pareto.json").write_text(json.dumps(
        {"settings": {k: json_safe(v) for k, v in vars(args).items()},
         "seconds": seconds, "trajectories": results}, indent=1))
    plot(results, args.out / "digits_pareto.png")
    print(text)
    print(f"wrote {args.out / 'digits_pareto.md'}, .json and .png")


if __name__ == "__main__":
    main()
