"""Reading scores and values at the right token of a sequence-classification model.

Safe RLHF reads the reward and the cost at the last token of each sequence (the EOS of the response), and the
critics' values at every token. `transformers`' sequence-classification models pool their logits at "the rightmost
token that is not `pad_token_id`". That is wrong in a very common set-up: when the tokenizer's pad token *is* its EOS
token (Llama, Qwen, SmolLM, ...), the EOS that closes the response counts as padding and the score is read one token
too early, at the token *before* EOS. The position is also wrong whenever a pad id legitimately occurs inside a
sequence.

This module reads the head's per-token output instead, through a forward hook on the score head, and picks the
positions from the attention mask. Going through `model(...)` (rather than calling the backbone and head directly)
keeps DDP's gradient synchronisation, DeepSpeed's parameter gathering and PEFT's adapters working unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

# Attribute names under which `transformers` sequence-classification models keep their output head.
_HEAD_NAMES = ("score", "classifier", "v_head")


def _unwrap(model: nn.Module) -> nn.Module:
    """Strip DDP/DeepSpeed (`.module`) and PEFT (`get_base_model`) wrappers to reach the `transformers` model."""
    while hasattr(model, "module") and isinstance(model.module, nn.Module):
        model = model.module
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model


def find_score_head(model: nn.Module) -> nn.Module:
    """Return the module that maps hidden states to per-token scores (`score` for Llama-like models).

    Raises:
        ValueError: if the model has no recognisable head; the message lists the names that were tried.
    """
    base = _unwrap(model)
    for name in _HEAD_NAMES:
        head = getattr(base, name, None)
        if isinstance(head, nn.Module):
            return head
    raise ValueError(
        f"Cannot find the score head of {type(base).__name__}: expected one of the attributes {_HEAD_NAMES}. "
        "trl-safe expects an `AutoModelForSequenceClassification` model."
    )


@contextmanager
def capture_head_output(model: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Capture the per-token output `[batch, seq, num_labels]` of the score head during one forward pass."""
    captured: dict[str, torch.Tensor] = {}

    def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        captured["logits"] = output

    handle = find_score_head(model).register_forward_hook(hook)
    try:
        yield captured
    finally:
        handle.remove()


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the rightmost attended position of each row; correct for left and right padding alike."""
    positions = torch.arange(attention_mask.shape[-1], device=attention_mask.device)
    return (positions * attention_mask.to(positions.dtype)).argmax(dim=-1)


def per_token_scores(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, **forward_kwargs
) -> torch.Tensor:
    """Run the model once and return the head's output at every position, shape `[batch, seq, num_labels]`."""
    with capture_head_output(model) as captured:
        model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **forward_kwargs)
    if "logits" not in captured:
        raise RuntimeError("The score head was not called during the forward pass.")
    return captured["logits"]


def last_token_scores(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, **forward_kwargs
) -> torch.Tensor:
    """Scores read at the last attended token of each sequence, shape `[batch, num_labels]`.

    This is where Safe RLHF reads R(y, x) and C(y, x): at the EOS token closing the response, even when the
    tokenizer's pad token equals its EOS token.
    """
    logits = per_token_scores(model, input_ids, attention_mask, **forward_kwargs)
    rows = torch.arange(logits.shape[0], device=logits.device)
    return logits[rows, last_token_index(attention_mask).to(logits.device)]


