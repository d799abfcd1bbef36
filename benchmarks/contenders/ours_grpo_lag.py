"""trl-safe's `GRPOLagTrainer` (TRL's GRPO with a cost constraint, no critic) on the benchmark's work.

The same models as PPO-Lag's contender minus the critic: the policy, the reward and the cost model, and a reference
policy (β = PPO-Lag's KL coefficient, 0.01, so that GRPO's reference forward is part of the work, as PPO-Lag's KL
penalty is). The same episodes per update: `batch_size` completions of exactly `response_length` tokens, here
`batch_size / num_generations` prompts x `num_generations` completions (GRPO's groups); the same optimizer steps per
update: `num_ppo_epochs` passes (`num_iterations`) x `num_mini_batches` (`steps_per_generation`). Per update is then
per episode x `batch_size`, for both. Everything else as in `ours_ppo.py`: the spec's device and precision, no
gradient checkpointing, no gradient clipping, one log per update, no checkpoints.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    BenchSpec,
    PhaseTimer,
    cycled_prompts,
    load_policy,
    load_scorer,
    load_tokenizer,
    memory_mb,
    run_contender,
    trl_safe_result,
    trl_safe_training_args,
)

NUM_GENERATIONS = 4


def main(spec: BenchSpec, timer: PhaseTimer) -> dict[str, Any]:
    from datasets import Dataset

    from trl_safe.grpo_lag_config import GRPOLagConfig
    from trl_safe.grpo_lag_trainer import GRPOLagTrainer

    if spec.algo != "grpo_lag":
        raise ValueError(f"Contender {spec.contender} runs grpo_lag, the spec asks {spec.algo}.")
    if spec.mini_batch_size % NUM_GENERATIONS:
        raise ValueError(f"The mini-batch ({spec.mini_batch_size}) must hold whole groups of {NUM_GENERATIONS}.")
    tokenizer = load_tokenizer(spec)
    policy = load_policy(spec)
    models = {"policy": policy, "reward": load_scorer(spec, "reward"), "cost": load_scorer(spec, "cost")}

    # One row per group: batch_size / NUM_GENERATIONS distinct prompts per update, cycled as in the other contenders.
    groups = spec.batch_size // NUM_GENERATIONS * spec.total_updates
    dataset = Dataset.from_dict({"prompt": cycled_prompts(spec, groups)})
    config = GRPOLagConfig(
        **trl_safe_training_args(spec),
        steps_per_generation=spec.num_mini_batches,
        num_iterations=spec.num_ppo_epochs,
        num_generations=NUM_GENERATIONS,
        beta=0.01,  # > 0: the reference forward is part of the work, as PPO-Lag's KL penalty is
        activation_checkpointing=False,
        shuffle_dataset=False,
        cost_limits=[0.0],
    )
    trainer = GRPOLagTrainer(
        model=policy,
        reward_funcs=models["reward"],
        cost_funcs=models["cost"],
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        reward_processing_classes=tokenizer,
        cost_processing_classes=tokenizer,
        callbacks=[timer.trainer_callback()],
    )
    models["reference"] = trainer.ref_model  # GRPO loads its reference from the policy's checkpoint
    for name, model in models.items():
        timer.watch(name, model)
    setup_memory = memory_mb()
    trainer.train()
    return trl_safe_result(models, setup_memory)


if __name__ == "__main__":
    run_contender(main)
