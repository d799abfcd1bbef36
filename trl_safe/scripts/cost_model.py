# /// script
# dependencies = ["trl-safe"]
# ///
"""Train the cost model C of Safe RLHF (harmlessness) with `trl_safe.CostTrainer`.

The data is PKU-SafeRLHF (or a local file in its format) turned into harmlessness preferences: `chosen` is the safer
response, and each response keeps its safety label. The trained cost model reads C > 0 as unsafe, C < 0 as safe.

    python examples/cost_model.py \
        --model_name_or_path Qwen/Qwen2.5-0.5B-Instruct \
        --dataset_name PKU-Alignment/PKU-SafeRLHF --conversational \
        --output_dir Qwen2.5-0.5B-Cost --per_device_train_batch_size 8 --num_train_epochs 1 \
        --learning_rate 1e-5 --max_length 1024 --regularization 0.001 --eval_strategy steps --eval_steps 500

    # a local file in the PKU-SafeRLHF format, LoRA, and the Hub
    accelerate launch examples/cost_model.py --dataset_name my_pairs.jsonl --model_name_or_path ... \
        --use_peft --lora_r 16 --output_dir my-cost --push_to_hub

Rows whose labels contradict each other (the safer response labelled unsafe, the other safe) are dropped and
counted by default (`--on_contradiction drop`); `--on_contradiction raise` stops at the first one instead.
`main` takes the parsed arguments and returns the trained `CostTrainer`, so that a pipeline can import it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from trl import ModelConfig, TrlParser, get_peft_config, get_quantization_config

from trl_safe import (
    CostConfig,
    CostTrainer,
    DroppedRows,
    PreferenceScriptArguments,
    load_preference_data,
    to_harmlessness_preferences,
)

logger = logging.getLogger(__name__)


def hub_dataset_name(name: str | None) -> str | None:
    """The data set's Hub name for the model card, or `None` for a local file or folder."""
    return None if name is None or Path(name).exists() else name


def main(script_args: PreferenceScriptArguments, training_args: CostConfig, model_args: ModelConfig) -> CostTrainer:
    """Train, save (and optionally evaluate and push) the cost model; return the trainer."""
    # Model loading options, as in TRL's scripts.
    training_args.model_init_kwargs = {
        "revision": model_args.model_revision,
        "trust_remote_code": training_args.trust_remote_code,
        "attn_implementation": model_args.attn_implementation,
        "dtype": model_args.dtype,
        **(training_args.model_init_kwargs or {}),
    }
    if model_args.use_peft and model_args.lora_task_type != "SEQ_CLS":
        logger.warning("A cost model is a sequence classifier: using lora_task_type='SEQ_CLS' (trains its head).")
        model_args.lora_task_type = "SEQ_CLS"

    # Data: PKU-SafeRLHF rows -> (prompt, chosen = safer, rejected, is_chosen_safe, is_rejected_safe).
    dropped = DroppedRows()

    def load(split: str):
        rows = load_preference_data(
            script_args.dataset_name,
            name=script_args.dataset_config,
            split=split,
            streaming=script_args.dataset_streaming,
        )
        return to_harmlessness_preferences(
            rows,
            conversational=script_args.conversational,
            on_contradiction=script_args.on_contradiction,
            dropped=dropped,
        )

    train_dataset = load(script_args.dataset_train_split)
    eval_dataset = load(script_args.dataset_test_split) if training_args.eval_strategy != "no" else None

    trainer = CostTrainer(
        model=model_args.model_name_or_path,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        quantization_config=get_quantization_config(model_args),
        peft_config=get_peft_config(model_args),
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    if eval_dataset is not None:
        metrics = trainer.evaluate()
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
    trainer.accelerator.print(
        f"Rows left out: {dropped.count} with contradictory safety labels, "
        f"{trainer.too_long_rows.count} longer than max_length={training_args.max_length}."
    )

    trainer.save_model(training_args.output_dir)
    dataset_name = hub_dataset_name(script_args.dataset_name)
    trainer.create_model_card(dataset_name=dataset_name)
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=dataset_name)
    return trainer


if __name__ == "__main__":
    parser = TrlParser((PreferenceScriptArguments, CostConfig, ModelConfig))
    main(*parser.parse_args_and_config())
