"""Critic-free Safe RLHF: fine-tune a policy with GRPO-Lag (`trl_safe.GRPOLagTrainer`), TRL's GRPO maximising the
reward model's score while the mean score of each cost model stays at most its `--cost_limits` entry.

The prompts are the distinct prompts of PKU-SafeRLHF (or of a local file in its format), through
`trl_safe.data.to_prompts`. The reward and cost models are sequence classifiers trained with
`trl-safe reward_model` and `trl-safe cost_model` (C > 0 unsafe, so a limit of 0 asks for a policy that is safe on
average). Every GRPO option applies (`--num_generations`, `--use_vllm`, `--beta`, ...).

    accelerate launch examples/grpo_lag.py \
        --model_name_or_path Qwen/Qwen2.5-0.5B-Instruct \
        --reward_model_name_or_path Qwen2.5-0.5B-Reward --cost_model_name_or_path Qwen2.5-0.5B-Cost \
        --dataset_name PKU-Alignment/PKU-SafeRLHF --conversational \
        --output_dir Qwen2.5-0.5B-GRPO-Lag --per_device_train_batch_size 8 --num_generations 8 \
        --max_completion_length 256 --cost_limits 0.0 --lambda_init 1.0 --lambda_lr 0.1 \
        --num_train_epochs 1 --save_steps 100 --bf16

    # two constraints, each with its own λ: two cost models, two limits (in the same order)
    accelerate launch examples/grpo_lag.py ... --cost_model_name_or_path Cost-Harm Cost-Privacy --cost_limits 0.0 -0.5

    # sampling with vLLM on the training GPUs, LoRA on the policy
    accelerate launch examples/grpo_lag.py ... --use_vllm --vllm_mode colocate --use_peft --lora_r 16

    # resume an interrupted run: optimizer, schedule and every λ continue where they stopped
    accelerate launch examples/grpo_lag.py ... --resume_from_checkpoint Qwen2.5-0.5B-GRPO-Lag/checkpoint-300

`make_parser()` builds the command line (also `trl-safe grpo_lag ...`); `main` takes the parsed arguments and returns
the trained `GRPOLagTrainer`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import ModelConfig, TrlParser, get_peft_config

from trl_safe.data import PromptScriptArguments
from trl_safe.grpo_lag_config import GRPOLagConfig
from trl_safe.grpo_lag_trainer import GRPOLagTrainer
from trl_safe.scripts.utils import load_tokenizer, prompt_splits, require, save_and_push, set_model_init_kwargs


@dataclass
class GRPOLagScriptArguments(PromptScriptArguments):
    """The data and the score models of the GRPO-Lag script.

    Parameters:
        dataset_name, conversational, max_prompts, ...:
            The prompts, as in `trl_safe.data.PromptScriptArguments`.
        reward_model_name_or_path (`list[str]`):
            The reward model(s), sequence classifiers with one label (several: weighted by `--reward_weights`).
        cost_model_name_or_path (`list[str]`):
            The cost model(s), sequence classifiers with one label, C > 0 unsafe; one constraint each, with the limit
            at the same position in `--cost_limits`.
    """

    reward_model_name_or_path: list[str] | None = field(default=None, metadata={"help": "The reward model(s)."})
    cost_model_name_or_path: list[str] | None = field(
        default=None, metadata={"help": "The cost model(s), one constraint each (C > 0 unsafe)."}
    )


def make_parser(prog: str | None = None) -> TrlParser:
    return TrlParser((GRPOLagScriptArguments, GRPOLagConfig, ModelConfig), prog=prog)


def main(script_args: GRPOLagScriptArguments, training_args: GRPOLagConfig, model_args: ModelConfig) -> GRPOLagTrainer:
    """Train and save the policy (and push it with `--push_to_hub`); return the trainer."""
    require(script_args, "reward_model_name_or_path", "cost_model_name_or_path")
    set_model_init_kwargs(training_args, model_args)

    train_dataset, eval_dataset = prompt_splits(script_args, training_args)
    trainer = GRPOLagTrainer(
        model=model_args.model_name_or_path,
        reward_funcs=list(script_args.reward_model_name_or_path),
        cost_funcs=list(script_args.cost_model_name_or_path),
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=load_tokenizer(model_args, training_args),
        peft_config=get_peft_config(model_args),
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    for name, lagrange in zip(trainer.cost_func_names, trainer.lagranges):
        trainer.accelerator.print(
            f"{name}: final λ = {lagrange.value:.4f}, J_C = {lagrange.episode_cost:.4f} "
            f"(cost limit {lagrange.cost_limit})."
        )
    save_and_push(trainer, training_args, script_args)
    return trainer


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
