"""trl-safe's `GRPOLagTrainer` (critic-free Lagrangian GRPO) on the benchmark's work, for `benchmarks/gpu_check.py`.

GRPO's terms mapped onto the spec: `batch_size` completions per generation (`generation_batch_size`), in groups of
`GROUP_SIZE` completions per prompt; `num_mini_batches` optimizer steps per generation (`steps_per_generation`, one
mini-batch of `per_device_train_batch_size` each); `num_ppo_epochs` passes over each generation (`num_iterations`).
The reward and cost models are the same instances as PPO-Lag's (score models as reward and cost functions); the
reference model (β > 0, as PPO-Lag's KL penalty) is loaded by the trainer and its forwards count as "other".

`gpu_check.py` runs this contender only when `trl_safe.GRPOLagTrainer` is importable. It is written against the
design's interface (TRL's `GRPOTrainer` arguments plus `cost_funcs`); a run that fails on a different interface is
reported as failed with its log, and costs the check nothing else.
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

GROUP_SIZE = 4


def main(spec: BenchSpec, timer: PhaseTimer) -> dict[str, Any]:
    from datasets import Dataset

    import trl_safe
    from trl_safe import GRPOLagConfig, GRPOLagTrainer

    group = GROUP_SIZE if spec.batch_size % GROUP_SIZE == 0 and spec.mini_batch_size % GROUP_SIZE == 0 else 1
    tokenizer = load_tokenizer(spec)
    models = {"policy": load_policy(spec), "reward": load_scorer(spec, "reward"), "cost": load_scorer(spec, "cost")}
    for name, model in models.items():
        timer.watch(name, model)
    prompts_per_update = spec.batch_size // group
    rows = prompts_per_update * spec.total_updates
    dataset = Dataset.from_dict({"prompt": [spec.prompts[i % len(spec.prompts)] for i in range(rows)]})
    config = GRPOLagConfig(
        output_dir=tempfile.mkdtemp(dir=spec.output_dir),
        per_device_train_batch_size=spec.mini_batch_size,
        gradient_accumulation_steps=1,
        generation_batch_size=spec.batch_size,
        num_generations=group,
        num_iterations=spec.num_ppo_epochs,
        max_steps=spec.total_updates * spec.steps_per_update,
        max_completion_length=spec.response_length,
        temperature=spec.temperature,
        top_k=0,
        top_p=1.0,
        beta=0.05,
        learning_rate=1e-6,
        max_grad_norm=0.0,
        bf16=spec.precision != "fp32",
        gradient_checkpointing=False,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        logging_steps=spec.steps_per_update,
        shuffle_dataset=False,
        seed=spec.seed,
        use_cpu=not spec.on_cuda,
    )
    trainer = GRPOLagTrainer(
        model=models["policy"],
        reward_funcs=[models["reward"]],
        cost_funcs=[models["cost"]],
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[timer.trainer_callback()],
    )
    setup_memory = memory_mb()
    trainer.train()
    return {
        "versions": {"trl": __import__("trl").__version__, "trl_safe": trl_safe.__version__},
        "weights_mb": weights_mb(*models.values()),
        "policy_weights_mb": weights_mb(models["policy"]),
        "setup_rss_mb": setup_memory["rss_mb"],
        "setup_peak_rss_mb": setup_memory["peak_rss_mb"],
        "group_size": group,
    }


if __name__ == "__main__":
    run_contender(main)
