"""RLHF with PPO (`trl_safe.PPOTrainer`): fine-tune a policy to maximise a reward model's score, with a KL penalty
to the initial policy. This is the unconstrained baseline of Safe RLHF; `trl-safe ppo_lag` adds the cost
constraint.

The prompts are the distinct prompts of PKU-SafeRLHF (or of a local file in its format), through
`trl_safe.data.to_prompts`. The reward model is a sequence classifier trained with `trl-safe reward_model`.

    accelerate launch examples/ppo.py \
        --model_name_or_path Qwen/Qwen2.5-0.5B-Instruct --reward_model_name_or_path Qwen2.5-0.5B-Reward \
        --dataset_name PKU-Alignment/PKU-SafeRLHF --conversational \
        --output_dir Qwen2.5-0.5B-PPO --per_device_train_batch_size 8 --gradient_accumulation_steps 2 \
        --max_completion_length 256 --kl_coef 0.05 --num_train_epochs 1 --save_steps 100 --bf16

    # LoRA on the policy (its reference is then the policy without the adapter, no second copy)
    accelerate launch --config_file examples/accelerate_configs/multi_gpu.yaml examples/ppo.py ... \
        --use_peft --lora_r 16 --lora_target_modules q_proj v_proj

`make_parser()` builds the command line (also `trl-safe ppo ...`); `main` takes the parsed arguments and returns the
trained `PPOTrainer`. `train_policy` is shared with `trl_safe.scripts.ppo_lag`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import ModelConfig, TrlParser, get_peft_config

from trl_safe.data import PromptScriptArguments
from trl_safe.ppo.trainer import PPOTrainer
from trl_safe.ppo_config import PPOConfig
from trl_safe.scripts.utils import load_tokenizer, prompt_splits, require, save_and_push, set_model_init_kwargs


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


def train_policy(
    trainer_class: type[PPOTrainer],
    script_args: PPOScriptArguments,
    training_args: PPOConfig,
    model_args: ModelConfig,
    **score_models: str,
) -> PPOTrainer:
    """Build `trainer_class` (PPO or PPO-Lag) on the prompts and the score models named on the command line, and
    train it (resuming with `--resume_from_checkpoint`). Saving is the caller's, after what it reports."""
    set_model_init_kwargs(training_args, model_args)
    tokenizer = load_tokenizer(model_args, training_args)

    train_dataset, eval_dataset = prompt_splits(script_args, training_args)
    trainer = trainer_class(
        model=model_args.model_name_or_path,
        **score_models,
        value_model=script_args.value_model_name_or_path,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        ptx_dataset=script_args.load_ptx_dataset(),
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    return trainer


def make_parser(prog: str | None = None) -> TrlParser:
    return TrlParser((PPOScriptArguments, PPOConfig, ModelConfig), prog=prog)


def main(script_args: PPOScriptArguments, training_args: PPOConfig, model_args: ModelConfig) -> PPOTrainer:
    """Train and save the policy (and push it with `--push_to_hub`); return the trainer."""
    require(script_args, "reward_model_name_or_path")
    trainer = train_policy(
        PPOTrainer, script_args, training_args, model_args, reward_model=script_args.reward_model_name_or_path
    )
    save_and_push(trainer, training_args, script_args)
    return trainer


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
