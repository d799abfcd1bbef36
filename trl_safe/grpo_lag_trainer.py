"""GRPO-Lag: TRL's `GRPOTrainer` with Safe RLHF's Lagrangian constraints, one λ_k per cost function, no critic.

    max_θ E[R]   subject to   E[C_k] ≤ cost_limit_k   for every cost function k

GRPO samples `num_generations` completions per prompt and z-scores each objective within that group; the advantage
combines the normalised objectives with the current multipliers,

    A = norm_batch( Σ_i w_i·Z_R,i − Σ_k λ_k·Z_C,k ),    Z_X = (X − mean_group(X)) / (std_group(X) + 1e-4),

normalise first, then combine (arXiv 2602.05863: summing R − λ·C before the group normalisation distorts what λ
means). This is TRL's `multi_objective_aggregation="normalize_then_sum"` with the cost columns weighted -λ_k; the
batch normalisation divides every completion by the same positive number, the role of PPO-Lag's 1/(1 + λ) in
Â = (Â_R − λ·Â_C)/(1 + λ). How the costs, λ and checkpoints hook into TRL: `trl_safe.critic_free`.
"""

from __future__ import annotations

import logging
import textwrap
from typing import Any

from trl import GRPOTrainer

from trl_safe.critic_free import CostFunc, LagrangianRewardsMixin
from trl_safe.grpo_lag_config import GRPOLagConfig
from trl_safe.model_card import SAFE_RLHF_CITATION, SAFE_RLHF_PAPER

logger = logging.getLogger(__name__)


class GRPOLagTrainer(LagrangianRewardsMixin, GRPOTrainer):
    """TRL's [`~trl.GRPOTrainer`] maximising the rewards subject to a bound on the expected value of each cost.

    Example:

    ```python
    from datasets import load_dataset
    from trl_safe import GRPOLagConfig, GRPOLagTrainer

    def too_long(completions, **kwargs):
        return [float(len(c) > 200) for c in completions]

    trainer = GRPOLagTrainer(
        model="Qwen/Qwen2.5-0.5B-Instruct",
        reward_funcs="path/to/reward_model",
        cost_funcs=["path/to/cost_model", too_long],  # a model (e.g. from CostTrainer) and a function
        args=GRPOLagConfig(output_dir="grpo-lag", cost_limits=[0.0, 0.1]),
        train_dataset=load_dataset("trl-lib/ultrafeedback-prompt", split="train"),
    )
    trainer.train()
    ```

    Args:
        model, reward_funcs, args, train_dataset, eval_dataset, processing_class, reward_processing_classes,
        callbacks, optimizers, and any further keyword (`peft_config`, `tools`, `rollout_func`, ...): as in
            [`~trl.GRPOTrainer`].
        cost_funcs: one or more costs, higher = worse, each a model id, a sequence-classification model (e.g.
            trained with `CostTrainer`; read at the token it was trained on) or a function
            `f(prompts, completions, **kwargs) -> list[float]` called like a reward function. One constraint per
            cost, in the order of `args.cost_limits`. None: GRPO-Lag is GRPO.
        cost_processing_classes: the cost models' tokenizers, one per cost function (None: loaded like a reward
            model's).
    """

    _tag_names = ["trl", "grpo", "trl-safe", "safe-rlhf", "grpo-lag"]
    _name = "GRPO-Lag"
    _paper = {
        "title": SAFE_RLHF_PAPER["title"],
        "id": SAFE_RLHF_PAPER["id"],
        "citation": textwrap.dedent(SAFE_RLHF_CITATION) + "\n" + GRPOTrainer._paper["citation"],
    }
    _config_class = GRPOLagConfig

    def __init__(self, *args: Any, cost_funcs: CostFunc | list[CostFunc] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, cost_funcs=cost_funcs, **kwargs)
        if self.multi_objective_aggregation == "auto":
            self.multi_objective_aggregation = "normalize_then_sum" if self.lagranges else "sum_then_normalize"
        elif self.multi_objective_aggregation == "sum_then_normalize" and self.lagranges:
            logger.warning(
                "multi_objective_aggregation='sum_then_normalize' sums R - Σ λ_k·C_k before the group normalisation, "
                "which distorts what λ means (arXiv 2602.05863); 'normalize_then_sum' (the default with costs) "
                "normalises each objective first."
            )
