"""Batched generation of completions and their scoring by the reward and cost models.

Generation: prompts are rendered with the policy tokenizer's chat template when it has one (a user turn plus the
generation prompt), left-padded (decoder-only models continue from the last position), generated in batches (greedy by
default) and each completion is cut at its first EOS token.

Scoring: the reward and cost models read each answer the way they were trained on it, through
`trl_safe.scoring.Scorer` (the one rule shared with PPO, PPO-Lag and GRPO-Lag): the conversation rendered with the
scorer's own chat template, which closes the assistant turn, or `prompt + completion + eos_token` for plain text, read
at the last token. Policy and scorers need not share a vocabulary.

Batches are formed from prompts of similar length (fewer pad tokens); results come back in the input order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

from ..scoring import Scorer, encode_for_scoring

Prompt = str | Sequence[Mapping[str, str]]


@dataclass
class Completion:
    """One generated completion.

    Attributes:
        text: the decoded completion, up to (not including) the first EOS token.
        num_tokens: number of generated tokens before the EOS.
        finished: whether the policy produced an EOS within `max_new_tokens` (False: truncated).
    """

    text: str
    num_tokens: int
    finished: bool


def _messages(prompt: Prompt) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]


def _uses_chat_template(tokenizer: PreTrainedTokenizerBase, use_chat_template: bool | None, prompt: Prompt) -> bool:
    has_template = getattr(tokenizer, "chat_template", None) is not None
    if use_chat_template and not has_template:
        raise ValueError(f"use_chat_template=True but the tokenizer {tokenizer.name_or_path!r} has no chat template.")
    use = has_template if use_chat_template is None else use_chat_template
    if not use and not isinstance(prompt, str):
        raise ValueError(
            f"Conversational prompts need a chat template, and the tokenizer {tokenizer.name_or_path!r} has none "
            "(or use_chat_template=False)."
        )
    return use


def _token_ids(encoded) -> list[int]:
    # `apply_chat_template(tokenize=True)` returns a list of ids or, in recent versions, a BatchEncoding.
    return list(encoded["input_ids"]) if isinstance(encoded, Mapping) else list(encoded)


def encode_prompt(
    tokenizer: PreTrainedTokenizerBase, prompt: Prompt, use_chat_template: bool | None = None
) -> list[int]:
    """Token ids of `prompt` as the policy sees it before it answers."""
    if _uses_chat_template(tokenizer, use_chat_template, prompt):
        return _token_ids(tokenizer.apply_chat_template(_messages(prompt), tokenize=True, add_generation_prompt=True))
    return tokenizer(prompt)["input_ids"]


def encode_conversation(
    tokenizer: PreTrainedTokenizerBase, prompt: Prompt, completion: str, use_chat_template: bool | None = None
) -> list[int]:
    """Token ids of prompt + completion as a reward/cost model reads them (`trl_safe.scoring.encode_for_scoring`)."""
    return encode_for_scoring(tokenizer, _scorer_prompt(tokenizer, prompt, use_chat_template), completion)


def _scorer_prompt(tokenizer: PreTrainedTokenizerBase, prompt: Prompt, use_chat_template: bool | None) -> Prompt:
    """The prompt in the form the scorer was trained on: a conversation when its template is used, else text."""
    return _messages(prompt) if _uses_chat_template(tokenizer, use_chat_template, prompt) else prompt


def _pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise ValueError(f"The tokenizer {tokenizer.name_or_path!r} has neither a pad nor an EOS token.")
    return pad_id


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad token id lists to a `[batch, max_len]` tensor and its attention mask, on the `left` or the `right`."""
    length = max(len(sequence) for sequence in sequences)
    input_ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        span = slice(length - len(sequence), length) if side == "left" else slice(0, len(sequence))
        input_ids[row, span] = torch.tensor(sequence, dtype=torch.long)
        attention_mask[row, span] = 1
    return input_ids, attention_mask


def _length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def _eos_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, config: GenerationConfig) -> set[int]:
    ids: set[int] = set()
    for value in (config.eos_token_id, getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if value is not None:
            ids.update([value] if isinstance(value, int) else value)
    if not ids:
        raise ValueError(f"No EOS token known for {tokenizer.name_or_path!r}: completions could not be cut.")
    return ids


@torch.no_grad()
def generate_completions(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Prompt],
    *,
    generation_config: GenerationConfig | None = None,
    batch_size: int = 16,
    use_chat_template: bool | None = None,
    desc: str = "Generating",
) -> list[Completion]:
    """Generate one completion per prompt (greedy unless `generation_config` says otherwise), cut at the first EOS.

    Args:
        model: a causal LM (a `PeftModel` works too); it is put in eval mode and used on its current device.
        tokenizer: the policy's tokenizer.
        prompts: strings or conversations.
        generation_config: decoding settings; default greedy with 128 new tokens.
        batch_size: prompts per `generate` call.
        use_chat_template: render prompts with the chat template; None uses it when the tokenizer has one.
        desc: progress-bar label.
    """
    config = generation_config or GenerationConfig(max_new_tokens=128, do_sample=False)
    pad_id = _pad_id(tokenizer)
    eos_ids = _eos_ids(model, tokenizer, config)
    encoded = [encode_prompt(tokenizer, prompt, use_chat_template) for prompt in prompts]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    completions: list[Completion | None] = [None] * len(prompts)
    try:
        for batch in tqdm(_length_sorted_batches([len(e) for e in encoded], batch_size), desc=desc, unit="batch"):
            input_ids, attention_mask = pad_batch([encoded[i] for i in batch], pad_id, side="left")
            output = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention_mask.to(device),
                generation_config=config,
                pad_token_id=pad_id,
                eos_token_id=sorted(eos_ids),  # stop where the completion will be cut
            )
            new_tokens = output[:, input_ids.shape[1] :].tolist()
            for index, tokens in zip(batch, new_tokens):
                end = next((position for position, token in enumerate(tokens) if token in eos_ids), None)
                kept = tokens if end is None else tokens[:end]
                completions[index] = Completion(
                    text=tokenizer.decode(kept, skip_special_tokens=True),
                    num_tokens=len(kept),
                    finished=end is not None,
                )
    finally:
        model.train(was_training)
    return completions  # type: ignore[return-value]


@torch.no_grad()
def score_completions(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Prompt],
    completions: Sequence[str],
    *,
    batch_size: int = 16,
    use_chat_template: bool | None = None,
    desc: str = "Scoring",
) -> np.ndarray:
    """Score each (prompt, completion) with a one-output sequence-classification model; returns a `[N]` array."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions.")
    reader = Scorer(model, tokenizer, name="reward or cost", batch_size=batch_size)
    prompts = [_scorer_prompt(tokenizer, prompt, use_chat_template) for prompt in prompts]
    was_training = model.training
    model.eval()
    scores = np.empty(len(prompts), dtype=np.float64)
    try:
        lengths = [len(str(prompt)) + len(str(completion)) for prompt, completion in zip(prompts, completions)]
        for batch in tqdm(_length_sorted_batches(lengths, batch_size), desc=desc, unit="batch"):
            values = reader.score([prompts[i] for i in batch], [completions[i] for i in batch])
            scores[batch] = values.cpu().numpy()
    finally:
        model.train(was_training)
    return scores
