"""Critic-free Safe RLHF: the constraint machinery shared by `GRPOLagTrainer` and `RLOOLagTrainer`.

TRL's `GRPOTrainer` and `RLOOTrainer` already combine several reward functions with `reward_weights`, and compute
the advantage of each completion from the other completions of its prompt, without a critic. A constraint
E[C_k] ≤ limit_k is added to that machinery, not beside it:

- each cost C_k becomes one more reward column, scored by TRL's own `_calculate_rewards` (same extra dataset columns,
  same `completion_ids`, same profiling and logging), its output checked by `CostFunction`; a cost *model* is loaded
  and prepared (DDP, DeepSpeed, FSDP) by TRL like a reward model, then read at the token it was trained on
  (`trl_safe.scoring`);
- the weight of cost column k is -λ_k, so TRL's own aggregation forms the Lagrangian advantage;
- once per generation batch, right after the scores of every process have been gathered (TRL gathers them before it
  normalises them per group), every process takes the same dual step on the same costs: every λ_k is identical on
  every rank without a broadcast;
- λ's state is written next to each checkpoint (`lagrange_multipliers.json`) and read back on resume.

The advantage, per algorithm (docs/grpo_lag.md):

    PPO-Lag    Â = (Â_R − λ·Â_C) / (1 + λ)                 Â_R, Â_C: GAE with a reward and a cost critic
    GRPO-Lag   A = norm_batch(Z_R − Σ_k λ_k·Z_C,k)          Z: each objective z-scored within its prompt's group
    RLOO-Lag   A = (R − β·KL − Σ_k λ_k·C_k) − baseline_LOO = A_R − Σ_k λ_k·A_C,k     (RLOO's leave-one-out baseline)

In each, the completion-independent scale (1/(1 + λ), the batch std of GRPO's `normalize_then_sum`, RLOO's optional
`normalize_advantages`) keeps the step size bounded as λ grows, while the ratio of the objectives is λ.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase
from trl.trainer.utils import is_async_callable

from trl_safe.checkpoints import current_checkpoint_dir
from trl_safe.lagrange import (
    LagrangeMultiplier,
    LagrangeSettings,
    check_limit_above_floor,
    lagrange_logs,
    load_lagrange_state,
    save_lagrange_state,
)
from trl_safe.scoring import Scorer

logger = logging.getLogger(__name__)

# The multipliers' state inside a checkpoint directory.
LAGRANGE_STATES_NAME = "lagrange_multipliers.json"

CostFunc = str | nn.Module | Callable[..., Sequence[float]]


@dataclass
class ConstraintSettings(LagrangeSettings):
    """The constraints of a critic-free Lagrangian trainer: one limit per cost function, λ's settings shared.

    A mixin listed before TRL's config class (`class GRPOLagConfig(ConstraintSettings, GRPOConfig)`).
    """

    cost_limits: list[float] | None = field(
        default=None,
        metadata={
            "help": "Bound on the expected cost of each cost function, in the order of `cost_funcs` (one per cost "
            "function). None: 0.0 for every cost (a Safe RLHF cost model's safe/unsafe boundary)."
        },
    )

    cost_floors: list[float] | None = field(
        default=None,
        metadata={
            "help": "Raise each cost below its floor to it, max(C_k, floor_k), before the constraint and the "
            "advantage see it (one per cost function; 0: answers rated safe gain nothing by looking safer). "
            "None: the raw costs (the paper's). Each limit must lie above its floor."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        # Validate λ's settings, the limits and the floors now, with the multiplier's own error messages.
        if self.cost_limits is not None:
            num_costs = len(self.cost_limits)
        else:
            num_costs = len(self.cost_floors) if self.cost_floors is not None else 1
        self.make_lagrange_multipliers(num_costs)
        self.constrained_cost_floors(num_costs)

    def constrained_cost_floors(self, num_costs: int) -> list[float | None]:
        """The floor of each cost function (`None`: its raw cost), checked against the limits.

        Raises:
            ValueError: `cost_floors` does not hold one floor per cost function, or a limit is not above its floor
                (J_C_k = E[max(C_k, floor_k)] is never below the floor, so λ_k would only grow).
        """
        if self.cost_floors is None:
            return [None] * num_costs
        if len(self.cost_floors) != num_costs:
            raise ValueError(
                f"cost_floors has {len(self.cost_floors)} floor(s) {list(self.cost_floors)} for {num_costs} cost "
                "function(s): give exactly one floor per cost function, in the order of `cost_funcs`."
            )
        limits = self.cost_limits if self.cost_limits is not None else [0.0] * num_costs
        for k, (limit, floor) in enumerate(zip(limits, self.cost_floors)):
            check_limit_above_floor(limit, floor, f"cost_limits[{k}]", f"cost_floors[{k}]")
        return list(self.cost_floors)

    def make_lagrange_multipliers(self, num_costs: int) -> list[LagrangeMultiplier]:
        """One fresh `LagrangeMultiplier` per cost function.

        Raises:
            ValueError: `cost_limits` does not hold exactly one limit per cost function.
        """
        limits = self.cost_limits if self.cost_limits is not None else [0.0] * num_costs
        if len(limits) != num_costs:
            raise ValueError(
                f"cost_limits has {len(limits)} limit(s) {list(limits)} for {num_costs} cost function(s): give "
                "exactly one limit per cost function, in the order of `cost_funcs`."
            )
        return [LagrangeMultiplier(cost_limit=limit, **self.lagrange_settings()) for limit in limits]


def checked_costs(values: Any, name: str, completions: Sequence[Any]) -> list[float]:
    """A cost function's output as floats, one per completion; anything else is an error naming the function and
    the completion.

    A reward function may return None for a completion it does not apply to (TRL then ignores it); a cost may not:
    every completion's cost enters J_C, and a skipped one would bias the constraint.
    """
    what = f"The cost function {name!r}"
    if isinstance(values, torch.Tensor):
        values = values.tolist()
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{what} must return a list of floats (one per completion), got {type(values).__name__}.")
    if len(values) != len(completions):
        raise ValueError(
            f"{what} returned {len(values)} costs for {len(completions)} completions: it must return exactly one "
            "cost per completion."
        )
    checked = []
    for index, value in enumerate(values):
        number = math.nan
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        if not math.isfinite(number):
            raise ValueError(
                f"{what} returned {value!r} ({type(value).__name__}) for completion {index} "
                f"({str(completions[index])[:80]!r}): every completion needs a finite cost."
            )
        checked.append(number)
    return checked


class CostFunction:
    """One cost, in the form TRL calls a reward function: `f(prompts, completions, **kwargs) -> list[float]`.

    A model (already loaded and prepared by TRL's trainer) is scored with `trl_safe.scoring.Scorer`, at the token the
    model was trained on; a function is called with everything TRL passes to reward functions (dataset columns,
    `completion_ids`, `trainer_state`, ...). Either way the output is checked by `checked_costs`, then raised to
    `floor` if one is given (`ConstraintSettings.cost_floors`): the floored cost is what TRL logs for the column,
    what the dual step averages and what the advantage weighs.
    """

    def __init__(
        self,
        cost: nn.Module | Callable,
        name: str,
        processing_class: PreTrainedTokenizerBase | None,
        chat_template_kwargs: dict[str, Any] | None = None,
        floor: float | None = None,
    ):
        if isinstance(cost, nn.Module):
            self.scorer: Scorer | None = Scorer(
                cost, processing_class, name=f"cost {name!r}", chat_template_kwargs=chat_template_kwargs
            )
        elif is_async_callable(cost):
            raise TypeError(
                f"The cost function {name!r} is asynchronous; cost functions must be plain functions (a cost is "
                "needed for every completion before the dual step)."
            )
        elif callable(cost):
            self.scorer = None
        else:
            raise TypeError(
                f"A cost function must be a model id, a model or a callable, got {type(cost).__name__} ({name!r})."
            )
        self.cost = cost
        self.floor = floor
        self.__name__ = name  # TRL names the column (metrics, completion logs) after it

    def __call__(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
        if self.scorer is not None:
            with torch.inference_mode():
                values = self.scorer.score(prompts, completions)
        else:
            values = self.cost(prompts=prompts, completions=completions, **kwargs)
        costs = checked_costs(values, self.__name__, completions)
        return costs if self.floor is None else [max(cost, self.floor) for cost in costs]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


class LagrangianRewardsMixin:
    """Cost functions and their λ_k on top of a TRL trainer that aggregates `reward_funcs` with `reward_weights`.

    Mixed in before the TRL trainer (`class GRPOLagTrainer(LagrangianRewardsMixin, GRPOTrainer)`). Everything else,
    generation (vLLM included), the loss, PEFT and the distributed set-up, stays TRL's.
    """

    def __init__(
        self,
        model: Any,
        reward_funcs: Any = None,
        args: Any = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        processing_class: Any = None,
        reward_processing_classes: PreTrainedTokenizerBase | list[PreTrainedTokenizerBase] | None = None,
        callbacks: Any = None,
        optimizers: Any = (None, None),
        *,
        cost_funcs: CostFunc | list[CostFunc] | None = None,
        cost_processing_classes: PreTrainedTokenizerBase | list[PreTrainedTokenizerBase | None] | None = None,
        **kwargs: Any,
    ) -> None:
        reward_funcs, cost_funcs = _as_list(reward_funcs), _as_list(cost_funcs)
        num_rewards, num_costs = len(reward_funcs), len(cost_funcs)
        if args is None:
            args = self._config_class(output_dir=f"{type(self).__name__}-output")
        # Refused now, not at the first dual step: one limit per cost function.
        if not isinstance(args, ConstraintSettings):
            if num_costs:
                raise TypeError(
                    f"cost_funcs need a {self._config_class.__name__} (cost limits, λ settings), got "
                    f"{type(args).__name__}."
                )
            lagranges = []
        elif num_costs:
            lagranges = args.make_lagrange_multipliers(num_costs)
        elif args.cost_limits or args.cost_floors:
            given = "cost_limits" if args.cost_limits else "cost_floors"
            raise ValueError(f"{given} {getattr(args, given)} was given, but no cost_funcs.")
        else:
            lagranges = []
        floors = args.constrained_cost_floors(num_costs) if lagranges else [None] * num_costs

        processing_classes = None
        if reward_processing_classes is not None or cost_processing_classes is not None:
            rewards_pc = _as_list(reward_processing_classes) or [None] * num_rewards
            costs_pc = _as_list(cost_processing_classes) or [None] * num_costs
            if len(costs_pc) != num_costs:
                raise ValueError(f"{len(costs_pc)} cost_processing_classes for {num_costs} cost functions.")
            processing_classes = rewards_pc + costs_pc

        # The cost columns' weights start as placeholders in TRL's `reward_weights` (their -λ_k is set below); the
        # user's `args.reward_weights` is given back unchanged, so the saved config still has one weight per reward.
        user_weights = args.reward_weights
        if user_weights is not None and len(user_weights) != num_rewards:
            raise ValueError(
                f"Number of reward weights ({len(user_weights)}) must match number of reward functions "
                f"({num_rewards}); the cost functions take -λ_k as their weights."
            )
        if num_costs and user_weights is not None:
            args.reward_weights = [*user_weights, *([0.0] * num_costs)]
        try:
            super().__init__(
                model,
                reward_funcs + cost_funcs,
                args,
                train_dataset,
                eval_dataset,
                processing_class,
                processing_classes,
                callbacks,
                optimizers,
                **kwargs,
            )
        finally:
            args.reward_weights = user_weights

        # TRL loaded the cost models from their ids and prepared them for the distributed set-up; from here on each
        # cost column is scored through a `CostFunction`. (An environment's reward, if any, is appended after them.)
        self.cost_columns = list(range(num_rewards, num_rewards + num_costs))
        for k, column in enumerate(self.cost_columns):
            # A model built in memory from a config has no name; its logs and checkpointed λ need one.
            self.reward_func_names[column] = self.reward_func_names[column] or f"cost_{k}"
        self.cost_func_names = [self.reward_func_names[i] for i in self.cost_columns]
        if len(set(self.cost_func_names)) != num_costs:
            raise ValueError(
                f"Two cost functions share a name ({self.cost_func_names}): the per-constraint logs and the "
                "checkpointed λ's are keyed by name. Give each function (or model) a distinct name."
            )
        for column, floor in zip(self.cost_columns, floors):
            self.reward_funcs[column] = CostFunction(
                self.reward_funcs[column],
                self.reward_func_names[column],
                self.reward_processing_classes[column],
                self.chat_template_kwargs,
                floor=floor,
            )
        self.lagranges = lagranges
        self._set_cost_weights()

    # ------------------------------------------------------------------------------------------------------------
    # The dual step and the Lagrangian weights
    # ------------------------------------------------------------------------------------------------------------

    def _set_cost_weights(self) -> None:
        """Weight of cost column k = -λ_k: TRL's aggregation then forms the Lagrangian advantage."""
        for column, lagrange in zip(self.cost_columns, self.lagranges):
            self.reward_weights[column] = -lagrange.value

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list) -> torch.Tensor:
        """TRL's scores of every reward and cost column, gathered from all processes; then, in training, the dual
        step of every λ_k on the costs of the whole generation batch, and the new -λ_k as the cost weights.

        No dual step once `max_steps` is reached: resumed from its final checkpoint, `Trainer` still draws (and TRL
        generates and scores) one more batch, at a learning rate of zero; λ must stay where the run left it.
        """
        scores = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        finished = self.state.max_steps > 0 and self.state.global_step >= self.state.max_steps
        if self.lagranges and self.model.training and not finished:
            for column, lagrange in zip(self.cost_columns, self.lagranges):
                lagrange.update(scores[:, column], step=self.state.global_step)
            self._set_cost_weights()
        return scores

    # ------------------------------------------------------------------------------------------------------------
    # Logs, checkpoints
    # ------------------------------------------------------------------------------------------------------------

    def _get_grad_norm(self, model, grad_norm=None):
        """With clipping off (`max_grad_norm <= 0`), skip the pass over every gradient that `Trainer` makes only to
        log `grad_norm`, as `trl_safe.PPOTrainer` does (benchmarks: ~2% of a SmolLM2 update)."""
        if grad_norm is None and self.args.max_grad_norm is not None and self.args.max_grad_norm <= 0:
            return None
        return super()._get_grad_norm(model, grad_norm=grad_norm)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self.model.training:
            for name, lagrange in zip(self.cost_func_names, self.lagranges):
                logs.update(lagrange_logs(lagrange, prefix=f"lagrange/{name}/"))
        super().log(logs, start_time)

    def _save_checkpoint(self, model, trial) -> None:
        super()._save_checkpoint(model, trial)
        if self.lagranges and self.args.should_save:
            checkpoint_dir = current_checkpoint_dir(self, trial)
            states = {name: lagrange.state_dict() for name, lagrange in zip(self.cost_func_names, self.lagranges)}
            save_lagrange_state(checkpoint_dir, LAGRANGE_STATES_NAME, states)

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        """Called by `Trainer.train(resume_from_checkpoint=...)`: every λ_k resumes where it stopped."""
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None or not self.lagranges:
            return
        states = load_lagrange_state(checkpoint, LAGRANGE_STATES_NAME, type(self).__name__)
        if sorted(states) != sorted(self.cost_func_names):
            raise ValueError(
                f"{checkpoint} holds λ's for the cost functions {sorted(states)}, but this trainer has "
                f"{sorted(self.cost_func_names)}."
            )
        for name, lagrange in zip(self.cost_func_names, self.lagranges):
            lagrange.load_state_dict(states[name])
        self._set_cost_weights()
