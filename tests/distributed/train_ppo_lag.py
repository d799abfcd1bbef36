"""Train a tiny policy with `PPOLagTrainer` (or `PPOTrainer`) under whatever `accelerate launch` configuration started
this script, optionally resume a second run from its middle checkpoint, and report what every rank saw.

Used by tests/test_scale_out.py (2 CPU processes, DDP) and by hand for the DeepSpeed runs recorded in
docs/scale_out.md:

    accelerate launch --config_file CONFIG tests/distributed/train_ppo_lag.py --output_dir DIR [--trainer ppo]
        [--max_steps N] [--resume] [--peft] [--sharded_generation] [--use_cpu] [--ddp_backend gloo] [--bf16]

(tests/test_gpu.py launches it on one GPU under ZeRO-3 with `--bf16`.)

The reward and the cost are tiny sequence-classification models (not functions), so the frozen-model preparation
(`PPOTrainer._prepare_frozen_model`) runs for the reference policy, the reward model and the cost model. Every rank
reports:

- its distributed set-up and how each frozen model was prepared (its class, and how many of its parameters this
  process holds: under ZeRO-3 a shard, elsewhere all of them);
- per rollout, its *local* episode costs and λ after the dual step (PPO-Lag), so the caller can recompute λ from the
  union of the ranks' costs with one `LagrangeMultiplier`;
- SHA-256 digests of the full (gathered) policy and critic weights, so the caller can check that the ranks hold
  bit-identical models;
- with `--resume`: the same for a second run resumed from the checkpoint at half of `max_steps`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from typing import Any

import torch
from datasets import Dataset
from peft import LoraConfig

from trl_safe import PPOConfig, PPOLagConfig, PPOLagTrainer, PPOTrainer
from trl_safe.ppo.models import gathered
from trl_safe.testing_utils import exit_without_finalizing, make_tiny_causal_lm, make_tiny_scorer, make_tiny_tokenizer

PROMPTS = ["Hello there", "The sky is", "Tell me a story", "Why?", "abc", "Once upon", "x", "Name a color"]


class _Recording:
    """Mixed into the trainer: keeps this rank's episode costs and λ of every rollout (a probe, not a feature)."""

    def _dual_step(self, scores: dict[str, torch.Tensor]) -> None:
        super()._dual_step(scores)
        record: dict[str, Any] = {"step": self.state.global_step, "local_rewards": scores["reward"].tolist()}
        if "cost" in scores:
            record.update(local_costs=scores["cost"].tolist(), lambda_after_update=self.lagrange.value)
        self.rollouts.append(record)


class RecordingPPOLagTrainer(_Recording, PPOLagTrainer):
    pass


class RecordingPPOTrainer(_Recording, PPOTrainer):
    pass


def build_trainer(args: argparse.Namespace, output_dir: str) -> PPOTrainer:
    # The config comes first, as in a user's script: under ZeRO-3 with `zero3_init_flag`, models built after it are
    # created directly sharded.
    config_class = PPOLagConfig if args.trainer == "ppo_lag" else PPOConfig
    lag_settings = (
        dict(cost_limit=0.0, lambda_init=1.0, lambda_lr=0.5, lambda_max=5.0, window_size=6)
        if args.trainer == "ppo_lag"
        else {}
    )
    config = config_class(
        output_dir=output_dir,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=1,
        num_mini_batches=1,
        num_ppo_epochs=1,
        max_completion_length=6,
        max_steps=args.max_steps,
        learning_rate=1e-3,
        logging_steps=1,
        save_strategy="steps" if args.resume else "no",
        save_steps=max(1, args.max_steps // 2),
        report_to="none",
        activation_checkpointing=False,
        bf16=args.bf16,
        disable_tqdm=True,
        seed=0,
        use_cpu=args.use_cpu,
        ddp_backend=args.ddp_backend,
        ds3_gather_for_generation=not args.sharded_generation,
        **lag_settings,
    )
    tokenizer = make_tiny_tokenizer()
    scores = {"reward_model": make_tiny_scorer(tokenizer, seed=1)}
    trainer_class: type[PPOTrainer] = RecordingPPOTrainer
    if args.trainer == "ppo_lag":
        scores["cost_model"] = make_tiny_scorer(tokenizer, seed=2)
        trainer_class = RecordingPPOLagTrainer
    trainer = trainer_class(
        model=make_tiny_causal_lm(tokenizer, seed=0),
        args=config,
        train_dataset=Dataset.from_dict({"prompt": PROMPTS * 2}),
        processing_class=tokenizer,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]) if args.peft else None,
        **scores,
    )
    trainer.rollouts = []
    return trainer


def _digest(model: torch.nn.Module) -> str:
    """SHA-256 of every parameter's full value, gathered one at a time under ZeRO-3 (collective: all ranks call it)."""
    sha = hashlib.sha256()
    for name, parameter in sorted(model.named_parameters(), key=lambda item: item[0]):
        with gathered([parameter]):
            sha.update(name.encode())
            sha.update(parameter.detach().cpu().float().numpy().tobytes())
    return sha.hexdigest()


