"""Every formula of `trl_safe.rl_math` against numbers worked out by hand in the test."""

import math

import pytest
import torch

from trl_safe.rl_math import (
    add_at_last_token,
    aggregate,
    clipped_policy_loss,
    clipped_value_loss,
    cost_model_loss,
    entropy_from_logits,
    generalized_advantage_estimation,
    kl_penalty,
    lagrangian_advantages,
    masked_mean,
    masked_var,
    masked_whiten,
    selective_logprobs,
)

# Two sequences: the first has 3 completion tokens, the second 2 (then padding).
MASK = torch.tensor([[1, 1, 1], [1, 1, 0]])


def test_masked_mean_and_var_ignore_padding():
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 100.0]])
    # Unmasked: 1, 2, 3, 4, 5 -> mean 3, sum of squared deviations 4+1+0+1+4 = 10.
    assert masked_mean(values, MASK).item() == pytest.approx(3.0)
    assert masked_var(values, MASK).item() == pytest.approx(10 / 4)  # Bessel: / (n - 1)
    assert masked_var(values, MASK, unbiased=False).item() == pytest.approx(10 / 5)
    # Per-row means: (1+2+3)/3 = 2 and (4+5)/2 = 4.5; an all-padding row gives 0, not NaN.
    rows = masked_mean(torch.ones(3, 2) * 7, torch.tensor([[1, 1], [1, 0], [0, 0]]), dim=1)
    torch.testing.assert_close(rows, torch.tensor([7.0, 7.0, 0.0]))
    torch.testing.assert_close(masked_mean(values, MASK, dim=1), torch.tensor([2.0, 4.5]))


def test_masked_whiten_uses_only_unmasked_tokens():
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 100.0]])
    std = math.sqrt(10 / 4)
    expected = torch.tensor([[-2.0, -1.0, 0.0], [1.0, 2.0, 0.0]]) / std
    torch.testing.assert_close(masked_whiten(values, MASK), expected, atol=1e-6, rtol=1e-6)
    # shift_mean=False keeps the mean (3) on the unmasked tokens.
    expected_kept = (torch.tensor([[-2.0, -1.0, 0.0], [1.0, 2.0, 0.0]]) / std + 3.0) * MASK
    torch.testing.assert_close(masked_whiten(values, MASK, shift_mean=False), expected_kept, atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="at least 2 unmasked"):
        masked_var(values, torch.tensor([[1, 0, 0], [0, 0, 0]]))


def test_selective_logprobs_and_entropy():
    logits = torch.tensor([[[0.0, math.log(3.0)], [2.0, 2.0]]])  # two positions, vocabulary of 2
    tokens = torch.tensor([[1, 0]])
    # Position 0: softmax = (1/4, 3/4) -> log 3/4. Position 1: uniform -> log 1/2.
    torch.testing.assert_close(selective_logprobs(logits, tokens), torch.tensor([[math.log(0.75), math.log(0.5)]]))
    # Entropies: -(1/4 log 1/4 + 3/4 log 3/4) and log 2.
    h0 = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    torch.testing.assert_close(entropy_from_logits(logits), torch.tensor([[h0, math.log(2.0)]]))


def test_kl_estimators():
    logprobs = torch.tensor([math.log(0.5), math.log(0.2)])
    ref_logprobs = torch.tensor([math.log(0.25), math.log(0.4)])
    # r = log π_ref - log π_θ = log(1/2), log(2)
    k1 = kl_penalty(logprobs, ref_logprobs, "k1")
    torch.testing.assert_close(k1, torch.tensor([math.log(2.0), -math.log(2.0)]))
    k3 = kl_penalty(logprobs, ref_logprobs, "k3")
    # (e^r - 1) - r: (0.5 - 1) + log 2 and (2 - 1) - log 2; both non-negative.
    torch.testing.assert_close(k3, torch.tensor([-0.5 + math.log(2.0), 1.0 - math.log(2.0)]))
    assert (k3 >= 0).all()
    with pytest.raises(ValueError, match="k2"):
        kl_penalty(logprobs, ref_logprobs, "k2")


