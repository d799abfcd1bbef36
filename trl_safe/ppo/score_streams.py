"""The scores PPO optimises: one `ScoreStream` per critic value head ("reward"; "cost" for PPO-Lag).

A stream's source is a sequence-classification model (instance, or path / Hub id) or a function
`f(prompts, completions, **kwargs) -> list[float]`, like `GRPOTrainer`'s reward functions. A model is read through
`trl_safe.scoring.Scorer`, the one rule shared with training and evaluation: the (prompt, completion) pair rendered
as the model was trained, the score read at its last token. `check_score_sources` is the trainer's contract: one
source per value head, in the heads' order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from trl.trainer.utils import get_config_model_id

from trl_safe.checks import check_model_path, check_score_model_trained
from trl_safe.ppo.models import load_model
from trl_safe.ppo_config import PPOConfig
from trl_safe.scoring import Scorer

# A score source: a sequence-classification model (instance, or path / Hub id), or a function
# `f(prompts, completions, **kwargs) -> list[float]` like `GRPOTrainer`'s reward functions.
ScoreSource = str | PreTrainedModel | nn.Module | Callable[..., list[float]]


@dataclass
class ScoreStream:
    """One score stream (`"reward"`, or `"cost"` for PPO-Lag): a sequence-classification model or a function.

    A model is read through `reader` (`trl_safe.scoring.Scorer`): each completion rendered with the tokenizer and
    chat template the model was trained with, the score read at the last token, as in training and evaluation.
    `processing_class` is `None` when the model shares the policy's vocabulary (then it can seed the critic's
    weights), else the model's own tokenizer.
    """

    name: str
    display_name: str
    model: nn.Module | None = None
    function: Callable[..., list[float]] | None = None
    processing_class: PreTrainedTokenizerBase | None = None
    reader: Scorer | None = None

    def score(
        self,
        inputs: list[dict[str, Any]],
        prompts: list[Any],
        batch: dict[str, Any],
        trainer_state: Any,
        device: torch.device,
    ) -> torch.Tensor:
        """One score per completion of `batch` (what `PPOTrainer._generate` returned for `prompts`)."""
        completions = batch["completions"]
        if self.function is not None:
            extra_columns = {key: [example[key] for example in inputs] for key in inputs[0] if key != "prompt"}
            values = self.function(
                prompts=prompts,
                completions=completions,
                completion_ids=batch["completion_id_lists"],
                trainer_state=trainer_state,
                **extra_columns,
            )
            return torch.tensor(checked_scores(values, self, prompts), dtype=torch.float32, device=device)
        # A model reads each completion where it was trained: the rendered (prompt, completion) pair, closed as in
        # training (chat template or EOS), at its last token (trl_safe.scoring.Scorer).
        return self.reader.score(prompts, completions).to(device)


def check_score_sources(sources: Mapping[str, Any], value_head_names: tuple[str, ...], trainer: str) -> None:
    """The trainer's contract: exactly one score source per critic value head, in the heads' order."""
    if tuple(sources) != tuple(value_head_names):
        raise ValueError(
            f"{trainer} has the value heads {list(value_head_names)} and needs one score source for each, in that "
            f"order; got {list(sources)}."
        )


def load_score_stream(
    name: str,
    source: ScoreSource,
    processing_class: PreTrainedTokenizerBase | None,
    policy_tokenizer: PreTrainedTokenizerBase,
    args: PPOConfig,
) -> ScoreStream:
    """The stream `name` from its source (a path is loaded as a one-label sequence classifier)."""
    if isinstance(source, str):
        check_model_path(source, f"{name} model")
        check_score_model_trained(source, name, allow_untrained=args.allow_untrained_score_head)  # no random head
        model = load_model(source, AutoModelForSequenceClassification, args, num_labels=1)
        processing_class = processing_class or AutoTokenizer.from_pretrained(
            source, trust_remote_code=args.trust_remote_code
        )
        display_name = source.rstrip("/").split("/")[-1]
        return _model_stream(name, display_name, model, processing_class, policy_tokenizer, args)
    if isinstance(source, nn.Module):
        display_name = get_config_model_id(source.config).split("/")[-1] or f"{name}_model"
        return _model_stream(name, display_name, source, processing_class, policy_tokenizer, args)
    if callable(source):
        return ScoreStream(name=name, display_name=getattr(source, "__name__", type(source).__name__), function=source)
    raise TypeError(
        f"The {name} source must be a model path, a sequence-classification model or a function "
        f"f(prompts, completions, **kwargs) -> list[float]; got {type(source).__name__}."
    )


def _model_stream(
    name: str,
    display_name: str,
    model: nn.Module,
    processing_class: PreTrainedTokenizerBase | None,
    policy_tokenizer: PreTrainedTokenizerBase,
    args: PPOConfig,
) -> ScoreStream:
    reader = Scorer(
        model,
        processing_class or policy_tokenizer,
        name=name,
        chat_template_kwargs=args.chat_template_kwargs,
    )  # checks the score head and its single output
    if processing_class is not None and processing_class.get_vocab() == policy_tokenizer.get_vocab():
        processing_class = None  # same vocabulary as the policy: the model can seed the critic
    tokenizer = processing_class or policy_tokenizer
    vocab_size = getattr(model.config, "vocab_size", None)
    if processing_class is None and vocab_size is not None and vocab_size < len(tokenizer):
        raise ValueError(
            f"The {name} model's vocabulary ({vocab_size} tokens) is smaller than the policy tokenizer's "
            f"({len(tokenizer)}): it cannot read the policy's tokens. Pass its own tokenizer as "
            f"`{name}_processing_class`."
        )
    # transformers' own pooling (which we do not use, see trl_safe.scoring) needs a pad id for batches > 1.
    model.config.pad_token_id = reader.pad_id
    return ScoreStream(
        name=name, display_name=display_name, model=model, processing_class=processing_class, reader=reader
    )


def checked_scores(values: Any, stream: ScoreStream, prompts: list[Any]) -> list[float]:
    """A score function's output as floats; a wrong length or a missing / non-finite score is an error."""
    what = f"The {stream.name} function `{stream.display_name}`"
    try:
        values = list(values)
    except TypeError as error:
        raise TypeError(f"{what} must return a list of floats, got {type(values).__name__}.") from error
    if len(values) != len(prompts):
        raise ValueError(f"{what} returned {len(values)} scores for {len(prompts)} completions.")
    checked = []
    for index, value in enumerate(values):
        try:
            value = float(value)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            raise ValueError(
                f"{what} returned {values[index]!r} for completion {index} (prompt {str(prompts[index])[:80]!r}): "
                "every completion needs a finite score."
            )
        checked.append(value)
    return checked
