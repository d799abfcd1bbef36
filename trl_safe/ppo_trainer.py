"""PPO with a learned critic for RLHF, maintained for current TRL, and the base of `PPOLagTrainer`.

TRL deleted its `PPOTrainer` in 1.13. This one is written to TRL's current conventions (a `_BaseTrainer` subclass
with a config dataclass; prompt data sets in text or conversational form, like `GRPOTrainer`) and runs inside
`transformers`' `Trainer.train()` loop, so checkpointing, `resume_from_checkpoint`, learning-rate schedules,
callbacks, logging integrations and DDP / DeepSpeed / FSDP come from `Trainer` unchanged.

How PPO fits `Trainer`'s loop (the same idea as `GRPOTrainer`'s buffered generations):

- the data loader yields one *rollout batch* of prompts per process and repeats it once per training step that
  rollout feeds (`_RolloutSampler`);
- `_prepare_inputs` turns a fresh rollout batch into experience (`_make_experience`: generate → log-probs →
  scores → KL → rewards → values → GAE) and cuts it into `num_ppo_epochs × num_mini_batches ×
  gradient_accumulation_steps` micro-batches; each later call hands out the next one;
- `compute_loss` is the PPO loss of one micro-batch (`_compute_ppo_loss`); `Trainer` does the backward pass,
  gradient accumulation, clipping and the optimizer step.

The policy and the critic live in one module (`PolicyAndValueModel`), so one optimizer, one DDP/DeepSpeed wrapper
and one checkpoint cover both; `save_model` still writes only the policy (and tokenizer) in the standard format.

Completions are sampled with `generate` on the (gathered) policy, or, with `use_vllm`, by TRL's `VLLMGeneration`,
which is sent the policy's weights before every rollout that follows an update. docs/scale_out.md covers the
distributed set-ups (DDP, DeepSpeed ZeRO-2/3, FSDP) and vLLM.

Subclasses change the algorithm through a few hooks, never by copying the loop (`PPOLagTrainer` uses all of them):
`value_head_names` (one critic output per score stream), `_score_sources` (which models/functions score a
completion), `_on_rollout_scored` (e.g. a dual update from the costs), `_per_token_rewards` (how scores and KL
become per-token rewards), `_actor_advantages` (how the streams' advantages combine), `_record_score_metrics`,
`_save_extra_state` / `_load_extra_state` (extra checkpoint state) and `_model_card_context`.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from accelerate.utils import is_peft_model, set_seed
from datasets import Dataset, IterableDataset
from torch import nn
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    GenerationConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TrainerCallback,
)
from transformers.trainer import TRAINING_ARGS_NAME
from transformers.utils import is_peft_available
from trl.data_utils import is_conversational
from trl.distributed import DistributedBackend
from trl.generation.vllm_generation import VLLMGeneration
from trl.import_utils import is_vllm_available
from trl.models import prepare_deepspeed, prepare_fsdp, unwrap_model_for_generation
from trl.trainer.base_trainer import _BaseTrainer
from trl.trainer.utils import (
    RepeatSampler,
    create_model_from_path,
    disable_dropout_in_model,
    get_config_model_id,
    identity,
    pad,
)

from trl_safe.checks import (
    check_config_class,
    check_model_path,
    check_policy_model,
    check_prompt_dataset,
    check_rollout_batches,
    check_score_model_trained,
    check_tokenizer_can_pad,
    resolve_reward_source,
)
from trl_safe.distributed import check_processes_train_one_model
from trl_safe.model_card import render_model_card
from trl_safe.ppo_config import PPOConfig
from trl_safe.ptx import PTXData, ptx_loss
from trl_safe.rl_math import (
    add_at_last_token,
    clipped_policy_loss,
    clipped_value_loss,
    entropy_from_logits,
    generalized_advantage_estimation,
    kl_penalty,
    masked_mean,
    masked_sum,
    masked_whiten,
    selective_logprobs,
)
from trl_safe.scoring import Scorer, find_score_head, per_token_scores

if is_peft_available():
    from peft import PeftConfig, get_peft_model

logger = logging.getLogger(__name__)

# Sub-folder of a checkpoint (and, with `save_value_model`, of the output directory) that holds the critic.
VALUE_MODEL_DIR = "value_model"

# A score source: a sequence-classification model (instance, or path / Hub id), or a function
# `f(prompts, completions, **kwargs) -> list[float]` like `GRPOTrainer`'s reward functions.
ScoreSource = str | PreTrainedModel | nn.Module | Callable[..., list[float]]


class PolicyAndValueModel(nn.Module):
    """The policy π_θ and the critic V_φ in one module.

    `Trainer` trains one model with one optimizer; holding both here lets that optimizer, DDP / DeepSpeed / FSDP and
    `Trainer`'s checkpoints cover the critic as well as the policy. `forward` computes both in one call so that
    gradients flow through the distributed wrapper (DDP only synchronises gradients of a forward that went through
    it).
    """

    def __init__(self, policy: nn.Module, value_model: nn.Module) -> None:
        super().__init__()
        self.policy = policy
        self.value_model = value_model
        # `Trainer` and TRL read `model.config` (model cards, telemetry); the policy's is the meaningful one.
        self.config = policy.config
        # FSDP's auto-wrap policy reads the transformer block classes to shard from here.
        self._no_split_modules = sorted(
            set(getattr(policy, "_no_split_modules", None) or [])
            | set(getattr(value_model, "_no_split_modules", None) or [])
        )

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        logits_to_keep: int = 0,
        compute_values: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The policy's logits for the last `logits_to_keep` positions and the critic's output at every position.

        Returns:
            `(logits [batch, logits_to_keep, vocab], values [batch, seq, num_value_heads] or None)`.
        """
        logits = self.policy(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            logits_to_keep=logits_to_keep,
            use_cache=False,
        ).logits
        values = None
        if compute_values:
            values = per_token_scores(self.value_model, input_ids, attention_mask, position_ids=position_ids)
        return logits, values

    # Activation checkpointing: `Trainer` and TRL's generation helper switch it on and off through these.
    supports_gradient_checkpointing = True

    def activation_checkpointing_enable(
        self, activation_checkpointing_kwargs: dict | None = None, every_n_layers: int = 1, offload: bool = False
    ) -> None:
        for model in (self.policy, self.value_model):
            model.activation_checkpointing_enable(
                activation_checkpointing_kwargs=activation_checkpointing_kwargs,
                every_n_layers=every_n_layers,
                offload=offload,
            )

    def activation_checkpointing_disable(self) -> None:
        for model in (self.policy, self.value_model):
            model.activation_checkpointing_disable()

    @property
    def is_gradient_checkpointing(self) -> bool:
        return self.policy.is_activation_checkpointing

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict | None = None) -> None:
        self.activation_checkpointing_enable(gradient_checkpointing_kwargs)

    def gradient_checkpointing_disable(self) -> None:
        self.activation_checkpointing_disable()


@dataclass
class _Scorer:
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


class _RolloutSampler(RepeatSampler):
    """Yields each rollout batch of prompt indices once per micro-step that the rollout feeds.

    Seeded by `seed + epoch` (through `set_epoch`, which `Trainer` calls), so a run resumed in a later epoch sees the
    same prompt order as the uninterrupted run.
    """

    def set_epoch(self, epoch: int) -> None:
        if self.shuffle:
            self.generator.manual_seed(self.seed + epoch)