def test_add_at_last_token():
    per_token = torch.tensor([[-0.1, -0.1, -0.1], [-0.2, -0.2, 0.0]])
    shaped = add_at_last_token(per_token, torch.tensor([1.0, 2.0]), MASK)
    torch.testing.assert_close(shaped, torch.tensor([[-0.1, -0.1, 0.9], [-0.2, 1.8, 0.0]]))
    assert per_token[0, 2] == pytest.approx(-0.1), "the input must not be modified in place"


def test_gae_by_hand():
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.5, 2.0, 9.0]])  # the 9 is padding and must be ignored
    values = torch.tensor([[0.5, 0.6, 0.7], [1.0, 1.5, 9.0]])
    gamma, lam = 0.9, 0.8
    advantages, returns = generalized_advantage_estimation(rewards, values, MASK, gamma, lam)

    # Row 0: δ2 = 1 - 0.7 = 0.3 (V after the end is 0); δ1 = 0 + 0.9·0.7 - 0.6 = 0.03; δ0 = 0.9·0.6 - 0.5 = 0.04
    a2 = 0.3
    a1 = 0.03 + gamma * lam * a2
    a0 = 0.04 + gamma * lam * a1
    # Row 1: δ1 = 2 - 1.5 = 0.5; δ0 = 0.5 + 0.9·1.5 - 1 = 0.85
    b1 = 0.5
    b0 = 0.85 + gamma * lam * b1
    torch.testing.assert_close(advantages, torch.tensor([[a0, a1, a2], [b0, b1, 0.0]]))
    torch.testing.assert_close(returns, torch.tensor([[a0 + 0.5, a1 + 0.6, a2 + 0.7], [b0 + 1.0, b1 + 1.5, 0.0]]))


def test_gae_with_gamma_lambda_one_is_reward_to_go_minus_value():
    rewards = torch.tensor([[0.1, -0.2, 3.0]])
    values = torch.tensor([[1.0, 2.0, 0.5]])
    advantages, returns = generalized_advantage_estimation(rewards, values, torch.ones(1, 3), 1.0, 1.0)
    reward_to_go = torch.tensor([[2.9, 2.8, 3.0]])
    torch.testing.assert_close(returns, reward_to_go)
    torch.testing.assert_close(advantages, reward_to_go - values)


def test_clipped_policy_loss_by_hand():
    old_logprobs = torch.zeros(1, 3)
    logprobs = torch.log(torch.tensor([[1.5, 0.5, 1.1]]))  # ratios 1.5, 0.5, 1.1
    advantages = torch.tensor([[1.0, 1.0, -2.0]])
    loss, ratio, clipped = clipped_policy_loss(logprobs, old_logprobs, advantages, torch.ones(1, 3), cliprange=0.2)
    # token 0: A>0, ratio above 1+ε: max(-1.5, -1.2) = -1.2 (clipped)
    # token 1: A>0, ratio below 1-ε: max(-0.5, -0.8) = -0.5 (unclipped: pessimistic bound keeps the worse term)
    # token 2: A<0, ratio in range: max(2.2, 2.2) = 2.2
    assert loss.item() == pytest.approx((-1.2 - 0.5 + 2.2) / 3)
    torch.testing.assert_close(ratio, torch.tensor([[1.5, 0.5, 1.1]]))
    assert clipped.tolist() == [[True, False, False]]


