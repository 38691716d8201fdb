"""The maths against values computed by hand (docs/algorithm.md)."""

import math

import pytest
import torch

from adrpo_engine import metrics as M
from adrpo_engine import objectives as O


def test_group_advantages_by_hand():
    rewards = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 6.0]])
    # group 1: mean 2, unbiased std 1 -> (-1, 0, 1) / (1 + 1e-4)
    # group 2: mean 2, unbiased std sqrt(12) -> (-2, -2, 4) / (sqrt(12) + 1e-4)
    adv = O.group_advantages(rewards, "group")
    expected = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, -2.0, 4.0]])
    expected[0] /= 1.0 + 1e-4
    expected[1] /= math.sqrt(12.0) + 1e-4
    torch.testing.assert_close(adv, expected)


def test_batch_and_none_scales_by_hand():
    rewards = torch.tensor([[1.0, 3.0], [5.0, 7.0]])
    centred = torch.tensor([[-1.0, 1.0], [-1.0, 1.0]])
    torch.testing.assert_close(O.group_advantages(rewards, "none"), centred)
    batch_std = torch.tensor([1.0, 3.0, 5.0, 7.0]).std().item()  # sqrt(20/3)
    assert batch_std == pytest.approx(math.sqrt(20 / 3))
    torch.testing.assert_close(O.group_advantages(rewards, "batch"), centred / (batch_std + 1e-4))


def test_constant_group_has_zero_advantage():
    adv = O.group_advantages(torch.full((1, 4), 0.7), "group")
    torch.testing.assert_close(adv, torch.zeros(1, 4))


def test_adaptive_beta_lies_in_zero_two_beta0_with_default_clip():
    beta0 = 0.04
    adv = torch.tensor([-3.0, -0.02, 0.0, 0.01, 5.0])
    clipped = O.clip_advantages(adv, -beta0, beta0)
    torch.testing.assert_close(clipped, torch.tensor([-0.04, -0.02, 0.0, 0.01, 0.04]))
    beta = O.adaptive_beta(clipped, beta0)
    torch.testing.assert_close(beta, torch.tensor([0.08, 0.06, 0.04, 0.03, 0.0]))
    torch.testing.assert_close(O.adaptive_beta(clipped, beta0, adaptive=False), torch.full((5,), 0.04))


def test_beta_stats_reports_negative_fraction():
    stats = O.beta_stats(torch.tensor([0.1, -0.05, 0.0, -0.2]))
    assert stats[M.BETA_FRAC_NEG] == pytest.approx(0.5)
    assert stats[M.BETA_MIN] == pytest.approx(-0.2)
    assert stats[M.BETA_MAX] == pytest.approx(0.1)
    assert stats[M.BETA_MEAN] == pytest.approx(-0.0375)


def test_kl_k3_by_hand():
    logp = torch.tensor([[math.log(0.5), math.log(0.2)]])
    ref = torch.tensor([[math.log(0.25), math.log(0.2)]])
    # d = log(0.25/0.5) = -ln 2: exp(d) - d - 1 = 0.5 + ln 2 - 1
    torch.testing.assert_close(O.kl_k3(logp, ref), torch.tensor([[0.5 + math.log(2) - 1.0, 0.0]]))


def test_ppo_clip_token_loss_by_hand():
    logp_old = torch.zeros(2, 2)
    logp = torch.log(torch.tensor([[1.5, 0.5], [1.5, 0.5]]))  # ratios 1.5 and 0.5
    adv = torch.tensor([2.0, -1.0])
    loss = O.ppo_clip_token_loss(logp, logp_old, adv, eps_low=0.2, eps_high=0.3)
    # A=+2: min(1.5*2, 1.3*2) = 2.6 ; min(0.5*2, 0.8*2) = 1.0
    # A=-1: min(-1.5, -1.3) = -1.5 ; min(-0.5, -0.8) = -0.8
    torch.testing.assert_close(loss, torch.tensor([[-2.6, -1.0], [1.5, 0.8]]))


def test_grpo_token_loss_adds_per_sample_kl():
    logp = torch.zeros(2, 3)
    kl = torch.tensor([[0.1, 0.2, 0.3], [1.0, 1.0, 1.0]])
    beta = torch.tensor([0.5, 0.0])
    total, policy = O.grpo_token_loss(logp, logp, torch.tensor([1.0, -1.0]), beta, kl, 0.2, 0.2)
    torch.testing.assert_close(policy, torch.tensor([[-1.0] * 3, [1.0] * 3]))
    torch.testing.assert_close(total, torch.tensor([[-0.95, -0.9, -0.85], [1.0, 1.0, 1.0]]))


