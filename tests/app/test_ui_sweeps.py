"""The Sweeps tab's pure parts: the form, the job count, the points table and the plot."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from adrpo_engine import metrics as M
from adrpo_engine.config import ConfigError
from adrpo_engine.sweep import planes, summarise_sweep
from app.ui import sweeps as S
from worker.views import SweepJobView, SweepView


def test_form_parses_grid_seeds_and_overrides():
    form = S.parse_form("digits-even", "algorithm=adrpo,fixed\n\nbeta0=0.05,0.1", "0, 1 2", "steps=5\nlora.rank=4", " ")
    assert form == {"preset": "digits-even", "grid": {"algorithm": ["adrpo", "fixed"], "beta0": [0.05, 0.1]},
                    "seeds": [0, 1, 2], "overrides": {"steps": 5, "lora.rank": 4}, "name": None}
    with pytest.raises(ConfigError, match="seeds"):
        S.parse_form("digits-even", "beta0=0.1", "one", "", "")
    with pytest.raises(ConfigError, match="twice"):
        S.parse_form("digits-even", "beta0=0.1\nbeta0=0.2", "0", "", "")


def test_job_count_before_launching():
    assert S.preview_count("digits-even", "algorithm=adrpo,fixed,orw\nbeta0=0.05,0.1,0.2", "0 1 2", "steps=5", "") \
        .startswith("**27 jobs**: 9 grid points x 3 seeds")
    refused = S.preview_count("tiny-lm", "algorithm=adrpo,orw", "0", "", "")
    assert refused.startswith("**Not launchable:** grid:") and "'flow' only" in refused
    assert "seeds" in S.preview_count("digits-even", "beta0=0.1", "", "", "")


def fake_view():
    jobs = [
        ("adrpo", 0.1, 0, 0.8, 1.4, 0.02), ("adrpo", 0.1, 1, 0.9, 1.2, 0.04),
        ("fixed", 0.1, 0, 0.7, 1.2, 0.05), ("fixed", 0.1, 1, 0.72, 1.1, 0.05),
    ]
    records = [{"params": {"algorithm": m, "beta0": b}, "seed": s, "method": m,
                "eval": {M.REWARD_MEAN: r, M.DIVERSITY: d, M.W2: w}} for m, b, s, r, d, w in jobs]
    summary = summarise_sweep("flow", ["algorithm", "beta0"], records, {M.REWARD_MEAN: 0.5, M.DIVERSITY: 1.46, M.W2: 0.0})
    views = [SweepJobView(job_id=f"j{i}", name=f"job{i}", params=r["params"], seed=r["seed"], method=r["method"],
                          status="succeeded", current_step=5, total_steps=5, eval_status="succeeded", eval=r["eval"])
             for i, r in enumerate(records)]
    return SweepView(id="abc", name="grid", kind="flow", preset="digits-even",
                     grid={"algorithm": ["adrpo", "fixed"], "beta0": [0.1]}, seeds=[0, 1], overrides={},
                     created_at=datetime.now(timezone.utc), cancel_requested=False, status="finished",
                     progress={"succeeded": 4, "evaluated": 4}, jobs=views, reference=summary["reference"],
                     points=summary["points"], planes=planes("flow"))


def test_points_table_reads_mean_pm_std_and_frontier_marks():
    frame = S.points_frame(fake_view())
    assert list(frame.columns) == ["beta0", "method", "seeds", "reward", "diversity", "w2",
                                   "frontier (diversity)", "frontier (divergence)"]
    adrpo, fixed = frame.to_dict("records")
    assert adrpo["reward"] == "0.8500 ± 0.0707" and adrpo["seeds"] == 2
    assert adrpo["frontier (diversity)"] == "on (overall)" and fixed["frontier (diversity)"] == "on (method)"
    assert "4 jobs (4 succeeded); 4 evaluated" in S.status_markdown(fake_view())
    assert len(S.jobs_frame(fake_view())) == 4


def test_plot_and_exports(tmp_path):
    figure = S.sweep_plot(fake_view())
    assert len(figure.axes) == 2
    labels = [line.get_label() for line in figure.axes[0].get_lines()]
    assert "ADRPO frontier" in labels and "reference" in labels

    class Service:
        def sweep_points_csv(self, sweep_id):
            return "a,b\n1,2\n"

    csv_path, json_path = S.export_files(Service(), fake_view())
    assert open(csv_path).read() == "a,b\n1,2\n" and '"points"' in open(json_path).read()
