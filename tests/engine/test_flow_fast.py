"""The fast flow recipes: CFG-free training rollouts and training on K of the rollout's noise levels."""

from __future__ import annotations

import pytest
import torch

from adrpo_engine import objectives as O
from adrpo_engine.config import ConfigError
from adrpo_engine.models.digits import DigitsPolicy
from adrpo_engine.models.flow_policy import repeat_cond
from adrpo_engine.presets import PRESETS, preset_config
from adrpo_engine.progress import RecordingSink
from adrpo_engine.trainers.flow import FlowTrainer


def digits_config(**overrides):
    base = {
        "steps": 1,
        "group_size": 4,
        "prompts_per_step": 2,
        "sample_every": 100,
        "checkpoint_every": 100,
        "flow.sample_steps": 4,
    }
    return preset_config("digits-even", {**base, **overrides})


def test_grid_times_pick_distinct_levels_of_the_rollout_grid():
    grid = torch.linspace(1.0, 0.0, 5)  # levels 1, .75, .5, .25 (0 is never a network input)
    times = O.grid_times(6, grid, 3, generator=torch.Generator().manual_seed(0))
    assert times.shape == (3, 6)
    levels = set(grid[:-1].tolist())
    for sample in times.T.tolist():
        assert len(set(sample)) == 3 and set(sample) <= levels
    every = O.grid_times(6, grid, 4, generator=torch.Generator().manual_seed(1))
    assert all(sorted(column) == sorted(levels) for column in every.T.tolist())  # K = steps: all of them
    with pytest.raises(ValueError, match="1..4"):
        O.grid_times(2, grid, 5)


def test_train_timesteps_validation():
    with pytest.raises(ConfigError, match="must be <= flow.sample_steps"):
        digits_config(**{"flow.train_timesteps": 5})
    with pytest.raises(ConfigError, match="flow.train_draws must be 1"):
        digits_config(**{"flow.train_timesteps": 2, "flow.train_draws": 2})
    assert digits_config(**{"flow.train_timesteps": 2}).flow.draws_per_step == 2
    assert digits_config(**{"flow.train_draws": 3}).flow.draws_per_step == 3


def test_text_to_image_presets_roll_out_without_cfg():
    for preset in PRESETS.values():
        flow = preset.config.get("flow", {})
        if preset.config["kind"] == "flow" and flow.get("guidance_scale", 1.0) != 1.0:
            assert flow.get("train_guidance_scale") == 1.0, preset.name


