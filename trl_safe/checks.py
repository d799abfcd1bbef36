"""Up-front checks of what a user hands the trainers: data, tokenizers, models and scores.

(Where a score is read, `trl_safe.scoring.Scorer` checks the model's single output and refuses non-finite scores.)
Each function is small and pure (it reads its arguments, raises or logs, and returns nothing the caller must use
unless documented), so that the trainers call each one from a single line. They exist because the failures they
prevent are either silent (training goes on with wrong numbers: a string safety label read as `True`, a two-label
classifier's "safe" logit read as a cost, a NaN reward) or surface deep inside another library long after the
mistake (an empty prompt list as an `IndexError` inside TRL, a tokenizer without pad or EOS as a `TypeError` from
`torch.full`). Every error names the row, field, model or file at fault. docs/errors.md lists them all.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

# Attribute names `transformers` gives the output head of sequence-classification models (see trl_safe.scoring).
SCORE_HEAD_NAMES = ("score", "classifier", "v_head")
_WEIGHT_FILES = (
    "model.safetensors.index.json",
    "model.safetensors",
    "pytorch_model.bin.index.json",
    "pytorch_model.bin",
)
_ADAPTER_FILES = ("adapter_model.safetensors", "adapter_model.bin")


# --------------------------------------------------------------------------------------------------------------------
# Cost-model preference rows (CostTrainer)
# --------------------------------------------------------------------------------------------------------------------


def is_safety_label(value: Any) -> bool:
    """A real boolean, or the integers 0 / 1. Strings ("false", "no"), None, floats and NaN are not labels."""
    if isinstance(value, bool | np.bool_):
        return True
    return isinstance(value, Integral) and int(value) in (0, 1)


def _text_of(value: Any) -> str | None:
    """The text of a response: a string, or the concatenated contents of a conversational message list."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        contents = [m.get("content") for m in value]
        if all(isinstance(c, str) for c in contents):
            return "".join(contents)
    return None


def check_cost_row(row: dict[str, Any], index: int, dataset_name: str) -> None:
    """Check one `CostTrainer` row; raise a `ValueError` naming the data set, row and field.

    - `is_chosen_safe` / `is_rejected_safe` must be booleans (or 0/1): `bool("false")` is `True`, so a string label
      would silently mark an unsafe response safe.
    - `chosen` / `rejected` (when present, i.e. not pre-tokenized) must be non-empty text or messages.
    - The labels must not contradict the order: `chosen` is the safer response, so "chosen unsafe, rejected safe"
      makes the ranking and the sign terms pull in opposite directions; identical responses with different labels
      are contradictory too.
    """
    where = f"{dataset_name} dataset, row {index}"
    for name in ("is_chosen_safe", "is_rejected_safe"):
        value = row.get(name)
        if not is_safety_label(value):
            raise ValueError(
                f"{where}: {name!r} must be a boolean (or 0/1), got {value!r} ({type(value).__name__}). Strings such "
                "as 'false' or 'no' would be read as True; convert the labels to booleans first."
            )
    if "prompt" in row and _text_of(row["prompt"]) is None and row["prompt"] != []:
        raise ValueError(
            f"{where}: 'prompt' must be a string or a list of messages with string contents, got {row['prompt']!r}."
        )
    texts = {}
    for name in ("chosen", "rejected"):
        if name not in row:
            continue  # pre-tokenized data (`chosen_ids`), or a prompt-only layout TRL rejects itself
        text = _text_of(row[name])
        if text is None:
            raise ValueError(
                f"{where}: {name!r} must be a string or a list of messages with string contents, got "
                f"{row[name]!r} ({type(row[name]).__name__})."
            )
        if not text.strip():
            raise ValueError(f"{where}: {name!r} is empty; every response needs some text to be scored.")
        texts[name] = text
    chosen_safe, rejected_safe = bool(row["is_chosen_safe"]), bool(row["is_rejected_safe"])
    if not chosen_safe and rejected_safe:
        raise ValueError(
            f"{where}: contradictory labels: `chosen` must be the safer response, but is_chosen_safe=False and "
            "is_rejected_safe=True. Swap the pair, or drop such rows with "
            "`to_harmlessness_preferences(..., on_contradiction='drop')`."
        )
    if len(texts) == 2 and texts["chosen"] == texts["rejected"] and chosen_safe != rejected_safe:
        raise ValueError(
            f"{where}: `chosen` and `rejected` are the same response but carry different safety labels "
            f"(is_chosen_safe={chosen_safe}, is_rejected_safe={rejected_safe})."
        )