# ---------------------------------------------------------------------------------------------------------------------
# Where a score is read: one rule for training, RL and evaluation
# ---------------------------------------------------------------------------------------------------------------------
#
# A reward or cost model is trained by TRL's `RewardTrainer` (or our `CostTrainer`, which inherits its tokenization)
# on whole examples, and its head learns to summarise the example at the example's LAST token:
#
#   conversational  tokenizer.apply_chat_template(prompt + [assistant turn]) -- the whole rendered conversation,
#                   including whatever the template writes after the end-of-turn token (SmolLM2 and Qwen2.5 render
#                   `...<|im_end|>\n`, so the head is trained at the trailing `\n`; Llama 3 ends at `<|eot_id|>`);
#   plain text      tokenizer(prompt + completion + eos_token) -- TRL appends the EOS string when it is missing.
#
# A score read anywhere else reads a position the head never saw in training. A completion sampled by the policy
# stops at its end-of-turn token (`<|im_end|>`), one token short of the trained position, and a truncated completion
# stops mid-sentence. So every completion is scored the way a training example is written: its text is rendered with
# the scorer's own tokenizer and template, which closes the turn, and the score is read at the last token of that
# rendering. `encode_for_scoring` is that rule; `Scorer` applies it for PPO, PPO-Lag, GRPO-Lag and the evaluation.

Prompt = str | Sequence[Mapping[str, Any]]
Completion = str | Sequence[Mapping[str, Any]]


def is_conversation(value: Any) -> bool:
    """True for a list of chat messages (`[{"role": ..., "content": ...}, ...]`), False for a string."""
    if isinstance(value, str):
        return False
    return isinstance(value, Sequence) and all(isinstance(m, Mapping) and "role" in m for m in value)


def _token_ids(encoded: Any) -> list[int]:
    # `apply_chat_template(tokenize=True)` returns a list of ids or, with `return_dict=True`, a mapping.
    return list(encoded["input_ids"]) if isinstance(encoded, Mapping) else list(encoded)


def encode_for_scoring(
    tokenizer: PreTrainedTokenizerBase,
    prompt: Prompt,
    completion: Completion,
    chat_template_kwargs: Mapping[str, Any] | None = None,
    finished: bool = True,
) -> list[int]:
    """Token ids of (prompt, completion) exactly as `RewardTrainer` / `CostTrainer` tokenize a training example.

    The score of the pair is read at the last of these ids. A conversational prompt is rendered with the chat
    template together with the completion as the assistant's turn (a completion given as a string becomes that
    turn); a plain-text prompt is joined to the completion and closed with the EOS token, as TRL does.
    `finished=False` (a completion cut short; PTX's `finished` column) leaves the turn open: the chat template's
    `continue_final_message=True`, or no closing EOS, so the ids end where the completion ends.

    Raises:
        ValueError: a conversational prompt with a tokenizer that has no chat template; a plain-text prompt with a
            conversational completion; a plain-text example and a tokenizer without an EOS token.
    """
    if is_conversation(prompt):
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError(
                f"The prompt is a conversation but the scorer's tokenizer {tokenizer.name_or_path!r} has no chat "
                "template: a model trained on conversations is read on their rendering. Pass the tokenizer the model "
                "was trained with."
            )
        turn = list(completion) if is_conversation(completion) else [{"role": "assistant", "content": completion}]
        conversation = [dict(message) for message in prompt] + [dict(message) for message in turn]
        open_turn = {} if finished else {"continue_final_message": True}
        encoded = tokenizer.apply_chat_template(
            conversation, tokenize=True, return_dict=True, **open_turn, **dict(chat_template_kwargs or {})
        )
        return _token_ids(encoded)
    if not isinstance(prompt, str) or not isinstance(completion, str):
        raise ValueError(
            "A plain-text prompt needs a plain-text completion (got "
            f"{type(prompt).__name__} prompt, {type(completion).__name__} completion)."
        )
    text = prompt + completion
    if not finished:
        return _token_ids(tokenizer(text=text))
    eos = tokenizer.eos_token
    if eos is None:
        raise ValueError(f"The tokenizer {tokenizer.name_or_path!r} has no EOS token to close a plain-text example.")
    if not text.endswith(eos):
        text += eos
    return _token_ids(tokenizer(text=text))


