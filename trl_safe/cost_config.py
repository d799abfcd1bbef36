"""Configuration of `CostTrainer`: TRL's `RewardConfig` plus the cost model's loss settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import RewardConfig

from trl_safe.checks import check_finite_fields
from trl_safe.config_defaults import HardwareDefaultsMixin


@dataclass
class CostConfig(HardwareDefaultsMixin, RewardConfig):
    r"""
    Configuration class for the [`CostTrainer`], the cost model C of Safe RLHF.

    Everything in TRL's [`~trl.RewardConfig`] applies (model loading, `max_length`, `pad_to_multiple_of`, PEFT,
    precision, ...); only the parameters specific to the cost model are listed here. Unlike TRL's, `bf16` defaults to
    what the hardware supports, so the defaults run on a CPU (`trl_safe.config_defaults`). The loss is

        L = -mean log σ(C(rejected) - C(chosen))                                  (ranking: chosen is the safer)
            - mean[ log σ(s_chosen·C(chosen)) + log σ(s_rejected·C(rejected)) ]   (sign: s = +1 unsafe, -1 safe)
            + regularization · mean(C²)

    Parameters:
        regularization (`float`, *optional*, defaults to `0.001`):
            Coefficient of the L2 penalty `mean(C²)` on the costs of both responses, as in the reference
            implementation (safe-rlhf's `--regularization`). It keeps the costs from drifting to large magnitudes
            once the pairs are separated. `0` disables it.
        sign_loss_coefficient (`float`, *optional*, defaults to `1.0`):
            Weight of the sign (classification) term. The paper uses `1.0`; it is what makes the cost's sign
            meaningful (C > 0 ⇔ unsafe), which the Lagrangian's constraint relies on. `0` trains a plain
            Bradley-Terry preference model on the harmlessness pairs, whose zero point is arbitrary.

    `center_rewards_coefficient` (inherited) must stay `None`: centring the scores would fight the sign term, which
    pins the safe/unsafe boundary at C = 0.
    """

    regularization: float = field(
        default=0.001,
        metadata={"help": "Coefficient of the L2 penalty mean(C^2) on both responses' costs. 0 disables it."},
    )
    sign_loss_coefficient: float = field(
        default=1.0,
        metadata={
            "help": "Weight of the sign term -[log σ(s_chosen·C(chosen)) + log σ(s_rejected·C(rejected))], which "
            "places the safe/unsafe boundary at C = 0 (s = +1 unsafe, -1 safe)."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        check_finite_fields(self, ("regularization", "sign_loss_coefficient"))
        if self.regularization < 0:
            raise ValueError(f"`regularization` must be >= 0, got {self.regularization}.")
        if self.sign_loss_coefficient < 0:
            raise ValueError(f"`sign_loss_coefficient` must be >= 0, got {self.sign_loss_coefficient}.")
        if self.center_rewards_coefficient is not None:
            raise ValueError(
                "`center_rewards_coefficient` is not used by CostTrainer: centring the costs would fight the sign "
                "term, which places the safe/unsafe boundary at C = 0. Leave it unset."
            )
