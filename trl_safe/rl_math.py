"""The arithmetic of Safe RLHF as pure functions: the cost model's loss, and PPO and PPO-Lag on token sequences.

Nothing here knows about models, processes or trainers, so each formula can be checked by hand
(tests/test_rl_math.py) and read next to the equations:

    The cost model C (Dai et al. 2024, Eq. 6), on pairs (chosen = safer, rejected) with s = +1 unsafe, -1 safe:
        L_C = -E[log σ(C(rejected) - C(chosen))]                        ranking: the less safe response costs more
              - E[log σ(s_chosen·C(chosen)) + log σ(s_rejected·C(rejected))]   sign: C > 0 ⇔ unsafe
              + regularization·E[C²]                                    (the reference implementation's L2 term)

The PPO functions take `[batch, tokens]` tensors and a `mask` of the same shape that is 1 on the completion tokens
that count (up to and including the EOS) and 0 on padding:

    KL estimators (http://joschu.net/blog/kl-approx.html), r_t = log π_ref(y_t|·) - log π_θ(y_t|·):
        k1_t = -r_t                          (unbiased, can be negative per token)
        k3_t = (e^{r_t} - 1) - r_t           (unbiased, ≥ 0, lower variance)
    GAE (Schulman et al. 2016), with V(s_T) = 0 after the last token:
        δ_t = r_t + γ·V(s_{t+1}) - V(s_t),    Â_t = δ_t + γ·λ_GAE·Â_{t+1},    R̂_t = Â_t + V(s_t)
    PPO-clip (Schulman et al. 2017), ρ_t = π_θ(y_t|·) / π_old(y_t|·):
        L_policy = E_t[ max(-Â_t·ρ_t, -Â_t·clip(ρ_t, 1-ε, 1+ε)) ]
        L_value  = ½·E_t[ max((V_t - R̂_t)², (clip(V_t, V_old_t - ε_v, V_old_t + ε_v) - R̂_t)²) ]
    Safe RLHF's actor advantage (Dai et al. 2024; the reference implementation's normalisation by 1 + λ):
        Â_t = (Â_R,t - λ·Â_C,t) / (1 + λ)

The losses average their per-token terms in one of two ways (`aggregate`): over all unmasked tokens of the batch
("token_mean", TRL's last PPOTrainer: a long completion weighs more), or over each completion's tokens and then over
completions ("sequence_mean", the Safe RLHF reference: every completion weighs the same).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

KLEstimator = Literal["k1", "k3"]
LossAggregation = Literal["token_mean", "sequence_mean"]


def cost_model_loss(
    costs: torch.Tensor, is_safe: torch.Tensor, sign_loss_coefficient: float = 1.0, regularization: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Safe RLHF's cost-model loss L_C on a batch of pairs; also the ranking and sign terms of each pair (for logging).

    Args:
        costs: `[pairs, 2]`, C(chosen) in column 0 and C(rejected) in column 1; chosen is the safer response.
        is_safe: `[pairs, 2]` booleans, each response's safety label.
        sign_loss_coefficient: the weight of the sign term (1 in the paper).
        regularization: the weight of the L2 term on the scores (0: none).

    The ranking term alone is a Bradley-Terry model and fixes the costs only up to a constant; the sign term compares
    every response with a virtual response on the boundary, C(y_0) = 0, which makes C a classifier with threshold 0.
    """
    s = torch.where(is_safe, -1.0, 1.0).to(costs.dtype)  # s = +1 for an unsafe response, -1 for a safe one
    ranking_loss = -F.logsigmoid(costs[:, 1] - costs[:, 0])
    sign_loss = -F.logsigmoid(s * costs).sum(dim=1)
    loss = ranking_loss.mean() + sign_loss_coefficient * sign_loss.mean()
    if regularization > 0:
        loss = loss + regularization * costs.square().mean()
    return loss, ranking_loss, sign_loss


