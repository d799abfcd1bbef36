"""Supervised fine-tuning (the SFT stage of Safe RLHF) with `trl_safe.UnlikelihoodSFTTrainer`: imitate the rows of a
data set in TRL's SFT formats and, where prompt-completion rows carry `label` False, push those completions down
(unlikelihood). The same data can then be PPO-Lag's PTX set (`trl-safe ppo_lag --ptx_dataset_name ...`).

    trl-safe sft --model_name_or_path HuggingFaceTB/SmolLM2-135M-Instruct --dataset_name ptx.jsonl \
        --output_dir smollm2-sft --max_steps 240 --per_device_train_batch_size 8 --learning_rate 5e-4 \
        --lr_scheduler_type constant --use_peft --lora_r 16 --lora_alpha 64

    accelerate launch examples/sft.py ...   # several processes, as every trl-safe trainer

`make_parser()` builds the command line; `main` takes the parsed arguments and returns the trained trainer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import ModelConfig, ScriptArguments, TrlParser, get_peft_config

from trl_safe.data import load_preference_data
from trl_safe.scripts.utils import load_tokenizer, require, save_and_push, set_model_init_kwargs
from trl_safe.sft_config import UnlikelihoodSFTConfig
from trl_safe.sft_trainer import UnlikelihoodSFTTrainer


@dataclass
class SFTScriptArguments(ScriptArguments):
    """The data of `trl-safe sft`.

    Parameters:
        dataset_name (`str`): Hub data set or local file/folder with `text`, `messages` or `prompt` + `completion`
            columns (and optionally a boolean `label` on prompt-completion rows).
        dataset_config, dataset_train_split: its configuration and split (default `"train"`).
    """

    dataset_name: str | None = field(
        default=None, metadata={"help": "SFT data: text, messages or prompt+completion (with an optional label)."}
    )


def make_parser(prog: str | None = None) -> TrlParser:
    return TrlParser((SFTScriptArguments, UnlikelihoodSFTConfig, ModelConfig), prog=prog)


def main(
    script_args: SFTScriptArguments, training_args: UnlikelihoodSFTConfig, model_args: ModelConfig
) -> UnlikelihoodSFTTrainer:
    """Train and save the model (and push it with `--push_to_hub`); return the trainer."""
    require(script_args, "dataset_name")
    set_model_init_kwargs(training_args, model_args)
    tokenizer = load_tokenizer(model_args, training_args)
    train_dataset = load_preference_data(
        script_args.dataset_name, name=script_args.dataset_config, split=script_args.dataset_train_split
    )
    trainer = UnlikelihoodSFTTrainer(
        model=model_args.model_name_or_path,
        args=training_args,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
    )
    undesirable = trainer.ptx_data.desirable.count(False)
    trainer.accelerator.print(f"SFT data: {len(trainer.ptx_data)} rows, {undesirable} labelled undesirable.")
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    save_and_push(trainer, training_args, script_args)
    return trainer


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
