"""Safe RLHF: fine-tune a policy with PPO-Lag (`trl_safe.PPOLagTrainer`), maximising the reward model's score while
the cost model's mean score stays at most `--cost_limit`.

The prompts are the distinct prompts of PKU-SafeRLHF (or of a local file in its format), through
`trl_safe.data.to_prompts`. The reward and cost models are sequence classifiers trained with
`trl-safe reward_model` and `trl-safe cost_model` (C > 0 unsafe, so `--cost_limit 0` asks for a policy that is
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

`make_parser()` builds the command line (also `trl-safe ppo_lag ...`); `main` takes the parsed arguments and returns
the trained `PPOLagTrainer`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import ModelConfig, TrlParser

from trl_safe.ppo_lag_config import PPOLagConfig
from trl_safe.ppo_lag_trainer import PPOLagTrainer
from trl_safe.scripts.ppo import PPOScriptArguments, train_policy
from trl_safe.scripts.utils import require, save_and_push


@dataclass
class PPOLagScriptArguments(PPOScriptArguments):
    """The data and the score models of the PPO-Lag script.

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

    cost_model_name_or_path: str | None = field(default=None, metadata={"help": "The cost model C (C > 0 unsafe)."})


def make_parser(prog: str | None = None) -> TrlParser:
    return TrlParser((PPOLagScriptArguments, PPOLagConfig, ModelConfig), prog=prog)


def main(script_args: PPOLagScriptArguments, training_args: PPOLagConfig, model_args: ModelConfig) -> PPOLagTrainer:
    """Train and save the policy (and push it with `--push_to_hub`); return the trainer."""
    require(script_args, "reward_model_name_or_path", "cost_model_name_or_path")
    trainer = train_policy(
        PPOLagTrainer,
        script_args,
        training_args,
        model_args,
        reward_model=script_args.reward_model_name_or_path,
        cost_model=script_args.cost_model_name_or_path,
    )
    trainer.accelerator.print(
        f"Final λ = {trainer.lagrange.value:.4f}, J_C = {trainer.lagrange.episode_cost:.4f} "
        f"(cost limit {training_args.cost_limit})."
    )
    save_and_push(trainer, training_args, script_args)
    return trainer


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
