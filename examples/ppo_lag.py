# /// script
# dependencies = ["trl-safe"]
# ///
"""Safe RLHF: fine-tune a policy with PPO-Lag (`trl_safe.PPOLagTrainer`), maximising the reward model's score while
the cost model's mean score stays at most `--cost_limit`.

The prompts are the distinct prompts of PKU-SafeRLHF (or of a local file in its format), through
`trl_safe.data.to_prompts`. The reward and cost models are sequence classifiers trained with
`examples/reward_model.py` and `examples/cost_model.py` (C > 0 unsafe, so `--cost_limit 0` asks for a policy that is
safe on average).

    accelerate launch examples/ppo_lag.py \
        --model_name_or_path Qwen/Qwen2.5-0.5B-Instruct \
        --reward_model_name_or_path Qwen2.5-0.5B-Reward --cost_model_name_or_path Qwen2.5-0.5B-Cost \
        --dataset_name PKU-Alignment/PKU-SafeRLHF --conversational \
        --output_dir Qwen2.5-0.5B-PPO-Lag --per_device_train_batch_size 8 --gradient_accumulation_steps 2 \
        --max_completion_length 256 --cost_limit 0.0 --lambda_init 1.0 --lambda_lr 0.1 \
        --num_train_epochs 1 --save_steps 100 --bf16

    # LoRA on the policy (its reference is then the policy without the adapter, no second copy)
    accelerate launch --config_file examples/accelerate_configs/multi_gpu.yaml examples/ppo_lag.py ... \
        --use_peft --lora_r 16 --lora_target_modules q_proj v_proj

    # resume an interrupted run: critic, optimizer, schedule and λ continue where they stopped
    accelerate launch examples/ppo_lag.py ... --resume_from_checkpoint Qwen2.5-0.5B-PPO-Lag/checkpoint-300

`main` takes the parsed arguments and returns the trained `PPOLagTrainer`, so that a pipeline can import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset
from transformers import AutoTokenizer
from trl import ModelConfig, TrlParser, get_peft_config

from trl_safe import PPOLagConfig, PPOLagTrainer
from trl_safe.data import PromptScriptArguments, load_prompt_dataset


@dataclass
class PPOLagScriptArguments(PromptScriptArguments):
    """The data and the score models of the PPO-Lag example.

    Parameters:
        dataset_name, conversational, max_prompts, ...:
            The prompts, as in `trl_safe.data.PromptScriptArguments`.
        reward_model_name_or_path (`str`):
            The reward model R (helpfulness), a sequence classifier with one label.
        cost_model_name_or_path (`str`):
            The cost model C (harmfulness), a sequence classifier with one label, C > 0 unsafe.
        value_model_name_or_path (`str`, *optional*):
            The critic's initial weights; default: a copy of the reward model with a second, zero-initialised
            value head for the cost.
    """

    reward_model_name_or_path: str | None = field(default=None, metadata={"help": "The reward model R."})
    cost_model_name_or_path: str | None = field(default=None, metadata={"help": "The cost model C (C > 0 unsafe)."})
    value_model_name_or_path: str | None = field(default=None, metadata={"help": "Initial weights of the critic."})


def main(script_args: PPOLagScriptArguments, training_args: PPOLagConfig, model_args: ModelConfig) -> PPOLagTrainer:
    """Train and save the policy (and push it with `--push_to_hub`); return the trainer."""
    for name in ("reward_model_name_or_path", "cost_model_name_or_path"):
        if getattr(script_args, name) is None:
            raise ValueError(f"--{name} is required.")
    training_args.model_init_kwargs = {
        "revision": model_args.model_revision,
        "trust_remote_code": training_args.trust_remote_code,
        "attn_implementation": model_args.attn_implementation,
        "dtype": model_args.dtype,
        **(training_args.model_init_kwargs or {}),
    }
    tokenizer = AutoTokenizer.from_pretrained(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
        trust_remote_code=training_args.trust_remote_code,
    )

    def load(split: str) -> Dataset:
        return load_prompt_dataset(
            script_args.dataset_name,
            name=script_args.dataset_config,
            split=split,
            conversational=script_args.conversational,
            max_prompts=script_args.max_prompts,
        )

    train_dataset = load(script_args.dataset_train_split)
    eval_dataset = load(script_args.dataset_test_split) if training_args.eval_strategy != "no" else None

    trainer = PPOLagTrainer(
        model=model_args.model_name_or_path,
        reward_model=script_args.reward_model_name_or_path,
        cost_model=script_args.cost_model_name_or_path,
        value_model=script_args.value_model_name_or_path,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        ptx_dataset=script_args.load_ptx_dataset(),
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.accelerator.print(
        f"Final λ = {trainer.lagrange.value:.4f}, J_C = {trainer.lagrange.episode_cost:.4f} "
        f"(cost limit {training_args.cost_limit})."
    )

    trainer.save_model(training_args.output_dir)
    dataset_name = None if Path(script_args.dataset_name).exists() else script_args.dataset_name
    trainer.create_model_card(dataset_name=dataset_name)
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=dataset_name)
    return trainer


if __name__ == "__main__":
    parser = TrlParser((PPOLagScriptArguments, PPOLagConfig, ModelConfig))
    main(*parser.parse_args_and_config())
