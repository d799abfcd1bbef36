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
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    BenchSpec,
    PhaseTimer,
    load_policy,
    load_scorer,
    load_tokenizer,
    memory_mb,
    run_contender,
    weights_mb,
)


def run_ours(spec: BenchSpec, timer: PhaseTimer, lag: bool) -> dict[str, Any]:
    from datasets import Dataset

    import trl_safe
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

    rows = spec.batch_size * spec.total_updates
    dataset = Dataset.from_dict({"prompt": [spec.prompts[i % len(spec.prompts)] for i in range(rows)]})
    config_class = PPOLagConfig if lag else PPOConfig
    config = config_class(
        output_dir=tempfile.mkdtemp(dir=spec.output_dir),
        per_device_train_batch_size=spec.mini_batch_size,
        gradient_accumulation_steps=1,
        num_mini_batches=spec.num_mini_batches,
        num_ppo_epochs=spec.num_ppo_epochs,
        max_steps=spec.total_updates * spec.steps_per_update,
        max_prompt_length=None,
        max_completion_length=spec.response_length,
        temperature=spec.temperature,
        top_k=0,
        top_p=1.0,
        learning_rate=1e-6,
        max_grad_norm=0.0,
        bf16=spec.precision != "fp32",
        gradient_checkpointing=False,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        logging_steps=spec.steps_per_update,
        seed=spec.seed,
        use_cpu=not spec.on_cuda,
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
    return {
        "versions": {"trl": __import__("trl").__version__, "trl_safe": trl_safe.__version__},
        "weights_mb": weights_mb(*models.values()),
        "policy_weights_mb": weights_mb(policy),
        "setup_rss_mb": setup_memory["rss_mb"],
        "setup_peak_rss_mb": setup_memory["peak_rss_mb"],
    }


def main(spec: BenchSpec, timer: PhaseTimer) -> dict[str, Any]:
    return run_ours(spec, timer, lag=False)


if __name__ == "__main__":
    run_contender(main)