def check_cost_dataset(dataset: Any, dataset_name: str) -> Any:
    """Check every row of a `CostTrainer` data set (see `check_cost_row`); return the data set.

    An in-memory `Dataset` is checked at once, column by column, and must not be empty. A streaming
    `IterableDataset` gets a lazy check that runs as each row streams past (the returned object must be used).
    """
    from datasets import IterableDataset

    if isinstance(dataset, IterableDataset):

        def check(row: dict[str, Any], index: int) -> dict[str, Any]:
            check_cost_row(row, index, dataset_name)
            return row

        return dataset.map(check, with_indices=True)
    if len(dataset) == 0:
        raise ValueError(
            f"The {dataset_name} dataset is empty: nothing to train or evaluate on. If every row was dropped as "
            "contradictory, check the data's safety labels."
        )
    names = [
        n for n in ("prompt", "chosen", "rejected", "is_chosen_safe", "is_rejected_safe") if n in dataset.column_names
    ]
    columns = {name: dataset[name] for name in names}
    for index in range(len(dataset)):
        check_cost_row({name: column[index] for name, column in columns.items()}, index, dataset_name)
    return dataset


def to_safety_label(value: Any, name: str, index: int) -> bool:
    """A label as a `bool`, refusing anything `is_safety_label` refuses (the collator's last line of defence)."""
    if not is_safety_label(value):
        raise ValueError(f"Batch example {index}: {name!r} must be a boolean (or 0/1), got {value!r}.")
    return bool(value)


# --------------------------------------------------------------------------------------------------------------------
# Prompt data sets (PPOTrainer, PPOLagTrainer)
# --------------------------------------------------------------------------------------------------------------------


def _check_prompt(prompt: Any, index: int, dataset_name: str) -> bool:
    """Check one prompt; return whether it is conversational."""
    where = f"{dataset_name}, row {index}: 'prompt'"
    if isinstance(prompt, str):
        if not prompt.strip():
            raise ValueError(f"{where} is empty; every prompt needs some text for the policy to continue.")
        return False
    if isinstance(prompt, list):
        if not prompt:
            raise ValueError(f"{where} is an empty list of messages; a conversational prompt needs at least one.")
        for message in prompt:
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise ValueError(
                    f"{where}: every message must be a dict with a 'role' and a 'content', got {message!r}."
                )
            if not isinstance(message.get("content"), str):
                raise ValueError(f"{where}: the content of a message must be a string, got {message!r}.")
        return True
    raise ValueError(
        f"{where} must be a string or a list of messages ({{'role': ..., 'content': ...}}), got {prompt!r} "
        f"({type(prompt).__name__})."
    )


