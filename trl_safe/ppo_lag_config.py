"""Configuration of `PPOLagTrainer`."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

from trl_safe.lagrange import (  # noqa: F401
    LAGRANGE_MULTIPLIER_ARGS,
    LagrangeMultiplier,
    LagrangeSettings,
    check_limit_above_floor,
)
from trl_safe.ppo_config import PPOConfig

# Every argument of `LagrangeMultiplier` is a field of `PPOLagConfig` under the same name (`LagrangeSettings` holds
# all but `cost_limit`); `LAGRANGE_MULTIPLIER_ARGS` is re-exported from `trl_safe.lagrange` for older imports.
_RENAMED = {
    "episode_cost_window_size": "window_size",
    "lambda_update_delay_steps": "update_delay_steps",
    "lambda_update_rule": "update_rule",
}


@dataclass
class PPOLagConfig(LagrangeSettings, PPOConfig):
    r"""
    Configuration class for [`PPOLagTrainer`]: Safe RLHF's Lagrangian PPO (Dai et al. 2024).

    Everything in [`PPOConfig`] applies. Where the Safe RLHF reference implementation (PKU-Alignment/safe-rlhf,
    `ppo_lag`) has a different default, this class uses the reference's: `kl_coef=0.01` (its published
    `scripts/ppo-lag.sh`, full ±β on each stream since its PR #173), `cliprange_value=5.0`, `cliprange_score=50.0`,
    `whiten_advantages=False`, `loss_aggregation="sequence_mean"`, `num_ppo_epochs=1` and `learning_rate=1e-5`. The
    settings where it still differs from the reference, and the reference's whole recipe as a config file, are in
    `docs/reference_recipe.md`.

    Parameters:
        > Constraint J_C = E[C(y, x)] ≤ cost_limit and its Lagrange multiplier λ

        cost_limit (`float`, *optional*, defaults to `0.0`):
            Bound on the expected cost J_C. The paper writes the constraint as E[C] + d ≤ 0, so `cost_limit = -d`;
            the reference implementation calls it `threshold`. With a cost model trained with Safe RLHF's
            classification term (C > 0 unsafe, C < 0 safe), `0.0` asks for a policy that is safe on average.
        lambda_init (`float`, *optional*, defaults to `1.0`):
            λ at the start of training.
        lambda_lr (`float`, *optional*, defaults to `0.1`):
            Learning rate of λ's update (`"sgd"`: a step on log λ of `lambda_lr · (J_C - cost_limit) · λ`).
            `0` keeps λ fixed at `lambda_init`: the paper's reward-shaping baseline.
        lambda_max (`float` or `None`, *optional*, defaults to `5.0`):
            Upper bound on λ; `None` for none.
        update_delay_steps (`int`, *optional*, defaults to `0`):
            λ stays at `lambda_init` until this many optimizer steps (`global_step`) have passed; episode costs
            are still collected meanwhile.
        window_size (`int`, *optional*, defaults to `128`):
            J_C is the mean cost of this many most recent episodes (completions of all processes).
        update_rule (`str`, *optional*, defaults to `"sgd"`):
            `"sgd"` (the reference: gradient ascent on log λ) or `"pid"` (the PID Lagrangian of Stooke et al.
            2020, which damps λ's oscillation).
        pid_kp (`float`, *optional*, defaults to `1.0`):
            Proportional gain of the `"pid"` rule.
        pid_ki (`float`, *optional*, defaults to `0.1`):
            Integral gain of the `"pid"` rule.
        pid_kd (`float`, *optional*, defaults to `0.0`):
            Derivative gain of the `"pid"` rule.
        pid_p_ema_alpha (`float`, *optional*, defaults to `0.0`):
            EMA smoothing of the violation in the proportional term (`"pid"`); 0 = none.
        pid_d_ema_alpha (`float`, *optional*, defaults to `0.0`):
            EMA smoothing of J_C in the derivative term (`"pid"`); 0 = none.

        > Cost floor (a trl-safe option; off by default, as in the paper)

        cost_floor (`float` or `None`, *optional*, defaults to `None`):
            Raise every cost below this value to it, C̃ = max(C, cost_floor), before the constraint (J_C = E[C̃])
            and the cost stream see it. `0.0`: an answer the cost model already rates safe (C ≤ 0) gains nothing
            by looking "safer", so λ pushes only on answers rated unsafe. Without a floor the constraint is met on
            average over all prompts, and a policy can pay for its unsafe answers by lowering the cost of answers
            that were safe already. (On the demo it did not stop harmless requests being declined: they were
            declined by generalisation from the harmful ones; `docs/lagrange.md#cost-floor`.) `cost_limit` must lie
            above the floor. `None`: the raw cost (the paper's and the reference's).
    """

    # Defaults of the Safe RLHF reference implementation that differ from PPOConfig's.
    learning_rate: float = field(
        default=1e-5, metadata={"help": "Initial learning rate of AdamW, shared by the policy and the critic."}
    )
    num_ppo_epochs: int = field(default=1, metadata={"help": "Passes over each rollout."})
    kl_coef: float = field(
        default=0.01,
        metadata={"help": "β, the per-token KL penalty on each stream (−β·KL reward, +β·KL cost; the reference's)."},
    )
    cliprange_value: float = field(default=5.0, metadata={"help": "Clip range of the value losses."})
    cliprange_score: float | None = field(
        default=50.0, metadata={"help": "Clamp the per-token rewards and costs to [-c, c]. None: no clamping."}
    )
    whiten_advantages: bool = field(
        default=False,
        metadata={"help": "Normalise the actor's advantages over each rollout (the reference does not)."},
    )
    loss_aggregation: str = field(
        default="sequence_mean",
        metadata={
            "help": "Average the per-token loss terms over all tokens, or per completion then over completions.",
            "choices": ["token_mean", "sequence_mean"],
        },
    )

    # Constraint (λ's settings come from `LagrangeSettings`)
    cost_limit: float = field(
        default=0.0,
        metadata={"help": "Bound on the expected cost J_C (the paper's -d, the reference's `threshold`)."},
    )

    cost_floor: float | None = field(
        default=None,
        metadata={
            "help": "Raise costs below this to it, max(C, cost_floor), before the constraint and the cost stream "
            "(0: answers rated safe gain nothing by looking safer). None: the raw cost (the paper's)."
        },
    )

    # Names before 0.2, kept one release so that old command lines and configs still run (with a warning).
    episode_cost_window_size: int | None = field(default=None, metadata={"help": "Deprecated: use --window_size."})
    lambda_update_delay_steps: int | None = field(
        default=None, metadata={"help": "Deprecated: use --update_delay_steps."}
    )
    lambda_update_rule: str | None = field(default=None, metadata={"help": "Deprecated: use --update_rule."})

    def __post_init__(self) -> None:
        super().__post_init__()
        for old, new in _RENAMED.items():
            value = getattr(self, old)
            if value is not None:
                message = f"PPOLagConfig: `{old}` is now `{new}` (the multiplier's name)."
                warnings.warn(message, FutureWarning, stacklevel=3)
                setattr(self, new, value)
                setattr(self, old, None)
        check_limit_above_floor(self.cost_limit, self.cost_floor, "cost_limit", "cost_floor")
        self.make_lagrange_multiplier()  # validates the λ settings now, with the multiplier's own error messages

    def make_lagrange_multiplier(self) -> LagrangeMultiplier:
        """A fresh `LagrangeMultiplier` with these settings."""
        return LagrangeMultiplier(**self.lagrange_multiplier_kwargs())

    def lagrange_multiplier_kwargs(self) -> dict[str, Any]:
        """The multiplier's arguments: the fields of this config with the same names."""
        return {"cost_limit": self.cost_limit, **self.lagrange_settings()}