class PPOTrainer(_BaseTrainer):
    """Proximal Policy Optimization for language models, with a critic, a KL penalty to a reference policy and a
    reward model (or reward function).

    Example:

    ```python
    from datasets import Dataset
    from trl_safe import PPOConfig, PPOTrainer

    dataset = Dataset.from_dict({"prompt": ["The sky is", "Once upon a time"]})
    trainer = PPOTrainer(
        model="HuggingFaceTB/SmolLM2-135M-Instruct",
        reward_model="path/to/reward_model",
        args=PPOConfig(output_dir="ppo", per_device_train_batch_size=2),
        train_dataset=dataset,
    )
    trainer.train()
    ```

    Args:
        model: the policy to train: a path / Hub id (loaded with `AutoModelForCausalLM` and
            `args.model_init_kwargs`) or a causal LM instance.
        reward_model: the reward R(y, x): a sequence-classification model with one label (path or instance), read
            at the last token of the completion, or a function `f(prompts, completions, **kwargs) -> list[float]`
            (completions as text, or as `[{"role": "assistant", "content": ...}]` for conversational prompts; the
            keyword arguments are `completion_ids`, `trainer_state` and the data set's other columns).
        args: the configuration; `PPOConfig(output_dir="<model>-PPO")` if omitted.
        train_dataset: prompts, in a `prompt` column: text, or conversational (a list of messages, rendered with
            the tokenizer's chat template and an open assistant turn).
        eval_dataset: prompts for `evaluate()`, which generates and reports the mean scores (`eval_objective/...`).
        processing_class: the policy's tokenizer; loaded from `model` if omitted. A missing pad token is set to EOS.
        ref_model: the reference policy π_ref of the KL penalty. Default: a frozen copy of the initial policy, or,
            with `peft_config`, the policy itself with its adapter disabled (no second copy of the weights).
        value_model: the critic V(s_t) (sequence-classification model, path or instance). Default: a copy of the
            reward model (its head initialises the value head), or the policy's backbone with a zero value head when
            the reward is a function.
        reward_processing_class: the reward model's tokenizer, when it differs from the policy's; completions are
            then decoded and re-tokenised for it. Loaded from the reward model's path when that is a string.
        callbacks: extra `TrainerCallback`s.
        optimizers: `(optimizer, lr_scheduler)` to use instead of `Trainer`'s AdamW and schedule; the optimizer must
            cover the parameters of `trainer.model` (policy and critic).
        peft_config: a `peft.PeftConfig` (e.g. LoRA) applied to the policy.
        value_peft_config: a `peft.PeftConfig` applied to the critic (use `task_type="SEQ_CLS"` so the value head
            is trained). Default: the critic is trained in full.
        ptx_dataset: supervised data for PTX, the pre-training mix (`trl_safe.ptx`; used when `args.ptx_coef > 0`):
            `text`, `messages` or `prompt` + `completion` rows, like TRL's SFT data.
    """

    _tag_names = ["trl-safe", "ppo"]
    _name = "PPO"
    _paper = {
        "title": "Fine-Tuning Language Models from Human Preferences",
        "id": "1909.08593",
        "citation": textwrap.dedent("""\
            @article{ziegler2019fine,
                title   = {{Fine-Tuning Language Models from Human Preferences}},
                author  = {Daniel M. Ziegler and Nisan Stiennon and Jeffrey Wu and Tom B. Brown and Alec Radford
                           and Dario Amodei and Paul F. Christiano and Geoffrey Irving},
                year    = 2019,
                eprint  = {arXiv:1909.08593}
            }"""),
    }
    _config_class: type[PPOConfig] = PPOConfig
    # `Trainer` divides the loss by the gradient accumulation steps (the loss is a per-micro-batch mean).
    loss_is_scaled_for_ga = False

    # One critic output (value head) per score stream, in column order; PPO-Lag adds "cost".
    value_head_names: tuple[str, ...] = ("reward",)

    def __init__(
        self,
        model: str | PreTrainedModel,
        reward_model: ScoreSource | None = None,
        args: PPOConfig | None = None,
        train_dataset: Dataset | None = None,
        eval_dataset: Dataset | dict[str, Dataset] | None = None,
        processing_class: PreTrainedTokenizerBase | None = None,
        ref_model: str | PreTrainedModel | None = None,
        value_model: str | PreTrainedModel | None = None,
        reward_processing_class: PreTrainedTokenizerBase | None = None,
        callbacks: list[TrainerCallback] | None = None,
        optimizers: tuple[torch.optim.Optimizer | None, torch.optim.lr_scheduler.LambdaLR | None] = (None, None),
        peft_config: PeftConfig | None = None,
        value_peft_config: PeftConfig | None = None,
        ptx_dataset: Dataset | None = None,
        reward_funcs: ScoreSource | list[ScoreSource] | None = None,
    ) -> None:
        reward_model = resolve_reward_source(reward_model, reward_funcs, type(self).__name__)  # GRPO's name works
        if args is None:
            model_id = model if isinstance(model, str) else get_config_model_id(model.config)
            args = self._config_class(f"{model_id.split('/')[-1] or 'policy'}-{self._name}")
        check_config_class(args, self._config_class, type(self).__name__)  # PPOTrainer + PPOLagConfig: refused
        if train_dataset is None:
            raise ValueError(f"{type(self).__name__} needs a `train_dataset` of prompts (a `prompt` column).")
        if isinstance(train_dataset, IterableDataset):
            raise TypeError(
                f"{type(self).__name__} needs a map-style `Dataset` (its prompts are sampled in seeded rollout "
                "batches); convert the streaming data set with `Dataset.from_generator` or load it without streaming."
            )
        if "prompt" not in train_dataset.column_names:
            raise ValueError(f"train_dataset needs a `prompt` column, found {train_dataset.column_names}.")
        if (peft_config is not None or value_peft_config is not None) and not is_peft_available():
            raise ImportError("`peft_config` / `value_peft_config` need the `peft` library: `pip install peft`.")
        if args.use_vllm and not is_vllm_available():
            raise ImportError("`use_vllm=True` needs vLLM, which runs on GPUs: `pip install vllm`.")
        # Adapters and new value heads are initialised randomly: seed before building any model.
        set_seed(args.seed)

        # Policy π_θ and its tokenizer.
        policy = self._load_model(model, AutoModelForCausalLM, args) if isinstance(model, str) else model
        check_policy_model(policy)
        if processing_class is None:
            processing_class = AutoTokenizer.from_pretrained(get_config_model_id(policy.config))
        if not isinstance(processing_class, PreTrainedTokenizerBase):
            raise TypeError(f"processing_class must be a tokenizer, got {type(processing_class).__name__}.")
        check_tokenizer_can_pad(processing_class)
        if processing_class.pad_token is None:
            processing_class.pad_token = processing_class.eos_token
        policy.config.pad_token_id = processing_class.pad_token_id
        policy.generation_config.pad_token_id = processing_class.pad_token_id
        self.tokenizer = processing_class
        # Every EOS the model declares (e.g. an end-of-turn token) ends a completion, not only the tokenizer's.
        eos_token_ids = policy.generation_config.eos_token_id
        eos_token_ids = (
            [] if eos_token_ids is None else [eos_token_ids] if isinstance(eos_token_ids, int) else eos_token_ids
        )
        self.eos_token_ids = list(dict.fromkeys([processing_class.eos_token_id, *eos_token_ids]))
        for name, dataset in (("train_dataset", train_dataset), ("eval_dataset", eval_dataset)):
            check_prompt_dataset(dataset, processing_class, args.max_prompt_length, args.chat_template_kwargs, name)

        # Score streams (R, and C for PPO-Lag), then the critic: its default weights come from a score model.
        sources = self._score_sources(reward_model, reward_processing_class)
        self.scorers = {name: self._load_scorer(name, *source, args) for name, source in sources.items()}
        critic = self._build_value_model(value_model, policy, args)

        # Reference π_ref: given, or the adapter-free policy under PEFT, or a frozen copy of the initial policy.
        uses_peft = peft_config is not None or is_peft_model(policy)
        if ref_model is not None:
            ref_model = (
                self._load_model(ref_model, AutoModelForCausalLM, args) if isinstance(ref_model, str) else ref_model
            )
        elif not uses_peft:
            ref_model = (
                self._load_model(model, AutoModelForCausalLM, args) if isinstance(model, str) else _copy_model(policy)
            )
        self.ref_model = ref_model

        if peft_config is not None:
            policy = get_peft_model(policy, peft_config)
        if value_peft_config is not None:
            critic = get_peft_model(critic, value_peft_config)

        # PPO's ratio π_θ/π_old compares two forward passes of the same weights: dropout would make it noisy, and
        # the frozen models must be deterministic too. Dropout is therefore off in every model, always.
        frozen = [m for m in [self.ref_model, *(s.model for s in self.scorers.values())] if m is not None]
        for module in (policy, critic, *frozen):
            disable_dropout_in_model(module)
        for module in frozen:
            module.eval().requires_grad_(False)
        policy.add_model_tags(self._tag_names)

        super().__init__(
            model=PolicyAndValueModel(policy, critic),
            args=args,
            data_collator=identity,  # prompts stay a list of dicts; `_make_experience` tokenises them
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            callbacks=callbacks,
            optimizers=optimizers,
        )
        if args.n_gpu > 1:
            raise ValueError(
                f"{type(self).__name__} does not support `nn.DataParallel`: launch with `accelerate launch` or "
                "`torchrun`, or make a single GPU visible with CUDA_VISIBLE_DEVICES."
            )
        check_processes_train_one_model(self.accelerator, type(self).__name__)
        check_rollout_batches(
            len(train_dataset), args.local_rollout_batch_size * self.accelerator.num_processes, args.shuffle_dataset
        )

        # Frozen models run in inference mode on every process (sharded too under ZeRO-3 / FSDP).
        if self.ref_model is not None:
            self.ref_model = self._prepare_frozen_model(self.ref_model, shard_with_fsdp=True)
        for scorer in self.scorers.values():
            if scorer.model is not None:
                scorer.model = self._prepare_frozen_model(scorer.model, shard_with_fsdp=False)

        # Every process samples different completions (the seed above was the same on all of them).
        set_seed(args.seed, device_specific=True)
        if args.use_vllm:
            # vLLM samples the tokens from its own copy of the policy's weights, kept in sync by `_generate_with_vllm`.
            self.vllm_generation = VLLMGeneration(
                model=self.model.policy,
                accelerator=self.accelerator,
                processing_class=processing_class,
                mode=args.vllm_mode,
                server_base_url=args.vllm_server_base_url,
                server_host=args.vllm_server_host,
                server_port=args.vllm_server_port,
                server_timeout=args.vllm_server_timeout,
                group_port=args.vllm_group_port,
                tensor_parallel_size=args.vllm_tensor_parallel_size,
                gpu_memory_utilization=args.vllm_gpu_memory_utilization,
                max_model_length=args.vllm_max_model_length,
                max_num_seqs=args.local_rollout_batch_size * args.vllm_tensor_parallel_size,
                enable_sleep_mode=args.vllm_enable_sleep_mode,
                model_impl=args.vllm_model_impl,
                trust_remote_code=args.trust_remote_code,
                temperature=args.temperature,
                top_p=args.top_p,
                top_k=args.top_k,
                max_completion_length=args.max_completion_length,
                generation_kwargs={"stop_token_ids": self.eos_token_ids, **(args.generation_kwargs or {})},
            )
            self._vllm_weights_step = -1  # the global step whose policy weights vLLM holds; -1: none sent yet
        else:
            generation_kwargs = {
                "max_new_tokens": args.max_completion_length,
                "do_sample": True,
                "temperature": args.temperature,
                "top_k": args.top_k,
                "top_p": args.top_p,
                "pad_token_id": processing_class.pad_token_id,
                "bos_token_id": processing_class.bos_token_id,
                "eos_token_id": self.eos_token_ids,
                **(args.generation_kwargs or {}),
            }
            self.generation_config = GenerationConfig(**generation_kwargs, disable_compile=True)
        self._distributed = DistributedBackend(self.accelerator)

        # PTX (pre-training mix): supervised examples mixed into every PPO micro-batch's loss when ptx_coef > 0.
        self.ptx = self._build_ptx(ptx_dataset, args)

        # Rollout buffer: the micro-batches of the current rollout, and the micro-step counter that walks them.
        self._micro_batches: list[dict[str, Any]] = []
        self._micro_step = 0
        # Metric sums and counts since the last log, per mode; reduced across processes when logged.
        self._metrics: dict[str, dict[str, torch.Tensor]] = {"train": {}, "eval": {}}
        # Set while `_save_checkpoint` runs: checkpoints always contain the critic.
        self._saving_checkpoint = False

    # ------------------------------------------------------------------------------------------------------------
    # Models
    # ------------------------------------------------------------------------------------------------------------

    @staticmethod
    def _load_model(path: str, auto_class: type, args: PPOConfig, **kwargs: Any) -> PreTrainedModel:
        check_model_path(path, "model")
        init_kwargs = {**(args.model_init_kwargs or {}), **kwargs}
        # Placement is accelerate's job: "auto" device maps would split models across devices under DDP.
        init_kwargs.setdefault("device_map", None)
        init_kwargs.setdefault("trust_remote_code", args.trust_remote_code)
        return create_model_from_path(path, architecture=auto_class, **init_kwargs)

    def _score_sources(
        self, reward_model: ScoreSource, reward_processing_class: PreTrainedTokenizerBase | None
    ) -> dict[str, tuple[ScoreSource, PreTrainedTokenizerBase | None]]:
        """The score streams, by name, in the order of `value_head_names`: `{"reward": (source, tokenizer)}`."""
        return {"reward": (reward_model, reward_processing_class)}

    def _load_scorer(
        self, name: str, source: ScoreSource, processing_class: PreTrainedTokenizerBase | None, args: PPOConfig
    ) -> _Scorer:
        if isinstance(source, str):
            check_model_path(source, f"{name} model")
            check_score_model_trained(source, name, allow_untrained=args.allow_untrained_score_head)
            model = self._load_model(source, AutoModelForSequenceClassification, args, num_labels=1)
            processing_class = processing_class or AutoTokenizer.from_pretrained(
                source, trust_remote_code=args.trust_remote_code
            )
            return self._model_scorer(name, source.rstrip("/").split("/")[-1], model, processing_class, args)
        if isinstance(source, nn.Module):
            display_name = get_config_model_id(source.config).split("/")[-1] or f"{name}_model"
            return self._model_scorer(name, display_name, source, processing_class, args)
        if callable(source):
            return _Scorer(name=name, display_name=getattr(source, "__name__", type(source).__name__), function=source)
        raise TypeError(
            f"The {name} source must be a model path, a sequence-classification model or a function "
            f"f(prompts, completions, **kwargs) -> list[float]; got {type(source).__name__}."
        )

    def _model_scorer(
        self,
        name: str,
        display_name: str,
        model: nn.Module,
        processing_class: PreTrainedTokenizerBase | None,
        args: PPOConfig,
    ) -> _Scorer:
        reader = Scorer(
            model,
            processing_class or self.tokenizer,
            name=name,
            chat_template_kwargs=args.chat_template_kwargs,
        )  # checks the score head and its single output
        if processing_class is not None and processing_class.get_vocab() == self.tokenizer.get_vocab():
            processing_class = None  # same vocabulary as the policy: the model can seed the critic
        tokenizer = processing_class or self.tokenizer
        vocab_size = getattr(model.config, "vocab_size", None)
        if processing_class is None and vocab_size is not None and vocab_size < len(tokenizer):
            raise ValueError(
                f"The {name} model's vocabulary ({vocab_size} tokens) is smaller than the policy tokenizer's "
                f"({len(tokenizer)}): it cannot read the policy's tokens. Pass its own tokenizer as "
                f"`{name}_processing_class`."
            )
        # transformers' own pooling (which we do not use, see trl_safe.scoring) needs a pad id for batches > 1.
        model.config.pad_token_id = reader.pad_id
        return _Scorer(
            name=name, display_name=display_name, model=model, processing_class=processing_class, reader=reader
        )

    def _build_ptx(self, ptx_dataset: Dataset | None, args: PPOConfig) -> PTXData | None:
        if args.ptx_coef > 0 and ptx_dataset is None:
            raise ValueError(f"ptx_coef={args.ptx_coef} needs a `ptx_dataset` (text, messages or prompt-completion).")
        if ptx_dataset is None:
            return None
        if args.ptx_coef == 0:
            logger.warning(
                "A ptx_dataset was given but ptx_coef is 0: PTX is off. Set ptx_coef (16 in the reference)."
            )
            return None
        return PTXData(
            ptx_dataset,
            self.tokenizer,
            max_length=args.ptx_max_length,
            seed=args.seed,
            chat_template_kwargs=args.chat_template_kwargs,
        )

    def _build_value_model(self, value_model: str | nn.Module | None, policy: nn.Module, args: PPOConfig) -> nn.Module:
        """The critic, with one output column per entry of `value_head_names`.

        Default initialisation, in order of preference:
        1. a copy of the first score *model* in column order that reads the policy's tokens (the reward model for
           PPO): backbone, and the head row of that score in its own column; the other columns start at zero;
        2. the policy's backbone with an all-zero value head (when every score is a function).
        A given `value_model` keeps its weights; its head is resized if it has another number of outputs.
        """
        num_heads = len(self.value_head_names)
        if value_model is not None:
            critic = (
                self._load_model(value_model, AutoModelForSequenceClassification, args)
                if isinstance(value_model, str)
                else value_model
            )
            if critic.config.num_labels != num_heads:
                head = find_score_head(critic)
                _replace_value_head(critic, num_heads, {i: i for i in range(min(head.out_features, num_heads))})
        else:
            critic = None
            for column, name in enumerate(self.value_head_names):
                scorer = self.scorers.get(name)
                if scorer is not None and scorer.model is not None and scorer.processing_class is None:
                    critic = _copy_model(scorer.model)
                    _replace_value_head(critic, num_heads, {column: 0})
                    break
            if critic is None:
                critic = _value_model_from_policy(policy, num_heads)
        critic.config.pad_token_id = self.tokenizer.pad_token_id
        return critic.train().requires_grad_(True)

    def _prepare_frozen_model(self, model: nn.Module, shard_with_fsdp: bool) -> nn.Module:
        if self.is_deepspeed_enabled:
            return prepare_deepspeed(model, self.accelerator)
        if self.is_fsdp_enabled and shard_with_fsdp:
            return prepare_fsdp(model, self.accelerator)
        return self.accelerator.prepare_model(model, evaluation_mode=True, device_placement=True)

    # ------------------------------------------------------------------------------------------------------------
    # Data: one rollout batch of prompts per process, repeated for every micro-step the rollout feeds
    # ------------------------------------------------------------------------------------------------------------

    def _set_signature_columns_if_needed(self) -> None:
        # The inputs are prompts (and any extra columns for score functions), not the model's forward arguments.
        if self._signature_columns is None:
            self._signature_columns = ["prompt"]

    @property
    def _micro_steps_per_rollout(self) -> int:
        return self.args.steps_per_rollout * self.args.gradient_accumulation_steps

    def get_train_dataloader(self) -> torch.utils.data.DataLoader:
        return self._get_dataloader(
            dataset=self.train_dataset,
            description="Training",
            batch_size=self.args.local_rollout_batch_size,
            sampler_fn=self._get_train_sampler,
            is_training=True,
        )

    def _get_train_sampler(self, dataset: Dataset | None = None) -> torch.utils.data.Sampler:
        dataset = dataset if dataset is not None else self.train_dataset
        global_rollout_batch_size = self.args.local_rollout_batch_size * self.accelerator.num_processes
        if len(dataset) < global_rollout_batch_size:
            raise ValueError(
                f"train_dataset has {len(dataset)} prompts, fewer than one rollout needs: per_device_train_batch_size "
                f"({self.args.per_device_train_batch_size}) × gradient_accumulation_steps "
                f"({self.args.gradient_accumulation_steps}) × num_mini_batches ({self.args.num_mini_batches}) × "
                f"processes ({self.accelerator.num_processes}) = {global_rollout_batch_size}."
            )
        return _RolloutSampler(
            data_source=dataset,
            mini_repeat_count=1,
            batch_size=global_rollout_batch_size,
            repeat_count=self._micro_steps_per_rollout,
            shuffle=self.args.shuffle_dataset,
            seed=self.args.seed,
        )

    def _prepare_inputs(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        """Make a rollout at the first micro-step of every rollout; hand out its micro-batches in order."""
        position = self._micro_step % self._micro_steps_per_rollout
        if position == 0:
            experience = self._make_experience(inputs)
            self._micro_batches = self._split_into_micro_batches(experience)
        self._micro_step += 1
        return self._micro_batches[position]

    def _split_into_micro_batches(self, experience: dict[str, Any]) -> list[dict[str, Any]]:
        """`num_ppo_epochs` shuffled passes over the rollout, each cut into micro-batches of
        `per_device_train_batch_size`; `gradient_accumulation_steps` consecutive ones form a PPO mini-batch.

        The shuffle is seeded by the rollout's index, so it does not depend on (or disturb) the global RNG that
        drives sampling, and a resumed run shuffles exactly like the uninterrupted one.
        """
        rollout_index = self.state.global_step // self.args.steps_per_rollout
        generator = torch.Generator().manual_seed(self.args.seed + rollout_index)
        rollout_size = experience["input_ids"].shape[0]
        micro_batches = []
        for _ in range(self.args.num_ppo_epochs):
            permutation = torch.randperm(rollout_size, generator=generator)
            for rows in permutation.split(self.args.per_device_train_batch_size):
                micro_batches.append(_select_rows(experience, rows.to(experience["input_ids"].device)))
        return micro_batches

    # ------------------------------------------------------------------------------------------------------------
    # Experience: generate → log-probs → scores → KL → rewards → values → GAE
    # ------------------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def _make_experience(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        """One PPO rollout on this process's prompts. Symbols: x prompt, y completion, t completion token."""
        args = self.args
        prompts = [example["prompt"] for example in inputs]

        # 1. Sample y ~ π_θ(·|x); y ends at its first EOS, padding follows.
        batch = self._generate(prompts)
        mask = batch["completion_mask"].float()

        # 2. log π_θ(y_t|x,y_<t), log π_ref(y_t|x,y_<t) and V(s_t): one forward pass each over prompt + completion.
        logprobs, ref_logprobs, values = self._rollout_forward(batch)

        # 3. Sequence scores, read at the last token of y: R(y,x) (and C(y,x) for PPO-Lag).
        scores = self._score_completions(inputs, prompts, batch)
        if args.missing_eos_penalty is not None:
            scores["reward"] = scores["reward"] - args.missing_eos_penalty * (~batch["has_eos"]).float()
        self._on_rollout_scored(scores)

        # 4. KL_t ≈ KL(π_θ ‖ π_ref) per token, and per-token rewards r_t: -β·KL_t, plus the score at the last token.
        kl = kl_penalty(logprobs, ref_logprobs, args.kl_estimator) * mask
        rewards = self._per_token_rewards(scores, kl, mask)  # [batch, tokens, value heads]
        if args.cliprange_score is not None:
            rewards = rewards.clamp(-args.cliprange_score, args.cliprange_score)
        if args.whiten_rewards:
            rewards = torch.stack(
                [masked_whiten(rewards[..., k], mask, shift_mean=False) for k in range(rewards.shape[-1])], dim=-1
            )

        # 5. GAE on each stream (Â_k, R̂_k = Â_k + V_k), then the actor's advantage Â from the streams.
        stream_advantages, returns = [], []
        for k in range(rewards.shape[-1]):
            advantages_k, returns_k = generalized_advantage_estimation(
                rewards[..., k], values[..., k], mask, args.gamma, args.lam
            )
            stream_advantages.append(advantages_k)
            returns.append(returns_k)
        stream_advantages, returns = torch.stack(stream_advantages, dim=-1), torch.stack(returns, dim=-1)
        advantages = self._actor_advantages(stream_advantages)
        self._record_rollout_metrics(batch, scores, logprobs, kl, values, returns, stream_advantages, advantages)
        if args.whiten_advantages:
            advantages = masked_whiten(advantages, mask)

        return {
            "input_ids": batch["input_ids"],
            "attention_mask": batch["attention_mask"],
            "position_ids": batch["position_ids"],
            "completion_ids": batch["completion_ids"],
            "completion_mask": mask,
            "prompt_length": batch["prompt_length"],
            "logprobs": logprobs,
            "values": values,
            "returns": returns,
            "advantages": advantages,
        }

    def _tokenize_prompts(self, prompts: list[Any]) -> list[list[int]]:
        """Token ids of each prompt: chat template with an open assistant turn for conversational prompts."""
        prompts = list(prompts)
        if is_conversational({"prompt": prompts[0]}):
            prompt_ids = self.tokenizer.apply_chat_template(
                prompts,
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
                **(self.args.chat_template_kwargs or {}),
            )["input_ids"]
        else:
            prompt_ids = self.tokenizer(text=prompts)["input_ids"]
        return [list(ids) for ids in prompt_ids]

    def _generate(self, prompts: list[Any]) -> dict[str, Any]:
        """Sample one completion per prompt and lay out prompt + completion for the forward passes.

        Prompts are left-padded and completions right-padded, so every completion starts at the same column
        (`prompt_length`); `position_ids` follow the attention mask, as in `generate`.
        """
        device = self.accelerator.device
        pad_token_id = self.tokenizer.pad_token_id
        prompt_ids = self._tokenize_prompts(prompts)
        for prompt, ids in zip(prompts, prompt_ids):
            if not ids:  # the first completion token needs a prompt token to be predicted from
                raise ValueError(f"The prompt {prompt!r} has no tokens; every prompt needs at least one.")
        max_prompt_length = self.args.max_prompt_length
        truncated = [max_prompt_length is not None and len(ids) > max_prompt_length for ids in prompt_ids]
        if max_prompt_length is not None:
            prompt_ids = [ids[-max_prompt_length:] for ids in prompt_ids]
        prompt_tensors = [torch.tensor(ids, dtype=torch.long) for ids in prompt_ids]
        prompt_input_ids = pad(prompt_tensors, padding_value=pad_token_id, padding_side="left").to(device)
        prompt_mask = pad([torch.ones_like(t) for t in prompt_tensors], padding_value=0, padding_side="left")
        prompt_mask = prompt_mask.to(device)

        if self.args.use_vllm:
            completion_ids = self._generate_with_vllm(prompt_ids)
        else:
            with (
                unwrap_model_for_generation(
                    self.model_wrapped,
                    self.accelerator,
                    gather_deepspeed3_params=self.args.ds3_gather_for_generation,
                    gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs,
                ) as unwrapped_model,
                torch.no_grad(),
                self._distributed.summon_full_params(self.model_wrapped, recurse=False),
            ):
                sequences = unwrapped_model.policy.generate(
                    input_ids=prompt_input_ids, attention_mask=prompt_mask, generation_config=self.generation_config
                )
            completion_ids = sequences[:, prompt_input_ids.shape[1] :]

        # y ends at its first EOS (kept: the scores are read there); what follows is padding.
        is_eos = torch.isin(completion_ids, torch.tensor(self.eos_token_ids, device=device))
        has_eos = is_eos.any(dim=1)
        last_index = torch.where(has_eos, is_eos.int().argmax(dim=1), completion_ids.shape[1] - 1)
        positions = torch.arange(completion_ids.shape[1], device=device)
        completion_mask = (positions.unsqueeze(0) <= last_index.unsqueeze(1)).long()
        completion_ids = completion_ids.masked_fill(completion_mask == 0, pad_token_id)

        attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)
        completion_id_lists = [ids[: int(n)].tolist() for ids, n in zip(completion_ids, completion_mask.sum(1))]
        texts = self.tokenizer.batch_decode(completion_id_lists, skip_special_tokens=True)
        conversational = is_conversational({"prompt": prompts[0]})
        return {
            "input_ids": torch.cat([prompt_input_ids, completion_ids], dim=1),
            "attention_mask": attention_mask,
            "position_ids": (attention_mask.cumsum(dim=1) - 1).clamp(min=0),
            "prompt_length": prompt_input_ids.shape[1],
            "completion_ids": completion_ids,
            "completion_mask": completion_mask,
            "completion_id_lists": completion_id_lists,
            "completions": [[{"role": "assistant", "content": t}] for t in texts] if conversational else texts,
            "has_eos": has_eos,
            "prompt_truncated": torch.tensor(truncated, device=device),
        }

    def _generate_with_vllm(self, prompt_ids: list[list[int]]) -> torch.Tensor:
        """Completions sampled by vLLM for this process's prompts, right-padded to `[batch, longest]`.

        vLLM holds its own copy of the policy: the current weights are sent to it first whenever an optimizer step
        happened since the last rollout (every process takes part: under ZeRO-3 / FSDP sending gathers the shards).
        Only the tokens are used; `_make_experience` computes log π_old with the trainer's own forward pass.
        """
        if self.state.global_step != self._vllm_weights_step:
            self.vllm_generation.sync_weights()
            self._vllm_weights_step = self.state.global_step
        _, completion_ids, _, _ = self.vllm_generation.generate(prompts=prompt_ids, images=None, num_generations=1)
        completions = [torch.tensor(ids, dtype=torch.long) for ids in completion_ids]
        padded = pad(completions, padding_value=self.tokenizer.pad_token_id, padding_side="right")
        return padded.to(self.accelerator.device)

    def _policy_forward(
        self, model: nn.Module, batch: dict[str, Any], compute_values: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """log π(y_t|x,y_<t) and V(s_t) for the completion tokens, from one forward pass of `PolicyAndValueModel`.

        Returns:
            `(logprobs [batch, tokens], values [batch, tokens, heads] or None, logits [batch, tokens, vocab])`.
            The value of token t is the critic's output at the position before it: V(s_t), s_t = (x, y_<t).
        """
        prompt_length, num_tokens = batch["prompt_length"], batch["completion_ids"].shape[1]
        logits, values = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            position_ids=batch["position_ids"],
            logits_to_keep=num_tokens + 1,
            compute_values=compute_values,
        )
        logits = logits[:, :-1] / self.args.temperature  # position t-1 predicts y_t
        logprobs = selective_logprobs(logits, batch["completion_ids"])
        if values is not None:
            values = values[:, prompt_length - 1 : -1].float()
        return logprobs, values, logits

    def _rollout_forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log-probs of the policy and the reference, and the critic's values, in chunks of
        `per_device_train_batch_size` rows (the activations of a whole rollout need not fit at once)."""
        logprobs, ref_logprobs, values = [], [], []
        rows = torch.arange(batch["input_ids"].shape[0], device=batch["input_ids"].device)
        for chunk in rows.split(self.args.per_device_train_batch_size):
            part = _select_rows(batch, chunk)
            chunk_logprobs, chunk_values, _ = self._policy_forward(self.model_wrapped, part)
            logprobs.append(chunk_logprobs)
            values.append(chunk_values)
            ref_logprobs.append(self._reference_logprobs(part))
        return torch.cat(logprobs), torch.cat(ref_logprobs), torch.cat(values)

    def _reference_logprobs(self, batch: dict[str, Any]) -> torch.Tensor:
        if self.ref_model is None:
            # PEFT: the policy with its adapter disabled is π_ref; no second copy of the weights exists.
            with self.accelerator.unwrap_model(self.model_wrapped).policy.disable_adapter():
                logprobs, _, _ = self._policy_forward(self.model_wrapped, batch, compute_values=False)
            return logprobs
        num_tokens = batch["completion_ids"].shape[1]
        logits = self.ref_model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            position_ids=batch["position_ids"],
            logits_to_keep=num_tokens + 1,
            use_cache=False,
        ).logits
        return selective_logprobs(logits[:, :-1] / self.args.temperature, batch["completion_ids"])

    def _score_completions(
        self, inputs: list[dict[str, Any]], prompts: list[Any], batch: dict[str, Any]
    ) -> dict[str, torch.Tensor]:
        """One score per completion from every score stream: `{"reward": [batch]}` (plus `"cost"` for PPO-Lag)."""
        return {name: self._score(scorer, inputs, prompts, batch) for name, scorer in self.scorers.items()}

    def _score(
        self, scorer: _Scorer, inputs: list[dict[str, Any]], prompts: list[Any], batch: dict[str, Any]
    ) -> torch.Tensor:
        device = self.accelerator.device
        completions = batch["completions"]
        if scorer.function is not None:
            extra_columns = {key: [example[key] for example in inputs] for key in inputs[0] if key != "prompt"}
            values = scorer.function(
                prompts=prompts,
                completions=completions,
                completion_ids=batch["completion_id_lists"],
                trainer_state=self.state,
                **extra_columns,
            )
            return torch.tensor(self._checked_scores(values, scorer, prompts), dtype=torch.float32, device=device)
        # A model reads each completion where it was trained: the rendered (prompt, completion) pair, closed as in
        # training (chat template or EOS), at its last token (trl_safe.scoring.Scorer).
        return scorer.reader.score(prompts, completions).to(device)

    @staticmethod
    def _checked_scores(values: Any, scorer: _Scorer, prompts: list[Any]) -> list[float]:
        """A score function's output as floats; a wrong length or a missing / non-finite score is an error."""
        what = f"The {scorer.name} function `{scorer.display_name}`"
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

    # ------------------------------------------------------------------------------------------------------------
    # Hooks that define the algorithm's streams (PPOLagTrainer overrides them)
    # ------------------------------------------------------------------------------------------------------------

    def _on_rollout_scored(self, scores: dict[str, torch.Tensor]) -> None:
        """Called once per rollout, after scoring and before the advantages (PPO-Lag's λ update goes here)."""

    def _per_token_rewards(
        self, scores: dict[str, torch.Tensor], kl: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """r_t = -β·KL_t, with R(y,x) added at the last token (Ziegler et al. 2019). Shape `[batch, tokens, 1]`."""
        rewards = add_at_last_token(-self.args.kl_coef * kl, scores["reward"], mask)
        return rewards.unsqueeze(-1)

    def _actor_advantages(self, stream_advantages: torch.Tensor) -> torch.Tensor:
        """The advantage the policy follows, from the per-stream advantages `[batch, tokens, heads]`: Â_R."""
        return stream_advantages[..., 0]

    # ------------------------------------------------------------------------------------------------------------
    # Loss
    # ------------------------------------------------------------------------------------------------------------

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor:
        if return_outputs:
            raise ValueError(f"{type(self).__name__} does not return model outputs from `compute_loss`.")
        return self._compute_ppo_loss(model, inputs)

    def _compute_ppo_loss(self, model: nn.Module, micro_batch: dict[str, Any]) -> torch.Tensor:
        """L = L_policy(Â) + vf_coef · Σ_heads L_value, for one micro-batch of the rollout."""
        args = self.args
        mask = micro_batch["completion_mask"]
        logprobs, values, logits = self._policy_forward(model, micro_batch)

        # PPO-clip on the actor's advantage, ρ_t = π_θ(y_t|·) / π_old(y_t|·).
        policy_loss, ratio, policy_clipped = clipped_policy_loss(
            logprobs, micro_batch["logprobs"], micro_batch["advantages"], mask, args.cliprange, args.loss_aggregation
        )
        # Clipped value loss for each head (reward; and cost for PPO-Lag), summed.
        value_losses, value_clipped = [], []
        for k in range(values.shape[-1]):
            loss_k, clipped_k = clipped_value_loss(
                values[..., k],
                micro_batch["values"][..., k],
                micro_batch["returns"][..., k],
                mask,
                args.cliprange_value,
                args.loss_aggregation,
            )
            value_losses.append(loss_k)
            value_clipped.append(clipped_k)
        value_loss = torch.stack(value_losses).sum()
        loss = policy_loss + args.vf_coef * value_loss
        if self.ptx is not None:  # PTX: supervised loss on the pre-training mix, L += ptx_coef · L_ptx
            loss_ptx = self._ptx_loss(model)
            loss = loss + args.ptx_coef * loss_ptx
            self._record("train", "loss/ptx", loss_ptx.detach())

        with torch.no_grad():
            log_ratio = logprobs - micro_batch["logprobs"]
            ratio_mean = masked_mean(ratio, mask)
            self._record("train", "loss/policy", policy_loss)
            self._record("train", "loss/value", value_loss)
            for name, loss_k in zip(self.value_head_names, value_losses):
                self._record("train", f"loss/{name}_value", loss_k)
            self._record("train", "policy/clipfrac", masked_mean(policy_clipped.float(), mask))
            self._record("train", "policy/approxkl", 0.5 * masked_mean(log_ratio**2, mask))
            self._record("train", "policy/entropy", masked_mean(entropy_from_logits(logits), mask))
            self._record("train", "val/clipfrac", masked_mean(torch.stack(value_clipped, -1).float().mean(-1), mask))
            self._record("train", "val/ratio", ratio_mean)
            self._record("train", "val/ratio_var", masked_mean((ratio - ratio_mean) ** 2, mask))
        return loss

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """`Trainer`'s optimizer, with the critic's parameters in their own groups when `value_learning_rate` or
        `value_weight_decay` is set (the reference trains actor and critics with separate optimizers: 1e-5 / 5e-6,
        weight decay 0.01 / 0.0). Groups are split before the scheduler is built, so each keeps its own peak lr."""
        optimizer = super().create_optimizer(model)
        args = self.args
        if args.value_learning_rate is None and args.value_weight_decay is None:
            return optimizer
        critic = {id(p) for p in self.accelerator.unwrap_model(self.model).value_model.parameters()}
        groups = []
        for group in optimizer.param_groups:
            policy_params = [p for p in group["params"] if id(p) not in critic]
            critic_params = [p for p in group["params"] if id(p) in critic]
            if policy_params:
                groups.append({**group, "params": policy_params})
            if critic_params:
                critic_group = {**group, "params": critic_params}
                if args.value_learning_rate is not None:
                    critic_group["lr"] = args.value_learning_rate
                if args.value_weight_decay is not None and group["weight_decay"] > 0:
                    critic_group["weight_decay"] = args.value_weight_decay
                groups.append(critic_group)
        optimizer.param_groups = groups
        return optimizer

    def _ptx_loss(self, model: nn.Module) -> torch.Tensor:
        """L_ptx on this micro-batch's PTX examples, drawn by (optimizer step, micro-step, process): resumable."""
        accumulation = self.args.gradient_accumulation_steps
        micro_step = self.state.global_step * accumulation + (self._micro_step - 1) % accumulation
        draw = micro_step * self.accelerator.num_processes + self.accelerator.process_index
        batch = self.ptx.batch(draw, self.args.per_device_train_batch_size, self.accelerator.device)
        logits, _ = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], compute_values=False)
        return ptx_loss(logits, batch["labels"])

    def _clip_grad_norm(self, model: nn.Module) -> torch.Tensor:
        """Clip the policy's and the critic's gradients separately, like the reference (two engines).

        With one global norm, the critic's gradients (large while its values are still far from the returns) would
        shrink the policy's step. Under DeepSpeed and FSDP the wrapper's own (global) clipping applies.
        """
        if self.is_deepspeed_enabled or self.is_fsdp_enabled:
            return super()._clip_grad_norm(model)
        self.accelerator.unscale_gradients()
        unwrapped = self.accelerator.unwrap_model(model)
        norms = [
            torch.nn.utils.clip_grad_norm_(part.parameters(), self.args.max_grad_norm)
            for part in (unwrapped.policy, unwrapped.value_model)
        ]
        return torch.linalg.vector_norm(torch.stack(norms))  # the pre-clipping norm of all gradients

    def _get_grad_norm(self, model: nn.Module, grad_norm: torch.Tensor | float | None = None) -> Any:
        """With clipping off (`max_grad_norm <= 0`), skip the norm `Trainer` would compute only to log it.

        That is one extra pass over every gradient of policy and critic per optimizer step (measured: ~2% of a
        SmolLM2-135M update, benchmarks/); with clipping on, the norm comes from the clipping and is logged as usual.
        """
        if grad_norm is None and self.args.max_grad_norm <= 0:
            return None
        return super()._get_grad_norm(model, grad_norm=grad_norm)

    # ------------------------------------------------------------------------------------------------------------
    # Evaluation: sample completions for the eval prompts and report their mean scores
    # ------------------------------------------------------------------------------------------------------------

    def prediction_step(
        self,
        model: nn.Module,
        inputs: list[dict[str, Any]],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> tuple[None, None, None]:
        with torch.no_grad():
            prompts = [example["prompt"] for example in inputs]
            batch = self._generate(prompts)
            scores = self._score_completions(inputs, prompts, batch)
            self._record_score_metrics(scores, "eval")
            self._record_mean("eval", "completions/mean_length", batch["completion_mask"].sum(1).float())
        return None, None, None

    # ------------------------------------------------------------------------------------------------------------
    # Metrics: sums and counts since the last log, reduced over processes when logged
    # ------------------------------------------------------------------------------------------------------------

    def _record(self, mode: str, name: str, total: torch.Tensor | float, count: torch.Tensor | float = 1.0) -> None:
        """Add `total` (over `count` items) to metric `name`; what is logged is Σ total / Σ count.

        Per-micro-batch metrics use count 1 (their mean over the micro-batches that ran), per-sequence metrics their
        sum over the sequences. Values stay on the device until `log`, which reduces every metric in one call.
        """
        device = self.accelerator.device
        entry = torch.stack(
            [torch.as_tensor(x, dtype=torch.float32, device=device).detach().reshape(()) for x in (total, count)]
        )
        store = self._metrics[mode]
        store[name] = store[name] + entry if name in store else entry

    def _record_mean(self, mode: str, name: str, values: torch.Tensor) -> None:
        self._record(mode, name, values.float().sum(), values.numel())

    def _record_score_metrics(self, scores: dict[str, torch.Tensor], mode: str) -> None:
        """Score metrics of a rollout (`mode="train"`) or of an evaluation batch (`mode="eval"`)."""
        self._record_mean(mode, "objective/scores", scores["reward"])

    def _record_rollout_metrics(
        self,
        batch: dict[str, Any],
        scores: dict[str, torch.Tensor],
        logprobs: torch.Tensor,
        kl: torch.Tensor,
        values: torch.Tensor,
        returns: torch.Tensor,
        stream_advantages: torch.Tensor,
        advantages: torch.Tensor,
    ) -> None:
        mask = batch["completion_mask"]
        non_score_reward = (-self.args.kl_coef * kl).sum(1)
        self._record_score_metrics(scores, "train")
        self._record_mean("train", "objective/kl", kl.sum(1))
        self._record_mean("train", "objective/entropy", masked_sum(-logprobs, mask, dim=1))
        self._record_mean("train", "objective/non_score_reward", non_score_reward)
        self._record_mean("train", "objective/rlhf_reward", scores["reward"] + non_score_reward)
        self._record_mean("train", "completions/mean_length", mask.sum(1).float())
        self._record_mean("train", "completions/clipped_ratio", (~batch["has_eos"]).float())
        self._record_mean("train", "prompts/truncated_ratio", batch["prompt_truncated"].float())
        # Number of completions in the rollout (all processes) that ended with EOS.
        self._record("train", "val/num_eos_tokens", self.accelerator.gather(batch["has_eos"]).sum())
        for k, name in enumerate(self.value_head_names):
            self._record("train", f"val/{name}_value", masked_sum(values[..., k], mask), mask.sum())
            self._record("train", f"val/{name}_return", masked_sum(returns[..., k], mask), mask.sum())
            self._record("train", f"val/{name}_advantage", masked_sum(stream_advantages[..., k], mask), mask.sum())
        self._record("train", "val/advantage", masked_sum(advantages, mask), mask.sum())

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if self.model.training else "eval"
        store = self._metrics[mode]
        if store:
            names = sorted(store)  # the same order on every process
            sums = self.accelerator.reduce(torch.stack([store[name] for name in names]), reduction="sum")
            prefix = "eval_" if mode == "eval" else ""
            for name, (total, count) in zip(names, sums.tolist()):
                if count > 0:
                    logs[prefix + name] = total / count
            store.clear()
        super().log(logs, start_time)

    # ------------------------------------------------------------------------------------------------------------
    # Saving and resuming
    # ------------------------------------------------------------------------------------------------------------

    def _save(self, output_dir: str | None = None, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """Write the policy (and tokenizer) in the standard `save_pretrained` format; the critic goes to
        `value_model/`, always in checkpoints and with `save_value_model` in the final output."""
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        wrapper = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        if state_dict is None:
            state_dict = wrapper.state_dict()
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        policy_state = {k.removeprefix("policy."): v for k, v in state_dict.items() if k.startswith("policy.")}
        wrapper.policy.save_pretrained(output_dir, state_dict=policy_state)
        self.tokenizer.save_pretrained(output_dir)
        if self._saving_checkpoint or self.args.save_value_model:
            prefix = "value_model."
            value_state = {k.removeprefix(prefix): v for k, v in state_dict.items() if k.startswith(prefix)}
            wrapper.value_model.save_pretrained(os.path.join(output_dir, VALUE_MODEL_DIR), state_dict=value_state)
        torch.save(self.args, os.path.join(output_dir, TRAINING_ARGS_NAME))

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        super().save_model(output_dir, _internal_call)
        if not _internal_call and self.args.should_save:
            self.create_model_card(output_dir=output_dir)

    def _save_checkpoint(self, model: nn.Module, trial: Any) -> None:
        checkpoint_dir = os.path.join(self._get_output_dir(trial), f"checkpoint-{self.state.global_step}")
        if self.args.should_save:
            os.makedirs(checkpoint_dir, exist_ok=True)
            self._save_extra_state(checkpoint_dir)
            self.create_model_card(output_dir=checkpoint_dir)
        self._saving_checkpoint = True
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._saving_checkpoint = False

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        if model is not None:
            # FSDP passes its wrapped module: its checkpoint holds the whole policy-and-critic module.
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        # Plain PyTorch / DDP: the policy sits at the checkpoint's top level, the critic in `value_model/`.
        value_dir = os.path.join(resume_from_checkpoint, VALUE_MODEL_DIR)
        if not os.path.isdir(value_dir):
            raise FileNotFoundError(
                f"{resume_from_checkpoint} has no `{VALUE_MODEL_DIR}/` folder: it is not a {type(self).__name__} "
                "checkpoint (the critic is needed to resume)."
            )
        super()._load_from_checkpoint(resume_from_checkpoint, self.model.policy)
        super()._load_from_checkpoint(value_dir, self.model.value_model)

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        # Called on every backend when resuming, after the weights: the place to restore the extra state too.
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is not None:
            self._load_extra_state(checkpoint)

    def _save_extra_state(self, checkpoint_dir: str) -> None:
        """Write state a subclass needs to resume exactly (PPO-Lag: the Lagrange multiplier). Main process only."""

    def _load_extra_state(self, checkpoint_dir: str) -> None:
        """Restore what `_save_extra_state` wrote. Runs on every process."""

    # ------------------------------------------------------------------------------------------------------------
    # Model card
    # ------------------------------------------------------------------------------------------------------------

    def _model_card_context(self) -> dict[str, Any]:
        """Template variables of `model_cards/policy_model_card.md`; PPO-Lag adds the constraint and final λ."""
        args = self.args
        names = (
            "learning_rate",
            "max_steps",
            "num_train_epochs",
            "per_device_train_batch_size",
            "gradient_accumulation_steps",
            "num_mini_batches",
            "num_ppo_epochs",
            "max_completion_length",
            "temperature",
            "kl_coef",
            "kl_estimator",
            "cliprange",
            "cliprange_value",
            "vf_coef",
            "gamma",
            "lam",
            "whiten_advantages",
            "whiten_rewards",
            "cliprange_score",
            "missing_eos_penalty",
            "seed",
        )
        return {
            "trainer_name": type(self).__name__,
            "algorithm": self._name,
            "hyperparameters": {name: getattr(args, name) for name in names},
            "score_sources": {name: scorer.display_name for name, scorer in self.scorers.items()},
            "peft": is_peft_model(self.accelerator.unwrap_model(self.model).policy),
            "global_step": self.state.global_step,
        }

    def create_model_card(
        self,
        model_name: str | None = None,
        dataset_name: str | list[str] | None = None,
        tags: str | list[str] | None = None,
        output_dir: str | None = None,
        **context: Any,
    ) -> None:
        """Write `README.md` (the model card) to `output_dir` (default `args.output_dir`).

        Extra keyword arguments reach the template; `evaluation_summary=...` (Markdown text, or a dict of metric
        name to value) adds an evaluation section.
        """
        if not self.is_world_process_zero():
            return
        output_dir = output_dir or self.args.output_dir
        model_id = get_config_model_id(self.accelerator.unwrap_model(self.model).policy.config)
        base_model = model_id if model_id and not os.path.isdir(model_id) else None
        extra_tags = [tags] if isinstance(tags, str) else list(tags or [])
        card = render_model_card(
            "policy_model_card.md",
            model_name=model_name or (self.args.hub_model_id or os.path.basename(os.path.abspath(output_dir))),
            tags=[*self._tag_names, *extra_tags],
            base_model=base_model,
            dataset_name=dataset_name,
            hub_model_id=self.args.hub_model_id,
            pipeline_tag="text-generation",
            **{**self._model_card_context(), **context},
        )
        os.makedirs(output_dir, exist_ok=True)
        card.save(os.path.join(output_dir, "README.md"))


def _select_rows(batch: dict[str, Any], rows: torch.Tensor) -> dict[str, Any]:
    """The rows `rows` of every tensor in `batch` (lists are indexed too); other entries (ints) are shared."""
    selected = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            selected[key] = value[rows]
        elif isinstance(value, list):
            selected[key] = [value[i] for i in rows.tolist()]
        else:
            selected[key] = value
    return selected


def _gathered(
    parameters: Iterable[nn.Parameter], modifier_rank: int | None = None
) -> contextlib.AbstractContextManager:
    """Whole values of `parameters` inside the context, also when DeepSpeed ZeRO-3 has partitioned them.

    Under ZeRO-3, `transformers` builds every model created after the training arguments directly partitioned
    (`deepspeed.zero.Init`): each process holds a shard and the parameter itself is an empty placeholder. Reading
    or writing weights (copying a model, resizing a head) must gather them first; with `modifier_rank`, that rank's
    writes are partitioned again on exit. Anywhere else this is a no-op.
    """
    parameters = list(parameters)
    if not any(hasattr(parameter, "ds_id") for parameter in parameters):
        return contextlib.nullcontext()
    import deepspeed  # only reached when DeepSpeed partitioned the parameters

    return deepspeed.zero.GatheredParameters(parameters, modifier_rank=modifier_rank)


def _copy_parameters(source: nn.Module, target: nn.Module) -> None:
    """target ← source for every parameter (matched by name) and buffer of `target`.

    One parameter at a time, so that under ZeRO-3 no more than one whole tensor is gathered at once.
    """
    source_parameters = dict(source.named_parameters())
    missing = [name for name, _ in target.named_parameters() if name not in source_parameters]
    if missing:
        raise ValueError(f"Cannot copy {type(source).__name__} into {type(target).__name__}: no {missing[:5]}.")
    with torch.no_grad():
        for name, parameter in target.named_parameters():
            with _gathered([source_parameters[name]]), _gathered([parameter], modifier_rank=0):
                parameter.data.copy_(source_parameters[name].data)
        source_buffers = dict(source.named_buffers())
        for name, buffer in target.named_buffers():
            if name in source_buffers:
                buffer.copy_(source_buffers[name])


def _copy_model(model: nn.Module) -> nn.Module:
    """An independent copy of `model` (the default reference policy, or the critic copied from a score model).

    `copy.deepcopy` cannot copy a model that ZeRO-3 partitioned (it would duplicate DeepSpeed's bookkeeping, not
    the weights): such a model is rebuilt from its config, partitioned the same way, and its weights are copied.
    """
    if not any(hasattr(parameter, "ds_id") for parameter in model.parameters()):
        return copy.deepcopy(model)
    if not isinstance(model, PreTrainedModel):
        raise TypeError(
            f"Cannot copy a {type(model).__name__} partitioned by DeepSpeed ZeRO-3: pass the reference and value "
            "models explicitly (or as paths)."
        )
    clone = type(model)._from_config(copy.deepcopy(model.config), dtype=model.dtype)  # built partitioned
    _copy_parameters(model, clone)
    if getattr(model, "generation_config", None) is not None:
        clone.generation_config = copy.deepcopy(model.generation_config)
    return clone


def _replace_value_head(critic: nn.Module, num_heads: int, rows: dict[int, int]) -> None:
    """Give `critic` a linear value head with `num_heads` outputs: column c copies row `rows[c]` of the old head,
    the other columns start at zero (V = 0 at first).

    The new head is an ordinary (not partitioned) layer even under ZeRO-3; DeepSpeed partitions it with the rest of
    the critic when the trainer prepares it.
    """
    head = find_score_head(critic)
    if not isinstance(head, nn.Linear):
        raise ValueError(
            f"The value model's score head must be an nn.Linear to be resized, got {type(head).__name__}."
        )
    new_head = nn.Linear(
        head.in_features, num_heads, bias=head.bias is not None, device=head.weight.device, dtype=head.weight.dtype
    )
    with torch.no_grad(), _gathered(head.parameters()):
        new_head.weight.zero_()
        if new_head.bias is not None:
            new_head.bias.zero_()
        for column, row in rows.items():
            new_head.weight[column] = head.weight[row]
            if new_head.bias is not None:
                new_head.bias[column] = head.bias[row]
    base = critic.get_base_model() if hasattr(critic, "get_base_model") else critic
    attribute = next(name for name, child in base.named_children() if child is head)
    setattr(base, attribute, new_head)
    critic.config.num_labels = num_heads


def _value_model_from_policy(policy: nn.Module, num_heads: int) -> PreTrainedModel:
    """A sequence-classification critic with the policy's backbone weights and an all-zero value head."""
    if is_peft_model(policy):
        raise ValueError(
            "Cannot build the critic from a policy that is already a PeftModel: pass `value_model`, or a reward "
            "(cost) model to copy it from."
        )
    config = copy.deepcopy(policy.config)
    config.num_labels = num_heads
    critic = AutoModelForSequenceClassification.from_config(config, dtype=policy.dtype)
    _copy_parameters(policy.base_model, critic.base_model)
    critic.to(policy.device)
    _replace_value_head(critic, num_heads, {})
    return critic