def check_prompt_dataset(
    dataset: Any,
    tokenizer: Any,
    max_prompt_length: int | None = None,
    chat_template_kwargs: dict[str, Any] | None = None,
    dataset_name: str = "train_dataset",
) -> None:
    """Check a PPO prompt data set up front, before any rollout: every prompt is a non-empty string or a non-empty
    list of messages, conversational prompts have a chat template to render them, and every prompt has tokens.

    Prompts longer than `max_prompt_length` tokens are counted and a warning says how many will be cut from the
    left (once, here, rather than silently at every rollout). `dataset` may be a dict of data sets (eval sets).
    """
    if dataset is None:
        return
    if isinstance(dataset, dict):
        for name, part in dataset.items():
            check_prompt_dataset(part, tokenizer, max_prompt_length, chat_template_kwargs, f"{dataset_name}[{name!r}]")
        return
    if "prompt" not in dataset.column_names:
        raise ValueError(f"{dataset_name} needs a `prompt` column, found {dataset.column_names}.")
    prompts = dataset["prompt"]
    if len(prompts) == 0:
        raise ValueError(f"{dataset_name} has no prompts.")
    conversational = [_check_prompt(prompt, index, dataset_name) for index, prompt in enumerate(prompts)]
    if any(conversational) and not all(conversational):
        index = conversational.index(not conversational[0])
        raise ValueError(f"{dataset_name}, row {index}: mixes text and conversational prompts; use one form.")
    if conversational[0] and not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"{dataset_name} holds conversational prompts, but the tokenizer has no chat template to render them. "
            "Give text prompts (e.g. `to_prompts(data, conversational=False)`), or set `tokenizer.chat_template`."
        )
    lengths = _prompt_lengths(prompts, conversational[0], tokenizer, chat_template_kwargs or {})
    for index, length in enumerate(lengths):
        if length == 0:
            raise ValueError(f"{dataset_name}, row {index}: the prompt {prompts[index]!r} has no tokens.")
    if max_prompt_length is not None:
        too_long = sum(length > max_prompt_length for length in lengths)
        if too_long:
            logger.warning(
                "%d of %d prompts of %s are longer than max_prompt_length=%d tokens (the longest has %d): they keep "
                "only their last %d tokens. Raise `max_prompt_length` to keep them whole.",
                too_long,
                len(lengths),
                dataset_name,
                max_prompt_length,
                max(lengths),
                max_prompt_length,
            )


def _prompt_lengths(
    prompts: Sequence[Any], conversational: bool, tokenizer: Any, chat_template_kwargs: dict[str, Any]
) -> list[int]:
    """Token counts of every prompt, tokenised as the trainer does (chat template with an open assistant turn)."""
    lengths = []
    for start in range(0, len(prompts), 1024):
        chunk = list(prompts[start : start + 1024])
        if conversational:
            ids = tokenizer.apply_chat_template(
                chunk, add_generation_prompt=True, tokenize=True, return_dict=True, **chat_template_kwargs
            )["input_ids"]
        else:
            ids = tokenizer(text=chunk)["input_ids"]
        lengths.extend(len(row) for row in ids)
    return lengths


def check_rollout_batches(num_prompts: int, global_rollout_batch_size: int, shuffle: bool) -> None:
    """Warn when the rollout batch does not divide the data set: the leftover prompts are skipped every epoch."""
    leftover = num_prompts % global_rollout_batch_size
    if leftover:
        which = "a different random subset each epoch" if shuffle else "always the same ones, the last in order"
        logger.warning(
            "The train_dataset's %d prompts do not divide into rollout batches of %d (per_device_train_batch_size × "
            "gradient_accumulation_steps × num_mini_batches × processes): %d prompts are skipped every epoch (%s).",
            num_prompts,
            global_rollout_batch_size,
            leftover,
            which,
        )


# --------------------------------------------------------------------------------------------------------------------
# Tokenizers and models
# --------------------------------------------------------------------------------------------------------------------


def check_tokenizer_can_pad(tokenizer: Any) -> None:
    """The PPO trainers pad with the pad token, or EOS when there is none; a tokenizer with neither cannot batch."""
    if tokenizer.pad_token is None and tokenizer.eos_token is None:
        raise ValueError(
            f"The tokenizer ({type(tokenizer).__name__}) has neither a pad token nor an EOS token: completions "
            "could neither end nor be batched. Set `tokenizer.eos_token` (the token that ends a response) and, if "
            "it should differ, `tokenizer.pad_token`."
        )


