"""Curves and the Pareto view from metric points (pure functions, no server)."""

import pytest

from adrpo_engine import metrics as M
from app.ui import plots


def test_merge_points_appends_and_replaces_a_repeated_step():
    known = plots.merge_points({}, {M.REWARD_MEAN: [(1, 0.1), (2, 0.2)]})
    merged = plots.merge_points(known, {M.REWARD_MEAN: [(2, 0.25), (3, 0.3)], M.W2: [(3, 0.01)]})
    assert merged[M.REWARD_MEAN] == [(1, 0.1), (2, 0.25), (3, 0.3)]
    assert plots.last_step(merged) == 3 and plots.last_step({}) == 0


def test_ema_is_bias_corrected_and_zero_weight_is_identity():
    assert plots.ema([1.0, 3.0], 0.0) == [1.0, 3.0]
    smoothed = plots.ema([1.0, 3.0], 0.5)
    assert smoothed[0] == pytest.approx(1.0)  # bias correction: the first value is not pulled to 0
    assert smoothed[1] == pytest.approx((0.5 * 0.5 * 1.0 + 0.5 * 3.0) / 0.75)
    with pytest.raises(ValueError, match="smoothing weight"):
        plots.ema([1.0], 1.0)


def test_panels_use_w2_for_flows_and_kl_for_llms():
    flow = {p.key: p for p in plots.panels_for("flow")}
    llm = {p.key: p for p in plots.panels_for("llm")}
    assert flow["divergence"].metrics == (M.W2,) and llm["divergence"].metrics == (M.KL,)
    assert flow["beta"].metrics == (M.BETA_MEAN, M.BETA_MIN, M.BETA_MAX)
    assert M.ENTROPY in llm["spread"].metrics and flow["spread"].metrics == (M.DIVERSITY,)


def test_panel_frame_adds_a_smoothed_series_and_drops_non_finite_points():
    points = {M.LOSS: [(1, 2.0), (2, float("nan")), (3, 1.0)]}
    loss = next(p for p in plots.panels_for("flow") if p.key == "loss")
    frame = plots.panel_frame(points, loss, smoothing=0.5)
    assert set(frame["series"]) == {"loss", "loss (EMA)"}
    assert list(frame[frame["series"] == "loss"]["step"]) == [1, 3]
    assert plots.panel_frame(points, loss, smoothing=0.0)["series"].unique().tolist() == ["loss"]


def test_overlay_frame_has_one_series_per_run():
    runs = {"a": {M.REWARD_MEAN: [(1, 0.1), (2, 0.2)]}, "b": {M.REWARD_MEAN: [(1, 0.3)]}, "empty": {}}
    frame = plots.overlay_frame(runs, M.REWARD_MEAN)
    assert sorted(frame["series"].unique()) == ["a", "b"] and len(frame) == 3
    assert sorted(plots.overlay_frame(runs, M.REWARD_MEAN, smoothing=0.5)["series"].unique()) == ["a", "b"]
    assert plots.overlay_frame({}, M.REWARD_MEAN).empty


def test_trajectory_pairs_steps_in_order_and_picks_the_logged_divergence():
    points = {M.REWARD_MEAN: [(1, 0.5), (2, 0.6), (3, 0.7)], M.DIVERSITY: [(1, 2.0), (3, 1.5)], M.W2: [(2, 0.1)]}
    assert plots.trajectory(points, M.DIVERSITY) == [(1, 2.0, 0.5), (3, 1.5, 0.7)]
    assert plots.divergence_metric(points) == M.W2
    assert plots.divergence_metric({M.KL: [(1, 0.2)]}) == M.KL


def test_pareto_figure_draws_one_path_per_run_from_start_to_end():
    runs = {
        "adrpo": {M.REWARD_MEAN: [(1, 0.4), (2, 0.6)], M.DIVERSITY: [(1, 1.0), (2, 0.9)], M.W2: [(1, 0.0), (2, 0.1)]},
        "fixed": {M.REWARD_MEAN: [(1, 0.4), (2, 0.5)], M.DIVERSITY: [(1, 1.0), (2, 0.5)], M.W2: [(1, 0.0), (2, 0.2)]},
    }
    figure = plots.pareto_figure(runs, "diversity")
    paths = [trace for trace in figure.data if trace.mode == "lines"]
    assert [list(trace.x) for trace in paths] == [[1.0, 0.9], [1.0, 0.5]]
    assert [trace.name for trace in paths] == ["adrpo", "fixed"]
    markers = [trace for trace in figure.data if trace.mode == "markers"]
    assert [list(trace.marker.symbol) for trace in markers] == [["circle", "circle-open"]] * 2  # no status known
    assert [list(trace.x) for trace in markers] == [[1.0, 0.9], [1.0, 0.5]]  # on the path's first and last point
    divergence = plots.pareto_figure(runs, "divergence")
    assert list(divergence.data[0].x) == [0.0, 0.1]
    empty = plots.pareto_figure({}, "diversity")
    assert "pick jobs" in empty.layout.annotations[-1].text


