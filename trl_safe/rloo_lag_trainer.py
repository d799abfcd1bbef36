"""RLOO-Lag: TRL's `RLOOTrainer` with Safe RLHF's Lagrangian constraints, one λ_k per cost function, no critic.

RLOO's advantage is the completion's reward minus the mean reward of the other completions of its prompt (the
leave-one-out baseline), with the sequence-level KL penalty inside the reward and no per-group std. The baseline is
linear in the reward, so weighting each cost column -λ_k in TRL's `reward_weights` gives exactly the combination of
the per-objective advantages,

    A = (R − β·KL − Σ_k λ_k·C_k) − baseline_LOO  =  A_R − Σ_k λ_k·A_C,k,

PPO-Lag's numerator Â_R − λ·Â_C with leave-one-out baselines in place of the two critics. Without a group std
there is nothing that "summing before normalising" could distort (the concern of arXiv 2602.05863 for GRPO);
`normalize_advantages=True` divides every completion by the same batch std, the role of PPO-Lag's 1/(1 + λ).
How the costs, λ and checkpoints hook into TRL: `trl_safe.critic_free`.
"""

from __future__ import annotations

import textwrap
from typing import Any

from trl import RLOOTrainer

from trl_safe.critic_free import CostFunc, LagrangianRewardsMixin
from trl_safe.model_card import SAFE_RLHF_CITATION, SAFE_RLHF_PAPER
from trl_safe.rloo_lag_config import RLOOLagConfig


class RLOOLagTrainer(LagrangianRewardsMixin, RLOOTrainer):
    """TRL's [`~trl.RLOOTrainer`] maximising the rewards subject to a bound on the expected value of each cost.

    Takes the arguments of [`~trl.RLOOTrainer`], plus `cost_funcs` and `cost_processing_classes` as in
    [`GRPOLagTrainer`].
    """

    _tag_names = ["trl", "rloo", "trl-safe", "safe-rlhf", "rloo-lag"]
    _name = "RLOO-Lag"
    _paper = {
        "title": SAFE_RLHF_PAPER["title"],
        "id": SAFE_RLHF_PAPER["id"],
        "citation": textwrap.dedent(SAFE_RLHF_CITATION) + "\n" + RLOOTrainer._paper["citation"],
    }
    _config_class = RLOOLagConfig

    def __init__(self, *args: Any, cost_funcs: CostFunc | list[CostFunc] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, cost_funcs=cost_funcs, **kwargs)
