"""Tiny models and a tokenizer built in-process, for tests, benchmarks and smoke runs without the Hub.

The tokenizer is character level (every printable ASCII character is a token) with a small chat template, so any
text, including the real safety data sets, can be tokenized offline. The models are randomly initialised Llama
models of a few tens of thousands of parameters: fast on a CPU, and the same code paths as a real Llama.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import string
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    LlamaConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

SPECIAL_TOKENS = ["<pad>", "<unk>", "<bos>", "<eos>", "<|system|>", "<|user|>", "<|assistant|>"]

# One turn: role marker, content, EOS. The generation prompt opens an assistant turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<eos>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def make_tiny_tokenizer(pad_equals_eos: bool = False) -> PreTrainedTokenizerFast:
    """A character-level tokenizer with a chat template.

    Args:
        pad_equals_eos: use the EOS token as pad token, the set-up of many instruction models (and the one in which
            `transformers`' own score pooling reads the wrong token; see `trl_safe.scoring`).
    """
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    for char in string.printable:
        vocab.setdefault(char, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    # Special tokens are matched before this runs; everything else is split into single characters.
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens(SPECIAL_TOKENS)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        pad_token="<eos>" if pad_equals_eos else "<pad>",
        additional_special_tokens=["<|system|>", "<|user|>", "<|assistant|>"],
        padding_side="right",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


# Real chat templates, for tests of where a score is read (`trl_safe.scoring`). SmolLM2-Instruct and Qwen2.5 write a
# newline after the end-of-turn token; Llama 3 writes nothing after it (and trims the content).
SMOLLM2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
QWEN25_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}"
    "{% endif %}{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim"
    " + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
CHAT_STYLES = {
    # style: (chat template, EOS token = the end-of-turn token generation stops at, extra special tokens)
    "smollm2": (SMOLLM2_CHAT_TEMPLATE, "<|im_end|>", ["<|im_start|>", "<|im_end|>"]),
    "qwen2.5": (QWEN25_CHAT_TEMPLATE, "<|im_end|>", ["<|im_start|>", "<|im_end|>"]),
    "llama3": (
        LLAMA3_CHAT_TEMPLATE,
        "<|eot_id|>",
        ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
    ),
}


def make_tiny_chat_tokenizer(style: str) -> PreTrainedTokenizerFast:
    """A character-level tokenizer with a real model family's chat template and end-of-turn EOS token.

    Args:
        style: "smollm2", "qwen2.5" or "llama3" (see `CHAT_STYLES`).
    """
    template, eos_token, extra = CHAT_STYLES[style]
    tokenizer = make_tiny_tokenizer()
    # One token per character, newlines included (templates write "\n\n").
    tokenizer.backend_tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex("[\\s\\S]"), behavior="isolated")
    tokenizer.add_special_tokens({"additional_special_tokens": extra}, replace_extra_special_tokens=False)
    tokenizer.eos_token = eos_token
    if style == "llama3":
        tokenizer.bos_token = "<|begin_of_text|>"
    tokenizer.chat_template = template
    return tokenizer


def tiny_llama_config(
    tokenizer: PreTrainedTokenizerFast,
    hidden_size: int = 32,
    num_hidden_layers: int = 2,
    num_labels: int = 1,
    **overrides,
) -> LlamaConfig:
    """A Llama configuration small enough for a CPU test, wired to `tokenizer`'s special tokens."""
    values = dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        num_labels=num_labels,
        tie_word_embeddings=False,
    )
    values.update(overrides)
    return LlamaConfig(**values)


def make_tiny_causal_lm(tokenizer: PreTrainedTokenizerFast, seed: int = 0, **config_kwargs) -> PreTrainedModel:
    """A randomly initialised tiny Llama causal LM (a policy)."""
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(tiny_llama_config(tokenizer, **config_kwargs))


