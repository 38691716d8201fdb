"""Sweeps: grid expansion, validation as a whole, summaries with frontier flags, `adrpo sweep` locally."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from adrpo_engine import metrics as M
from adrpo_engine.cli import app
from adrpo_engine.config import ConfigError
from adrpo_engine.presets import get_preset
from adrpo_engine.sweep import expand_sweep, job_count, parse_grid_option, summarise_sweep

DIGITS = get_preset("digits-even").config


def test_grid_expands_to_every_point_times_every_seed():
    jobs = expand_sweep(DIGITS, {"algorithm": ["adrpo", "fixed", "orw"], "beta0": [0.05, 0.1]}, [0, 1, 2], {"steps": 7})
    assert len(jobs) == 18 == job_count({"a": [1, 2, 3], "b": [1, 2]}, [0, 1, 2])
    assert [(j.params["algorithm"], j.params["beta0"], j.seed) for j in jobs[:3]] == [
        ("adrpo", 0.05, 0),
        ("adrpo", 0.05, 1),
        ("adrpo", 0.05, 2),
    ]
    assert all(j.config.steps == 7 for j in jobs)
    assert jobs[4].config.algorithm == "adrpo" and jobs[4].config.beta0 == 0.1 and jobs[4].config.seed == 1
    assert (
        len({j.config.name for j in jobs}) == 18 and jobs[0].config.name == "digits-even-algorithm-adrpo-beta0-0.05-s0"
    )
    assert parse_grid_option("lora.rank=4,8") == ("lora.rank", [4, 8])
    assert parse_grid_option("algorithm=adrpo,fixed") == ("algorithm", ["adrpo", "fixed"])


@pytest.mark.parametrize(
    ("grid", "seeds", "message"),
    [
        ({"beta0": [0.1, -1.0]}, [0], "grid point beta0=-1.0: beta0"),
        ({"bogus": [1]}, [0], "bogus: unknown key"),
        ({"seed": [1, 2]}, [0], "grid.seed: cannot be swept"),
        ({"model.name_or_path": ["x"]}, [0], "cannot be swept"),
        ({"beta0": []}, [0], "grid.beta0: expected a non-empty list"),
        ({"beta0": [0.1, 0.1]}, [0], "values repeat"),
        ({}, [0], "grid: expected a non-empty mapping"),
        ({"beta0": [0.1]}, [], "seeds: expected a non-empty list"),
        ({"beta0": [0.1]}, [0, 0], "seeds: values repeat"),
        ({"beta0": [0.1]}, [-3], "seeds: each must be an integer"),
        (
            {"beta0": [round(0.01 * i, 2) for i in range(1, 31)], "lr": [1e-3 * i for i in range(1, 4)]},
            [0, 1, 2],
            "at most 243",
        ),
    ],
)
def test_invalid_grids_are_refused_as_a_whole(grid, seeds, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        expand_sweep(DIGITS, grid, seeds)


def test_one_bad_combination_refuses_the_sweep():
    tiny_lm = get_preset("tiny-lm").config
    with pytest.raises(ConfigError, match="algorithm='orw'.*'flow' only.*no job was created"):
        expand_sweep(tiny_lm, {"algorithm": ["adrpo", "orw"]}, [0, 1])


def test_summary_averages_seeds_and_flags_each_methods_frontier():
    def job(method, beta0, seed, reward, diversity, w2):
        return {
            "params": {"algorithm": method, "beta0": beta0},
            "seed": seed,
            "method": method,
            "eval": {M.REWARD_MEAN: reward, M.DIVERSITY: diversity, M.W2: w2},
        }

    jobs = [
        job("adrpo", 0.1, 0, 0.8, 1.4, 0.02),
        job("adrpo", 0.1, 1, 0.9, 1.2, 0.04),  # mean 0.85 / 1.3 / 0.03
        job("adrpo", 0.2, 0, 0.6, 1.5, 0.01),
        job("fixed", 0.1, 0, 0.7, 1.2, 0.05),  # on fixed's own frontier, dominated by adrpo 0.1 in both planes
        job("fixed", 0.2, 0, 0.9, 1.0, 0.10),
        {
            "params": {"algorithm": "fixed", "beta0": 0.3},
            "seed": 0,
            "method": "fixed",
            "eval": None,
        },  # not evaluated yet
    ]
    summary = summarise_sweep("flow", ["algorithm", "beta0"], jobs, reference={M.REWARD_MEAN: 0.5})
    points = {(p["method"], p["params"]["beta0"]): p for p in summary["points"]}
    assert set(points) == {("adrpo", 0.1), ("adrpo", 0.2), ("fixed", 0.1), ("fixed", 0.2)}
    best = points[("adrpo", 0.1)]
    assert best["seeds"] == 2 and best["mean"][M.REWARD_MEAN] == pytest.approx(0.85)
    assert best["std"][M.DIVERSITY] == pytest.approx(0.1414, abs=1e-4) and best["n"][M.W2] == 2
    assert summary["planes"]["divergence"] == {M.REWARD_MEAN: "max", M.W2: "min"}
    weak = points[("fixed", 0.1)]["frontier"]
    assert weak["diversity"]["on_method_frontier"] and not weak["diversity"]["on_frontier"]
    assert weak["divergence"]["on_method_frontier"] and not weak["divergence"]["on_frontier"]
    strong = points[("fixed", 0.2)]["frontier"]
    assert strong["diversity"]["on_method_frontier"] and strong["diversity"]["on_frontier"]  # highest reward
    index_of_best = summary["points"].index(best)
    assert index_of_best in weak["divergence"]["dominated_by"]
    assert points[("adrpo", 0.2)]["frontier"]["diversity"]["on_method_frontier"]  # trade-off inside adrpo


def test_adrpo_sweep_runs_locally_and_writes_the_frontier(tmp_path):
    out = tmp_path / "sweep"
    args = [
        "sweep",
        "--preset",
        "digits-even",
        "--grid",
        "algorithm=adrpo,fixed",
        "--seeds",
        "0",
        "1",
        "--set",
        "steps=2",
        "--set",
        "group_size=4",
        "--set",
        "prompts_per_step=2",
        "--set",
        "flow.sample_steps=4",
        "--set",
        "sample_every=100",
        "--set",
        "eval.samples_per_prompt=8",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "4 jobs (2 grid points x 2 seeds)" in result.output
    record = json.loads((out / "sweep.json").read_text())
    assert [j["seed"] for j in record["jobs"]] == [0, 1, 0, 1]
    assert all(j["step"] == 2 and j["counts"][M.REWARD_MEAN] == 8 for j in record["jobs"])
    assert record["reference"]["role"] == "reference" and record["reference"]["metrics"][M.W2] == 0.0
    assert {p["method"]: p["seeds"] for p in record["summary"]["points"]} == {"adrpo": 2, "fixed": 2}
    rows = list(csv.DictReader(io.StringIO((out / "points.csv").read_text())))
    assert [r["method"] for r in rows] == ["adrpo", "fixed"] and float(rows[0]["reward/mean mean"]) > 0
    assert (out / "frontier.png").stat().st_size > 10_000
    for job in record["jobs"]:
        assert (out / job["run_dir"] / "eval.json").is_file()
    # Re-running finds every job done (its checkpoint and eval.json) and trains nothing.
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and json.loads((out / "sweep.json").read_text())["jobs"] == record["jobs"]


def test_sweep_command_refuses_bad_input_with_exit_2(tmp_path):
    runner = CliRunner()
    bad = runner.invoke(
        app, ["sweep", "--preset", "digits-even", "--grid", "beta0=0.1,-2", "--out", str(tmp_path / "x")]
    )
    assert bad.exit_code == 2 and "beta0" in bad.output and not (tmp_path / "x").exists()
    seeds = runner.invoke(app, ["sweep", "--preset", "digits-even", "--grid", "beta0=0.1", "--seeds", "a"])
    assert seeds.exit_code == 2 and "--seeds" in seeds.output


def clip_record(c: float, rewards: list[float], kl: float, reference_reward: float = 0.2) -> dict:
    """A hand-made sweep.json record of one symmetric clip c (``--grid a_max=c --set a_min=-c``)."""
    jobs = [
        {
            "name": f"tiny-a_max-{c}-s{seed}",
            "params": {"a_max": c},
            "seed": seed,
            "method": "adrpo",
            "run_dir": f"tiny-a_max-{c}-s{seed}",
            "eval": {M.REWARD_MEAN: reward, M.DIVERSITY: 1.0, M.KL: kl},
            "counts": {M.REWARD_MEAN: 16},
            "step": 60,
            "held_out": True,
        }
        for seed, reward in enumerate(rewards)
    ]
    return {
        "spec": {"base": "tiny-lm", "grid": {"a_max": [c]}, "seeds": [0, 1], "overrides": {"a_min": -c, "steps": 60}},
        "kind": "llm",
        "jobs": jobs,
        "reference": {"step": 0, "role": "reference", "metrics": {M.REWARD_MEAN: reference_reward, M.KL: 0.0}},
        "summary": {},
    }


def test_merged_sweeps_become_one_summary_with_the_differing_override_as_a_grid_key():
    from adrpo_engine.sweep_runner import merge_sweep_records

    merged = merge_sweep_records([clip_record(0.02, [0.3, 0.5], 0.6), clip_record(0.08, [0.6, 0.8], 0.5)])
    assert merged["spec"]["grid"] == {"a_min": [-0.02, -0.08], "a_max": [0.02, 0.08]}  # steps: same in both
    points = {p["params"]["a_max"]: p for p in merged["summary"]["points"]}
    assert points[0.02]["params"] == {"a_min": -0.02, "a_max": 0.02} and points[0.02]["seeds"] == 2
    assert points[0.02]["mean"][M.REWARD_MEAN] == pytest.approx(0.4)
    assert points[0.08]["mean"][M.REWARD_MEAN] == pytest.approx(0.7)
    # 0.08 has more reward and less kl: it dominates 0.02 in the reward-kl plane of the merged summary.
    assert points[0.08]["frontier"]["divergence"]["on_frontier"]
    assert not points[0.02]["frontier"]["divergence"]["on_frontier"]
    assert len(merged["jobs"]) == 4 and merged["reference"]["metrics"][M.REWARD_MEAN] == 0.2


def test_merging_refuses_sweeps_that_do_not_share_a_reference_or_repeat_a_job(tmp_path):
    from adrpo_engine.sweep_runner import merge_sweep_records, write_sweep_record

    a = clip_record(0.02, [0.3, 0.5], 0.6)
    with pytest.raises(ValueError, match="reference evals differ"):
        merge_sweep_records([a, clip_record(0.08, [0.6], 0.5, reference_reward=0.3)])
    with pytest.raises(ValueError, match="in two of the sweeps"):
        merge_sweep_records([a, clip_record(0.02, [0.3], 0.6)])
    other_grid = clip_record(0.08, [0.6], 0.5)
    other_grid["spec"]["grid"] = {"beta0": [0.04]}
    with pytest.raises(ValueError, match="different grid keys"):
        merge_sweep_records([a, other_grid])
    partial = clip_record(0.08, [0.6], 0.5)
    partial["spec"]["overrides"].pop("steps")
    with pytest.raises(ValueError, match="'steps' is set in some"):
        merge_sweep_records([a, partial])
    with pytest.raises(ValueError, match="at least two"):
        merge_sweep_records([a])
    merged = merge_sweep_records([a, clip_record(0.08, [0.6, 0.8], 0.5)])
    write_sweep_record(merged, tmp_path, list(merged["spec"]["grid"]))
    rows = list(csv.DictReader(io.StringIO((tmp_path / "points.csv").read_text())))
    assert [(r["a_min"], r["a_max"]) for r in rows] == [("-0.02", "0.02"), ("-0.08", "0.08")]
    assert (tmp_path / "frontier.png").stat().st_size > 10_000
