# /// script
# dependencies = ["trl-safe"]
# ///
"""Train the reward model R of Safe RLHF (helpfulness) with TRL's `RewardTrainer`.

The data is PKU-SafeRLHF (or a local file in its format) turned into helpfulness preferences: `chosen` is the more
helpful response, whatever its safety; harmlessness is the cost model's job (`examples/cost_model.py`).

    python examples/reward_model.py \
        --model_name_or_path Qwen/Qwen2.5-0.5B-Instruct \
        --dataset_name PKU-Alignment/PKU-SafeRLHF --conversational \
        --output_dir Qwen2.5-0.5B-Reward --per_device_train_batch_size 8 --num_train_epochs 1 \
        --learning_rate 1e-5 --max_length 1024 --eval_strategy steps --eval_steps 500

    # a local file in the PKU-SafeRLHF format, LoRA, and the Hub
    accelerate launch examples/reward_model.py --dataset_name my_pairs.jsonl --model_name_or_path ... \
        --use_peft --lora_r 16 --output_dir my-reward --push_to_hub

`main` takes the parsed arguments and returns the trained `RewardTrainer`, so that a pipeline can import it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase
from trl import ModelConfig, RewardTrainer, TrlParser, get_peft_config, get_quantization_config

# TRL's RewardConfig with bf16 picked from the hardware (TRL's own default stops on a CPU).
from trl_safe import PreferenceScriptArguments, RewardConfig, load_preference_data, to_helpfulness_preferences
from trl_safe.checks import check_model_path

logger = logging.getLogger(__name__)


def pad_token_distinct_from_eos(tokenizer: PreTrainedTokenizerBase) -> None:
    """Give the tokenizer a pad token other than EOS, so that `RewardTrainer` scores the EOS token.

    `RewardTrainer` reads the reward where `transformers`' pooling puts it: at the rightmost token that is not the
    pad token. When pad == EOS, that is the token *before* the EOS closing the response, while trl-safe's PPO reads
    rewards at the EOS itself (`trl_safe.scoring`). Another special token the tokenizer already has (UNK, else BOS)
    serves as padding; the attention mask, not the pad id, marks padding everywhere in trl-safe.
    """
    if tokenizer.pad_token is not None and tokenizer.pad_token != tokenizer.eos_token:
        return
    candidates = [
        token for token in (tokenizer.unk_token, tokenizer.bos_token) if token and token != tokenizer.eos_token
    ]
    if not candidates:
        logger.warning(
            "The tokenizer pads with its EOS token and has no other special token to pad with: RewardTrainer will "
            "read the reward at the token before EOS."
        )
        return
    logger.warning("Padding with %r instead of the EOS token, so that the reward is read at EOS.", candidates[0])
    tokenizer.pad_token = candidates[0]


def hub_dataset_name(name: str | None) -> str | None:
    """The data set's Hub name for the model card, or `None` for a local file or folder."""
    return None if name is None or Path(name).exists() else name


def main(
    script_args: PreferenceScriptArguments, training_args: RewardConfig, model_args: ModelConfig
) -> RewardTrainer:
    """Train, save (and optionally evaluate and push) the reward model; return the trainer."""
    # Model loading options, as in TRL's scripts.
    training_args.model_init_kwargs = {
        "revision": model_args.model_revision,
        "trust_remote_code": training_args.trust_remote_code,
        "attn_implementation": model_args.attn_implementation,
        "dtype": model_args.dtype,
        **(training_args.model_init_kwargs or {}),
    }
    if model_args.use_peft and model_args.lora_task_type != "SEQ_CLS":
        logger.warning("A reward model is a sequence classifier: using lora_task_type='SEQ_CLS' (trains its head).")
        model_args.lora_task_type = "SEQ_CLS"
    check_model_path(model_args.model_name_or_path, "model")  # a mistyped folder, not a failed Hub connection
    tokenizer = AutoTokenizer.from_pretrained(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
        trust_remote_code=training_args.trust_remote_code,
    )
    pad_token_distinct_from_eos(tokenizer)

    # Data: PKU-SafeRLHF rows -> (prompt, chosen = more helpful, rejected).
    def load(split: str):
        rows = load_preference_data(
            script_args.dataset_name,
            name=script_args.dataset_config,
            split=split,
            streaming=script_args.dataset_streaming,
        )
        return to_helpfulness_preferences(rows, conversational=script_args.conversational)

    train_dataset = load(script_args.dataset_train_split)
    eval_dataset = load(script_args.dataset_test_split) if training_args.eval_strategy != "no" else None

    trainer = RewardTrainer(
        model=model_args.model_name_or_path,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        quantization_config=get_quantization_config(model_args),
        peft_config=get_peft_config(model_args),
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    if eval_dataset is not None:
        metrics = trainer.evaluate()
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)

    trainer.save_model(training_args.output_dir)
    dataset_name = hub_dataset_name(script_args.dataset_name)
    trainer.create_model_card(dataset_name=dataset_name)
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=dataset_name)
    return trainer


if __name__ == "__main__":
    parser = TrlParser((PreferenceScriptArguments, RewardConfig, ModelConfig))
    main(*parser.parse_args_and_config())
