"""Diffusion-DPO for flow-matching models (``algorithm: dpo``), inside the flow trainer.

The paper's offline text-to-image baseline. Preference pairs come from samples of the reference model
(adapter off) scored by the job's rewards: per prompt group the best and the worst sample, or every pair
whose reward difference exceeds ``flow.dpo_margin``. The pool is drawn once before training and stored in
the run directory (``dpo/pairs-000000.pt``), so a resumed run trains on the very same pairs; with
``flow.dpo_refresh_every = K`` a new pool is drawn from the current policy before steps ``K+1, 2K+1, ...``
(``dpo/pairs-00000K.pt``, ...).

Each step trains on ``prompts_per_step * group_size / 2`` pairs (as many samples as an online step's
update), drawn from a per-epoch permutation of the pool, with one shared ``(noise, t)`` draw per pair
for winner and loser (``flow.draws_per_step`` draws), on the loss ``objectives.dpo_flow_loss``. The
reference is the adapter-off network, as for every other algorithm.

By default a pool holds ``prompts_per_step`` groups for every step it serves: the prompts, and the number
of reward evaluations, of an online run of the same length.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .. import metrics as M
from .. import objectives as O
from ..models.flow_policy import cat_cond, repeat_cond
from .base import TrainingError, step_seed

# The trainer is a trainers.flow.FlowTrainer; typed loosely because flow.py imports this module.
FlowTrainer = Any

POOL_DIR = "dpo"
POOL_SEED_SALT = 0x2545F491  # pool rollouts use noise of their own, never the training draws' noise


@dataclass
class PairPool:
    """Winner and loser samples (latents, CPU float32), their prompts and rewards, and pool statistics."""

    drawn_at: int
    winners: Tensor
    losers: Tensor
    prompts: list[str]
    winner_rewards: Tensor
    loser_rewards: Tensor
    stats: dict[str, float]  # mean reward / diversity of all samples drawn for the pool

    def __len__(self) -> int:
        return self.winners.shape[0]

    def to_dict(self) -> dict:
        return {
            "drawn_at": self.drawn_at, "winners": self.winners, "losers": self.losers, "prompts": self.prompts,
            "winner_rewards": self.winner_rewards, "loser_rewards": self.loser_rewards, "stats": self.stats,
        }


def pool_path(run_dir: Path, drawn_at: int) -> Path:
    return Path(run_dir) / POOL_DIR / f"pairs-{drawn_at:06d}.pt"


def save_pool(pool: PairPool, path: Path) -> None:
    """Written to a temporary name and renamed: a crash never leaves half a pool."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".tmp-{path.name}")
    torch.save(pool.to_dict(), staging)
    staging.replace(path)


def load_pool(path: Path) -> PairPool:
    return PairPool(**torch.load(path, map_location="cpu", weights_only=False))


