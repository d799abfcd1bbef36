"""`evaluate_safety`: generate with one or more policies, score with the reward and cost models, build the report."""

from __future__ import annotations

import gc
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import datasets
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    GenerationConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    set_seed,
)
from transformers.utils import logging

from .generation import generate_completions, score_completions
from .prompts import load_prompts, prompt_text
from .refusal import REFUSAL_RULES, RefusalDetectorFn, detect_refusals, refusal_detector_for
from .report import SafetyReport

logger = logging.get_logger(__name__)

ModelSpec = str | Path | PreTrainedModel
TokenizerSpec = PreTrainedTokenizerBase | Mapping[str, PreTrainedTokenizerBase] | None


@dataclass
class SafetyEvaluationConfig:
    """Settings of a safety evaluation (generation, scoring, comparisons).

    Parameters:
        batch_size (`int`, defaults to `16`): prompts per generation batch, and sequences per scoring batch.
        max_new_tokens (`int`, defaults to `128`): longest completion; longer ones are cut and marked unfinished.
        do_sample (`bool`, defaults to `False`): sample instead of greedy decoding.
        temperature (`float`, defaults to `1.0`): sampling temperature (only with `do_sample`).
        top_p (`float`, defaults to `1.0`): nucleus sampling mass (only with `do_sample`).
        num_samples_per_prompt (`int`, defaults to `1`): answers per prompt (needs `do_sample` when above 1). Each
            answer is a generation record of its own, with `prompt_id` naming its prompt, so that comparisons can
            average a policy's answers per prompt (`trl_safe.evaluation.outcome`).
        seed (`int`, defaults to `42`): seed set before each policy generates, so results do not depend on the order
            the policies are evaluated in.
        use_chat_template (`bool` or `None`, defaults to `None`): render prompts with the chat template; None uses it
            whenever the tokenizer has one (for the policies and the scorers alike).
        tie_margin (`float`, defaults to `0.0`): two scores closer than this tie in the arena and the ratings.
        rating_prior_games (`float`, defaults to `1.0`): virtual drawn games per model in the Bradley-Terry ratings
            (keeps ratings finite when a model wins everything).
        safe_label (`str`, defaults to `"safe"`): prompt label of prompts a helpful model should answer (XSTest).
        device (`str` or `None`, defaults to `None`): device for models loaded from a path (default: CUDA when
            available); model instances stay where they are.
        dtype (`str`, defaults to `"auto"`): dtype for models loaded from a path (`"auto"`, `"bfloat16"`, ...).
        num_examples (`int`, defaults to `3`): example generations shown in the markdown summary.
        refusal_rule (`str`, defaults to `"default"`): the refusal detector when none is passed: `default`
            (`RefusalDetector()`) or `apology_aware` (`RefusalDetector.apology_aware()`, which reads past an opening
            apology for a misunderstanding). Recorded in the summary, so that the pipeline's outcome table and
            `benchmarks/demo_seeds.py` give the judge the same rule.
    """

    batch_size: int = field(
        default=16, metadata={"help": "Prompts per generation batch, sequences per scoring batch."}
    )
    max_new_tokens: int = field(default=128, metadata={"help": "Longest completion in tokens."})
    do_sample: bool = field(default=False, metadata={"help": "Sample instead of greedy decoding."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature (with do_sample)."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass (with do_sample)."})
    num_samples_per_prompt: int = field(
        default=1, metadata={"help": "Answers per prompt (above 1 needs --do_sample)."}
    )
    seed: int = field(default=42, metadata={"help": "Seed set before each policy generates."})
    use_chat_template: bool | None = field(
        default=None, metadata={"help": "Use the chat template (default: when the tokenizer has one)."}
    )
    tie_margin: float = field(default=0.0, metadata={"help": "Scores closer than this tie in comparisons."})
    rating_prior_games: float = field(
        default=1.0, metadata={"help": "Virtual drawn games per model in the Bradley-Terry ratings."}
    )
    safe_label: str = field(default="safe", metadata={"help": "Label of prompts that should be answered (XSTest)."})
    device: str | None = field(default=None, metadata={"help": "Device for models loaded from a path."})
    dtype: str = field(default="auto", metadata={"help": "dtype for models loaded from a path."})
    num_examples: int = field(default=3, metadata={"help": "Example generations shown in the markdown summary."})
    refusal_rule: str = field(
        default="default",
        metadata={
            "help": "Refusal detector: default, or apology_aware (reads past an opening apology for a "
            "misunderstanding).",
            "choices": list(REFUSAL_RULES),
        },
    )

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}.")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}.")
        if self.refusal_rule not in REFUSAL_RULES:
            raise ValueError(f"refusal_rule must be one of {sorted(REFUSAL_RULES)}, got {self.refusal_rule!r}.")
        if self.tie_margin < 0:
            raise ValueError(f"tie_margin must be >= 0, got {self.tie_margin}.")
        if self.num_samples_per_prompt < 1:
            raise ValueError(f"num_samples_per_prompt must be at least 1, got {self.num_samples_per_prompt}.")
        if self.num_samples_per_prompt > 1 and not self.do_sample:
            raise ValueError(
                f"num_samples_per_prompt={self.num_samples_per_prompt} with greedy decoding would repeat one answer; "
                "set do_sample=True (--do_sample)."
            )

    def generation_config(self) -> GenerationConfig:
        sampling = {"temperature": self.temperature, "top_p": self.top_p} if self.do_sample else {}
        return GenerationConfig(max_new_tokens=self.max_new_tokens, do_sample=self.do_sample, **sampling)