def test_runs_of_different_kinds_get_one_divergence_panel_each():
    runs = {
        "lm": {M.REWARD_MEAN: [(1, 0.2), (2, 0.3)], M.KL: [(1, 0.0), (2, 0.05)]},
        "digits": {M.REWARD_MEAN: [(1, 0.5), (2, 0.7)], M.W2: [(1, 0.0), (2, 0.4)]},
    }
    figure = plots.pareto_figure(runs, "divergence")
    titles = [annotation.text for annotation in figure.layout.annotations]
    assert titles == ["reward vs kl", "reward vs w2"]
    lines = {trace.name: trace.xaxis for trace in figure.data if trace.mode == "lines"}
    assert lines == {"lm": "x", "digits": "x2"}  # never on one axis
    assert figure.layout.xaxis.title.text == M.KL and figure.layout.xaxis2.title.text == M.W2


def test_metric_names_lists_plotted_metrics_first():
    names = plots.metric_names([{M.GRAD_NORM: [(1, 1.0)], M.REWARD_MEAN: [(1, 0.1)], M.KL: []}])
    assert names == [M.REWARD_MEAN, M.GRAD_NORM]


def test_frames_are_numeric_even_when_empty():
    # An untyped empty frame makes the browser chart's x axis categorical for good.
    empty = plots.panel_frame({}, plots.panels_for("flow")[0])
    assert str(empty["step"].dtype) == "int64" and str(empty["value"].dtype) == "float64"
    assert str(plots.overlay_frame({}, M.REWARD_MEAN)["step"].dtype) == "int64"


def test_curve_figure_draws_a_line_per_series_with_the_ema_on_top():
    reward = plots.panels_for("flow")[0]
    frame = plots.panel_frame({M.REWARD_MEAN: [(1, 0.1), (2, 0.3), (3, 0.2)]}, reward, smoothing=0.5)
    figure = plots.curve_figure(frame, reward.title)
    lines = {trace.name: trace for trace in figure.data}
    assert set(lines) == {"reward/mean", "reward/mean (EMA)"}
    assert list(lines["reward/mean"].x) == [1, 2, 3]
    assert lines["reward/mean (EMA)"].line.width > lines["reward/mean"].line.width
    assert "%{y" in lines["reward/mean"].hovertemplate  # hover shows the value
    assert figure.layout.uirevision == reward.title  # zoom and legend toggles survive a redraw
    empty = plots.curve_figure(plots.typed_frame([]), "Loss")
    assert empty.layout.title.text == "Loss" and empty.layout.annotations[0].text == "no points yet"


def test_a_constant_series_gets_a_readable_range_not_magnified_float_noise():
    beta = [0.10000000149011612, 0.10000000149011612 + 6e-9, 0.10000000149011612 - 2e-9]
    axis = plots.value_axis(beta)
    low, high = axis["range"]
    assert low < 0.095 and high > 0.105  # the ticks span +-10%, e.g. 0.09 ... 0.11
    assert axis["tickformat"] == ".4~g"
    assert "range" not in plots.value_axis([0.1, 0.2, 0.35])  # a varying series keeps the automatic range
    assert plots.value_axis([0.0, 0.0])["range"] == [-1.0, 1.0]


def test_the_reward_panel_draws_each_rewards_own_curve_without_smoothing_it():
    points = {
        M.REWARD_MEAN: [(1, 0.2), (2, 0.4)],
        M.REWARD_STD: [(1, 0.1), (2, 0.1)],
        "reward/length": [(1, 0.5), (2, 0.6)],
        "reward/reward_model": [(1, -0.1), (2, 0.3)],
        M.KL: [(1, 0.0), (2, 0.01)],
    }
    reward, divergence = plots.panels_for("llm")[:2]
    assert plots.panel_metrics(points, reward) == (M.REWARD_MEAN, "reward/length", "reward/reward_model")
    assert plots.panel_metrics(points, divergence) == (M.KL,)
    frame = plots.panel_frame(points, reward, smoothing=0.5)
    assert set(frame["series"]) == {M.REWARD_MEAN, f"{M.REWARD_MEAN} (EMA)", "reward/length", "reward/reward_model"}


STATES = {
    "done": plots.RunState("succeeded", 8),
    "broke": plots.RunState("failed", 8),
    "stopped": plots.RunState("cancelled", 8),
    "going": plots.RunState("running", 8),
}


def four_runs() -> dict[str, plots.Points]:
    """One run per job status, of different lengths (a failed or cancelled run stops early)."""
    lengths = {"done": 8, "broke": 3, "stopped": 5, "going": 6}
    return {
        label: {
            M.REWARD_MEAN: [(s, 0.1 * s + i) for s in range(1, n + 1)],
            M.DIVERSITY: [(s, 2.0 - 0.1 * s) for s in range(1, n + 1)],
            M.KL: [(s, 0.01 * s) for s in range(1, n + 1)],
        }
        for i, (label, n) in enumerate(lengths.items())
    }