class SpyPolicy(DigitsPolicy):
    """The real digits policy, recording the guidance of each rollout and the t of each training call."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.guidances: list[float] = []
        self.train_times: list[torch.Tensor] = []

    def sample(self, cond, generator, steps, guidance=1.0, adapter=True, noise=None):
        self.guidances.append(guidance)
        return super().sample(cond, generator, steps, guidance, adapter, noise)

    def velocity(self, x_t, t, cond, adapter=True):
        if torch.is_grad_enabled() and not torch.is_inference_mode_enabled():
            self.train_times.append(t.detach().clone())
        return super().velocity(x_t, t, cond, adapter)


class SpyTrainer(FlowTrainer):
    def build_policy(self):
        policy = SpyPolicy(device=self.device, dtype=self.dtype)
        policy.add_lora(self.config.lora)
        return policy


@pytest.mark.parametrize("algorithm", ["adrpo", "dpo"])
def test_training_rollouts_use_their_own_guidance_and_grid_levels(tmp_path, algorithm):
    config = digits_config(
        algorithm=algorithm, **{"flow.guidance_scale": 3.0, "flow.train_guidance_scale": 1.0, "flow.train_timesteps": 2}
    )
    trainer = SpyTrainer(config, tmp_path, RecordingSink())
    trainer.setup()
    trainer.train_step(1)
    assert trainer.policy.guidances == [1.0]  # the training rollout (or DPO's pool), CFG-free
    # two levels per sample from the 4-step grid {1, .75, .5, .25}, one policy pass each
    assert len(trainer.policy.train_times) == 2
    grid = {1.0, 0.75, 0.5, 0.25}
    assert all(set(t.tolist()) <= grid for t in trainer.policy.train_times)
    first, second = trainer.policy.train_times
    half = first.numel() // 2 if algorithm == "dpo" else first.numel()
    assert bool((first[:half] != second[:half]).all())  # distinct levels for each sample
    trainer.log_samples(1)
    logged = trainer.policy.guidances[1:]
    assert logged and set(logged) == {3.0}  # logged samples and the before/after grid use flow.guidance_scale


@pytest.mark.parametrize("grid_levels", [None, 2])
def test_shared_noise_gives_a_groups_samples_one_draw_and_each_group_its_own(tmp_path, grid_levels):
    config = digits_config(**{"flow.shared_noise": True, "flow.train_timesteps": grid_levels})
    trainer = FlowTrainer(config, tmp_path, RecordingSink())
    trainer.setup()
    latents = torch.zeros(config.prompts_per_step * config.group_size, *trainer.policy.latent_shape())
    generators = [torch.Generator().manual_seed(k) for k in range(config.prompts_per_step)]
    draws = list(trainer.training_draws(latents, generators, shared=True))
    assert len(draws) == config.flow.draws_per_step
    for noise, t in draws:
        for tensor in (noise, t):
            groups = tensor.view(config.prompts_per_step, config.group_size, -1)
            assert torch.equal(groups, groups[:, :1].expand_as(groups))  # one draw within a group
            assert not torch.equal(groups[0, 0], groups[1, 0])  # another across groups
    independent = next(trainer.training_draws(latents, generators))[0].view(
        config.prompts_per_step, config.group_size, -1
    )
    assert not torch.equal(independent[:, 0], independent[:, 1])


def test_shared_noise_cancels_the_flow_matching_gradient_of_identical_samples_with_zero_sum_weights(tmp_path):
    # Identical samples with weights summing to 0 carry no signal: with one shared draw per group their weighted
    # flow-matching losses cancel exactly; with independent draws the gradient is pure noise.
    def gradient_norm(shared: bool) -> float:
        config = digits_config(**{"flow.shared_noise": shared})
        trainer = FlowTrainer(config, tmp_path / str(shared), RecordingSink())
        trainer.setup()
        batch = config.prompts_per_step * config.group_size
        prompt = trainer.prompt_sampler.batch(1, 1)[0].prompt
        cond = repeat_cond(trainer.policy.encode_prompts([prompt]), batch)
        latents = torch.randn(1, *trainer.policy.latent_shape()).expand(batch, *trainer.policy.latent_shape())
        w_fm = torch.tensor([1.0, -1.0]).repeat(batch // 2)
        generators = [torch.Generator().manual_seed(k) for k in range(config.prompts_per_step)]
        return trainer.fm_update(latents.contiguous(), cond, w_fm, torch.zeros(batch), generators)["grad_norm"]

    assert gradient_norm(shared=True) < 1e-6
    assert gradient_norm(shared=False) > 1e-3


def test_shared_noise_is_refused_for_dpo():
    with pytest.raises(ConfigError, match="flow.shared_noise"):
        digits_config(algorithm="dpo", **{"flow.shared_noise": True})


def test_rollout_noise_pairs_each_sample_with_the_noise_it_was_integrated_from(tmp_path):
    # One Euler step from t = 1: x = z - v(z, 1). Trained at that level on its own noise z, x_t = z and the
    # target z - x is exactly the velocity the sample was drawn with, so the untrained adapter's loss is 0.
    config = digits_config(**{"flow.train_noise": "rollout", "flow.sample_steps": 1, "flow.train_timesteps": 1})
    trainer = FlowTrainer(config, tmp_path, RecordingSink())
    trainer.setup()
    rows = trainer.prompt_sampler.batch(1, config.prompts_per_step)
    generators = [torch.Generator().manual_seed(k) for k in range(config.prompts_per_step)]
    rollout = trainer.rollout(rows, generators)
    (noise, t), *_ = trainer.training_draws(rollout.latents, generators, noise=rollout.noise)
    assert torch.equal(noise, rollout.noise) and bool((t == 1.0).all())
    with torch.no_grad():
        v = trainer.policy.velocity(O.interpolate(rollout.latents, noise, t), t, rollout.cond)
    target = O.velocity_target(rollout.latents, noise)
    assert torch.allclose(v, target, atol=1e-5)
    fresh, _ = next(trainer.training_draws(rollout.latents, generators))
    assert not torch.allclose(fresh, rollout.noise)
    assert trainer.train_step(1)["fm_loss"] < 1e-8


def test_rollout_noise_is_refused_with_shared_noise_and_for_dpo():
    with pytest.raises(ConfigError, match="flow.shared_noise needs flow.train_noise fresh"):
        digits_config(**{"flow.train_noise": "rollout", "flow.shared_noise": True})
    with pytest.raises(ConfigError, match="flow.train_noise rollout"):
        digits_config(algorithm="dpo", **{"flow.train_noise": "rollout"})