def check_policy_model(model: Any) -> None:
    """The policy must generate text: a causal LM, not a sequence classifier (swapped `model` / `reward_model`?)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    can_generate = getattr(base, "can_generate", None)
    if not callable(can_generate) or not can_generate():
        raise TypeError(
            f"The policy `model` must be a causal language model (AutoModelForCausalLM) that can generate, got "
            f"{type(base).__name__}. A sequence classifier is a reward or cost model: pass it as `reward_model` / "
            "`cost_model`."
        )


def check_model_path(path: str, role: str) -> None:
    """A path that looks local (absolute, `./`, `../`, `~`, or more than one `/`) must exist: otherwise
    `from_pretrained` would try the Hub and report a failed connection instead of the missing folder. An existing
    folder must hold a model (a training run's output folder holds only `checkpoint-*` until `save_model`)."""
    expanded = os.path.expanduser(path)
    looks_local = (
        os.path.isabs(expanded)
        or path.startswith((".", "~"))
        or path.count("/") > 1
        or (os.sep != "/" and os.sep in path)
    )
    if looks_local and not os.path.exists(expanded):
        raise FileNotFoundError(f"The {role} path {path!r} does not exist (no such directory).")
    if os.path.isdir(expanded) and not any(
        os.path.isfile(os.path.join(expanded, name)) for name in ("config.json", "adapter_config.json")
    ):
        checkpoints = sorted(name for name in os.listdir(expanded) if name.startswith("checkpoint-"))
        hint = (
            f" It holds {checkpoints}: pass one of them, or call `trainer.save_model()` after training."
            if checkpoints
            else " Was the model saved there (`trainer.save_model()`)?"
        )
        raise FileNotFoundError(f"The {role} folder {path!r} holds no model (no config.json).{hint}")


def _resolve(path: str, filename: str) -> str | None:
    """`filename` inside a local folder or a cached Hub repository, or None (never downloads, never raises)."""
    from transformers.utils import cached_file

    try:
        return cached_file(
            path,
            filename,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
        )
    except (OSError, ValueError):
        return None


def _weight_file_names(resolved: str) -> list[str] | None:
    """The tensor names of one weight file or index, reading no tensor data (safetensors' header; a pickled
    `.bin` memory-mapped, its storages never touched), or None for a `.bin` that cannot be read that way (the
    legacy, pre-zip format, or one that is not a plain state dict)."""
    if resolved.endswith(".json"):
        with open(resolved) as file:
            return list(json.load(file).get("weight_map", {}))
    if resolved.endswith(".safetensors"):
        from safetensors import safe_open

        with safe_open(resolved, framework="pt") as file:
            return list(file.keys())
    import pickle

    import torch

    try:
        return list(torch.load(resolved, map_location="cpu", mmap=True, weights_only=True))
    except (RuntimeError, OSError, pickle.UnpicklingError):
        return None


def _checkpoint_weight_names(path: str, _depth: int = 0) -> list[str] | None:
    """The parameter names stored in a checkpoint (local folder or cached Hub id), or None if they cannot be read
    without downloading (not cached) or loading it.

    Full checkpoints are read in `transformers`' order of preference (safetensors, then the pickled `.bin`, sharded
    or not). A PEFT adapter folder counts its own tensors (a SEQ_CLS adapter saves the trained head through
    `modules_to_save`) and, if it holds no head, its base model's: an adapter on top of a trained reward model is a
    trained reward model.
    """
    for filename in _WEIGHT_FILES:
        resolved = _resolve(path, filename)
        if resolved is not None:
            return _weight_file_names(resolved)
    for filename in _ADAPTER_FILES:
        resolved = _resolve(path, filename)
        if resolved is None:
            continue
        names = _weight_file_names(resolved)
        config_file = _resolve(path, "adapter_config.json")
        if names is None or _has_score_head(names) or config_file is None or _depth > 0:
            return names
        with open(config_file) as file:
            base = json.load(file).get("base_model_name_or_path")
        base_names = _checkpoint_weight_names(base, _depth + 1) if base else None
        return None if base_names is None else names + base_names
    return None


def _has_score_head(names: Iterable[str]) -> bool:
    return any(part in SCORE_HEAD_NAMES for name in names for part in name.split(".")[:-1])


def check_score_model_trained(path: str, role: str, allow_untrained: bool = False) -> None:
    """Refuse a checkpoint that has no trained score head, e.g. a base or instruction model given as a reward model.

    `AutoModelForSequenceClassification` loads such a checkpoint with a *randomly initialised* head (transformers
    only prints a "newly initialized" note): its scores would be noise, and in PPO-Lag that noise would drive λ.
    The check reads the checkpoint's parameter names (no weights are loaded): full checkpoints in safetensors or
    `.bin`, PEFT adapters with their base model; when they cannot be read (not cached) it passes.
    `allow_untrained=True` lets it through (tests, or a head that will be trained some other way).
    """
    if allow_untrained:
        return
    names = _checkpoint_weight_names(path)
    if names is None:
        return
    if not _has_score_head(names):
        trainer = "CostTrainer" if role == "cost" else "TRL's RewardTrainer"
        raise ValueError(
            f"The {role} model {path!r} has no trained score head (its checkpoint holds no `score` / `classifier` "
            f"weights; it looks like a base or chat model): loaded as a {role} model, its head would be random and "
            f"its scores noise. Train a {role} model from it first with {trainer}, or set "
            "`allow_untrained_score_head=True` in the config if this is intended."
        )


# --------------------------------------------------------------------------------------------------------------------
# Configs and trainer arguments
# --------------------------------------------------------------------------------------------------------------------


def check_finite_fields(config: Any, names: Iterable[str]) -> None:
    """Every named float field of `config` that is set must be a finite number (NaN passes `x >= 0` checks)."""
    for name in names:
        value = getattr(config, name)
        if value is None:
            continue
        if not isinstance(value, Real) or isinstance(value, bool) or not math.isfinite(value):
            raise ValueError(f"{type(config).__name__}: {name} must be a finite number, got {value!r}.")


def check_config_class(args: Any, expected: type, trainer_name: str) -> None:
    """A trainer must get its own config class: e.g. `PPOTrainer` given a `PPOLagConfig` would silently ignore the
    constraint. A user's own subclass of the expected class is fine."""
    if not isinstance(args, expected):
        raise TypeError(f"{trainer_name} needs a {expected.__name__}, got {type(args).__name__}.")
    kind = type(args)
    if kind is not expected and kind.__module__.startswith("trl_safe."):
        hint = (
            " Use PPOLagTrainer (with a `cost_model`) to enforce the cost constraint."
            if "Lag" in kind.__name__
            else ""
        )
        raise TypeError(
            f"{trainer_name} got a {kind.__name__}, whose extra settings it would ignore; it takes a "
            f"{expected.__name__}.{hint}"
        )


def resolve_reward_source(reward_model: Any, reward_funcs: Any, trainer_name: str) -> Any:
    """Accept GRPO's `reward_funcs=` (one function or model, or a list of one) as `reward_model`."""
    if reward_funcs is None:
        return reward_model
    if reward_model is not None:
        raise TypeError(f"{trainer_name}: pass the reward as `reward_model` or `reward_funcs`, not both.")
    funcs = list(reward_funcs) if isinstance(reward_funcs, list | tuple) else [reward_funcs]
    if len(funcs) != 1:
        raise TypeError(
            f"{trainer_name} takes one reward source (`reward_model`), got {len(funcs)} in `reward_funcs`. Combine "
            "them in one function f(prompts, completions, **kwargs) that returns their (weighted) sum."
        )
    return funcs[0]


def load_json_file(path: str, what: str) -> Any:
    """`json.load` of a file whose errors name the file and say what it is (not a bare `JSONDecodeError`)."""
    try:
        with open(path) as file:
            return json.load(file)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path}: the {what} is not valid JSON ({error}); the file is truncated or corrupted."
        ) from None


def first_bad_json_line(path: str) -> tuple[int, str] | None:
    """The first line of a JSON Lines file that is not a JSON object: `(line number, error)`, or None."""
    with open(path, encoding="utf-8", errors="replace") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as error:
                return number, str(error)
            if not isinstance(value, dict):
                return number, f"expected a JSON object, got {type(value).__name__}"
    return None
