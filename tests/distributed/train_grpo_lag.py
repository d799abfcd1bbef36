"""Train a tiny policy with `GRPOLagTrainer` under `accelerate launch`, resume a second run from its middle
checkpoint, and report what every rank saw. Used by tests/test_grpo_lag_distributed.py (2 CPU processes, DDP):

    accelerate launch --config_file CONFIG tests/distributed/train_grpo_lag.py --output_dir DIR [--max_steps N]

Two constraints: a tiny cost *model* (loaded and prepared by TRL like a reward model, read by trl-safe's scorer) and
a cost function. Every rank reports, per generation batch, its own completions' costs, the costs gathered from all
ranks and every λ_k after the dual step, and a SHA-256 digest of the policy's weights; then the same for the resumed
run.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from typing import Any

from datasets import Dataset

from trl_safe import GRPOLagConfig, GRPOLagTrainer
from trl_safe.testing_utils import (
    exit_without_finalizing,
    make_tiny_causal_lm,
    make_tiny_scorer,
    make_tiny_tokenizer,
    tiny_critic_free_config,
)

PROMPTS = ["Hello there", "The sky is", "Tell me a story", "Why?", "abc", "Once upon", "x", "Name a color"]


def length_reward(completions, **kwargs):
    return [len(c) / 10 for c in completions]


def char_cost(completions, **kwargs):
    return [sum(map(ord, c)) % 10 / 10 for c in completions]


class RecordingGRPOLagTrainer(GRPOLagTrainer):
    """Keeps this rank's and the gathered costs of every generation batch, and the λ's after its dual step."""

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        scores = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        rank, local = self.accelerator.process_index, len(prompts)
        costs = scores[:, self.cost_columns]
        self.batches.append(
            {
                "step": self.state.global_step,
                "local_costs": costs[rank * local : (rank + 1) * local].T.tolist(),
                "gathered_costs": costs.T.tolist(),
                "lambdas": [lagrange.value for lagrange in self.lagranges],
            }
        )
        return scores


def build_trainer(args: argparse.Namespace, output_dir: str) -> RecordingGRPOLagTrainer:
    config = tiny_critic_free_config(
        GRPOLagConfig,
        output_dir,
        max_steps=args.max_steps,
        save_strategy="steps",
        save_steps=max(1, args.max_steps // 2),
        use_cpu=False,  # the device and the process group are the launcher's (CPU processes, gloo)
        cost_limits=[0.0, 0.3],
        lambda_lr=0.5,
        window_size=12,
    )
    tokenizer = make_tiny_tokenizer()
    trainer = RecordingGRPOLagTrainer(
        model=make_tiny_causal_lm(tokenizer, seed=0),
        reward_funcs=length_reward,
        cost_funcs=[make_tiny_scorer(tokenizer, seed=2), char_cost],
        cost_processing_classes=[tokenizer, None],
        args=config,
        train_dataset=Dataset.from_dict({"prompt": PROMPTS * 2}),
        processing_class=tokenizer,
    )
    trainer.batches = []
    return trainer


def report(trainer: RecordingGRPOLagTrainer) -> dict[str, Any]:
    sha = hashlib.sha256()
    for name, parameter in sorted(trainer.accelerator.unwrap_model(trainer.model).named_parameters()):
        sha.update(name.encode())
        sha.update(parameter.detach().cpu().float().numpy().tobytes())
    return {
        "rank": trainer.accelerator.process_index,
        "world_size": trainer.accelerator.num_processes,
        "distributed_type": str(trainer.accelerator.distributed_type),
        "global_step": trainer.state.global_step,
        "batches": trainer.batches,
        "cost_names": trainer.cost_func_names,
        "lagrange_states": [lagrange.state_dict() for lagrange in trainer.lagranges],
        "lagrange_settings": trainer.args.lagrange_settings(),
        "cost_limits": trainer.args.cost_limits,
        "policy_sha256": sha.hexdigest(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", required=True, help="shared by the ranks (checkpoints)")
    parser.add_argument("--max_steps", type=int, default=4)
    args = parser.parse_args()

    trainer = build_trainer(args, os.path.join(args.output_dir, "full"))
    trainer.train()
    result = report(trainer)
    checkpoint = os.path.join(args.output_dir, "full", f"checkpoint-{trainer.args.save_steps}")
    resumed = build_trainer(args, os.path.join(args.output_dir, "resumed"))
    resumed.train(resume_from_checkpoint=checkpoint)
    result["resumed"] = report(resumed)
    if os.environ.get("TRL_SAFE_DISTRIBUTED_OUTPUT_DIR"):
        from distributed_utils import save_rank_result

        save_rank_result(trainer.accelerator.process_index, result)
    resumed.accelerator.end_training()


if __name__ == "__main__":
    main()
    exit_without_finalizing()  # the results are saved; see its docstring
