"""Diffusion-DPO for flows (algorithm dpo): the loss by hand, pairs, and the trainer on the digits world."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

from adrpo_engine import metrics as M
from adrpo_engine import objectives as O
from adrpo_engine.config import ConfigError
from adrpo_engine.presets import preset_config
from adrpo_engine.progress import RecordingSink
from adrpo_engine.runner import train
from adrpo_engine.trainers import flow_dpo
from adrpo_engine.trainers.flow import FlowTrainer


def dpo_config(**overrides):
    base = {"algorithm": "dpo", "steps": 2, "group_size": 4, "prompts_per_step": 2, "sample_every": 100,
            "checkpoint_every": 100, "flow.sample_steps": 4}
    return preset_config("digits-even", {**base, **overrides})


# ---------------------------------------------------------------- the loss and the pairs


def test_dpo_loss_by_hand():
    err_w, ref_w = torch.tensor([1.0, 0.5]), torch.tensor([1.5, 0.5])
    err_l, ref_l = torch.tensor([2.0, 0.25]), torch.tensor([1.0, 0.5])
    loss, margin = O.dpo_flow_loss(err_w, ref_w, err_l, ref_l, beta_dpo=2.0)
    # pair 1: (1 - 1.5) - (2 - 1) = -1.5 -> margin 1.5; pair 2: (0.5 - 0.5) - (0.25 - 0.5) = 0.25 -> margin -0.25
    torch.testing.assert_close(margin, torch.tensor([1.5, -0.25]))
    expected = (math.log1p(math.exp(-3.0)) + math.log1p(math.exp(0.5))) / 2  # -log sigmoid(2 * margin)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_dpo_loss_on_velocities_by_hand():
    # err = per-sample mean squared velocity error, on one shared (noise, t): winner and loser rows
    u_w, u_l = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    v_w, v_l = torch.tensor([[1.0, 1.0]]), torch.tensor([[0.0, 0.0]])  # err 0.5, 2.0
    r_w, r_l = torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 1.0]])  # err 0.5, 0.5
    loss, margin = O.dpo_flow_loss(O.per_sample_mse(v_w, u_w), O.per_sample_mse(r_w, u_w),
                                   O.per_sample_mse(v_l, u_l), O.per_sample_mse(r_l, u_l), beta_dpo=0.5)
    # -((0.5 - 0.5) - (2.0 - 0.5)) = 1.5 ; loss = -log sigmoid(0.75)
    assert margin.item() == pytest.approx(1.5)
    assert loss.item() == pytest.approx(math.log1p(math.exp(-0.75)), rel=1e-6)


def test_identical_winner_and_loser_give_zero_gradient():
    torch.manual_seed(0)
    network = torch.nn.Linear(6, 6)
    x_t, u = torch.randn(3, 6), torch.randn(3, 6)
    with torch.no_grad():
        v_ref = network(x_t) + 0.3 * torch.randn(3, 6)  # a reference that differs from the policy
    err = O.per_sample_mse(network(x_t), u)
    err_ref = O.per_sample_mse(v_ref, u)
    loss, margin = O.dpo_flow_loss(err, err_ref, err, err_ref, beta_dpo=1000.0)
    loss.backward()
    assert margin.abs().max().item() == 0.0 and loss.item() == pytest.approx(math.log(2.0))
    assert all(p.grad.abs().max().item() == 0.0 for p in network.parameters())


def test_gradient_lowers_winner_error_and_raises_loser_error():
    err_w = torch.tensor([1.0], requires_grad=True)
    err_l = torch.tensor([1.0], requires_grad=True)
    loss, _ = O.dpo_flow_loss(err_w, torch.tensor([1.0]), err_l, torch.tensor([1.0]), beta_dpo=4.0)
    loss.backward()
    # d/d err_w of -log sigmoid(-4 (err_w - err_l)) at 0 = 4 * sigmoid(0) = 2; the loser's is -2
    assert err_w.grad.item() == pytest.approx(2.0) and err_l.grad.item() == pytest.approx(-2.0)


def test_preference_pairs():
    rewards = torch.tensor([0.2, 0.9, 0.1, 0.9])
    assert O.preference_pairs(rewards, "best_worst") == [(1, 2)]
    assert O.preference_pairs(rewards, "best_worst", margin=0.75) == [(1, 2)]
    assert O.preference_pairs(rewards, "best_worst", margin=0.85) == []
    assert O.preference_pairs(torch.ones(4), "best_worst") == []
    assert sorted(O.preference_pairs(rewards, "all", margin=0.5)) == [(1, 0), (1, 2), (3, 0), (3, 2)]
    assert len(O.preference_pairs(rewards, "all")) == 5  # ties (the two 0.9s) make no pair


def test_pair_batches_are_a_pure_function_and_cover_the_pool():
    first = [flow_dpo.pair_indices(10, 4, position, 7) for position in range(5)]
    again = [flow_dpo.pair_indices(10, 4, position, 7) for position in range(5)]
    assert first == again
    flat = [i for batch in first for i in batch]
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))
    assert flow_dpo.pool_start(1, 0) == 0 and flow_dpo.pool_start(99, 0) == 0
    assert [flow_dpo.pool_start(s, 3) for s in range(1, 8)] == [0, 0, 0, 3, 3, 3, 6]


# ---------------------------------------------------------------- config


def test_dpo_config_keys_validate():
    config = dpo_config(**{"flow.dpo_beta": 500, "flow.dpo_pairs": "all", "flow.dpo_margin": 0.5})
    assert config.algorithm == "dpo" and config.flow.dpo_beta == 500
    with pytest.raises(ConfigError, match="flow.dpo_beta"):
        dpo_config(**{"flow.dpo_beta": 0})
    with pytest.raises(ConfigError, match="flow.dpo_pairs"):
        dpo_config(**{"flow.dpo_pairs": "random"})
    with pytest.raises(ConfigError, match="flow.dpo_refresh_every"):
        dpo_config(**{"flow.dpo_refresh_every": -1})
    with pytest.raises(ConfigError, match="for kind 'flow' only"):
        preset_config("tiny-lm", {"algorithm": "dpo"})


# ---------------------------------------------------------------- the trainer on digits


def test_dpo_step_logs_flow_and_dpo_metrics_and_stores_the_pairs(tmp_path):
    sink = RecordingSink()
    result = train(dpo_config(steps=1), tmp_path, sink)
    metrics = sink.steps[1]
    assert set(M.DPO) <= set(metrics)
    assert all(math.isfinite(value) for value in metrics.values())
    assert metrics[M.BETA_MIN] == metrics[M.BETA_MAX] == 1000.0  # the DPO temperature
    assert metrics[M.DPO_WINNER_REWARD] > metrics[M.DPO_LOSER_REWARD]
    pool = flow_dpo.load_pool(flow_dpo.pool_path(tmp_path, 0))
    assert len(pool) == metrics[M.DPO_PAIRS] and len(pool) <= 2  # steps 1 x 2 prompts, best vs worst
    assert bool((pool.winner_rewards > pool.loser_rewards).all())
    assert result.checkpoint is not None and (result.checkpoint / "adapter_model.safetensors").is_file()
    assert any("preference pairs drawn from the reference" in line for line in sink.logs)


def test_a_few_dpo_steps_raise_the_winners_likelihood_margin(tmp_path):
    config = dpo_config(steps=8, group_size=8, prompts_per_step=4, lr=1e-3, **{"flow.dpo_beta": 200})
    trainer = FlowTrainer(config, tmp_path, RecordingSink())
    trainer.setup()
    pool = trainer.dpo.pool_for(1)
    before = flow_dpo.winner_margin(trainer, pool, draws=4, seed=3)
    assert before == pytest.approx(0.0, abs=1e-7)  # an untrained adapter is the reference
    for step in range(1, config.steps + 1):
        trainer.train_step(step)
    after = flow_dpo.winner_margin(trainer, pool, draws=4, seed=3)
    assert after > 1e-3, after


def test_resume_trains_on_the_stored_pairs(tmp_path, monkeypatch):
    straight = dpo_config(steps=6, checkpoint_every=3, **{"flow.dpo_refresh_every": 2})
    train(straight, tmp_path / "straight", RecordingSink())
    train(dpo_config(steps=3, checkpoint_every=3, **{"flow.dpo_refresh_every": 2}), tmp_path / "resumed",
          RecordingSink())
    # the stopped run stored the pools it used (drawn after steps 0 and 2)
    assert sorted(p.name for p in (tmp_path / "resumed" / "dpo").glob("pairs-*.pt")) == \
        ["pairs-000000.pt", "pairs-000002.pt"]
    stored = flow_dpo.load_pool(flow_dpo.pool_path(tmp_path / "resumed", 2))
    real_draw = flow_dpo.FlowDPO.draw_pool

    def draw_only_new_pools(self, start):
        assert start > 2, f"pool {start} was drawn again instead of loaded"
        return real_draw(self, start)

    monkeypatch.setattr(flow_dpo.FlowDPO, "draw_pool", draw_only_new_pools)
    sink = RecordingSink()
    train(straight, tmp_path / "resumed", sink)
    assert any("loaded from" in line and "pairs-000002" in line for line in sink.logs)
    assert torch.equal(flow_dpo.load_pool(flow_dpo.pool_path(tmp_path / "resumed", 2)).winners, stored.winners)
    a = load_file(tmp_path / "straight" / "checkpoints" / "step-000006" / "adapter_model.safetensors")
    b = load_file(tmp_path / "resumed" / "checkpoints" / "step-000006" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_missing_refreshed_pool_stops_the_resume(tmp_path):
    config = dpo_config(steps=3, checkpoint_every=3, **{"flow.dpo_refresh_every": 2})
    train(config, tmp_path, RecordingSink())
    flow_dpo.pool_path(tmp_path, 2).unlink()
    from adrpo_engine.trainers.base import TrainingError

    with pytest.raises(TrainingError, match="cannot resume with the same pairs"):
        train(dpo_config(steps=4, checkpoint_every=3, **{"flow.dpo_refresh_every": 2}), tmp_path, RecordingSink())


def test_no_pairs_is_a_readable_error(tmp_path):
    from adrpo_engine.trainers.base import TrainingError

    with pytest.raises(TrainingError, match="no preference pairs"):
        train(dpo_config(steps=1, **{"flow.dpo_margin": 5.0}), tmp_path, RecordingSink())


def test_dpo_step_on_the_tiny_sd3_pipeline(tmp_path):
    """The same DPO step on an SD3 pipeline: prompt-embedding conditioning, grid levels, CFG-free pools."""
    from adrpo_engine.config import validate_config

    config = validate_config({
        "kind": "flow", "algorithm": "dpo", "model": {"name_or_path": "builtin:tiny-sd3"},
        "rewards": [{"name": "clip_score", "options": {"model": "builtin:tiny-clip"}}],
        "prompts": {"texts": ["a red cat", "a blue dog"]}, "steps": 2, "group_size": 3, "prompts_per_step": 2,
        "lr": 1e-2, "sample_every": 100, "checkpoint_every": 100, "lora": {"rank": 4, "alpha": 8},
        "flow": {"sample_steps": 3, "guidance_scale": 2.0, "train_guidance_scale": 1.0, "train_timesteps": 2,
                 "dpo_beta": 50.0},
    })
    sink = RecordingSink()
    train(config, tmp_path, sink)
    metrics = sink.steps[2]
    assert set(M.DPO) <= set(metrics) and all(math.isfinite(value) for value in metrics.values())
    assert metrics[M.W2] > 0  # the first update moved the policy away from the reference
    pool = flow_dpo.load_pool(flow_dpo.pool_path(tmp_path, 0))
    assert pool.winners.shape[1:] == (4, 16, 16) and set(pool.prompts) <= {"a red cat", "a blue dog"}
