"""Train the reward model R of Safe RLHF (helpfulness) with TRL's `RewardTrainer`.

The data is PKU-SafeRLHF (or a local file in its format) turned into helpfulness preferences: `chosen` is the more
helpful response, whatever its safety; harmlessness is the cost model's job (`trl-safe cost_model`).

    trl-safe reward_model \
        --model_name_or_path Qwen/Qwen2.5-0.5B-Instruct \
        --dataset_name PKU-Alignment/PKU-SafeRLHF --conversational \
        --output_dir Qwen2.5-0.5B-Reward --per_device_train_batch_size 8 --num_train_epochs 1 \
        --learning_rate 1e-5 --max_length 1024 --eval_strategy steps --eval_steps 500

    # a local file in the PKU-SafeRLHF format, LoRA, and the Hub
    accelerate launch examples/reward_model.py --dataset_name my_pairs.jsonl --model_name_or_path ... \
        --use_peft --lora_r 16 --output_dir my-reward --push_to_hub

`make_parser()` builds the command line; `main` takes the parsed arguments and returns the trained `RewardTrainer`.
"""

from __future__ import annotations

import logging

from transformers import PreTrainedTokenizerBase
from trl import ModelConfig, RewardTrainer, TrlParser, get_peft_config, get_quantization_config

from trl_safe.data import PreferenceScriptArguments, to_helpfulness_preferences
from trl_safe.reward_config import RewardConfig  # TRL's, with bf16 picked from the hardware (TRL's stops on a CPU)
from trl_safe.scripts.utils import (
    load_tokenizer,
    preference_splits,
    save_and_push,
    sequence_classifier_lora,
    set_model_init_kwargs,
    train_and_evaluate,
)

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


def make_parser(prog: str | None = None) -> TrlParser:
    return TrlParser((PreferenceScriptArguments, RewardConfig, ModelConfig), prog=prog)


def main(
    script_args: PreferenceScriptArguments, training_args: RewardConfig, model_args: ModelConfig
) -> RewardTrainer:
    """Train, save (and optionally evaluate and push) the reward model; return the trainer."""
    set_model_init_kwargs(training_args, model_args)
    sequence_classifier_lora(model_args, "reward model")
    tokenizer = load_tokenizer(model_args, training_args)
    pad_token_distinct_from_eos(tokenizer)

    # Data: PKU-SafeRLHF rows -> (prompt, chosen = more helpful, rejected).
    train_dataset, eval_dataset = preference_splits(
        script_args,
        training_args,
        lambda rows: to_helpfulness_preferences(rows, conversational=script_args.conversational),
    )
    trainer = RewardTrainer(
        model=model_args.model_name_or_path,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        quantization_config=get_quantization_config(model_args),
        peft_config=get_peft_config(model_args),
    )
    train_and_evaluate(trainer, training_args)
    save_and_push(trainer, training_args, script_args)
    return trainer


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