def marks_by_run(figure) -> dict[str, tuple[list, list, list]]:
    """(symbols, hover texts, x) of each run's marker trace."""
    return {
        trace.name: (list(trace.marker.symbol), list(trace.text), list(trace.x))
        for trace in figure.data
        if trace.mode == "markers"
    }


def test_end_mark_says_how_the_job_ended_and_where():
    assert plots.end_mark(plots.RunState("succeeded", 8), 8) == ("star", "end (succeeded) at step 8 of 8")
    assert plots.end_mark(plots.RunState("failed", 8), 3) == ("x", "end (failed) at step 3 of 8")
    assert plots.end_mark(plots.RunState("cancelled", 8), 5) == ("square", "end (cancelled) at step 5 of 8")
    assert plots.end_mark(plots.RunState("running", 8), 6) == ("circle-open", "last point (running) at step 6 of 8")
    assert plots.end_mark(plots.RunState("queued"), 2) == ("circle-open", "last point (queued) at step 2")
    assert plots.end_mark(None, 4) == ("circle-open", "last point at step 4")


def test_overlay_figure_marks_each_runs_start_and_status_at_its_last_point():
    figure = plots.overlay_figure(four_runs(), M.REWARD_MEAN, states=STATES)
    lines = {trace.name: trace for trace in figure.data if trace.mode == "lines"}
    assert list(lines) == ["done", "broke", "stopped", "going"]
    assert list(lines["broke"].x) == [1, 2, 3]
    marks = marks_by_run(figure)
    assert marks["done"] == (["circle", "star"], ["start at step 1", "end (succeeded) at step 8 of 8"], [1, 8])
    assert marks["broke"] == (["circle", "x"], ["start at step 1", "end (failed) at step 3 of 8"], [1, 3])
    assert marks["stopped"] == (["circle", "square"], ["start at step 1", "end (cancelled) at step 5 of 8"], [1, 5])
    going = (["circle", "circle-open"], ["start at step 1", "last point (running) at step 6 of 8"], [1, 6])
    assert marks["going"] == going
    for trace in figure.data:
        if trace.mode == "markers":
            assert "%{text}" in trace.hovertemplate and not trace.showlegend  # one legend entry per run
            assert trace.legendgroup == trace.name == lines[trace.name].legendgroup  # toggled with its line
            assert trace.marker.color == lines[trace.name].line.color
    empty = plots.overlay_figure({}, M.REWARD_MEAN)
    assert not empty.data and empty.layout.annotations[0].text == "no points yet"


def test_overlay_figure_smooths_the_lines_and_puts_the_marks_on_the_smoothed_line():
    runs = {"done": {M.REWARD_MEAN: [(1, 0.0), (2, 1.0), (3, 0.0), (4, 1.0)]}}
    figure = plots.overlay_figure(runs, M.REWARD_MEAN, smoothing=0.5, states=STATES)
    line = next(trace for trace in figure.data if trace.mode == "lines")
    smoothed = plots.ema([0.0, 1.0, 0.0, 1.0], 0.5)
    assert list(line.y) == pytest.approx(smoothed)  # only the EMA is drawn, not the raw points
    marks = next(trace for trace in figure.data if trace.mode == "markers")
    assert list(marks.y) == pytest.approx([smoothed[0], smoothed[-1]])


def test_pareto_views_share_the_overlays_colours_and_marks():
    runs = four_runs()
    overlay = plots.overlay_figure(runs, M.REWARD_MEAN, states=STATES)
    colours = {trace.name: trace.line.color for trace in overlay.data if trace.mode == "lines"}
    assert len(set(colours.values())) == 4
    for x_axis in ("diversity", "divergence"):
        figure = plots.pareto_figure(runs, x_axis, states=STATES)
        assert {trace.name: trace.line.color for trace in figure.data if trace.mode == "lines"} == colours
        marks = marks_by_run(figure)
        assert {name: m[0] for name, m in marks.items()} == {
            "done": ["circle", "star"],
            "broke": ["circle", "x"],
            "stopped": ["circle", "square"],
            "going": ["circle", "circle-open"],
        }
        assert marks["broke"][1][1] == "end (failed) at step 3 of 8"
    diversity = marks_by_run(plots.pareto_figure(runs, "diversity", states=STATES))
    assert diversity["stopped"][2] == pytest.approx([1.9, 1.5])  # diversity at steps 1 and 5


def test_a_run_drawn_only_on_one_divergence_panel_keeps_its_colour():
    runs = {
        "lm": {M.REWARD_MEAN: [(1, 0.2), (2, 0.3)], M.KL: [(1, 0.0), (2, 0.05)]},
        "digits": {M.REWARD_MEAN: [(1, 0.5), (2, 0.7)], M.W2: [(1, 0.0), (2, 0.4)]},
    }
    colours = plots.run_colors(runs)
    figure = plots.pareto_figure(runs, "divergence")
    assert {t.name: t.line.color for t in figure.data if t.mode == "lines"} == colours
    assert {t.name: t.marker.color for t in figure.data if t.mode == "markers"} == colours