def save_tiny_lora_adapter(
    tokenizer: PreTrainedTokenizerFast, directory: Path, with_tokenizer: bool = True
) -> tuple[Path, Path, torch.nn.Module]:
    """A tiny start model saved with its tokenizer in `directory / "start"`, and a LoRA adapter on it with a non-zero
    update saved in `directory / "adapter"`, with the tokenizer or, as PEFT's `save_pretrained` writes it (and
    `benchmarks/ptx_sft_check.py --save_adapter`), alone. Returns both folders and the adapted (PEFT) model."""
    from peft import LoraConfig, get_peft_model

    start, adapter = Path(directory) / "start", Path(directory) / "adapter"
    make_tiny_causal_lm(tokenizer, seed=0).save_pretrained(start)
    tokenizer.save_pretrained(start)
    config = LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False)
    model = get_peft_model(make_tiny_causal_lm(tokenizer, seed=0), config)
    model.peft_config["default"].base_model_name_or_path = str(start)
    model.save_pretrained(adapter)
    if with_tokenizer:
        tokenizer.save_pretrained(adapter)
    return start, adapter, model


def make_tiny_scorer(
    tokenizer: PreTrainedTokenizerFast, num_labels: int = 1, seed: int = 0, **config_kwargs
) -> PreTrainedModel:
    """A randomly initialised tiny Llama sequence classifier (a reward/cost model, or a critic with 2 heads)."""
    torch.manual_seed(seed)
    return AutoModelForSequenceClassification.from_config(
        tiny_llama_config(tokenizer, num_labels=num_labels, **config_kwargs)
    )


# What every tiny CPU test run shares: 6-token completions, a log per step, no checkpoints, reporting or progress bar,
# no activation checkpointing (TRL's default is on: only slower at this size), seed 0.
_TINY_RUN = dict(
    max_completion_length=6,
    logging_steps=1,
    save_strategy="no",
    report_to="none",
    activation_checkpointing=False,
    disable_tqdm=True,
    seed=0,
)


def tiny_rl_config(config_class: type, output_dir, **overrides):
    """A `PPOConfig`-like config (`config_class`) sized for a CPU test: 2 prompts per micro-batch, one PPO epoch,
    6-token completions, 2 steps, a large learning rate, no checkpoints, no reporting. `overrides` win."""
    values = dict(
        _TINY_RUN,
        output_dir=str(output_dir),
        per_device_train_batch_size=2,
        gradient_accumulation_steps=1,
        num_mini_batches=1,
        num_ppo_epochs=1,
        max_steps=2,
        learning_rate=1e-3,
    )
    values.update(overrides)
    return config_class(**values)


def tiny_critic_free_config(config_class: type, output_dir, **overrides):
    """A config of TRL's GRPO or RLOO (or their -Lag subclasses) sized for a CPU test: 4 completions per step in one
    group of 4, 3 steps, a large learning rate, float32 on the CPU, no reference model (`beta=0`: GRPO's default;
    RLOO's would load one from the Hub). `overrides` win."""
    values = dict(
        _TINY_RUN,
        output_dir=str(output_dir),
        per_device_train_batch_size=4,
        num_generations=4,
        max_steps=3,
        learning_rate=1e-2,
        bf16=False,
        use_cpu=True,
        beta=0.0,
    )
    values.update(overrides)
    return config_class(**values)


@contextlib.contextmanager
def script_module(path: str | Path) -> Iterator[ModuleType]:
    """A stand-alone script (`benchmarks/`, `scripts/`: not a package) imported for a test as
    `<its name>_under_test`, and forgotten afterwards."""
    spec = importlib.util.spec_from_file_location(f"{Path(path).stem}_under_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def exit_without_finalizing(code: int = 0) -> NoReturn:
    """Leave a launched multi-process script at once, skipping the interpreter's finalization.

    Why: `trainer.end()` / `accelerator.end_training()` destroys the process group, but that only drops
    torch.distributed's own references; the DDP wrapper and the trainer still hold the gloo group, which is then torn
    down while the interpreter finalizes, and that sometimes aborts with "terminate called without an active
    exception" (SIGABRT, exit code -6) after every rank has saved its result: 2 of 5 plain runs without `end()`, and
    once in CI with it (docs/scale_out.md). A test script has nothing left to do at that point, so it flushes its
    output and exits without running the finalizers.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