def test_aggregation_grpo_vs_dapo_by_hand():
    values = torch.tensor([[1.0, 3.0, 100.0], [2.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    # grpo: mean(mean(1,3), mean(2)) = mean(2, 2) = 2 ; dapo: (1+3+2)/3 = 2
    assert O.aggregate_tokens(values, mask, "grpo").item() == pytest.approx(2.0)
    assert O.aggregate_tokens(values, mask, "dapo").item() == pytest.approx(2.0)
    values = torch.tensor([[1.0, 5.0], [2.0, 0.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    assert O.aggregate_tokens(values, mask, "grpo").item() == pytest.approx((3.0 + 2.0) / 2)
    assert O.aggregate_tokens(values, mask, "dapo").item() == pytest.approx(8.0 / 3)


def _loss_and_grad(beta0, a_min, a_max, adaptive):
    torch.manual_seed(0)
    logits = torch.randn(4, 5, 7, requires_grad=True)
    tokens = torch.randint(0, 7, (4, 5))
    logp = torch.log_softmax(logits, -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    logp_ref = logp.detach() + 0.3 * torch.randn(4, 5)
    mask = torch.ones(4, 5)
    adv = O.group_advantages(torch.tensor([[0.1, 0.9], [0.4, 0.2]])).flatten()
    beta = O.adaptive_beta(O.clip_advantages(adv, a_min, a_max), beta0, adaptive)
    per_token, _ = O.grpo_token_loss(logp, logp.detach(), adv, beta, O.kl_k3(logp, logp_ref), 0.2, 0.2)
    loss = O.aggregate_tokens(per_token, mask)
    loss.backward()
    return loss.detach(), logits.grad.clone()


def test_zero_clip_equals_fixed_beta_grpo_exactly():
    adrpo_loss, adrpo_grad = _loss_and_grad(0.04, 0.0, 0.0, adaptive=True)
    fixed_loss, fixed_grad = _loss_and_grad(0.04, 0.0, 0.0, adaptive=False)
    assert torch.equal(adrpo_loss, fixed_loss)
    assert torch.equal(adrpo_grad, fixed_grad)


def test_kl_gradient_scale_follows_beta_i():
    # Zero advantage isolates the KL term: each sample's gradient is beta_i times its KL gradient.
    logp = torch.tensor([[-1.0, -2.0], [-1.0, -2.0]], requires_grad=True)
    logp_ref = torch.tensor([[-1.5, -1.0], [-1.5, -1.0]])
    beta = torch.tensor([0.08, 0.02])
    per_token, _ = O.grpo_token_loss(logp, logp.detach(), torch.zeros(2), beta, O.kl_k3(logp, logp_ref), 0.2, 0.2)
    per_token.sum().backward()
    grad = logp.grad
    torch.testing.assert_close(grad[0] / grad[1], torch.full((2,), 4.0))
    # d/dlogp (exp(ref - logp) - (ref - logp) - 1) = 1 - exp(ref - logp)
    torch.testing.assert_close(grad[0], 0.08 * (1 - torch.exp(logp_ref[0] - logp.detach()[0])))


def test_token_entropy_uniform_and_peaked():
    logits = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [100.0, 0.0, 0.0, 0.0]]])
    torch.testing.assert_close(O.token_entropy(logits), torch.tensor([[math.log(4.0), 0.0]]))


# ------------------------------------------------------------------ flow matching


def test_interpolation_and_target_follow_the_sd3_convention():
    x_data = torch.tensor([[2.0, -2.0]])
    noise = torch.tensor([[0.0, 4.0]])
    t = torch.tensor([0.25])
    torch.testing.assert_close(O.interpolate(x_data, noise, t), torch.tensor([[1.5, -0.5]]))
    torch.testing.assert_close(O.velocity_target(x_data, noise), torch.tensor([[-2.0, 6.0]]))
    torch.testing.assert_close(O.interpolate(x_data, noise, torch.zeros(1)), x_data)
    torch.testing.assert_close(O.interpolate(x_data, noise, torch.ones(1)), noise)


def test_adrpo_fm_loss_by_hand():
    v = torch.tensor([[1.0, 1.0], [0.0, 2.0]])
    u = torch.tensor([[0.0, 1.0], [0.0, 0.0]])  # ||v-u||^2 means: 0.5, 2.0
    v_ref = torch.tensor([[1.0, 3.0], [1.0, 2.0]])  # ||v-vref||^2 means: 2.0, 0.5
    a = torch.tensor([0.1, -0.1])
    w_fm, w_w2 = O.flow_loss_weights("adrpo", a, beta0=0.1)
    torch.testing.assert_close(w_w2, torch.tensor([0.0, 0.2]))
    loss, fm_term, w2 = O.regularized_fm_loss(v, u, v_ref, w_fm, w_w2)
    # sample 1: 0.1*0.5 + 0*2 = 0.05 ; sample 2: -0.1*2 + 0.2*0.5 = -0.1 ; mean -0.025
    assert loss.item() == pytest.approx(-0.025)
    assert fm_term.item() == pytest.approx((0.05 - 0.2) / 2)
    torch.testing.assert_close(w2, torch.tensor([2.0, 0.5]))


def test_zero_advantage_and_fixed_weight_is_plain_regularized_fm():
    torch.manual_seed(0)
    v, u, v_ref = torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 4)
    loss, _, _ = O.regularized_fm_loss(v, u, v_ref, torch.ones(3), torch.full((3,), 0.3))
    plain = ((v - u) ** 2).mean() + 0.3 * ((v - v_ref) ** 2).mean()
    torch.testing.assert_close(loss, plain)
    w_fm, w_w2 = O.flow_loss_weights("adrpo", torch.zeros(3), beta0=0.3)
    loss0, _, w2 = O.regularized_fm_loss(v, u, v_ref, w_fm, w_w2)
    torch.testing.assert_close(loss0, 0.3 * w2.mean())


@pytest.mark.parametrize("a", [-5.0, -0.5, 0.0, 0.5, 5.0])
def test_adrpo_fm_loss_is_bounded_below_for_any_advantage(a):
    # The quadratic weight in v is w_fm + w_w2 = beta0 > 0, so the loss has a finite minimum
    # beta0 * ... >= a*(beta0-a)/beta0 * -||u - v_ref||^2 ; gradient descent on v converges to it.
    beta0 = 0.5
    u, v_ref = torch.tensor([[1.0, -1.0]]), torch.tensor([[0.0, 2.0]])
    w_fm, w_w2 = O.flow_loss_weights("adrpo", torch.tensor([a]), beta0)
    torch.testing.assert_close(w_fm + w_w2, torch.tensor([beta0]))
    v = torch.zeros(1, 2, requires_grad=True)
    optimizer = torch.optim.SGD([v], lr=0.5)
    for _ in range(200):
        optimizer.zero_grad()
        loss, _, _ = O.regularized_fm_loss(v, u, v_ref, w_fm, w_w2)
        loss.backward()
        optimizer.step()
    # The minimiser is v* = (a*u + (beta0 - a)*v_ref) / beta0; the minimum is finite.
    v_star = (a * u + (beta0 - a) * v_ref) / beta0
    torch.testing.assert_close(v.detach(), v_star, atol=1e-3, rtol=1e-3)
    assert math.isfinite(loss.item())


def test_fixed_weight_with_a_below_minus_beta0_is_unbounded():
    w_fm, w_w2 = O.flow_loss_weights("fixed", torch.tensor([-1.0]), beta0=0.5)
    assert (w_fm + w_w2).item() < 0  # negative curvature: what the config validation forbids


def test_orw_weights_by_hand():
    rewards = torch.tensor([0.0, math.log(3.0)])
    w_fm, w_w2 = O.flow_loss_weights("orw", torch.zeros(2), 0.2, rewards=rewards, tau=1.0, normalize=False)
    torch.testing.assert_close(w_fm, torch.tensor([1.0, 3.0]))
    torch.testing.assert_close(w_w2, torch.tensor([0.2, 0.2]))
    w_fm, _ = O.flow_loss_weights("orw", torch.zeros(2), 0.2, rewards=rewards, tau=1.0, normalize=True)
    torch.testing.assert_close(w_fm, torch.tensor([0.5, 1.5]))


def test_logit_normal_times_are_in_unit_interval():
    generator = torch.Generator().manual_seed(0)
    t = O.sample_times(1000, "logit_normal", generator=generator)
    assert 0.0 < t.min() and t.max() < 1.0
    assert abs(t.mean().item() - 0.5) < 0.03
