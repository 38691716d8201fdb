"""TRL 1.16's loss menu with ADRPO's per-sample beta: hand-computed values, and parity with TRL's own
``GRPOTrainer._compute_loss`` fed the same tensors (same loss, same gradients)."""

import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from adrpo_engine import objectives as O

pytest.importorskip("trl")
from trl import GRPOTrainer

VARIANTS = ("grpo", "dapo", "bnpo", "dr_grpo")


# ----------------------------------------------------------------------------------------------
# By hand


def test_dr_grpo_divides_by_rows_times_the_length_cap():
    values = torch.tensor([[1.0, 3.0, 100.0], [2.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert O.aggregate_tokens(values, mask, "dr_grpo", max_tokens=4).item() == pytest.approx(6.0 / (2 * 4))
    assert O.aggregate_tokens(values, mask, "dr_grpo").item() == pytest.approx(6.0 / (2 * 3))  # cap = width
    assert O.aggregate_tokens(values, mask, "bnpo").item() == pytest.approx(6.0 / 3)


def test_micro_batch_weights_by_hand():
    # two micro-batches: 1 row with 3 tokens, 1 row with 1 token (4 tokens, 2 rows in all)
    assert O.micro_batch_weight("grpo", 1, 3, 2, 4, 2) == 0.5
    assert O.micro_batch_weight("dr_grpo", 1, 3, 2, 4, 2) == 0.5
    assert O.micro_batch_weight("dapo", 1, 3, 2, 4, 2) == 0.75
    assert O.micro_batch_weight("bnpo", 1, 3, 2, 4, 2) == 0.5  # the mean of the micro-batches' token means
    with pytest.raises(ValueError, match="loss_agg"):
        O.micro_batch_weight("nope", 1, 1, 1, 1, 1)


def test_sequence_level_ratio_is_the_geometric_mean_and_clips_once():
    logp_old = torch.zeros(2, 3)
    logp = torch.tensor([[math.log(2.0), 0.0, 5.0], [math.log(0.5), math.log(0.5), 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    log_w = O.importance_log_weights(logp, logp_old, mask, "sequence")
    torch.testing.assert_close(log_w, torch.tensor([[math.log(2.0) / 2], [2 * math.log(0.5) / 3]]))
    _, policy = O.grpo_token_loss(logp, logp_old, torch.tensor([1.0, -1.0]), torch.zeros(2), torch.zeros(2, 3),
                                  0.2, 0.2, mask=mask, level="sequence")
    # row 0: rho = sqrt 2 > 1.2, A = +1: -min(1.414, 1.2) = -1.2 on every token
    # row 1: rho = 0.5^(2/3) = 0.63 < 0.8, A = -1: -min(-0.63, -0.8) = 0.8
    torch.testing.assert_close(policy, torch.tensor([[-1.2] * 3, [0.8] * 3]))
    with pytest.raises(ValueError, match="mask"):
        O.importance_log_weights(logp, logp_old, None, "sequence")


def test_kl_bias_correction_keeps_the_value_and_turns_the_gradient_into_logp_minus_ref():
    logp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    logp_ref = torch.tensor([[-1.5, -1.0]])
    beta = torch.tensor([0.5])
    classic, _ = O.grpo_token_loss(logp, logp.detach(), torch.zeros(1), beta, O.kl_k3(logp, logp_ref), 0.2, 0.2)
    corrected, _ = O.grpo_token_loss(logp, logp.detach(), torch.zeros(1), beta, O.kl_k3(logp, logp_ref), 0.2, 0.2,
                                     kl_bias_correction=True)
    torch.testing.assert_close(classic, corrected)  # on-policy the ratio is 1
    (grad,) = torch.autograd.grad(corrected.sum(), logp)
    # d/dlogp [(e^d - d - 1) * e^(logp - sg(logp))] = (1 - e^d) + (e^d - d - 1) = -d = logp - logp_ref
    torch.testing.assert_close(grad, 0.5 * (logp.detach() - logp_ref))


def test_high_entropy_mask_keeps_the_top_quantile():
    entropy = torch.tensor([[0.1, 0.5, 0.9, 0.3], [2.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 1], [0, 1, 0, 0]])  # 2.0 sits on padding: it must not count
    # valid values 0.1 0.5 0.9 0.3 0.0: the 0.5 quantile is 0.3
    kept = O.high_entropy_mask(entropy, mask, 0.5)
    assert kept.tolist() == [[False, True, True, True], [False, False, False, False]]
    assert O.high_entropy_mask(entropy, mask, 1.0).tolist() == mask.bool().tolist()
    assert O.high_entropy_mask(entropy, mask, 0.0).sum() == 1  # only the highest


def test_clip_fractions_and_zero_std_by_hand():
    ratio = torch.tensor([[0.5, 1.0, 1.5], [1.5, 0.5, 1.0]])
    adv = torch.tensor([-1.0, 1.0])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    sums = O.clip_fractions(ratio, adv, mask, 0.2, 0.2)
    # row 0 (A<0): 0.5 is low-clipped, 1.5 is not counted; row 1 (A>0): 1.5 is high-clipped
    assert (sums["low"], sums["high"], sums["region"], sums["units"]) == (1.0, 1.0, 2.0, 5.0)
    torch.testing.assert_close(sums["seq_low"], torch.tensor([1 / 3, 0.0]))
    torch.testing.assert_close(sums["seq_high"], torch.tensor([0.0, 0.5]))
    assert O.frac_zero_std(torch.tensor([[1.0, 1.0], [0.0, 1.0]])) == 0.5


# ----------------------------------------------------------------------------------------------
# Parity with TRL 1.16's GRPOTrainer._compute_loss


class _OneProcess:
    """The accelerate surface `_compute_loss` touches, for a single process."""

    num_processes = 1

    def reduce(self, tensor, reduction="sum"):
        return tensor

    def gather(self, tensor):
        return tensor

    gather_for_metrics = gather

    def pad_across_processes(self, tensor, dim=0, pad_index=0):
        return tensor


def trl_loss(logp, entropy, batch, *, loss_type, beta, level, bias_correction, eps_low, eps_high, max_len,
             top_quantile=1.0, accumulation=1, num_items=None):
    """TRL's own `_compute_loss` on our tensors: the model forward is replaced by the given log-probs."""
    trainer = GRPOTrainer.__new__(GRPOTrainer)
    trainer.__dict__.update(
        _get_per_token_logps_and_entropies=lambda *args, **kwargs: (logp, entropy, None),
        aux_loss_enabled=False, top_entropy_quantile=top_quantile, off_policy_mask_threshold=None,
        importance_sampling_level=level, beta=beta, loss_type=loss_type, epsilon_low=eps_low,
        epsilon_high=eps_high, use_vllm=False, vllm_importance_sampling_correction=False,
        model=SimpleNamespace(training=True), current_gradient_accumulation_steps=accumulation,
        max_completion_length=max_len, accelerator=_OneProcess(), _entropy_bonus_enabled=False,
        _metrics={"train": defaultdict(list)},
        args=SimpleNamespace(use_bias_correction_kl=bias_correction, delta=None, steps_per_generation=accumulation),
    )
    mask = batch["mask"]
    inputs = {
        "prompt_ids": torch.ones(mask.shape[0], 1, dtype=torch.long), "prompt_mask": torch.ones(mask.shape[0], 1),
        "completion_ids": torch.ones_like(mask, dtype=torch.long), "completion_mask": mask,
        "advantages": batch["adv"], "old_per_token_logps": batch["old"], "ref_per_token_logps": batch["ref"],
        "num_items_in_batch": torch.tensor(float(mask.sum()) if num_items is None else num_items),
    }
    return trainer._compute_loss(None, inputs)


def ours_loss(logp, entropy, batch, *, loss_type, beta, level, bias_correction, eps_low, eps_high, max_len,
              top_quantile=1.0):
    mask = batch["mask"]
    token_mask = O.high_entropy_mask(entropy, mask, top_quantile) if top_quantile < 1.0 else None
    beta = beta if isinstance(beta, torch.Tensor) else torch.full((mask.shape[0],), beta, dtype=logp.dtype)
    per_token, _ = O.grpo_token_loss(logp, batch["old"], batch["adv"], beta, O.kl_k3(logp, batch["ref"]), eps_low,
                                     eps_high, mask=mask, level=level, kl_bias_correction=bias_correction,
                                     token_mask=token_mask)
    return O.aggregate_tokens(per_token, mask, loss_type, max_len)


def make_batch(rows=6, width=7, seed=0):
    """Off-policy tensors (ratios well outside the clip range) with ragged completion masks, float64."""
    generator = torch.Generator().manual_seed(seed)
    logp = -torch.rand(rows, width, generator=generator, dtype=torch.float64) * 3
    lengths = torch.tensor([width, 1, 3, width - 1, 5, 2][:rows])
    return {
        "logp": logp,
        "old": logp + 0.4 * torch.randn(rows, width, generator=generator, dtype=torch.float64),
        "ref": logp + 0.6 * torch.randn(rows, width, generator=generator, dtype=torch.float64),
        "adv": torch.randn(rows, generator=generator, dtype=torch.float64),
        "entropy": torch.rand(rows, width, generator=generator, dtype=torch.float64) * 2,
        "mask": (torch.arange(width)[None, :] < lengths[:, None]).to(torch.float64),
    }


def loss_and_grad(fn, batch, **settings):
    logp = batch["logp"].clone().requires_grad_(True)
    loss = fn(logp, batch["entropy"], batch, **settings)
    (grad,) = torch.autograd.grad(loss, logp)
    return loss.detach(), grad


SETTINGS = [
    {"loss_type": loss_type, "level": level, "bias_correction": bias, "top_quantile": quantile}
    for loss_type in VARIANTS
    for level, bias, quantile in (("token", True, 1.0), ("token", False, 1.0), ("sequence", True, 1.0),
                                  ("sequence", False, 1.0), ("token", True, 0.4))
]


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: "-".join(str(v) for v in s.values()))
def test_fixed_beta_matches_trl(setting):
    batch = make_batch()
    common = dict(beta=0.04, eps_low=0.2, eps_high=0.28, max_len=9, **setting)
    trl_value, trl_grad = loss_and_grad(trl_loss, batch, **common)
    our_value, our_grad = loss_and_grad(ours_loss, batch, **common)
    torch.testing.assert_close(our_value, trl_value, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(our_grad, trl_grad, rtol=1e-10, atol=1e-12)
    assert trl_grad.abs().sum() > 0


def trl_per_sample_beta(logp, entropy, batch, *, beta, loss_type, **settings):
    """ADRPO on TRL: its loss is a sum over rows, so row i run alone with its own scalar beta_i, and the rows
    combined with the loss type's normaliser, is the per-sample-beta loss of TRL's formula."""
    mask = batch["mask"]
    rows, tokens = mask.shape[0], float(mask.sum())
    total = 0.0
    for i in range(rows):
        row = {key: value[i:i + 1] for key, value in batch.items() if key not in ("logp", "entropy")}
        value = trl_loss(logp[i:i + 1], entropy[i:i + 1], row, loss_type=loss_type, beta=float(beta[i]),
                         num_items=tokens, **settings)
        # grpo / dr_grpo: one row's loss is its own mean -> average; dapo: already over the batch's tokens
        # (num_items) -> sum; bnpo: over the row's own tokens -> weight by the row's token share
        weight = {"grpo": 1 / rows, "dr_grpo": 1 / rows, "dapo": 1.0, "bnpo": float(mask[i].sum()) / tokens}[loss_type]
        total = total + weight * value
    return total


@pytest.mark.parametrize("loss_type", VARIANTS)
@pytest.mark.parametrize("level", ("token", "sequence"))
def test_adrpo_per_sample_beta_matches_trl_row_by_row(loss_type, level):
    batch = make_batch(seed=1)
    rewards = torch.tensor([[0.1, 0.9, 0.4], [0.3, 0.3, 0.8]], dtype=torch.float64)
    advantages = O.group_advantages(rewards).flatten()
    beta = O.adaptive_beta(O.clip_advantages(advantages, -0.04, 0.04), 0.04)
    assert (beta == 0).any() and (beta > 0.04).any()  # ADRPO's spread, zeros included
    batch["adv"] = advantages
    common = {"beta": beta, "loss_type": loss_type, "level": level, "bias_correction": True, "eps_low": 0.2, "eps_high": 0.28,
                  "max_len": 9}
    trl_value, trl_grad = loss_and_grad(trl_per_sample_beta, batch, **common)
    our_value, our_grad = loss_and_grad(ours_loss, batch, **common)
    torch.testing.assert_close(our_value, trl_value, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(our_grad, trl_grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("loss_type", VARIANTS)
def test_micro_batches_match_trl_gradient_accumulation(loss_type):
    # TRL's accumulation window of 3 micro-batches (steps_per_generation = 3, dapo's normaliser spans the
    # window) against our micro_batch_weight; equal micro-batch sizes, as TRL's are
    batch = make_batch(seed=2)
    settings = {"beta": 0.04, "loss_type": loss_type, "level": "token", "bias_correction": True, "eps_low": 0.2, "eps_high": 0.28,
                    "max_len": 9}
    rows, tokens = batch["mask"].shape[0], float(batch["mask"].sum())
    logp_trl = batch["logp"].clone().requires_grad_(True)
    logp_ours = batch["logp"].clone().requires_grad_(True)
    trl_total = ours_total = 0.0
    for part in (slice(0, 2), slice(2, 4), slice(4, 6)):
        chunk = {key: value[part] for key, value in batch.items()}
        trl_total = trl_total + trl_loss(logp_trl[part], chunk["entropy"], chunk, accumulation=3, num_items=tokens,
                                         **settings)
        share = O.micro_batch_weight(loss_type, 2, float(chunk["mask"].sum()), rows, tokens, 3)
        ours_total = ours_total + ours_loss(logp_ours[part], chunk["entropy"], chunk, **settings) * share
    (trl_grad,) = torch.autograd.grad(trl_total, logp_trl)
    (our_grad,) = torch.autograd.grad(ours_total, logp_ours)
    torch.testing.assert_close(ours_total.detach(), trl_total.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(our_grad, trl_grad, rtol=1e-10, atol=1e-12)