def pool_start(step: int, refresh_every: int) -> int:
    """The step after which the pool serving ``step`` (1-based) was drawn: 0, K, 2K, ..."""
    return 0 if refresh_every <= 0 else ((step - 1) // refresh_every) * refresh_every


def pair_indices(pool_size: int, count: int, position: int, seed: int) -> list[int]:
    """Pairs for the ``position``-th step (0-based) served by a pool: consecutive slices of per-epoch
    permutations, a pure function of its arguments (so a resumed run draws the same batches)."""
    picked = []
    for slot in range(position * count, (position + 1) * count):
        epoch, index = divmod(slot, pool_size)
        order = torch.randperm(pool_size, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        picked.append(int(order[index]))
    return picked


class FlowDPO:
    """The DPO step of a :class:`FlowTrainer`: shares its policy, rewards, prompts, optimizer and draws."""

    def __init__(self, trainer: FlowTrainer) -> None:
        self.trainer = trainer
        self.pool: PairPool | None = None

    # ---------------------------------------------------------------- the pair pool

    def pool_for(self, step: int) -> PairPool:
        cfg = self.trainer.config
        start = pool_start(step, cfg.flow.dpo_refresh_every)
        if self.pool is not None and self.pool.drawn_at == start:
            return self.pool
        path = pool_path(self.trainer.run_dir, start)
        if path.is_file():
            self.pool = load_pool(path)
            self.trainer.log(f"DPO: {len(self.pool)} preference pairs loaded from {path}")
        elif start > 0 and step - 1 != start:
            # The policy has moved on since that pool was drawn: redrawing it now would not be the same pool.
            raise TrainingError(f"DPO pair pool {path} is missing; the run cannot resume with the same pairs")
        else:
            self.pool = self.draw_pool(start)
            save_pool(self.pool, path)
            source = "the reference" if start == 0 else f"the policy after step {start}"
            self.trainer.log(f"DPO: {len(self.pool)} preference pairs drawn from {source}, stored in {path}")
        return self.pool

    def pool_groups(self, start: int) -> int:
        cfg = self.trainer.config
        if cfg.flow.dpo_pool_groups is not None:
            return cfg.flow.dpo_pool_groups
        # A refreshed pool serves K steps whatever the run's length, so extending a run keeps its pools.
        return cfg.prompts_per_step * (cfg.flow.dpo_refresh_every or cfg.steps)

    def draw_pool(self, start: int) -> PairPool:
        """Rollouts for the pool (reference if ``start == 0``, else the current policy), scored, paired."""
        trainer, cfg = self.trainer, self.trainer.config
        flow, group = cfg.flow, cfg.group_size
        remaining = self.pool_groups(start)
        winners, losers, prompts, r_w, r_l = [], [], [], [], []
        all_rewards, diversity_parts = [], []
        batch_index = 0
        while remaining > 0:
            batch_index += 1
            rows = trainer.prompt_sampler.batch(start + batch_index, cfg.prompts_per_step)[:remaining]
            remaining -= len(rows)
            generator = torch.Generator().manual_seed(step_seed(cfg.seed, start + batch_index) ^ POOL_SEED_SALT)
            cond = repeat_cond(trainer.policy.encode_prompts([row.prompt for row in rows]), group)
            with trainer.policy.eval_mode():
                latents = trainer.policy.sample(cond, generator, flow.sample_steps, flow.rollout_guidance,
                                                adapter=start > 0)
                images = trainer.policy.decode(latents)
            rewards, _ = trainer.score(rows, images)
            all_rewards.append(rewards.flatten())
            diversity_parts.append(trainer.diversity(images, group))
            latents = latents.float().cpu().view(len(rows), group, *latents.shape[1:])
            for g, row in enumerate(rows):
                for w, l in O.preference_pairs(rewards[g], flow.dpo_pairs, flow.dpo_margin):
                    winners.append(latents[g, w])
                    losers.append(latents[g, l])
                    prompts.append(row.prompt)
                    r_w.append(float(rewards[g, w]))
                    r_l.append(float(rewards[g, l]))
        if not winners:
            raise TrainingError(
                f"DPO: no preference pairs: in every group the rewards differ by at most flow.dpo_margin "
                f"({flow.dpo_margin}); lower the margin or raise group_size"
            )
        rewards = torch.cat(all_rewards)
        stats = {name: sum(part[name] for part in diversity_parts) / len(diversity_parts)
                 for name in diversity_parts[0]}
        stats[M.REWARD_MEAN] = float(rewards.mean())
        stats[M.REWARD_STD] = float(rewards.std()) if rewards.numel() > 1 else 0.0
        return PairPool(start, torch.stack(winners), torch.stack(losers), prompts,
                        torch.tensor(r_w), torch.tensor(r_l), stats)

    # ---------------------------------------------------------------- one step

    def train_step(self, step: int) -> dict[str, float]:
        trainer, cfg = self.trainer, self.trainer.config
        started = time.perf_counter()
        pool = self.pool_for(step)
        count = max(1, cfg.prompts_per_step * cfg.group_size // 2)
        picked = pair_indices(len(pool), count, step - 1 - pool.drawn_at, step_seed(cfg.seed, pool.drawn_at))
        generator = torch.Generator().manual_seed(step_seed(cfg.seed, step))
        metrics = self.update(pool, picked, generator)
        r_w, r_l = pool.winner_rewards[picked], pool.loser_rewards[picked]
        both = torch.cat([r_w, r_l])
        metrics.update({name: value for name, value in pool.stats.items() if name.startswith(M.DIVERSITY)})
        metrics.update({
            # The step trains on stored pairs, not on fresh rollouts: reward/* describe those pairs (the
            # policy's own reward shows in the logged samples and in eval jobs).
            M.REWARD_MEAN: float(both.mean()),
            M.REWARD_STD: float(both.std()) if both.numel() > 1 else 0.0,
            # Winner and loser as a group of two with unscaled advantages: |A| = half the reward gap.
            M.ADVANTAGE_ABS_MEAN: float((r_w - r_l).abs().mean() / 2),
            M.DPO_WINNER_REWARD: float(r_w.mean()),
            M.DPO_LOSER_REWARD: float(r_l.mean()),
            M.DPO_PAIRS: float(len(pool)),
        })
        # DPO's temperature is its KL strength: the analogue of the other algorithms' beta.
        metrics.update(O.beta_stats(torch.full((len(picked),), cfg.flow.dpo_beta)))
        elapsed = time.perf_counter() - started
        metrics[M.LR] = trainer.current_lr()
        metrics[M.STEP_TIME] = elapsed
        metrics[M.SAMPLES_PER_S] = 2 * len(picked) / max(elapsed, 1e-9)
        return metrics

    def update(self, pool: PairPool, picked: list[int], generator: torch.Generator) -> dict[str, float]:
        """Shared ``(noise, t)`` per pair, the DPO loss micro-batched by ``grad_accum``, one optimizer step."""
        trainer, cfg = self.trainer, self.trainer.config
        policy, device = trainer.policy, trainer.device
        x_w = pool.winners[picked].to(device)
        x_l = pool.losers[picked].to(device)
        cond = policy.encode_prompts([pool.prompts[i] for i in picked])
        pairs = len(picked)
        chunks = min(cfg.grad_accum, pairs)
        bounds = [round(i * pairs / chunks) for i in range(chunks + 1)]
        draws = cfg.flow.draws_per_step
        totals = {"loss": 0.0, "fm": 0.0, "w2": 0.0, "margin": 0.0, "acc": 0.0}
        policy.train(True)
        for noise, t in trainer.training_draws(x_w, generator):
            for lo, hi in itertools.pairwise(bounds):
                part = slice(lo, hi)
                n = hi - lo
                noise_part = noise[part]
                x_t = torch.cat([O.interpolate(x_w[part], noise_part, t[part]),
                                 O.interpolate(x_l[part], noise_part, t[part])])
                u = torch.cat([O.velocity_target(x_w[part], noise_part), O.velocity_target(x_l[part], noise_part)])
                t_both = torch.cat([t[part], t[part]])
                part_cond = {key: value[part] for key, value in cond.items()}
                both_cond = cat_cond(part_cond, part_cond)
                with torch.no_grad():
                    v_ref = policy.velocity(x_t, t_both, both_cond, adapter=False)
                v = policy.velocity(x_t, t_both, both_cond, adapter=True)
                err = O.per_sample_mse(v, u)
                err_ref = O.per_sample_mse(v_ref, u)
                loss, margin = O.dpo_flow_loss(err[:n], err_ref[:n], err[n:], err_ref[n:], cfg.flow.dpo_beta)
                share = n / pairs / draws
                (loss * share).backward()
                totals["loss"] += loss.item() * share
                totals["fm"] += err.mean().item() * share
                totals["w2"] += O.per_sample_mse(v.detach(), v_ref).mean().item() * share
                totals["margin"] += margin.detach().mean().item() * share
                totals["acc"] += (margin.detach() > 0).float().mean().item() * share
        if not math.isfinite(totals["loss"]):
            raise TrainingError(f"DPO loss is {totals['loss']}; lower lr or flow.dpo_beta")
        grad_norm = trainer.optimizer_step()
        return {
            M.LOSS: totals["loss"], M.FM_LOSS: totals["fm"], M.W2: totals["w2"], M.GRAD_NORM: grad_norm,
            M.DPO_MARGIN: totals["margin"], M.DPO_ACCURACY: totals["acc"],
        }


def winner_margin(trainer: FlowTrainer, pool: PairPool, draws: int, seed: int) -> float:
    """Mean margin ``-((err_theta_w - err_ref_w) - (err_theta_l - err_ref_l))`` over the whole pool and
    ``draws`` fixed ``(noise, t)`` draws: 0 for the reference, positive once the policy prefers winners."""
    policy = trainer.policy
    winners, losers = pool.winners.to(policy.device), pool.losers.to(policy.device)
    generator = torch.Generator().manual_seed(seed)
    cond = policy.encode_prompts(pool.prompts)
    both_cond = cat_cond(cond, cond)
    total = 0.0
    with policy.eval_mode(), torch.no_grad():
        for _ in range(draws):
            noise = torch.randn(winners.shape, generator=generator).to(policy.device)
            t = torch.rand(len(pool), generator=generator).to(policy.device)
            x_t = torch.cat([O.interpolate(winners, noise, t), O.interpolate(losers, noise, t)])
            u = torch.cat([O.velocity_target(winners, noise), O.velocity_target(losers, noise)])
            t_both = torch.cat([t, t])
            err = O.per_sample_mse(policy.velocity(x_t, t_both, both_cond, adapter=True), u)
            err_ref = O.per_sample_mse(policy.velocity(x_t, t_both, both_cond, adapter=False), u)
            n = len(pool)
            total += float((-((err[:n] - err_ref[:n]) - (err[n:] - err_ref[n:]))).mean())
    return total / draws
