"""The paper's text-to-image comparison at CPU scale, on the shapes world (builtin:shapes-sd3).

ADRPO-FM vs fixed-beta W2 (same beta0) vs ORW-CFM-W2 at several alpha (incl. alpha = 0), equal steps,
several seeds, all from the shapes-compose preset (LoRA on the SD3 transformer, reward = the
shapes:geneval verifier, training on compositional prompts of seen combinations). After training,
each run is evaluated on held-out compositional prompts (unseen colour/shape combinations) with fixed
noise shared by every run and the reference (``worlds.shapes.evaluate``):

- verifier: mean shapes:geneval score (and verifier/strict: all constraints met);
- clip_score: builtin:shapes-clip CLIP score;
- diversity: ClipDiversity (mean pairwise distance of CLIP image embeddings within a prompt);
- w2: E ||v_theta - v_ref||^2 on the samples at fresh (noise, t), the W2 bound's integrand.

Writes ``<out>.json``, ``<out>.md`` and ``<out>.png`` (default docs/results/shapes_compose). Usage:

    python bench/shapes_compose_bench.py --steps 150 --seeds 0 1 2
    python bench/shapes_compose_bench.py --steps 40 --seeds 0 1 2 --alphas 0 0.5 --eval-prompts 24   # reduced

One process per seed runs in parallel on several cores; ``--combine`` then writes the table over seeds:

    python bench/shapes_compose_bench.py --seeds 0 --out runs/shapes-s0   # ... s1, s2, in parallel
    python bench/shapes_compose_bench.py --combine runs/shapes-s0.json runs/shapes-s1.json runs/shapes-s2.json
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adrpo_engine.presets import preset_config
from adrpo_engine.progress import NullSink
from adrpo_engine.threads import torch_threads
from adrpo_engine.trainers.flow import FlowTrainer
from adrpo_engine.worlds.shapes.data import compositional_prompts
from adrpo_engine.worlds.shapes.evaluate import evaluate

METRICS = ["verifier", "verifier/strict", "clip_score", "diversity", "w2"]
EVAL_SEED = 4321


def methods(beta0: float, alphas: list[float]) -> list[tuple[str, dict]]:
    runs = [
        (f"ADRPO (beta0={beta0:g})", {"algorithm": "adrpo", "beta0": beta0}),
        # a_min None: the fixed-beta loss is bounded below only for a > -beta0, so it keeps its default -beta0/2.
        (f"fixed-beta W2 (beta0={beta0:g})", {"algorithm": "fixed", "beta0": beta0, "a_min": None}),
    ]
    return runs + [(f"ORW-CFM-W2 (alpha={alpha:g})", {"algorithm": "orw", "beta0": alpha}) for alpha in alphas]


def held_out_prompts(count: int) -> list[str]:
    prompts = compositional_prompts(held_out=True)
    if count < len(prompts):
        prompts = random.Random(EVAL_SEED).sample(prompts, count)
    return prompts


def run_one(overrides: dict, steps: int, seed: int, prompts: list[str], args, workdir: Path) -> dict:
    config = preset_config(
        "shapes-compose",
        {
            **overrides,
            "steps": steps,
            "seed": seed,
            "checkpoint_every": steps,
            "sample_every": 1_000_000,
        },
    )
    trainer = FlowTrainer(config, workdir / f"{config.algorithm}-{config.beta0:g}-s{seed}", NullSink())
    started = time.perf_counter()
    trainer.run(resume=False)
    seconds = time.perf_counter() - started
    result = evaluate(
        trainer.policy,
        prompts,
        samples=args.samples,
        seed=EVAL_SEED,
        steps=config.flow.sample_steps,
        guidance=config.flow.guidance_scale,
    )
    result["train_seconds"] = seconds
    return result


def reference(prompts: list[str], args, workdir: Path) -> dict:
    config = preset_config("shapes-compose", {"steps": 1})
    trainer = FlowTrainer(config, workdir / "reference", NullSink())
    trainer.setup()
    return evaluate(
        trainer.policy,
        prompts,
        samples=args.samples,
        seed=EVAL_SEED,
        steps=config.flow.sample_steps,
        guidance=config.flow.guidance_scale,
        adapter=False,
    )


def combine(paths: list[Path], args) -> None:
    """One table over the seeds of several runs of this script (same steps, prompts and reference)."""
    stored = [json.loads(path.read_text()) for path in paths]
    prompts, ref = stored[0]["held_out_prompts"], stored[0]["reference"]
    if any(s["held_out_prompts"] != prompts or s["args"]["steps"] != stored[0]["args"]["steps"] for s in stored):
        raise SystemExit("--combine: the runs differ in steps or held-out prompts")
    runs: dict[str, list[dict]] = {}
    for part in stored:
        for name, results in part["runs_per_seed"].items():
            runs.setdefault(name, []).extend(results)
    for key in ("steps", "samples", "beta0", "alphas"):
        setattr(args, key, stored[0]["args"][key])
    args.seeds = sorted({seed for part in stored for seed in part["args"]["seeds"]})
    write_outputs(args.out, ref, runs, args, prompts)


def summarise(runs: dict[str, list[dict]]) -> dict[str, dict[str, tuple[float, float]]]:
    table = {}
    for name, results in runs.items():
        table[name] = {}
        for key in METRICS + ["train_seconds"]:
            values = [r[key] for r in results if key in r]
            if values:
                table[name][key] = (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0)
    return table


def write_outputs(out: Path, ref: dict, runs: dict[str, list[dict]], args, prompts: list[str]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    table = summarise(runs)
    payload = {
        "args": vars(args),
        "held_out_prompts": prompts,
        "reference": ref,
        "runs": {k: {m: list(v) for m, v in row.items()} for k, row in table.items()},
        "runs_per_seed": runs,
    }
    out.with_suffix(".json").write_text(json.dumps(payload, indent=2, default=str))  # default: the Paths
    lines = [
        f"# shapes-compose: ADRPO-FM vs baselines ({args.steps} steps, seeds {args.seeds}, "
        f"{len(prompts)} held-out prompts x {args.samples} samples)",
        "",
        f"Command: `python bench/shapes_compose_bench.py {' '.join(sys.argv[1:])}`",
        "",
        "Each cell: mean ± std over seeds (std 0.000 with one seed).",
        "",
        "| run | " + " | ".join(METRICS) + " | train s |",
        "|---|" + "---|" * (len(METRICS) + 1),
        "| reference | " + " | ".join(f"{ref[m]:.3f}" if m in ref else "-" for m in METRICS) + " | - |",
    ]
    for name, row in table.items():
        cells = [f"{row[m][0]:.3f} ± {row[m][1]:.3f}" if m in row else "-" for m in METRICS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {row['train_seconds'][0]:.0f} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    plot(out.with_suffix(".png"), ref, table)


def plot(path: Path, ref: dict, table: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4.5))
    axis.scatter([ref["diversity"]], [ref["verifier"]], marker="*", s=160, color="black", label="reference")
    for name, row in table.items():
        (x, dx), (y, dy) = row["diversity"], row["verifier"]
        axis.errorbar([x], [y], xerr=[dx], yerr=[dy], fmt="o", capsize=3, label=name)
    axis.set_xlabel("ClipDiversity (held-out prompts)")
    axis.set_ylabel("verifier score (held-out prompts)")
    axis.set_title("shapes-compose, mean ± std over seeds")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--steps", type=int, default=preset_config("shapes-compose").steps)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--beta0", type=float, default=preset_config("shapes-compose").beta0)
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.05, 0.5])
    parser.add_argument("--eval-prompts", type=int, default=48)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "shapes_compose")
    parser.add_argument("--methods", nargs="+", choices=["adrpo", "fixed", "orw"], default=["adrpo", "fixed", "orw"])
    parser.add_argument("--combine", type=Path, nargs="+", help="JSON outputs of earlier runs: one table")
    args = parser.parse_args()
    if args.combine:
        combine(args.combine, args)
        print(args.out.with_suffix(".md").read_text())
        return
    prompts = held_out_prompts(args.eval_prompts)
    with torch_threads(1), tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        ref = reference(prompts, args, workdir)
        print(f"reference: {json.dumps({k: round(v, 4) for k, v in ref.items()})}", flush=True)
        runs: dict[str, list[dict]] = {}
        for name, overrides in methods(args.beta0, args.alphas):
            if overrides["algorithm"] not in args.methods:
                continue
            for seed in args.seeds:
                result = run_one(overrides, args.steps, seed, prompts, args, workdir)
                runs.setdefault(name, []).append(result)
                print(f"{name} seed {seed}: {json.dumps({k: round(v, 4) for k, v in result.items()})}", flush=True)
            write_outputs(args.out, ref, runs, args, prompts)  # partial results survive a stop
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