def _frozen_models(trainer: PPOTrainer) -> dict[str, torch.nn.Module]:
    models = {name: scorer.model for name, scorer in trainer.scorers.items() if scorer.model is not None}
    if trainer.ref_model is not None:
        models["reference"] = trainer.ref_model
    return models


def report(trainer: PPOTrainer) -> dict[str, Any]:
    """What this rank holds after training. Collective under ZeRO-3: every rank must call it."""
    accelerator = trainer.accelerator
    unwrapped = accelerator.unwrap_model(trainer.model_wrapped)
    frozen = {}
    for name, model in _frozen_models(trainer).items():
        # A ZeRO-3 parameter keeps this process's shard in `ds_tensor` and its full size in `ds_numel`; its `data` is
        # an empty placeholder except while it is gathered.
        parameters = list(model.parameters())
        frozen[name] = {
            "class": type(model).__name__,
            "full_numel": sum(getattr(p, "ds_numel", p.numel()) for p in parameters),
            "local_numel": sum(p.ds_tensor.numel() if hasattr(p, "ds_tensor") else p.numel() for p in parameters),
            "materialised_numel": sum(p.numel() for p in parameters),
            "num_partitioned": sum(hasattr(p, "ds_id") for p in parameters),
            "num_parameters": len(parameters),
        }
    plugin = accelerator.state.deepspeed_plugin
    first = next(unwrapped.policy.parameters())
    result = {
        "rank": accelerator.process_index,
        "world_size": accelerator.num_processes,
        "distributed_type": str(accelerator.distributed_type),
        "backend": torch.distributed.get_backend() if torch.distributed.is_initialized() else None,
        "zero_stage": plugin.zero_stage if plugin else None,
        "trained_model_class": type(trainer.model_wrapped).__name__,
        # The dtype the policy's weights are held in (under ZeRO-3: its shard's), and the device they live on.
        "policy_dtype": str(getattr(first, "ds_tensor", first).dtype),
        "policy_device": str(getattr(first, "ds_tensor", first).device),
        "mixed_precision": accelerator.mixed_precision,
        "frozen_models": frozen,
        "global_step": trainer.state.global_step,
        "rollouts": trainer.rollouts,
        "losses": [entry["loss"] for entry in trainer.state.log_history if "loss" in entry],
        "first_log": next(entry for entry in trainer.state.log_history if "loss" in entry),
        "policy_sha256": _digest(unwrapped.policy),
        "critic_sha256": _digest(unwrapped.value_model),
    }
    if isinstance(trainer, PPOLagTrainer):
        result["lagrange_state"] = trainer.lagrange.state_dict()
        result["lagrange_kwargs"] = trainer.args.lagrange_multiplier_kwargs()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", required=True, help="shared by the ranks (checkpoints)")
    parser.add_argument("--trainer", choices=["ppo_lag", "ppo"], default="ppo_lag")
    parser.add_argument("--max_steps", type=int, default=4)
    parser.add_argument("--resume", action="store_true", help="checkpoint at max_steps/2 and resume a second run")
    parser.add_argument("--peft", action="store_true", help="LoRA policy; the reference is its adapter-free self")
    parser.add_argument(
        "--sharded_generation", action="store_true", help="ds3_gather_for_generation=False (ZeRO-3 only)"
    )
    parser.add_argument("--use_cpu", action="store_true", help="TrainingArguments.use_cpu (DDP on CPU, not DeepSpeed)")
    parser.add_argument(
        "--ddp_backend", default=None, help="TrainingArguments.ddp_backend (gloo for DeepSpeed on CPU)"
    )
    parser.add_argument("--bf16", action="store_true", help="TrainingArguments.bf16 (bf16 training on a GPU)")
    args = parser.parse_args()

    trainer = build_trainer(args, os.path.join(args.output_dir, "full"))
    trainer.train()
    result = report(trainer)
    trainer.save_model()  # the final policy, gathered under ZeRO-3 (`zero3_save_16bit_model`)
    result["saved_files"] = sorted(os.listdir(trainer.args.output_dir)) if trainer.is_world_process_zero() else None
    if args.resume:
        checkpoint = os.path.join(args.output_dir, "full", f"checkpoint-{trainer.args.save_steps}")
        resumed = build_trainer(args, os.path.join(args.output_dir, "resumed"))
        resumed.train(resume_from_checkpoint=checkpoint)
        result["resumed"] = report(resumed)
        result["checkpoint_files"] = sorted(os.listdir(checkpoint)) if trainer.is_world_process_zero() else None
    if os.environ.get("TRL_SAFE_DISTRIBUTED_OUTPUT_DIR"):
        from distributed_utils import save_rank_result

        save_rank_result(trainer.accelerator.process_index, result)
    print({k: v for k, v in result.items() if k not in ("rollouts", "resumed")}, flush=True)
    trainer.end()


if __name__ == "__main__":
    main()
    exit_without_finalizing()  # the results are saved; see its docstring
