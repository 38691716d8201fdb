"""The audio-tones preset with ADRPO vs fixed-beta GRPO: held-out multiple-choice accuracy, KL, entropy.

For each variant and seed, trains the preset (``builtin:tiny-audio-lm``, 512 generated training clips) and
evaluates the reference and the final adapter with the product's evaluator (``adrpo_engine.evaluation``)
on the 128 held-out clips of ``builtin:audio-tones-heldout``, ``eval.samples_per_prompt`` sampled answers
each (temperature 1, the same seeds for every checkpoint and job): accuracy = mean ``mc_answer``, KL and
entropy over every answer token. Also the training time: the summed step times (wall) and the CPU seconds of
the whole ``train`` call (``time.process_time``; the built-in model trains on one torch thread). Writes
docs/results/audio_tones.{md,json}.

    python bench/audio_tones_adrpo_vs_fixed.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adrpo_engine import metrics as M  # noqa: E402
from adrpo_engine.evaluation import evaluate  # noqa: E402
from adrpo_engine.presets import preset_config  # noqa: E402
from adrpo_engine.progress import RecordingSink  # noqa: E402
from adrpo_engine.runner import train  # noqa: E402

VARIANTS = {
    "adrpo": {"algorithm": "adrpo", "beta0": 0.04, "llm.skip_zero_beta_reference": False},
    "fixed-0.04": {"algorithm": "fixed", "beta0": 0.04},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=None, help="override the preset's steps")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "audio_tones")
    args = parser.parse_args()
    results: list[dict] = []
    reference: dict[str, float] | None = None
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for name in args.variants:
                overrides = {**VARIANTS[name], "seed": seed}
                if args.steps:
                    overrides["steps"] = args.steps
                cfg = preset_config("audio-tones", overrides)
                sink = RecordingSink()
                cpu_started = time.process_time()
                result = train(cfg, Path(tmp) / f"{name}-{seed}", sink, resume=False)
                cpu_seconds = time.process_time() - cpu_started
                if reference is None:
                    ref = evaluate(cfg, [(0, None)])[0]
                    reference = {"accuracy": ref.metrics[M.REWARD_MEAN], "entropy": ref.metrics[M.ENTROPY]}
                    print(f"reference: accuracy {reference['accuracy']:.3f} entropy {reference['entropy']:.3f}")
                point = evaluate(cfg, [(cfg.steps, result.checkpoint)])[0]
                row = {
                    "variant": name,
                    "seed": seed,
                    "steps": cfg.steps,
                    "accuracy": point.metrics[M.REWARD_MEAN],
                    "kl": point.metrics[M.KL],
                    "entropy": point.metrics[M.ENTROPY],
                    "train_seconds": sum(m[M.STEP_TIME] for m in sink.steps.values()),
                    "train_cpu_seconds": cpu_seconds,
                }
                results.append(row)
                print(
                    f"{name:<11} seed {seed}: accuracy {row['accuracy']:.3f} kl {row['kl']:.4f} "
                    f"entropy {row['entropy']:.3f} ({row['train_seconds']:.0f} s of training steps, "
                    f"{row['train_cpu_seconds']:.0f} CPU s)",
                    flush=True,
                )
    summary = {}
    for name in args.variants:
        rows = [r for r in results if r["variant"] == name]
        summary[name] = {
            key: (statistics.mean(r[key] for r in rows), statistics.pstdev(r[key] for r in rows))
            for key in ("accuracy", "kl", "entropy", "train_seconds", "train_cpu_seconds")
        }
    if reference is None:
        raise SystemExit("no run: give at least one seed and one variant")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"reference": reference, "runs": results}, indent=2))
    lines = [
        f"Held-out accuracy on builtin:audio-tones-heldout (128 clips x 4 sampled answers); reference "
        f"{reference['accuracy']:.3f} (entropy {reference['entropy']:.3f}). Mean +- std over seeds {args.seeds}.",
        "",
        "| variant | accuracy | gain | KL | entropy | training s (wall) | training CPU s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, stats in summary.items():
        acc, kl, ent, secs, cpu = (
            stats[k] for k in ("accuracy", "kl", "entropy", "train_seconds", "train_cpu_seconds")
        )
        lines.append(
            f"| {name} | {acc[0]:.3f} +- {acc[1]:.3f} | {acc[0] - reference['accuracy']:+.3f} | "
            f"{kl[0]:.4f} +- {kl[1]:.4f} | {ent[0]:.3f} +- {ent[1]:.3f} | {secs[0]:.0f} | {cpu[0]:.0f} |"
        )
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
