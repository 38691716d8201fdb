"""Pareto frontiers on hand-made points: dominance, ties, minimised axes, per-method fronts, seeds."""

import pytest

from adrpo_engine import frontier as F

UP = {"r": "max", "d": "max"}
DIV = {"r": "max", "kl": "min"}


def test_dominance_needs_one_strict_improvement():
    assert F.dominates({"r": 2, "d": 2}, {"r": 1, "d": 2}, UP)
    assert not F.dominates({"r": 2, "d": 2}, {"r": 2, "d": 2}, UP)  # a tie dominates nothing
    assert not F.dominates({"r": 2, "d": 1}, {"r": 1, "d": 2}, UP)  # a trade-off
    assert F.dominates({"r": 1, "kl": 0.1}, {"r": 1, "kl": 0.2}, DIV)  # smaller divergence is better
    assert not F.dominates({"r": 1, "kl": 0.3}, {"r": 1, "kl": 0.2}, DIV)
    with pytest.raises(ValueError, match="max"):
        F.dominates({"r": 1}, {"r": 0}, {"r": "up"})


def test_frontier_keeps_ties_and_drops_dominated_points():
    points = [
        {"r": 1.0, "d": 3.0},  # 0: on (most diverse)
        {"r": 2.0, "d": 2.0},  # 1: on
        {"r": 2.0, "d": 2.0},  # 2: tie with 1: on as well
        {"r": 1.5, "d": 1.5},  # 3: dominated by 1 and 2
        {"r": 3.0, "d": 0.5},  # 4: on (highest reward)
        {"r": 3.0, "d": 0.2},  # 5: dominated by 4 only
        {"r": float("nan"), "d": 9.0},  # 6: unusable, never on
    ]
    assert F.frontier_indices(points, UP) == [0, 1, 2, 4]
    assert F.dominated_by(points, UP) == [[], [], [], [1, 2], [], [4], []]
    assert F.frontier_line(points, UP, "d", "r") == [(0.5, 3.0), (2.0, 2.0), (2.0, 2.0), (3.0, 1.0)]


def test_frontier_with_a_minimised_divergence():
    points = [{"r": 0.9, "kl": 0.5}, {"r": 0.8, "kl": 0.1}, {"r": 0.7, "kl": 0.3}, {"r": 0.5, "kl": 0.0}]
    assert F.frontier_indices(points, DIV) == [0, 1, 3]  # 2 is worse than 1 on both


def test_per_method_frontiers_are_computed_within_each_method():
    points = [
        {"method": "adrpo", "r": 2, "d": 2}, {"method": "adrpo", "r": 1, "d": 1},
        {"method": "fixed", "r": 3, "d": 3}, {"method": "fixed", "r": 1, "d": 4},
    ]
    fronts = F.per_method_frontiers(points, UP)
    assert fronts == {"adrpo": [0], "fixed": [2, 3]}
    assert F.frontier_indices(points, UP) == [2, 3]  # overall, fixed dominates adrpo's best point


def test_aggregate_means_and_sample_stds_over_seeds():
    rows = [
        {"algorithm": "adrpo", "beta0": 0.1, "seed": 0, "r": 1.0, "d": 2.0},
        {"algorithm": "adrpo", "beta0": 0.1, "seed": 1, "r": 3.0, "d": float("nan")},
        {"algorithm": "fixed", "beta0": 0.1, "seed": 0, "r": 5.0, "d": 1.0},
    ]
    groups = F.aggregate(rows, ["algorithm", "beta0"], ["r", "d"])
    assert [g.params for g in groups] == [{"algorithm": "adrpo", "beta0": 0.1}, {"algorithm": "fixed", "beta0": 0.1}]
    adrpo, fixed = groups
    assert adrpo.mean["r"] == 2.0 and adrpo.std["r"] == pytest.approx(2 ** 0.5) and adrpo.n["r"] == 2
    assert adrpo.mean["d"] == 2.0 and adrpo.n["d"] == 1 and adrpo.std["d"] == 0.0  # the NaN seed is left out
    assert fixed.members == [2] and fixed.std["r"] == 0.0
