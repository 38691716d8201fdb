"""The maths of ADRPO and its fixed-beta baselines, as pure tensor functions (docs/algorithm.md).

Notation: rewards come as a ``(num_groups, group_size)`` tensor, one row per prompt. ``A`` is the
normalised advantage, ``a = clip(A, a_min, a_max)`` the clipped one and ``beta_i = beta0 - a_i`` the
adaptive coefficient (``beta0`` for the fixed baseline).

Time convention of the flow objectives (the one diffusers' SD3 uses): ``t`` is the noise level,
``t = 0`` is data and ``t = 1`` is pure noise; ``x_t = (1 - t) * x_data + t * noise`` and the target
velocity is ``u = noise - x_data``. Sampling integrates ``dx/dt = v`` from ``t = 1`` down to ``t = 0``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import metrics as M

ADV_EPS = 1e-4


# ----------------------------------------------------------------------------------------------
# Advantages and the adaptive coefficient (shared by both flavours)


def group_advantages(rewards: Tensor, scale: str = "group", eps: float = ADV_EPS) -> Tensor:
    """``A = (r - mean_group(r)) / (std + eps)``; std is the group's, the batch's, or 1 (``none``).

    ``rewards`` is ``(num_groups, group_size)``. Stds are unbiased (Bessel), as in TRL's GRPO.
    """
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be (num_groups, group_size), got shape {tuple(rewards.shape)}")
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if scale == "group":
        return centred / (rewards.std(dim=1, keepdim=True) + eps)
    if scale == "batch":
        return centred / (rewards.std() + eps)
    if scale == "none":
        return centred
    raise ValueError(f"adv_scale must be group, batch or none (got {scale!r})")


def clip_advantages(advantages: Tensor, a_min: float, a_max: float) -> Tensor:
    """``a = clip(A, a_min, a_max)``: the advantage that sets the regularisation strength."""
    return advantages.clamp(min=a_min, max=a_max)


def adaptive_beta(clipped_advantages: Tensor, beta0: float, adaptive: bool = True) -> Tensor:
    """``beta_i = beta0 - a_i`` (ADRPO) or ``beta_i = beta0`` (fixed-beta baseline)."""
    if adaptive:
        return beta0 - clipped_advantages
    return torch.full_like(clipped_advantages, beta0)


def beta_stats(beta: Tensor) -> dict[str, float]:
    """The ``beta_eff/*`` metrics of a batch of per-sample coefficients."""
    beta = beta.detach().float()
    return {
        M.BETA_MEAN: beta.mean().item(),
        M.BETA_MIN: beta.min().item(),
        M.BETA_MAX: beta.max().item(),
        M.BETA_FRAC_NEG: (beta < 0).float().mean().item(),
    }


def reward_stats(rewards: Tensor, advantages: Tensor) -> dict[str, float]:
    """``reward/mean``, ``reward/std`` (unbiased) and ``advantage/abs_mean`` of a batch."""
    rewards = rewards.detach().float().flatten()
    return {
        M.REWARD_MEAN: rewards.mean().item(),
        M.REWARD_STD: rewards.std().item() if rewards.numel() > 1 else 0.0,
        M.ADVANTAGE_ABS_MEAN: advantages.detach().float().abs().mean().item(),
    }


# ----------------------------------------------------------------------------------------------
# LLM flavour: GRPO with a per-sample KL coefficient


def kl_k3(logp_policy: Tensor, logp_ref: Tensor) -> Tensor:
    """Schulman's k3 estimator of KL(policy || ref) per token: ``exp(d) - d - 1``, ``d = logp_ref - logp``."""
    delta = logp_ref - logp_policy
    return torch.exp(delta) - delta - 1.0


LOSS_AGGREGATIONS = ("grpo", "dapo", "bnpo", "dr_grpo")
IMPORTANCE_LEVELS = ("token", "sequence")


def importance_log_weights(logp: Tensor, logp_old: Tensor, mask: Tensor | None = None, level: str = "token") -> Tensor:
    """``log rho``: per token ``logp - logp_old`` ``(N, T)``, or per sequence (GSPO) the masked mean of
    it over the sequence's tokens ``(N, 1)``, so ``rho`` is the geometric mean of the token ratios."""
    log_ratio = logp - logp_old
    if level == "token":
        return log_ratio
    if level == "sequence":
        if mask is None:
            raise ValueError("sequence-level importance weights need the completion mask")
        mask = mask.to(log_ratio.dtype)
        return ((log_ratio * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)).unsqueeze(1)
    raise ValueError(f"importance_sampling_level must be token or sequence (got {level!r})")


def clipped_surrogate(ratio: Tensor, advantages: Tensor, eps_low: float, eps_high: float) -> Tensor:
    """``-min(rho * A, clip(rho, 1 - eps_low, 1 + eps_high) * A)``; ``ratio`` ``(N, T)`` or ``(N, 1)``."""
    adv = advantages.unsqueeze(1)
    return -torch.minimum(ratio * adv, ratio.clamp(1.0 - eps_low, 1.0 + eps_high) * adv)


def ppo_clip_token_loss(
    logp: Tensor, logp_old: Tensor, advantages: Tensor, eps_low: float, eps_high: float
) -> Tensor:
    """``-min(rho * A, clip(rho, 1 - eps_low, 1 + eps_high) * A)`` per token, ``rho = exp(logp - logp_old)``.

    ``logp`` and ``logp_old`` are ``(N, T)``; ``advantages`` is ``(N,)``, the full normalised advantage.
    """
    return clipped_surrogate(torch.exp(logp - logp_old), advantages, eps_low, eps_high)


def grpo_token_loss(
    logp: Tensor,
    logp_old: Tensor,
    advantages: Tensor,
    beta: Tensor,
    kl: Tensor,
    eps_low: float,
    eps_high: float,
    *,
    mask: Tensor | None = None,
    level: str = "token",
    kl_bias_correction: bool = False,
    token_mask: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Per-token ADRPO-GRPO loss ``policy_it + beta_i * KL_it`` and its policy part, both ``(N, T)``.

    ``beta`` is ``(N,)``: ``beta0 - a_i`` for ADRPO, constant for fixed-beta GRPO. ``kl`` is ``(N, T)``
    (see :func:`kl_k3`); rows whose ``beta_i`` is 0 may hold zeros, as their KL does not enter the loss.
    ``level='sequence'`` (GSPO) uses one ratio per sequence (needs ``mask``). ``kl_bias_correction``
    multiplies the KL by the differentiable ratio (TRL's ``use_bias_correction_kl``): on-policy its value
    is 1, but its gradient adds ``KL * grad(logp)``, the score-function term that makes the KL gradient
    unbiased. ``token_mask`` (e.g. the high-entropy tokens) zeroes the policy part elsewhere; the KL
    term keeps every token, as in TRL.
    """
    ratio = torch.exp(importance_log_weights(logp, logp_old, mask, level))
    policy = clipped_surrogate(ratio, advantages, eps_low, eps_high).expand_as(logp)
    if token_mask is not None:
        policy = policy * token_mask.to(policy.dtype)
    if kl_bias_correction:
        kl = kl * ratio
    return policy + beta.unsqueeze(1) * kl, policy


def aggregate_tokens(per_token: Tensor, mask: Tensor, mode: str = "grpo", max_tokens: int | None = None) -> Tensor:
    """Reduce ``(N, T)`` token values over the completion ``mask`` (TRL 1.16's loss types).

    ``grpo``: mean over each sequence's tokens, then over sequences. ``dapo`` and ``bnpo``: sum over all
    tokens divided by the token count (longer completions weigh more; they differ only in which batch
    the count spans, see :func:`micro_batch_weight`). ``dr_grpo``: sum over all tokens divided by the
    constant ``N * max_tokens`` (``max_tokens`` = the completion length cap; default ``T``).
    """
    mask = mask.to(per_token.dtype)
    if mode == "grpo":
        return ((per_token * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)).mean()
    if mode in ("dapo", "bnpo"):
        return (per_token * mask).sum() / mask.sum().clamp(min=1.0)
    if mode == "dr_grpo":
        width = per_token.shape[1] if max_tokens is None else max_tokens
        return (per_token * mask).sum() / (per_token.shape[0] * width)
    raise ValueError(f"loss_agg must be one of {', '.join(LOSS_AGGREGATIONS)} (got {mode!r})")


def micro_batch_weight(mode: str, chunk_rows: int, chunk_tokens: float, rows: int, tokens: float, chunks: int) -> float:
    """The factor that turns one micro-batch's :func:`aggregate_tokens` into its share of the step's loss.

    ``grpo`` and ``dr_grpo`` (per-row normalisers): rows share; ``dapo``: token share, so the sum is the
    full batch's token mean (TRL's global normaliser); ``bnpo``: ``1 / chunks``, the mean of the
    micro-batches' own token means (TRL normalises bnpo over the local batch: with one micro-batch it is
    dapo).
    """
    if mode in ("grpo", "dr_grpo"):
        return chunk_rows / rows
    if mode == "dapo":
        return float(chunk_tokens) / max(float(tokens), 1.0)
    if mode == "bnpo":
        return 1.0 / chunks
    raise ValueError(f"loss_agg must be one of {', '.join(LOSS_AGGREGATIONS)} (got {mode!r})")


def high_entropy_mask(entropy: Tensor, mask: Tensor, quantile: float) -> Tensor:
    """Tokens whose entropy is in the top ``quantile`` of the masked tokens (TRL's ``top_entropy_quantile``:
    threshold = the ``1 - quantile`` quantile; 1.0 keeps every token, 0.0 only the highest)."""
    valid = mask.bool()
    values = entropy[valid].float()
    if values.numel() == 0:
        return torch.zeros_like(valid)
    threshold = torch.quantile(values, 1.0 - quantile)
    return (entropy * mask.to(entropy.dtype) >= threshold) & valid


def clip_fractions(ratio: Tensor, advantages: Tensor, mask: Tensor, eps_low: float, eps_high: float) -> dict[str, Tensor]:
    """Sums behind TRL's ``clip_ratio/*`` metrics for one micro-batch.

    A token (a sequence, for ``(N, 1)`` ratios) is low-clipped when ``rho < 1 - eps_low`` and ``A < 0``,
    high-clipped when ``rho > 1 + eps_high`` and ``A > 0``. Returns the clipped counts, the count of
    units, and the per-sequence fractions (for the min / max metrics).
    """
    adv = advantages.unsqueeze(1)
    low = ((ratio < 1.0 - eps_low) & (adv < 0)).float()
    high = ((ratio > 1.0 + eps_high) & (adv > 0)).float()
    if ratio.shape[1] == 1:
        weights = torch.ones_like(low)
        per_seq_low, per_seq_high = low.squeeze(1), high.squeeze(1)
    else:
        weights = mask.float()
        count = weights.sum(dim=1)
        per_seq_low = (low * weights).sum(dim=1) / count
        per_seq_high = (high * weights).sum(dim=1) / count
    return {
        "low": (low * weights).sum(), "high": (high * weights).sum(),
        "region": (((low + high) > 0).float() * weights).sum(), "units": weights.sum(),
        "seq_low": per_seq_low, "seq_high": per_seq_high,
    }


def frac_zero_std(rewards: Tensor) -> float:
    """Fraction of prompt groups whose rewards are all equal (zero advantage for every sample):
    TRL's ``frac_reward_zero_std``. ``rewards`` is ``(num_groups, group_size)``."""
    std = rewards.float().std(dim=1)
    return float(torch.isclose(std, torch.zeros_like(std)).float().mean())


def token_entropy(logits: Tensor) -> Tensor:
    """Entropy of the next-token distribution per position: ``(N, T, V) -> (N, T)``."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


# ----------------------------------------------------------------------------------------------
# Flow-matching flavour: reward-weighted flow matching with a W2 (velocity-difference) penalty


def interpolate(x_data: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """``x_t = (1 - t) * x_data + t * noise``, ``t`` of shape ``(B,)`` broadcast over the rest."""
    t = t.view(-1, *([1] * (x_data.dim() - 1)))
    return (1.0 - t) * x_data + t * noise


def velocity_target(x_data: Tensor, noise: Tensor) -> Tensor:
    """The conditional flow-matching target ``u = noise - x_data`` (constant along the path)."""
    return noise - x_data


def sample_times(
    batch: int, mode: str = "uniform", logit_mean: float = 0.0, logit_std: float = 1.0,
    generator: torch.Generator | None = None, device: torch.device | str = "cpu",
) -> Tensor:
    """Training times ``t`` in (0, 1): uniform, or logit-normal (``sigmoid(N(mean, std))``, as in SD3)."""
    if mode == "uniform":
        return torch.rand(batch, generator=generator, device=device)
    if mode == "logit_normal":
        return torch.sigmoid(logit_mean + logit_std * torch.randn(batch, generator=generator, device=device))
    raise ValueError(f"t_sampling must be uniform or logit_normal (got {mode!r})")


def per_sample_mse(a: Tensor, b: Tensor) -> Tensor:
    """``||a - b||^2`` averaged over every dimension but the first: ``(B, ...) -> (B,)``."""
    return (a.float() - b.float()).pow(2).flatten(1).mean(dim=1)


def flow_loss_weights(
    algorithm: str,
    clipped_advantages: Tensor,
    beta0: float,
    rewards: Tensor | None = None,
    tau: float = 1.0,
    normalize: bool = True,
) -> tuple[Tensor, Tensor]:
    """Per-sample weights ``(w_fm, w_w2)`` of ``w_fm * ||v - u||^2 + w_w2 * ||v - v_ref||^2``.

    - ``adrpo``: ``(a, beta0 - a)``; the total quadratic weight is ``beta0`` for every ``a``.
    - ``fixed``: ``(a, beta0)``; bounded below only while ``a > -beta0`` (the config validates it).
    - ``orw`` (ORW-CFM-W2): ``(exp(tau * r), beta0)`` with ``beta0`` as the paper's alpha; with
      ``normalize`` the weights are divided by their batch mean (computed as ``B * softmax``, stably).
    """
    a = clipped_advantages.flatten()
    if algorithm == "adrpo":
        return a, beta0 - a
    if algorithm == "fixed":
        return a, torch.full_like(a, beta0)
    if algorithm == "orw":
        if rewards is None:
            raise ValueError("orw weights need the rewards")
        scaled = tau * rewards.flatten().float()
        weights = scaled.numel() * torch.softmax(scaled, dim=0) if normalize else torch.exp(scaled)
        return weights.to(a.dtype), torch.full_like(a, beta0)
    raise ValueError(f"algorithm must be adrpo, fixed or orw (got {algorithm!r})")


def regularized_fm_loss(
    v_theta: Tensor, u_target: Tensor, v_ref: Tensor, w_fm: Tensor, w_w2: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """``mean_i(w_fm_i * ||v_theta - u||^2 + w_w2_i * ||v_theta - v_ref||^2)``.

    Returns ``(loss, fm_term, w2)``: the scalar loss, the weighted flow-matching part (scalar) and the
    per-sample ``||v_theta - v_ref||^2`` (the integrand of the W2 bound of ORW-CFM-W2).
    """
    fm = per_sample_mse(v_theta, u_target)
    w2 = per_sample_mse(v_theta, v_ref.detach())
    w_fm = w_fm.to(fm.dtype)
    w_w2 = w_w2.to(fm.dtype)
    fm_term = (w_fm * fm).mean()
    return fm_term + (w_w2 * w2).mean(), fm_term, w2


def grid_times(
    batch: int, grid: Tensor, count: int, generator: torch.Generator | None = None
) -> Tensor:
    """``count`` distinct noise levels per sample from a rollout's time grid: ``(count, batch)``.

    ``grid`` holds the ``steps + 1`` levels of the Euler sampler from 1 down to 0; the levels where the
    sampler evaluates the network are ``grid[:-1]`` (t = 0 is never an input). Each sample gets its own
    uniform draw without replacement, so ``count = steps`` visits every level once and a smaller
    ``count`` is an unbiased subsample of that full-trajectory objective at ``count / steps`` of its cost.
    """
    levels = grid[:-1].float().cpu()
    if not 1 <= count <= levels.numel():
        raise ValueError(f"train_timesteps must be in 1..{levels.numel()} (got {count})")
    picks = torch.rand(batch, levels.numel(), generator=generator).argsort(dim=1)[:, :count]
    return levels[picks].T.contiguous()


# ----------------------------------------------------------------------------------------------
# Diffusion-DPO in flow-matching form (an offline baseline of the paper's text-to-image comparison)


def preference_pairs(rewards: Tensor, mode: str = "best_worst", margin: float = 0.0) -> list[tuple[int, int]]:
    """(winner, loser) indices within one group of rewards ``(G,)``.

    ``best_worst``: the best and the worst sample, if their rewards differ by more than ``margin``;
    ``all``: every ordered pair whose reward difference exceeds ``margin`` (ties never make a pair).
    """
    values = rewards.detach().float().flatten().tolist()
    if mode == "best_worst":
        best = max(range(len(values)), key=values.__getitem__)
        worst = min(range(len(values)), key=values.__getitem__)
        return [(best, worst)] if values[best] - values[worst] > margin else []
    if mode == "all":
        return [(i, j) for i, ri in enumerate(values) for j, rj in enumerate(values) if ri - rj > margin]
    raise ValueError(f"dpo_pairs must be best_worst or all (got {mode!r})")


def dpo_flow_loss(
    err_theta_w: Tensor, err_ref_w: Tensor, err_theta_l: Tensor, err_ref_l: Tensor, beta_dpo: float
) -> tuple[Tensor, Tensor]:
    """``mean(-log sigmoid(-beta_dpo * ((err_theta_w - err_ref_w) - (err_theta_l - err_ref_l))))``.

    Each ``err`` is the per-pair ``||v - u||^2`` (mean over dimensions) of the policy (theta) or the
    reference on the winner (w) or loser (l), all four on the same ``(noise, t)`` draw. Returns the scalar
    loss and the per-pair *margin* ``-((err_theta_w - err_ref_w) - (err_theta_l - err_ref_l))``: positive
    when the policy has improved its fit of the winner more than of the loser, relative to the reference.
    """
    margin = -((err_theta_w - err_ref_w.detach()) - (err_theta_l - err_ref_l.detach()))
    loss = -torch.nn.functional.logsigmoid(beta_dpo * margin).mean()
    return loss, margin