class Scorer:
    """A reward or cost model, read where it was trained.

    Wraps a one-output sequence-classification model and the tokenizer it was trained with. `score(prompts,
    completions)` renders each pair with `encode_for_scoring`, right-pads the batch and reads the head at the last
    attended token (`last_token_scores`). PPO, PPO-Lag, GRPO-Lag and `trl_safe.evaluation` all score through this
    class, so the three places where a score is read (training, RL, evaluation) agree by construction.

    Args:
        model: a sequence-classification model with one output (`num_labels=1`).
        tokenizer: the tokenizer (and chat template) the model was trained with.
        name: what the scores are, for error messages (`"reward"`, `"cost"`, ...).
        batch_size: pairs per forward pass (`None`: all at once).
        chat_template_kwargs: extra arguments for `apply_chat_template`, as given to the trainers.
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        *,
        name: str = "score",
        batch_size: int | None = None,
        chat_template_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        find_score_head(model)  # fails early, naming the attributes it tried, on a model without a score head
        num_labels = getattr(getattr(_unwrap(model), "config", None), "num_labels", 1)
        if num_labels != 1:
            raise ValueError(
                f"The {name} model has {num_labels} outputs; a reward or cost model has exactly one (num_labels=1). "
                "A safe/unsafe classifier with two logits is not a cost model: its first column is the 'safe' logit, "
                "which would invert the constraint. Train one with `CostTrainer` (C > 0 means unsafe)."
            )
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad_id is None:
            raise ValueError(
                f"The {name} tokenizer {tokenizer.name_or_path!r} has neither a pad nor an EOS token to pad with."
            )
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.batch_size = batch_size
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.pad_id = int(pad_id)

    @property
    def display_name(self) -> str:
        config = getattr(_unwrap(self.model), "config", None)
        model_id = str(getattr(config, "_name_or_path", "") or "").rstrip("/").split("/")[-1]
        return model_id or f"{self.name}_model"

    def encode(self, prompt: Prompt, completion: Completion) -> list[int]:
        """The token ids this scorer reads for one pair; the score is read at the last one."""
        return encode_for_scoring(self.tokenizer, prompt, completion, self.chat_template_kwargs)

    @torch.no_grad()
    def score(self, prompts: Sequence[Prompt], completions: Sequence[Completion]) -> torch.Tensor:
        """One float32 score per (prompt, completion), shape `[N]`, on the model's device.

        Raises:
            ValueError: on a length mismatch, or when the model gives a non-finite score (the message names the
                model and the completion: training must not go on with NaN rewards or costs).
        """
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions to score.")
        if len(prompts) == 0:
            return torch.empty(0)
        device = _model_device(self.model)
        encoded = [self.encode(prompt, completion) for prompt, completion in zip(prompts, completions)]
        step = self.batch_size or len(encoded)
        scores = []
        for start in range(0, len(encoded), step):
            chunk = encoded[start : start + step]
            input_ids, attention_mask = _right_pad(chunk, self.pad_id)
            values = last_token_scores(self.model, input_ids.to(device), attention_mask.to(device))
            scores.append(values[:, 0].float())
        result = torch.cat(scores)
        bad = torch.nonzero(~torch.isfinite(result)).flatten()
        if bad.numel():
            index = int(bad[0])
            raise ValueError(
                f"The {self.name} model `{self.display_name}` gave a non-finite score ({result[index].item()}) for "
                f"completion {index} ({_preview(completions[index])}) of prompt {_preview(prompts[index])}; "
                f"{bad.numel()} of {len(result)} scores are non-finite. Check the model's weights (NaN or inf) and "
                "its dtype: training cannot go on with them."
            )
        return result


def _model_device(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:  # no parameters (a stub): inputs stay on the CPU
        return torch.device("cpu")


def _right_pad(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`[batch, longest]` ids and attention mask, padded on the right (default position ids stay right)."""
    length = max(len(sequence) for sequence in sequences)
    input_ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        input_ids[row, : len(sequence)] = torch.tensor(list(sequence), dtype=torch.long)
        attention_mask[row, : len(sequence)] = 1
    return input_ids, attention_mask


def _preview(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else str(value)
    return repr(text[:limit] + ("…" if len(text) > limit else ""))
