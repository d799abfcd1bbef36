"""What the training scripts share: model loading options, the tokenizer, the splits, and saving/pushing at the end.

Each script (`trl_safe.scripts.reward_model`, `cost_model`, `ppo`, `ppo_lag`) keeps only what is its own: the data
conversion, the trainer class and what it prints.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datasets import Dataset
from transformers import AutoTokenizer, PreTrainedTokenizerBase, TrainingArguments
from trl import ModelConfig, ScriptArguments

from trl_safe.checks import check_model_path
from trl_safe.data import PreferenceScriptArguments, PromptScriptArguments, load_preference_data, load_prompt_dataset

logger = logging.getLogger(__name__)


def hub_dataset_name(name: str | None) -> str | None:
    """The data set's Hub name for the model card, or `None` for a local file or folder."""
    return None if name is None or Path(name).exists() else name


def require(script_args: Any, *names: str) -> None:
    """Refuse a run that lacks one of the named arguments (their defaults are `None` so that `--help` lists them)."""
    for name in names:
        if getattr(script_args, name) is None:
            raise ValueError(f"--{name} is required.")


def set_model_init_kwargs(training_args: TrainingArguments, model_args: ModelConfig) -> None:
    """The model loading options of the command line, as in TRL's scripts; explicit `model_init_kwargs` win."""
    training_args.model_init_kwargs = {
        "revision": model_args.model_revision,
        "trust_remote_code": training_args.trust_remote_code,
        "attn_implementation": model_args.attn_implementation,
        "dtype": model_args.dtype,
        **(training_args.model_init_kwargs or {}),
    }


def load_tokenizer(model_args: ModelConfig, training_args: TrainingArguments) -> PreTrainedTokenizerBase:
    check_model_path(model_args.model_name_or_path, "model")  # a mistyped folder, not a failed Hub connection
    return AutoTokenizer.from_pretrained(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
        trust_remote_code=training_args.trust_remote_code,
    )


def load_splits(
    load: Callable[[str], Dataset], script_args: ScriptArguments, training_args: TrainingArguments
) -> tuple[Dataset, Dataset | None]:
    """The training split, and the test split when the run evaluates (`--eval_strategy` other than `no`)."""
    train_dataset = load(script_args.dataset_train_split)
    eval_dataset = load(script_args.dataset_test_split) if training_args.eval_strategy != "no" else None
    return train_dataset, eval_dataset


def preference_splits(
    script_args: PreferenceScriptArguments, training_args: TrainingArguments, convert: Callable[[Dataset], Dataset]
) -> tuple[Dataset, Dataset | None]:
    """PKU-SafeRLHF rows of the training (and test) split, turned into pairs by `convert`."""

    def load(split: str) -> Dataset:
        rows = load_preference_data(
            script_args.dataset_name,
            name=script_args.dataset_config,
            split=split,
            streaming=script_args.dataset_streaming,
        )
        return convert(rows)

    return load_splits(load, script_args, training_args)


def prompt_splits(
    script_args: PromptScriptArguments, training_args: TrainingArguments
) -> tuple[Dataset, Dataset | None]:
    """The prompts of the training (and test) split, for the RL scripts (`ppo`, `ppo_lag`, `grpo_lag`)."""

    def load(split: str) -> Dataset:
        return load_prompt_dataset(
            script_args.dataset_name,
            name=script_args.dataset_config,
            split=split,
            conversational=script_args.conversational,
            max_prompts=script_args.max_prompts,
            deduplicate=script_args.deduplicate_prompts,
        )

    return load_splits(load, script_args, training_args)


def sequence_classifier_lora(model_args: ModelConfig, what: str) -> None:
    """A reward or cost model is a sequence classifier: its LoRA must be of task type SEQ_CLS (trains the head)."""
    if model_args.use_peft and model_args.lora_task_type != "SEQ_CLS":
        logger.warning("A %s is a sequence classifier: using lora_task_type='SEQ_CLS' (trains its head).", what)
        model_args.lora_task_type = "SEQ_CLS"


def train_and_evaluate(trainer: Any, training_args: TrainingArguments) -> None:
    """Train (resuming if asked), then evaluate once on the test split if there is one, saving the metrics."""
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    if trainer.eval_dataset is not None:
        metrics = trainer.evaluate()
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)


def save_and_push(trainer: Any, training_args: TrainingArguments, script_args: ScriptArguments) -> None:
    """Save the model with its model card in `output_dir`, and push both with `--push_to_hub`."""
    trainer.save_model(training_args.output_dir)
    dataset_name = hub_dataset_name(script_args.dataset_name)
    trainer.create_model_card(dataset_name=dataset_name)
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=dataset_name)
