"""Phases: what a run reports before its first step (loading, building a built-in model, evaluating)."""

from __future__ import annotations

from adrpo_engine import progress
from adrpo_engine.models.digits_pretrain import train_flow_net
from adrpo_engine.progress import BUILDING, EVALUATING, LOADING, TRAINING, Phase, RecordingSink, StepReporter


def test_report_phase_is_silent_outside_a_run_and_routed_inside_one():
    progress.report_phase(Phase(BUILDING, "nobody listens"))  # no error, no effect
    seen: list[Phase] = []
    with progress.reporting_phases(seen.append):
        progress.report_phase(Phase(LOADING, "m"))
    progress.report_phase(Phase(TRAINING))
    assert seen == [Phase(LOADING, "m")]


def test_step_reporter_throttles_but_always_reports_the_last_step():
    seen: list[Phase] = []
    reporter = StepReporter(BUILDING, "model x: pre-training", total=1000, interval_s=3600)
    with progress.reporting_phases(seen.append):
        for done in range(1, 1001):
            reporter(done)
    assert [(p.done, p.total) for p in seen] == [(1, 1000), (1000, 1000)]
    assert seen[-1].describe() == "building model · model x: pre-training step 1000/1000"


def test_a_built_in_model_build_reports_its_steps():
    seen: list[Phase] = []
    with progress.reporting_phases(seen.append):
        train_flow_net(steps=3)
    assert seen and all(p.name == BUILDING and p.total == 3 for p in seen)
    assert seen[-1].done == 3 and "builtin:digits-flow" in seen[-1].detail


def test_a_run_reports_loading_evaluating_then_training(tmp_path):
    from adrpo_engine.config import validate_config
    from adrpo_engine.presets import get_preset
    from adrpo_engine.runner import train

    config = validate_config(
        {
            **get_preset("digits-even").config,
            "steps": 2,
            "sample_every": 2,
            "checkpoint_every": 2,
            "group_size": 4,
            "prompts_per_step": 2,
        }
    )
    sink = RecordingSink()
    train(config, tmp_path / "run", sink)
    names = [phase.name for phase in sink.phases]
    assert names[0] == LOADING and names[-1] == TRAINING
    assert names.index(EVALUATING) < names.index(TRAINING)
