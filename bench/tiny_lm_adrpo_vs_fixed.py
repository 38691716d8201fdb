"""The tiny-lm preset with ADRPO vs fixed-beta GRPO: reward, KL to the reference, entropy, diversity.

Runs the preset (150 steps, builtin:tiny-lm, the list task) once per variant and seed and prints the mean
of the last 20 steps of each metric, and the eval reward of the final adapter. CPU, ~1-2 min per run.

    OMP_NUM_THREADS=1 python bench/tiny_lm_adrpo_vs_fixed.py                 # 3 variants, seed 0
    python bench/tiny_lm_adrpo_vs_fixed.py --seeds 0 1 2 --variants adrpo fixed-0.01
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adrpo_engine.presets import preset_config  # noqa: E402
from adrpo_engine.progress import RecordingSink  # noqa: E402
from adrpo_engine.runner import train  # noqa: E402

VARIANTS = {
    # the reference pass for every row, so that `kl` covers the same rows as for fixed beta
    "adrpo": {"algorithm": "adrpo", "beta0": 0.04, "llm.skip_zero_beta_reference": False},
    "fixed-0.04": {"algorithm": "fixed", "beta0": 0.04},
    "fixed-0.01": {"algorithm": "fixed", "beta0": 0.01},
}
SHOWN = ("reward/mean", "kl", "entropy", "diversity", "completion/mean_tokens", "beta_eff/mean")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=None, help="override the preset's steps")
    args = parser.parse_args()
    print("variant      seed  " + "  ".join(f"{name:>22}" for name in SHOWN) + "  first-10 reward")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.variants:
            for seed in args.seeds:
                overrides = {**VARIANTS[name], "seed": seed}
                if args.steps:
                    overrides["steps"] = args.steps
                cfg = preset_config("tiny-lm", overrides)
                sink = RecordingSink()
                train(cfg, Path(tmp) / f"{name}-{seed}", sink, resume=False)
                steps = sorted(sink.steps)
                tail = [sink.steps[s] for s in steps[-20:]]
                head = [sink.steps[s]["reward/mean"] for s in steps[:10]]
                values = "  ".join(f"{statistics.mean(row[m] for row in tail):>22.3f}" for m in SHOWN)
                print(f"{name:<12} {seed:>4}  {values}  {statistics.mean(head):.3f}", flush=True)
                for line in sink.logs:
                    if line.startswith("eval"):
                        print(f"    {line}", flush=True)


if __name__ == "__main__":
    main()
