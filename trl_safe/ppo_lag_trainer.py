"""Safe RLHF's Lagrangian PPO (PPO-Lag), as hooks on `PPOTrainer`.

The constrained problem (Dai et al. 2024, "Safe RLHF")

    max_θ J_R(θ) = E[R(y,x)]   subject to   J_C(θ) = E[C(y,x)] ≤ cost_limit      (paper: E[C] + d ≤ 0, cost_limit = -d)

is solved as min_θ max_{λ≥0} -J_R(θ) + λ·(J_C(θ) - cost_limit), alternating a PPO step on θ with a dual step on λ.
What PPO-Lag changes in the PPO loop, hook by hook (every piece follows the reference implementation,
PKU-Alignment/safe-rlhf `ppo_lag`):

- `value_head_names = ("reward", "cost")`: one critic backbone with two value heads (column 0 V_R, column 1 V_C),
  so the cost critic costs one extra linear layer rather than a sixth model;
- `score_sources={"reward": ..., "cost": ...}`: the cost C(y,x) (model or function) is scored next to the reward, at
  the last token;
- `_constrained_costs`: the costs the constraint sees: C, or max(C, cost_floor) with the (non-paper) `cost_floor`
  option; `_dual_step` and the cost stream both read them, the logged `objective/costs` stays the raw C;
- `_dual_step`: the costs of every process are gathered, then every process runs the same
  `LagrangeMultiplier.update`, so λ is identical everywhere without a broadcast;
- `_per_token_rewards`: reward stream r_t = -β·KL_t (+R at the last token), cost stream c_t = +β·KL_t (+C at the last
  token): drifting from the reference is penalised on both streams. Because GAE is linear, the actor's advantage
  below then carries exactly -β·KL whatever λ is;
- `_actor_advantages`: Â = (Â_R - λ·Â_C) / (1 + λ), with the λ of this rollout's dual step;
- `_save_extra_state` / `_load_extra_state`: λ's state (log λ, the window of episode costs) is checkpointed in
  `lagrange_multiplier.json`, so `resume_from_checkpoint` continues the exact λ trajectory.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

from trl_safe.checks import resolve_reward_source
from trl_safe.lagrange import lagrange_logs, load_lagrange_state, save_lagrange_state
from trl_safe.ppo.score_streams import ScoreSource
from trl_safe.ppo.trainer import PPOTrainer
from trl_safe.ppo_lag_config import PPOLagConfig
from trl_safe.rl_math import add_at_last_token, lagrangian_advantages

# The multiplier's state inside a checkpoint directory.
LAGRANGE_STATE_NAME = "lagrange_multiplier.json"


class PPOLagTrainer(PPOTrainer):
    """Safe RLHF's PPO-Lag: PPO on a reward R subject to a bound on the expected cost C, with an adaptive Lagrange
    multiplier λ.

    Example:

    ```python
    from trl_safe import PPOLagConfig, PPOLagTrainer
    from trl_safe.data import load_preference_data, to_prompts

    prompts = to_prompts(load_preference_data("PKU-Alignment/PKU-SafeRLHF", split="train"), conversational=True)
    trainer = PPOLagTrainer(
        model="path/to/sft_model",
        reward_model="path/to/reward_model",
        cost_model="path/to/cost_model",
        args=PPOLagConfig(output_dir="ppo-lag", cost_limit=0.0),
        train_dataset=prompts,
    )
    trainer.train()
    ```

    Args:
        model, reward_model, args, train_dataset, eval_dataset, processing_class, ref_model, reward_processing_class,
        callbacks, optimizers, peft_config, value_peft_config, ptx_dataset: as in [`PPOTrainer`].
        cost_model: the cost C(y, x), higher = more harmful: a sequence-classification model with one label (path
            or instance; e.g. trained with `CostTrainer`, C > 0 unsafe), or a function
            `f(prompts, completions, **kwargs) -> list[float]`.
        value_model: the critic, with two outputs (column 0: reward value V_R, column 1: cost value V_C); a model
            with one output gets a second, zero-initialised column. Default: a copy of the reward model whose head
            row becomes the reward column and whose cost column starts at zero (V_C = 0: "on the safe/unsafe
            boundary" for a Safe RLHF cost model); if the reward is a function, a copy of the cost model (its head
            row becomes the cost column, the reward column starts at zero); if both are functions, the policy's
            backbone with a zero head.
        cost_processing_class: the cost model's tokenizer when it differs from the policy's.
    """

    _tag_names = ["trl-safe", "ppo-lag", "safe-rlhf"]
    _name = "PPO-Lag"
    _config_class = PPOLagConfig
    value_head_names = ("reward", "cost")

    def __init__(
        self,
        model: str | PreTrainedModel,
        reward_model: ScoreSource | None = None,
        cost_model: ScoreSource | None = None,
        args: PPOLagConfig | None = None,
        train_dataset: Dataset | None = None,
        eval_dataset: Dataset | dict[str, Dataset] | None = None,
        processing_class: PreTrainedTokenizerBase | None = None,
        ref_model: str | PreTrainedModel | None = None,
        value_model: str | PreTrainedModel | None = None,
        reward_processing_class: PreTrainedTokenizerBase | None = None,
        cost_processing_class: PreTrainedTokenizerBase | None = None,
        callbacks: list[TrainerCallback] | None = None,
        optimizers: tuple[torch.optim.Optimizer | None, torch.optim.lr_scheduler.LambdaLR | None] = (None, None),
        peft_config: Any | None = None,
        value_peft_config: Any | None = None,
        ptx_dataset: Dataset | None = None,
        reward_funcs: ScoreSource | list[ScoreSource] | None = None,
    ) -> None:
        reward_model = resolve_reward_source(reward_model, reward_funcs, type(self).__name__)  # GRPO's name works
        super().__init__(
            model=model,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            ref_model=ref_model,
            value_model=value_model,
            callbacks=callbacks,
            optimizers=optimizers,
            peft_config=peft_config,
            value_peft_config=value_peft_config,
            ptx_dataset=ptx_dataset,
            score_sources={"reward": reward_model, "cost": cost_model},
            score_processing_classes={"reward": reward_processing_class, "cost": cost_processing_class},
        )
        self.lagrange = self.args.make_lagrange_multiplier()

    # ------------------------------------------------------------------------------------------------------------
    # The algorithm's hooks
    # ------------------------------------------------------------------------------------------------------------

    def _constrained_costs(self, scores: dict[str, torch.Tensor]) -> torch.Tensor:
        """The costs the constraint and the cost stream see: C, or C̃ = max(C, cost_floor) with a floor."""
        if self.args.cost_floor is None:
            return scores["cost"]
        return scores["cost"].clamp(min=self.args.cost_floor)

    def _dual_step(self, scores: dict[str, torch.Tensor]) -> None:
        """Dual step: λ ← update(λ, J_C - cost_limit), J_C the mean of the latest episode costs of all processes."""
        episode_costs = self.accelerator.gather(self._constrained_costs(scores))
        self.lagrange.update(episode_costs, step=self.state.global_step)

    def _per_token_rewards(
        self, scores: dict[str, torch.Tensor], kl: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Reward stream r_t = -β·KL_t (+R at the last token); cost stream c_t = +β·KL_t (+C, or C̃ with a floor, at
        the last token)."""
        reward_stream = super()._per_token_rewards(scores, kl, mask)[..., 0]
        cost_stream = add_at_last_token(self.args.kl_coef * kl, self._constrained_costs(scores), mask)
        return torch.stack([reward_stream, cost_stream], dim=-1)

    def _actor_advantages(self, stream_advantages: torch.Tensor) -> torch.Tensor:
        """Â = (Â_R - λ·Â_C) / (1 + λ)."""
        return lagrangian_advantages(stream_advantages[..., 0], stream_advantages[..., 1], self.lagrange.value)

    # ------------------------------------------------------------------------------------------------------------
    # Metrics, checkpoints, model card
    # ------------------------------------------------------------------------------------------------------------

    def _record_score_metrics(self, scores: dict[str, torch.Tensor], mode: str) -> None:
        super()._record_score_metrics(scores, mode)
        self._record_mean(mode, "objective/costs", scores["cost"])
        self._record_mean(mode, "objective/unsafe_ratio", (scores["cost"] > 0).float())

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # λ, J_C and the PID terms are state, not averages: every log shows all of the multiplier's current values
        # (J_C and what depends on it only once episode costs have been recorded).
        if self.model.training:
            logs.update(lagrange_logs(self.lagrange))
        super().log(logs, start_time)

    def _save_extra_state(self, checkpoint_dir: str) -> None:
        save_lagrange_state(checkpoint_dir, LAGRANGE_STATE_NAME, self.lagrange.state_dict())

    def _load_extra_state(self, checkpoint_dir: str) -> None:
        state = load_lagrange_state(checkpoint_dir, LAGRANGE_STATE_NAME, type(self).__name__)
        self.lagrange.load_state_dict(state, source=os.path.join(checkpoint_dir, LAGRANGE_STATE_NAME))

    def _model_card_context(self) -> dict[str, Any]:
        context = super()._model_card_context()
        episode_cost = self.lagrange.episode_cost
        context["hyperparameters"].update(
            {name: getattr(self.args, name) for name in ("lambda_lr", "lambda_max", "window_size", "cost_floor")}
        )
        context["constraint"] = {
            "cost_limit": self.lagrange.cost_limit,
            "update_rule": self.lagrange.update_rule,
            "lambda_init": self.lagrange.lambda_init,
            "final_lambda": self.lagrange.value,
            "episode_cost": None if math.isnan(episode_cost) else episode_cost,
            "window": self.lagrange.window_size,
        }
        return context