def _model_name(spec: ModelSpec, fallback: str) -> str:
    """A display name: the last part of the path or Hub id, or `fallback` for an in-memory model without one."""
    if isinstance(spec, (str, Path)):
        return Path(str(spec)).name or str(spec)
    path = getattr(getattr(spec, "config", None), "name_or_path", "") or ""
    return Path(path).name or fallback


def _named_policies(policies: ModelSpec | Sequence[ModelSpec] | Mapping[str, ModelSpec]) -> dict[str, ModelSpec]:
    if isinstance(policies, Mapping):
        named = dict(policies)
    else:
        specs = [policies] if isinstance(policies, (str, Path, torch.nn.Module)) else list(policies)
        names = [_model_name(spec, f"policy_{i}") for i, spec in enumerate(specs)]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"Two policies would both be called {duplicates}; pass a dict {{name: policy}}.")
        named = dict(zip(names, specs))
    if not named:
        raise ValueError("No policy to evaluate.")
    return named


def _device(config: SafetyEvaluationConfig) -> torch.device:
    return torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))


def _resolve(
    spec: ModelSpec,
    tokenizer: PreTrainedTokenizerBase | None,
    auto_class: type,
    config: SafetyEvaluationConfig,
    role: str,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, bool]:
    """(model, tokenizer, loaded_here): load `spec` if it is a path or a Hub id."""
    if isinstance(spec, (str, Path)):
        model = auto_class.from_pretrained(str(spec), dtype=config.dtype).to(_device(config))
        return model, tokenizer or AutoTokenizer.from_pretrained(str(spec)), True
    if tokenizer is None:
        raise ValueError(f"The {role} was given as a model instance; pass its tokenizer too.")
    return spec, tokenizer, False


def _release(model: PreTrainedModel) -> None:
    del model
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _tokenizer_for(tokenizer: TokenizerSpec, name: str) -> PreTrainedTokenizerBase | None:
    if isinstance(tokenizer, Mapping):
        return tokenizer.get(name)
    return tokenizer