def test_clipped_value_loss_by_hand():
    old_values = torch.tensor([[1.0, 1.0]])
    values = torch.tensor([[2.0, 1.1]])
    returns = torch.tensor([[3.0, 0.0]])
    loss, clipped = clipped_value_loss(values, old_values, returns, torch.ones(1, 2), cliprange_value=0.2)
    # token 0: V clipped to 1.2: max((2-3)², (1.2-3)²) = 3.24 (clipped). token 1: max(1.21, 1.21) = 1.21.
    assert loss.item() == pytest.approx(0.5 * (3.24 + 1.21) / 2)
    assert clipped.tolist() == [[True, False]]


def test_sequence_mean_weighs_every_completion_equally():
    per_token = torch.tensor([[1.0, 2.0, 3.0], [10.0, 20.0, 99.0], [5.0, 5.0, 5.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [0, 0, 0]])  # the third row has no tokens and does not count
    assert aggregate(per_token, mask, "token_mean").item() == pytest.approx((1 + 2 + 3 + 10 + 20) / 5)
    assert aggregate(per_token, mask, "sequence_mean").item() == pytest.approx((2.0 + 15.0) / 2)
    with pytest.raises(ValueError, match="sum"):
        aggregate(per_token, mask, "sum")
    # The losses pass the choice through: here the ratio is 1, so the policy loss is -mean(A).
    advantages = torch.tensor([[1.0, 1.0, 1.0], [4.0, 0.0, 0.0]])
    zeros = torch.zeros(2, 3)
    loss, _, _ = clipped_policy_loss(zeros, zeros, advantages, MASK, 0.2, aggregation="sequence_mean")
    assert loss.item() == pytest.approx(-(1.0 + 2.0) / 2)
    value_loss, _ = clipped_value_loss(zeros, zeros, advantages, MASK, 0.2, aggregation="sequence_mean")
    assert value_loss.item() == pytest.approx(0.5 * (1.0 + (16.0 + 0.0) / 2) / 2)  # row means of (V - R̂)²


def test_lagrangian_advantages():
    reward_advantages = torch.tensor([1.0, -1.0])
    cost_advantages = torch.tensor([2.0, 0.5])
    torch.testing.assert_close(
        lagrangian_advantages(reward_advantages, cost_advantages, 3.0), torch.tensor([(1 - 6) / 4, (-1 - 1.5) / 4])
    )
    # λ = 0 is plain reward maximisation.
    torch.testing.assert_close(lagrangian_advantages(reward_advantages, cost_advantages, 0.0), reward_advantages)
    with pytest.raises(ValueError, match=">= 0"):
        lagrangian_advantages(reward_advantages, cost_advantages, -0.1)


def test_cost_model_loss_by_hand():
    costs = torch.tensor([[-1.0, 2.0], [0.5, 0.0]])  # [C(chosen), C(rejected)] per pair
    is_safe = torch.tensor([[True, False], [False, False]])
    loss, ranking, sign = cost_model_loss(costs, is_safe, sign_loss_coefficient=0.5, regularization=0.1)

    def log_sigmoid(x: float) -> float:
        return -math.log1p(math.exp(-x))

    expected_ranking = [-log_sigmoid(2.0 - -1.0), -log_sigmoid(0.0 - 0.5)]
    # s = -1 for a safe response, +1 for an unsafe one: each response against the boundary C = 0.
    expected_sign = [-(log_sigmoid(1.0) + log_sigmoid(2.0)), -(log_sigmoid(0.5) + log_sigmoid(0.0))]
    torch.testing.assert_close(ranking, torch.tensor(expected_ranking))
    torch.testing.assert_close(sign, torch.tensor(expected_sign))
    square = (1.0 + 4.0 + 0.25 + 0.0) / 4
    expected = sum(expected_ranking) / 2 + 0.5 * sum(expected_sign) / 2 + 0.1 * square
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # Zero costs: log 2 from the ranking term and 2·log 2 from the sign term, whatever the labels.
    zero_loss, _, _ = cost_model_loss(torch.zeros(3, 2), torch.rand(3, 2) > 0.5)
    assert zero_loss.item() == pytest.approx(3 * math.log(2), rel=1e-6)