def masked_sum(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Σ values·mask over `dim` (all elements when `dim` is None)."""
    masked = values * mask.to(values.dtype)
    return masked.sum() if dim is None else masked.sum(dim=dim)


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of `values` over the unmasked elements; 0 where nothing is unmasked (never NaN from an empty row)."""
    mask = mask.to(values.dtype)
    count = mask.sum() if dim is None else mask.sum(dim=dim)
    return masked_sum(values, mask, dim) / count.clamp(min=1.0)


def aggregate(
    per_token: torch.Tensor, mask: torch.Tensor, aggregation: LossAggregation = "token_mean"
) -> torch.Tensor:
    """Average per-token loss terms into a scalar: "token_mean" over all unmasked tokens, "sequence_mean" over each
    row's unmasked tokens and then over the rows that have any."""
    if aggregation == "token_mean":
        return masked_mean(per_token, mask)
    if aggregation == "sequence_mean":
        has_tokens = mask.any(dim=-1)
        return masked_mean(per_token, mask, dim=-1)[has_tokens].mean()
    raise ValueError(f"Unknown loss aggregation {aggregation!r}: expected 'token_mean' or 'sequence_mean'.")


def masked_var(values: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of the unmasked elements (Bessel-corrected when `unbiased`).

    Raises:
        ValueError: with fewer than two unmasked elements, where a variance (and whitening) is meaningless.
    """
    count = mask.sum()
    if count < 2:
        raise ValueError(
            f"masked_var needs at least 2 unmasked values, got {int(count)}: whitening over a single token is "
            "undefined. Use a larger rollout batch or turn whitening off."
        )
    centered = values - masked_mean(values, mask)
    variance = masked_mean(centered**2, mask)
    if unbiased:
        variance = variance * count / (count - 1)
    return variance


def masked_whiten(
    values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8
) -> torch.Tensor:
    """(x - mean) / std over the unmasked elements; masked elements are set to 0.

    Args:
        shift_mean: when False the mean is added back (only the scale is normalised), as is usual for rewards.
    """
    mean, variance = masked_mean(values, mask), masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(variance + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask.to(values.dtype)


def selective_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log π(y_t | y_<t, x) of the chosen tokens, `[batch, tokens]`, from logits `[batch, tokens, vocab]`.

    `logits[:, t]` must be the model's prediction for `tokens[:, t]` (the caller shifts by one position). Computed as
    logit - logsumexp(logits), which never materialises the full `[batch, tokens, vocab]` log-softmax.
    """
    logits = logits.float()
    chosen = torch.gather(logits, dim=-1, index=tokens.unsqueeze(-1)).squeeze(-1)
    return chosen - torch.logsumexp(logits, dim=-1)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """H(π(·|y_<t, x)) = logsumexp(l) - Σ softmax(l)·l at every position, `[batch, tokens]`."""
    logits = logits.float()
    probs = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (probs * logits).sum(dim=-1)


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: KLEstimator = "k1") -> torch.Tensor:
    """Per-token estimate of KL(π_θ ‖ π_ref) from the log-probabilities of the sampled tokens.

    With r = log π_ref - log π_θ: k1 = -r and k3 = (e^r - 1) - r. Both are unbiased over samples from π_θ; k3 is
    never negative and has lower variance, k1 is the estimator of the Safe RLHF reference and of Ziegler et al.
    """
    log_ratio = ref_logprobs - logprobs
    if estimator == "k1":
        return -log_ratio
    if estimator == "k3":
        return torch.expm1(log_ratio) - log_ratio
    raise ValueError(f"Unknown KL estimator {estimator!r}: expected 'k1' or 'k3'.")


def add_at_last_token(per_token: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Add the sequence-level `scores` `[batch]` at the last unmasked token of each row of `per_token`.

    This is where the reward (and cost) model's score enters the per-token return: at the EOS closing the response,
    or at the last generated token of a truncated one. Rows whose mask is all zero are left unchanged.
    """
    positions = torch.arange(mask.shape[-1], device=mask.device)
    last = (positions * mask.long()).argmax(dim=-1)
    has_tokens = mask.any(dim=-1)
    shaped = per_token.clone()
    rows = torch.arange(per_token.shape[0], device=per_token.device)
    shaped[rows, last] += torch.where(has_tokens, scores.to(per_token.dtype), torch.zeros_like(shaped[rows, last]))
    return shaped


def generalized_advantage_estimation(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE advantages Â and returns R̂ = Â + V for one reward stream, both `[batch, tokens]` and 0 on padding.

    Values and rewards are masked first, so V(s_{t+1}) = 0 after the last token: the episode ends with the response
    (the terminal state has no value), whether the response ended with EOS or was truncated.
    """
    mask = mask.to(values.dtype)
    rewards, values = rewards * mask, values * mask
    num_tokens = rewards.shape[-1]
    advantage = torch.zeros_like(rewards[:, 0])
    advantages_reversed = []
    for t in reversed(range(num_tokens)):
        next_value = values[:, t + 1] if t + 1 < num_tokens else torch.zeros_like(values[:, t])
        delta = rewards[:, t] + gamma * next_value - values[:, t]  # δ_t = r_t + γ·V(s_{t+1}) - V(s_t)
        advantage = delta + gamma * lam * advantage  # Â_t = δ_t + γ·λ·Â_{t+1}
        advantages_reversed.append(advantage)
    advantages = torch.stack(advantages_reversed[::-1], dim=1) * mask
    returns = (advantages + values) * mask  # R̂_t = Â_t + V(s_t)
    return advantages, returns


def clipped_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    cliprange: float,
    aggregation: LossAggregation = "token_mean",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO-clip surrogate loss, averaged over the unmasked tokens as `aggregation` says.

    Returns:
        `(loss, ratio, clipped)`: the scalar loss, the per-token ratio ρ_t and a per-token boolean that is True
        where the clipped term is the active (larger) one, for the `policy/clipfrac` metric.
    """
    ratio = torch.exp(logprobs - old_logprobs)  # ρ_t = π_θ / π_old
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = aggregate(torch.maximum(unclipped, clipped), mask, aggregation)
    return loss, ratio, clipped > unclipped


def clipped_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    cliprange_value: float,
    aggregation: LossAggregation = "token_mean",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped value loss ½·max((V - R̂)², (V_clipped - R̂)²), averaged over the unmasked tokens as `aggregation` says.

    Returns:
        `(loss, clipped)`: the scalar loss and a per-token boolean, True where the clipped term is the larger one.
    """
    values_clipped = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    unclipped = (values - returns) ** 2
    clipped = (values_clipped - returns) ** 2
    loss = 0.5 * aggregate(torch.maximum(unclipped, clipped), mask, aggregation)
    return loss, clipped > unclipped


def lagrangian_advantages(
    reward_advantages: torch.Tensor, cost_advantages: torch.Tensor, lagrange_multiplier: float
) -> torch.Tensor:
    """Safe RLHF's actor advantage (Â_R - λ·Â_C) / (1 + λ).

    The policy-gradient of the Lagrangian J_R - λ·J_C uses Â_R - λ·Â_C; dividing by 1 + λ (as the reference
    implementation does) keeps the advantage on the scale of Â_R whatever λ is, so a growing λ shifts the balance
    between reward and cost instead of inflating the step size.
    """
    if lagrange_multiplier < 0:
        raise ValueError(f"The Lagrange multiplier must be >= 0, got {lagrange_multiplier}.")
    return (reward_advantages - lagrange_multiplier * cost_advantages) / (1.0 + lagrange_multiplier)
