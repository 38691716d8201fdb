"""Online reward-weighted flow matching with a W2 penalty: ADRPO-FM and its baselines (docs/algorithm.md,
docs/flow.md).

One step, for ``P = prompts_per_step`` prompts and ``G = group_size`` samples each:

1. roll out ``P * G`` samples from the current policy (Euler ODE, ``flow.sample_steps`` steps,
   ``flow.rollout_guidance`` CFG, no gradients) and score their decoded images with the job's rewards;
2. group advantages per prompt (``adv_scale``), clipped to ``[a_min, a_max]``;
3. per-sample weights from ``objectives.flow_loss_weights`` (adrpo: ``(a, beta0 - a)``, fixed:
   ``(a, beta0)``, orw: ``(exp(tau r), alpha = beta0)``);
4. ``flow.draws_per_step`` fresh ``(noise, t)`` draws per sample (``t`` continuous, or K levels of the
   rollout's grid with ``flow.train_timesteps``; with ``flow.train_noise: rollout`` the noise is the one
   the sample was drawn from and only ``t`` is fresh): ``x_t = (1 - t) x + t noise``,
   ``u = noise - x``, loss ``objectives.regularized_fm_loss(v_theta, u, v_ref, w_fm, w_w2)`` with
   ``v_ref`` the adapter-off network; one AdamW step.

``algorithm: dpo`` replaces steps 1-3 by preference pairs from a stored pool (``flow_dpo.FlowDPO``).

Everything random in a step comes from generators seeded by ``step_seed(seed, step)``, so a resumed
run replays the steps of an uninterrupted one exactly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from .. import metrics as M
from .. import objectives as O
from ..checkpoints import step_name
from ..config import JobConfig
from ..data import PromptRow, PromptSampler, eval_prompts, load_prompts, repeat_columns
from ..images import images_to_pngs, save_grid
from ..models.flow_policy import Cond, FlowPolicy, repeat_cond, slice_cond
from ..models.registry import load_flow_policy
from ..progress import IMAGE_SAMPLE, Sample
from ..rewards import WeightedRewards
from ..sharding import ShardReport
from .base import BaseTrainer, TrainingError, group_generators, micro_batches
from .flow_dpo import FlowDPO

SAMPLES_DIR = "samples"
GRID_NAME = "before_after.png"
EVAL_PROMPTS = 2


# ----------------------------------------------------------------------------------------------
# Pieces shared by the trainer and the comparison

Generators = torch.Generator | list[torch.Generator]  # one for the batch, or one per prompt group
Draw = Callable[[torch.Generator, int], Tensor]  # (generator, rows) -> a tensor of that many rows


class Rollout(NamedTuple):
    latents: Tensor  # the samples, (B, *latent_shape)
    images: Tensor  # decoded, (B, C, H, W) in [0, 1]
    cond: Cond
    noise: Tensor  # the starting noise each sample was integrated from


def per_group(generator: Generators, draw: Draw, group: int, rows: int) -> Tensor:
    """``draw(generator, n)`` for ``rows`` rows: one call with a single generator, else one call of ``group``
    rows per generator, concatenated (group ``k`` owns rows ``k*group .. (k+1)*group - 1``)."""
    if isinstance(generator, torch.Generator):
        return draw(generator, rows)
    if len(generator) * group != rows:
        raise ValueError(f"{len(generator)} group generators for {rows} rows of groups of {group}")
    return torch.cat([draw(g, group) for g in generator])


def shared_within_groups(draw: Draw, group: int) -> Draw:
    """``draw`` of one row per group of ``group`` consecutive rows, repeated over the group's rows."""

    def shared(generator: torch.Generator, n: int) -> Tensor:
        return draw(generator, n // group).repeat_interleave(group, dim=0)

    return shared


def prepare_policy(config: JobConfig, device: torch.device, dtype: torch.dtype) -> FlowPolicy:
    policy = load_flow_policy(config, device, dtype)
    torch.manual_seed(config.seed)  # the adapter's init depends on the seed alone, not on what loading drew
    policy.add_lora(config.lora)
    if config.model.gradient_checkpointing:
        policy.enable_gradient_checkpointing()
    return policy


def generate_images(
    policy: FlowPolicy, config: JobConfig, prompt: str, seed: int, count: int, adapter: bool
) -> tuple[Tensor, Tensor]:
    """``count`` samples for one prompt from seed ``seed`` (same seed -> same starting noise for the
    reference and the fine-tuned model); returns ``(latents, images)``."""
    cond = repeat_cond(policy.encode_prompts([prompt]), count)
    generator = torch.Generator().manual_seed(seed)
    with policy.eval_mode():
        latents = policy.sample(cond, generator, config.flow.sample_steps, config.flow.guidance_scale, adapter=adapter)
        return latents, policy.decode(latents)


# ----------------------------------------------------------------------------------------------
# The trainer


class FlowTrainer(BaseTrainer):
    def build_policy(self) -> FlowPolicy:
        """The model named by the config, with a fresh LoRA adapter (benchmarks substitute their own)."""
        return prepare_policy(self.config, self.device, self.dtype)

    def shardable_module(self) -> torch.nn.Module:
        return self.policy.shardable_module()

    def shard_weights(self) -> ShardReport | None:
        report = super().shard_weights()
        self.policy.weights_sharded = report is not None
        return report

    def setup(self) -> None:
        from ..rewards.image import build_diversity

        cfg = self.config
        self.policy = self.build_policy()
        self.rewards = WeightedRewards(cfg.rewards, "image")
        self.diversity = build_diversity(cfg.model.name_or_path, cfg.rewards)
        self.rows = load_prompts(cfg.prompts)
        self.prompt_sampler = PromptSampler(self.rows, cfg.seed)
        self.eval_rows = eval_prompts(cfg.prompts, self.rows, count=EVAL_PROMPTS)
        for row in self.rows[:64] + self.eval_rows:  # fail on a bad prompt now, not at step 37
            self.policy.encode_prompts([row.prompt])
        self.init_optimizer(self.policy.trainable_parameters())
        self.dpo = FlowDPO(self) if cfg.algorithm == "dpo" else None

    # ---------------------------------------------------------------- one step

    def rollout(self, rows: list[PromptRow], generator: Generators) -> Rollout:
        """``P * G`` samples from the current policy (no grad): latents, images, conditioning, starting noise.
        With one generator per prompt group, each group's starting noise comes from its own generator."""
        group = self.config.group_size
        cond = repeat_cond(self.policy.encode_prompts([row.prompt for row in rows]), group)
        flow = self.config.flow
        shape = self.policy.latent_shape()
        noise = per_group(
            generator, lambda g, n: torch.randn((n, *shape), generator=g, dtype=torch.float32), group, len(rows) * group
        )
        first = generator[0] if isinstance(generator, list) else generator
        with self.policy.eval_mode():
            latents = self.policy.sample(
                cond, first, flow.sample_steps, flow.rollout_guidance, adapter=True, noise=noise
            )
            images = self.policy.decode(latents)
        return Rollout(latents, images, cond, noise.to(latents.device, latents.dtype))

    def score(self, rows: list[PromptRow], images: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        group = self.config.group_size
        prompts = [row.prompt for row in rows for _ in range(group)]
        total, parts = self.rewards(images, prompts, **repeat_columns(rows, group))
        if not torch.isfinite(total).all():
            raise TrainingError("a reward returned a non-finite value (NaN or inf); check the reward function")
        return total.view(len(rows), group), parts

    def loss_weights(self, rewards: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Advantages ``A`` (P, G) and the per-sample weights ``(w_fm, w_w2)`` of the loss (flat)."""
        cfg = self.config
        advantages = O.group_advantages(rewards, cfg.adv_scale)
        clipped = O.clip_advantages(advantages, cfg.clip_low, cfg.clip_high)
        w_fm, w_w2 = O.flow_loss_weights(
            cfg.algorithm, clipped, cfg.beta0, rewards=rewards, tau=cfg.flow.orw_tau, normalize=cfg.flow.orw_normalize
        )
        return advantages, w_fm.to(self.device), w_w2.to(self.device)

    def fm_update(
        self,
        latents: Tensor,
        cond: Cond,
        w_fm: Tensor,
        w_w2: Tensor,
        generator: Generators,
        start_noise: Tensor | None = None,
    ) -> dict[str, float]:
        """Fresh ``(noise, t)`` draws (or the samples' ``start_noise`` with fresh ``t``), the regularized FM loss,
        backward (micro-batched), one optimizer step. With several processes each rank's loss is its share of the
        whole batch's mean (the ranks' sum)."""
        cfg = self.config
        batch = latents.shape[0]
        whole = batch * self.dist.world_size
        totals = {"loss": 0.0, "fm": 0.0, "w2": 0.0}
        draws = cfg.flow.draws_per_step
        self.policy.train(True)
        for noise, t in self.training_draws(latents, generator, shared=cfg.flow.shared_noise, noise=start_noise):
            for part in micro_batches(batch, cfg.grad_accum):
                x_data, eps, t_part = latents[part], noise[part], t[part]
                x_t = O.interpolate(x_data, eps, t_part)
                u = O.velocity_target(x_data, eps)
                part_cond = slice_cond(cond, part)
                with torch.no_grad():
                    v_ref = self.policy.velocity(x_t, t_part, part_cond, adapter=False)
                v = self.policy.velocity(x_t, t_part, part_cond, adapter=True)
                loss, fm_term, w2 = O.regularized_fm_loss(v, u, v_ref, w_fm[part], w_w2[part])
                share = (part.stop - part.start) / whole / draws  # chunk means -> the mean over batch and draws
                (loss * share).backward()
                totals["loss"] += loss.item() * share
                totals["fm"] += fm_term.item() * share
                totals["w2"] += w2.mean().item() * share
        grad_norm = self.optimizer_step()
        totals = self.dist.sum(totals)
        return {M.LOSS: totals["loss"], M.FM_LOSS: totals["fm"], M.W2: totals["w2"], M.GRAD_NORM: grad_norm}

    def training_draws(
        self, latents: Tensor, generator: Generators, shared: bool = False, noise: Tensor | None = None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """The ``(noise, t)`` draws of one update, ``flow.draws_per_step`` of them, each for every sample
        (with one generator per prompt group, each group's from its own); ``shared``: one draw per prompt
        group, the same for all its samples (``flow.shared_noise``); ``noise`` given: every draw uses it and
        only ``t`` is drawn (``flow.train_noise: rollout``).

        Without ``flow.train_timesteps``: ``t`` from ``flow.t_sampling`` (uniform or logit-normal) per draw;
        with K: K distinct levels of the rollout's time grid per sample (``objectives.grid_times``)."""
        flow = self.config.flow
        batch = latents.shape[0]
        group = self.config.group_size
        sample_shape = latents.shape[1:]

        def rows(draw: Draw) -> Tensor:
            return per_group(generator, shared_within_groups(draw, group) if shared else draw, group, batch)

        levels = None
        if flow.train_timesteps is not None:
            grid, count = self.policy.time_grid(flow.sample_steps), flow.train_timesteps
            levels = rows(lambda g, n: O.grid_times(n, grid, count, g).T).T  # (K, batch)
        for draw in range(flow.draws_per_step):
            fresh = rows(lambda g, n: torch.randn((n, *sample_shape), generator=g)).to(self.device, latents.dtype)
            if levels is None:
                t = rows(lambda g, n: O.sample_times(n, flow.t_sampling, flow.logit_mean, flow.logit_std, generator=g))
            else:
                t = levels[draw]
            # The fresh noise is drawn even when unused, so both choices consume the generators alike.
            yield (fresh if noise is None else noise), t.to(self.device)  # t stays float32, as in the sampler

    def train_step(self, step: int) -> dict[str, float]:
        if self.dpo is not None:
            return self.dpo.train_step(step)
        cfg = self.config
        started = time.perf_counter()
        batch = self.prompt_sampler.batch(step, cfg.prompts_per_step)
        mine = self.dist.shard(len(batch))  # this process's whole prompt groups (all of them in one process)
        rows = batch[mine]
        # One generator per prompt group: a group's noise and times are the same on any rank, in any batch.
        generators = group_generators(cfg.seed, step, range(mine.start, mine.stop))
        rollout = self.rollout(rows, generators)
        latents, images, cond = rollout.latents, rollout.images, rollout.cond
        own_rewards, parts = self.score(rows, images)
        rewards = self.dist.gather(own_rewards)  # (P, G): the whole batch's, for advantages, ORW weights, metrics
        advantages, all_w_fm, all_w_w2 = self.loss_weights(rewards)
        own = slice(mine.start * cfg.group_size, mine.stop * cfg.group_size)
        w_fm, w_w2 = all_w_fm[own], all_w_w2[own]
        metrics = O.reward_stats(rewards, advantages)
        metrics.update(O.beta_stats(all_w_w2))
        all_images = self.dist.gather(images)
        if self.dist.is_main:  # only rank 0 reports
            metrics.update(self.diversity(all_images, cfg.group_size))
        own_means = {f"{M.REWARD_PREFIX}{key}": value for key, value in self.rewards.breakdown.items()}
        if len(parts) > 1:
            own_means.update({label: float(values.mean()) for label, values in parts.items()})
        metrics.update(self.dist.mean(own_means))  # batch means over equal shares: the whole batch's
        start_noise = rollout.noise if cfg.flow.train_noise == "rollout" else None
        metrics.update(self.fm_update(latents, cond, w_fm, w_w2, generators, start_noise))
        elapsed = time.perf_counter() - started
        metrics[M.LR] = self.current_lr()
        metrics[M.STEP_TIME] = elapsed
        metrics[M.SAMPLES_PER_S] = rewards.numel() / max(elapsed, 1e-9)
        return metrics

    # ---------------------------------------------------------------- adapters

    def save_adapter(self, directory: Path) -> None:
        self.policy.save_adapter(directory)

    def load_adapter(self, directory: Path) -> None:
        self.policy.load_adapter(directory)

    # ---------------------------------------------------------------- samples

    def log_samples(self, step: int) -> list[Sample]:
        """Step 0: the reference (adapter off); later steps: the policy. Same seeds at every step, so rows
        of the studio's sample view line up. The last step also writes the before/after grid."""
        cfg = self.config
        role = "reference" if step == 0 else "policy"
        folder = self.run_dir / SAMPLES_DIR / step_name(step)
        folder.mkdir(parents=True, exist_ok=True)
        samples: list[Sample] = []
        for index, row in enumerate(self.eval_rows):
            seed = cfg.seed + index
            _, images = generate_images(self.policy, cfg, row.prompt, seed, self.policy.eval_samples, adapter=step > 0)
            rewards, _ = self.rewards(images, [row.prompt] * len(images), **repeat_columns([row], len(images)))
            paths = [folder / f"p{index}-{k}.png" for k in range(len(images))]
            images_to_pngs(images, paths)
            notes = self.policy.describe_images(images) or [None] * len(paths)
            for k, (path, reward, note) in enumerate(zip(paths, rewards.tolist(), notes)):
                samples.append(
                    Sample(
                        step=step,
                        prompt=row.prompt,
                        seed=seed,
                        kind=IMAGE_SAMPLE,
                        role=role,
                        text=note,
                        image_path=str(path.relative_to(self.run_dir)),
                        reward=reward,
                        extra={"index": k},
                    )
                )
        if step == cfg.steps:
            self._write_before_after()
        return samples

    def _write_before_after(self) -> None:
        """Reference vs fine-tuned on the first eval prompt, same seed, one PNG; log its path and the
        eval reward and diversity before and after."""
        cfg = self.config
        prompt = self.eval_rows[0].prompt
        _, before = generate_images(self.policy, cfg, prompt, cfg.seed, self.policy.eval_samples, adapter=False)
        _, after = generate_images(self.policy, cfg, prompt, cfg.seed, self.policy.eval_samples, adapter=True)
        path = save_grid([before, after], self.run_dir / SAMPLES_DIR / GRID_NAME)
        reward_before = self._eval_summary(before, prompt)
        reward_after = self._eval_summary(after, prompt)
        self.log(
            f"eval on {prompt!r} ({self.policy.eval_samples} samples, seed {cfg.seed}): "
            f"reward {reward_before[0]:.3f} -> {reward_after[0]:.3f}, "
            f"diversity {reward_before[1]:.3f} -> {reward_after[1]:.3f}"
        )
        self.log(f"before/after grid (top: reference, bottom: fine-tuned): {path}")

    def _eval_summary(self, images: Tensor, prompt: str) -> tuple[float, float]:
        rewards, _ = self.rewards(images, [prompt] * len(images))
        return float(rewards.mean()), self.diversity(images, images.shape[0])["diversity"]
