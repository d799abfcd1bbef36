"""trl-safe's `PPOTrainer` (and, through `run_ours(..., lag=True)`, `PPOLagTrainer`) on the benchmark's work.

The trainer gets the same model instances as the other contenders (policy, reference, reward [, cost] and critic,
loaded by `common`), `per_device_train_batch_size` = the mini-batch, no gradient accumulation, the spec's device
and precision (fp32 on the CPU; `bf16=True` for "bf16" and "amp-bf16" on a GPU), no gradient
checkpointing (TRL's default, on in `_BaseConfig`), one log per PPO update (TRL 1.12 logs once per update),
no checkpoints, no reporting, and no gradient clipping: TRL 1.12's PPOTrainer does not clip, so clipping would be
work the other contenders do not do (docs/benchmarks.md gives its cost separately).
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


def run_ours(spec: BenchSpec, timer: PhaseTimer, lag: bool) -> dict[str, Any]:
    from datasets import Dataset

    from trl_safe.ppo_config import PPOConfig
    from trl_safe.ppo_lag_config import PPOLagConfig
    from trl_safe.ppo_lag_trainer import PPOLagTrainer
    from trl_safe.ppo_trainer import PPOTrainer

    if spec.algo != ("ppo_lag" if lag else "ppo"):
        raise ValueError(f"Contender {spec.contender} runs {'ppo_lag' if lag else 'ppo'}, the spec asks {spec.algo}.")
    tokenizer = load_tokenizer(spec)
    policy = load_policy(spec)
    models = {
        "policy": policy,
        "reference": load_policy(spec),
        "reward": load_scorer(spec, "reward"),
        "critic": load_scorer(spec, "critic", num_labels=2 if lag else 1),
    }
    if lag:
        models["cost"] = load_scorer(spec, "cost")
    for name, model in models.items():
        timer.watch(name, model)

    dataset = Dataset.from_dict({"prompt": cycled_prompts(spec, spec.batch_size * spec.total_updates)})
    config_class = PPOLagConfig if lag else PPOConfig
    config = config_class(
        **trl_safe_training_args(spec),
        num_mini_batches=spec.num_mini_batches,
        num_ppo_epochs=spec.num_ppo_epochs,
        max_prompt_length=None,
        gradient_checkpointing=False,
        local_rollout_forward_batch_size=spec.rollout_forward_batch_size,
    )
    common_kwargs = dict(
        model=policy,
        reward_model=models["reward"],
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        ref_model=models["reference"],
        value_model=models["critic"],
        callbacks=[timer.trainer_callback()],
    )
    trainer = PPOLagTrainer(cost_model=models["cost"], **common_kwargs) if lag else PPOTrainer(**common_kwargs)
    setup_memory = memory_mb()
    trainer.train()
    return trl_safe_result(models, setup_memory)


def main(spec: BenchSpec, timer: PhaseTimer) -> dict[str, Any]:
    return run_ours(spec, timer, lag=False)


if __name__ == "__main__":
    run_contender(main)
