"""Configuration of `GRPOLagTrainer`."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig

from trl_safe.config_defaults import HardwareDefaultsMixin
from trl_safe.critic_free import ConstraintSettings


@dataclass
class GRPOLagConfig(HardwareDefaultsMixin, ConstraintSettings, GRPOConfig):
    r"""
    Configuration class for [`GRPOLagTrainer`]: TRL's GRPO with Safe RLHF's Lagrangian constraints, one per cost
    function.

    Everything in TRL's [`~trl.GRPOConfig`] applies, with its defaults. The λ settings are those of
    [`PPOLagConfig`] (`lambda_init`, `lambda_lr`, `lambda_max`, `update_delay_steps`,
    `window_size`, `update_rule` and the `pid_*` gains), shared by every constraint; each
    constraint has its own limit and its own λ_k.

    Parameters:
        cost_limits (`list[float]` or `None`, *optional*, defaults to `None`):
            Bound on the expected cost J_C,k of each cost function, in the order of `cost_funcs`: exactly one per
            cost function. `None`: `0.0` for every cost (a Safe RLHF cost model's safe/unsafe boundary).
        cost_floors (`list[float]` or `None`, *optional*, defaults to `None`):
            One floor per cost function: each cost is raised to it, C̃_k = max(C_k, floor_k), before the dual step
            and the advantage (and in the column TRL logs), as PPO-Lag's `cost_floor`. `0.0`: an answer already
            rated safe gains nothing by looking safer. Each limit must lie above its floor. `None`: the raw costs
            (the paper's).
        multi_objective_aggregation (`str`, *optional*, defaults to `"auto"`):
            How the reward and cost columns are combined into the advantage (TRL's option). `"auto"`:
            `"normalize_then_sum"` when there are cost functions (each objective z-scored within its group, then
            A = Z_R − Σ_k λ_k·Z_C,k, then normalised over the batch), and GRPO's default `"sum_then_normalize"`
            when there are none, so that without costs GRPO-Lag trains exactly like GRPO. `"sum_then_normalize"`
            with costs sums R − Σ_k λ_k·C_k *before* the group normalisation: the variant that arXiv 2602.05863
            shows distorts what λ means; available for comparison only.
    """

    multi_objective_aggregation: str = field(
        default="auto",
        metadata={
            "help": "'auto': 'normalize_then_sum' with cost functions (A = Z_R − Σ λ_k·Z_C,k), GRPO's "
            "'sum_then_normalize' without. Or either of TRL's values.",
            "choices": ["auto", "normalize_then_sum", "sum_then_normalize"],
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.multi_objective_aggregation not in ("auto", "normalize_then_sum", "sum_then_normalize"):
            raise ValueError(
                "multi_objective_aggregation must be 'auto', 'normalize_then_sum' or 'sum_then_normalize', got "
                f"{self.multi_objective_aggregation!r}"
            )
