"""Merge the output directories of several `adrpo sweep` runs of one base into one summary.

For grids that are not a product of keys, such as the symmetric clip range a_min = -c, a_max = c: one
sweep per c (`--grid a_max=c --set a_min=-c`), then

    .venv/bin/python scripts/merge_sweeps.py runs/clip-0.02 runs/clip-0.04 runs/clip-0.08 --out runs/clip

writes sweep.json, points.csv and frontier.png there, with a_min (the override that differs between the
sweeps) as a grid key beside a_max; the points and frontier flags are computed again over all jobs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from adrpo_engine.sweep_runner import merge_sweep_records, write_sweep_record  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    parser.add_argument("sweeps", type=Path, nargs="+", help="sweep directories (each with sweep.json)")
    parser.add_argument("--out", type=Path, required=True, help="directory for the merged summary")
    args = parser.parse_args()
    try:
        record = merge_sweep_records([json.loads((path / "sweep.json").read_text()) for path in args.sweeps])
    except (OSError, ValueError) as error:
        sys.exit(f"error: {error}")
    grid_keys = list(record["spec"]["grid"])
    write_sweep_record(record, args.out, grid_keys)
    for point in record["summary"]["points"]:
        flags = point["frontier"]
        print(
            f"{point['method']:6s} {point['params']}: reward {point['mean']['reward/mean']:.4f} "
            f"+- {point['std']['reward/mean']:.4f} (n={point['seeds']})  frontier: "
            f"diversity {flags['diversity']['on_method_frontier']}, "
            f"divergence {flags['divergence']['on_method_frontier']}"
        )
    print(f"wrote {args.out / 'sweep.json'}, points.csv, frontier.png")


if __name__ == "__main__":
    main()
