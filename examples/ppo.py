# /// script
# dependencies = ["trl-safe"]
# ///
"""RLHF with PPO (`trl_safe.PPOTrainer`): fine-tune a policy to maximise a reward model's score, with a KL penalty
to the initial policy. This is the unconstrained baseline of Safe RLHF; `examples/ppo_lag.py` adds the cost
constraint.

The prompts are the distinct prompts of PKU-SafeRLHF (or of a local file in its format), through
`trl_safe.data.to_prompts`. The reward model is a sequence classifier trained with `examples/reward_model.py`.

    accelerate launch examples/ppo.py \
        --model_name_or_path Qwen/Qwen2.5-0.5B-Instruct --reward_model_name_or_path Qwen2.5-0.5B-Reward \
        --dataset_name PKU-Alignment/PKU-SafeRLHF --conversational \
        --output_dir Qwen2.5-0.5B-PPO --per_device_train_batch_size 8 --gradient_accumulation_steps 2 \
        --max_completion_length 256 --kl_coef 0.05 --num_train_epochs 1 --save_steps 100 --bf16

    # LoRA on the policy (its reference is then the policy without the adapter, no second copy)
    accelerate launch --config_file examples/accelerate_configs/multi_gpu.yaml examples/ppo.py ... \
        --use_peft --lora_r 16 --lora_target_modules q_proj v_proj

`main` takes the parsed arguments and returns the trained `PPOTrainer`, so that a pipeline can import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset
from transformers import AutoTokenizer
from trl import ModelConfig, TrlParser, get_peft_config

from trl_safe import PPOConfig, PPOTrainer
from trl_safe.data import PromptScriptArguments, load_prompt_dataset


@dataclass
class PPOScriptArguments(PromptScriptArguments):
    """The data and the reward model of the PPO example.

    Parameters:
        dataset_name, conversational, max_prompts, ...:
            The prompts, as in `trl_safe.data.PromptScriptArguments`.
        reward_model_name_or_path (`str`):
            The reward model R, a sequence classifier with one label.
        value_model_name_or_path (`str`, *optional*):
            The critic's initial weights; default: a copy of the reward model.
    """

    reward_model_name_or_path: str | None = field(default=None, metadata={"help": "The reward model R."})
    value_model_name_or_path: str | None = field(default=None, metadata={"help": "Initial weights of the critic."})


def main(script_args: PPOScriptArguments, training_args: PPOConfig, model_args: ModelConfig) -> PPOTrainer:
    """Train and save the policy (and push it with `--push_to_hub`); return the trainer."""
    if script_args.reward_model_name_or_path is None:
        raise ValueError("--reward_model_name_or_path is required.")
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

    trainer = PPOTrainer(
        model=model_args.model_name_or_path,
        reward_model=script_args.reward_model_name_or_path,
        value_model=script_args.value_model_name_or_path,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        ptx_dataset=script_args.load_ptx_dataset(),
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)

    trainer.save_model(training_args.output_dir)
    dataset_name = None if Path(script_args.dataset_name).exists() else script_args.dataset_name
    trainer.create_model_card(dataset_name=dataset_name)
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=dataset_name)
    return trainer


if __name__ == "__main__":
    parser = TrlParser((PPOScriptArguments, PPOConfig, ModelConfig))
    main(*parser.parse_args_and_config())
