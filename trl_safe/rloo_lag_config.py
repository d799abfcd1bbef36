"""Configuration of `RLOOLagTrainer`."""

from __future__ import annotations

from dataclasses import dataclass

from trl import RLOOConfig

from trl_safe.config_defaults import HardwareDefaultsMixin
from trl_safe.critic_free import ConstraintSettings


@dataclass
class RLOOLagConfig(HardwareDefaultsMixin, ConstraintSettings, RLOOConfig):
    r"""
    Configuration class for [`RLOOLagTrainer`]: TRL's RLOO with Safe RLHF's Lagrangian constraints, one per cost
    function.

    Everything in TRL's [`~trl.RLOOConfig`] applies, with its defaults. The λ settings are those of
    [`PPOLagConfig`], shared by every constraint; each constraint has its own limit and its own λ_k.

    Parameters:
        cost_limits (`list[float]` or `None`, *optional*, defaults to `None`):
            Bound on the expected cost J_C,k of each cost function, in the order of `cost_funcs`: exactly one per
            cost function. `None`: `0.0` for every cost.
        cost_floors (`list[float]` or `None`, *optional*, defaults to `None`):
            One floor per cost function: each cost is raised to it, C̃_k = max(C_k, floor_k), before the dual step
            and the advantage (and in the column TRL logs), as PPO-Lag's `cost_floor`. `0.0`: an answer already
            rated safe gains nothing by looking safer. Each limit must lie above its floor. `None`: the raw costs
            (the paper's).
    """
