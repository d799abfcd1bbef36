"""Train the cost model C of Safe RLHF (harmlessness) with `trl_safe.CostTrainer`.

The data is PKU-SafeRLHF (or a local file in its format) turned into harmlessness preferences: `chosen` is the safer
response, and each response keeps its safety label. The trained cost model reads C > 0 as unsafe, C < 0 as safe.

    trl-safe cost_model \
        --model_name_or_path Qwen/Qwen2.5-0.5B-Instruct \
        --dataset_name PKU-Alignment/PKU-SafeRLHF --conversational \
        --output_dir Qwen2.5-0.5B-Cost --per_device_train_batch_size 8 --num_train_epochs 1 \
        --learning_rate 1e-5 --max_length 1024 --regularization 0.001 --eval_strategy steps --eval_steps 500

    # a local file in the PKU-SafeRLHF format, LoRA, and the Hub
    accelerate launch examples/cost_model.py --dataset_name my_pairs.jsonl --model_name_or_path ... \
        --use_peft --lora_r 16 --output_dir my-cost --push_to_hub

Rows whose labels contradict each other (the safer response labelled unsafe, the other safe) are dropped and
counted by default (`--on_contradiction drop`); `--on_contradiction raise` stops at the first one instead.
`make_parser()` builds the command line; `main` takes the parsed arguments and returns the trained `CostTrainer`.
"""

from __future__ import annotations

from trl import ModelConfig, TrlParser, get_peft_config, get_quantization_config

from trl_safe.cost_config import CostConfig
from trl_safe.cost_trainer import CostTrainer
from trl_safe.data import DroppedRows, PreferenceScriptArguments, to_harmlessness_preferences
from trl_safe.scripts.utils import (
    preference_splits,
    save_and_push,
    sequence_classifier_lora,
    set_model_init_kwargs,
    train_and_evaluate,
)


def make_parser(prog: str | None = None) -> TrlParser:
    return TrlParser((PreferenceScriptArguments, CostConfig, ModelConfig), prog=prog)


def main(script_args: PreferenceScriptArguments, training_args: CostConfig, model_args: ModelConfig) -> CostTrainer:
    """Train, save (and optionally evaluate and push) the cost model; return the trainer."""
    set_model_init_kwargs(training_args, model_args)
    sequence_classifier_lora(model_args, "cost model")

    # Data: PKU-SafeRLHF rows -> (prompt, chosen = safer, rejected, is_chosen_safe, is_rejected_safe).
    dropped = DroppedRows()
    train_dataset, eval_dataset = preference_splits(
        script_args,
        training_args,
        lambda rows: to_harmlessness_preferences(
            rows,
            conversational=script_args.conversational,
            on_contradiction=script_args.on_contradiction,
            dropped=dropped,
        ),
    )
    trainer = CostTrainer(
        model=model_args.model_name_or_path,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        quantization_config=get_quantization_config(model_args),
        peft_config=get_peft_config(model_args),
    )
    train_and_evaluate(trainer, training_args)
    trainer.accelerator.print(
        f"Rows left out: {dropped.count} with contradictory safety labels, "
        f"{trainer.too_long_rows.count} longer than max_length={training_args.max_length}."
    )
    save_and_push(trainer, training_args, script_args)
    return trainer


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