def evaluate_safety(
    policies: ModelSpec | Sequence[ModelSpec] | Mapping[str, ModelSpec],
    reward_model: ModelSpec,
    cost_model: ModelSpec,
    prompts: str | Path | datasets.Dataset | Sequence[str],
    *,
    tokenizer: TokenizerSpec = None,
    reward_tokenizer: PreTrainedTokenizerBase | None = None,
    cost_tokenizer: PreTrainedTokenizerBase | None = None,
    config: SafetyEvaluationConfig | None = None,
    generation_config: GenerationConfig | None = None,
    refusal_detector: RefusalDetectorFn | None = None,
    prompt_source: str | None = None,
) -> SafetyReport:
    """Evaluate policies for helpfulness (reward), harmlessness (cost) and over-refusal on one prompt set.

    Every policy answers every prompt; the reward and cost models score every answer; the report holds each model's
    summary (`summarize_scores`), the arena comparison of each later policy against the first (the baseline), and
    Bradley-Terry ratings of all policies by reward (helpfulness) and by cost (harmlessness).

    Args:
        policies: a model, a path/Hub id, or a list or `{name: model}` dict of them. Models given as paths are loaded
            one at a time and released after generating.
        reward_model: sequence-classification model with one output, or its path/Hub id.
        cost_model: same, for the cost (C > 0 means unsafe).
        prompts: anything `load_prompts` reads, or a `Dataset` it returned (columns `prompt`, optional `category`,
            `label`).
        tokenizer: the policies' tokenizer, or a `{name: tokenizer}` dict; required for model instances, loaded from
            the path otherwise.
        reward_tokenizer: the reward model's tokenizer (default: loaded from its path, else `tokenizer`).
        cost_tokenizer: the cost model's tokenizer (default: loaded from its path, else `tokenizer`).
        config: evaluation settings (`SafetyEvaluationConfig()` if None).
        generation_config: overrides the decoding settings derived from `config`.
        refusal_detector: any `str -> bool`; default: the detector of `config.refusal_rule`.
        prompt_source: name of the prompt set in the report (default: the path, or "prompts").
    """
    config = config or SafetyEvaluationConfig()
    detector_name = repr(refusal_detector) if refusal_detector is not None else config.refusal_rule
    refusal_detector = refusal_detector if refusal_detector is not None else refusal_detector_for(config.refusal_rule)
    named = _named_policies(policies)
    if isinstance(prompts, datasets.Dataset) and "prompt" in prompts.column_names:
        prompt_set = prompts
    else:
        prompt_set = load_prompts(prompts)
    distinct_prompts = list(prompt_set["prompt"])
    num_prompts = len(distinct_prompts)
    categories = prompt_set["category"] if "category" in prompt_set.column_names else [None] * num_prompts
    labels = prompt_set["label"] if "label" in prompt_set.column_names else [None] * num_prompts
    # With several samples per prompt, answer j of prompt i is row i * k + j; `prompt_ids[row]` = i.
    samples = config.num_samples_per_prompt
    prompt_ids = [index for index in range(num_prompts) for _ in range(samples)]
    prompt_list = [distinct_prompts[index] for index in prompt_ids]
    decoding = generation_config or config.generation_config()
    single_tokenizer = None if isinstance(tokenizer, Mapping) else tokenizer

    completions = {}
    for name, spec in named.items():
        model, policy_tokenizer, loaded = _resolve(
            spec, _tokenizer_for(tokenizer, name), AutoModelForCausalLM, config, f"policy {name!r}"
        )
        set_seed(config.seed)
        completions[name] = generate_completions(
            model,
            policy_tokenizer,
            prompt_list,
            generation_config=decoding,
            batch_size=config.batch_size,
            use_chat_template=config.use_chat_template,
            desc=f"Generating ({name})",
        )
        if loaded:
            _release(model)

    scores: dict[str, dict[str, Any]] = {name: {} for name in named}
    for key, spec, scorer_tokenizer in (
        ("reward", reward_model, reward_tokenizer),
        ("cost", cost_model, cost_tokenizer),
    ):
        scorer, scorer_tokenizer, loaded = _resolve(
            spec,
            scorer_tokenizer or (None if isinstance(spec, (str, Path)) else single_tokenizer),
            AutoModelForSequenceClassification,
            config,
            f"{key} model",
        )
        for name in named:
            scores[name][key] = score_completions(
                scorer,
                scorer_tokenizer,
                prompt_list,
                [completion.text for completion in completions[name]],
                batch_size=config.batch_size,
                use_chat_template=config.use_chat_template,
                desc=f"Scoring {key} ({name})",
            )
        if loaded:
            _release(scorer)

    generations = []
    for name in named:
        refusals = detect_refusals([c.text for c in completions[name]], refusal_detector)
        for index, completion in enumerate(completions[name]):
            generations.append(
                {
                    "model": name,
                    "prompt_index": index,
                    "prompt_id": prompt_ids[index],
                    "prompt": prompt_text(prompt_list[index]),
                    "category": categories[prompt_ids[index]],
                    "label": labels[prompt_ids[index]],
                    "completion": completion.text,
                    "reward": float(scores[name]["reward"][index]),
                    "cost": float(scores[name]["cost"][index]),
                    "refused": refusals[index],
                    "finished": completion.finished,
                    "num_tokens": completion.num_tokens,
                }
            )

    metadata = {
        "prompt_source": prompt_source or (str(prompts) if isinstance(prompts, (str, Path)) else "prompts"),
        "num_prompts": num_prompts,
        "num_samples_per_prompt": samples,
        "reward_model": _model_name(reward_model, "reward model"),
        "cost_model": _model_name(cost_model, "cost model"),
        "policies": {
            name: str(spec) if isinstance(spec, (str, Path)) else _model_name(spec, name)
            for name, spec in named.items()
        },
        "generation": {k: v for k, v in decoding.to_diff_dict().items() if not k.startswith("transformers_version")},
        "config": asdict(config),
        # the rule's name (`default`, `apology_aware`) when no detector was passed, else the detector's repr
        "refusal_detector": detector_name,
    }
    return SafetyReport.from_generations(
        generations,
        models=list(named),
        metadata=metadata,
        tie_margin=config.tie_margin,
        rating_prior_games=config.rating_prior_games,
        safe_label=config.safe_label,
        num_examples=config.num_examples,
    )
