"""PPO with a learned critic for RLHF, maintained for current TRL, and the base of `PPOLagTrainer`.

TRL deleted its `PPOTrainer` in 1.13. This one is written to TRL's current conventions (a `_BaseTrainer` subclass
with a config dataclass; prompt data sets in text or conversational form, like `GRPOTrainer`) and runs inside
`transformers`' `Trainer.train()` loop, so checkpointing, `resume_from_checkpoint`, learning-rate schedules,
callbacks, logging integrations and DDP / DeepSpeed / FSDP come from `Trainer` unchanged.

How PPO fits `Trainer`'s loop (the same idea as `GRPOTrainer`'s buffered generations):

- the data loader yields one *rollout batch* of prompts per process and repeats it once per training step that
  rollout feeds (`RolloutSampler`);
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

The pieces live in modules named after them: `trl_safe.ppo.models` (policy-and-critic module, critic and reference
construction, copies under ZeRO-3), `trl_safe.ppo.score_streams` (the reward / cost sources), `trl_safe.ppo.experience`
(rollout and the typed `Experience`), `trl_safe.rl_math` (the formulas); this module is the `Trainer` glue: set-up,
loss, metrics, checkpoints and the model card.

Subclasses change the algorithm through a few hooks, never by copying the loop (`PPOLagTrainer` uses all of them):
`value_head_names` (one critic output per score stream) with the score sources passed as a mapping in the same
order (`score_sources=`, checked against the value heads), `_dual_step` (a constrained subclass's update of its
multipliers from the scores), `_per_token_rewards` (how scores and KL become per-token rewards), `_actor_advantages`
(how the streams' advantages combine), `_record_score_metrics`, `_save_extra_state` / `_load_extra_state` (extra
checkpoint state) and `_model_card_context`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import torch
from accelerate.utils import is_peft_model, set_seed
from datasets import Dataset, IterableDataset
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback
from transformers.trainer import TRAINING_ARGS_NAME
from transformers.utils import is_peft_available
from trl.distributed import DistributedBackend
from trl.import_utils import is_vllm_available
from trl.trainer.base_trainer import _BaseTrainer
from trl.trainer.utils import disable_dropout_in_model, get_config_model_id, identity

from trl_safe.checkpoints import current_checkpoint_dir
from trl_safe.checks import (
    check_config_class,
    check_policy_model,
    check_prompt_dataset,
    check_rollout_batches,
    check_tokenizer_can_pad,
    resolve_reward_source,
)
from trl_safe.distributed import check_processes_train_one_model
from trl_safe.model_card import render_model_card
from trl_safe.ppo.experience import Experience, ExperienceMaker, make_generation_backend
from trl_safe.ppo.models import (
    VALUE_MODEL_DIR,
    PolicyAndValueModel,
    build_reference_model,
    build_value_model,
    load_model,
    prepare_frozen_model,
    split_critic_param_groups,
)
from trl_safe.ppo.score_streams import ScoreSource, check_score_sources, load_score_stream
from trl_safe.ppo_config import PPOConfig
from trl_safe.ptx import build_ptx_data, ptx_objective
from trl_safe.rl_math import (
    add_at_last_token,
    clipped_policy_loss,
    clipped_value_loss,
    entropy_from_logits,
    masked_mean,
)

if is_peft_available():
    from peft import PeftConfig, get_peft_model

logger = logging.getLogger(__name__)

__all__ = ["VALUE_MODEL_DIR", "PPOTrainer", "PolicyAndValueModel", "ScoreSource"]


class PPOTrainer(ExperienceMaker, _BaseTrainer):
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
        score_sources, score_processing_classes: for subclasses with more than one score (PPO-Lag): every score
            source by name, in the order of `value_head_names` (checked), and their tokenizers where they differ
            from the policy's. `reward_model` and `reward_processing_class` are the `"reward"` entries.
    """

    _tag_names = ["trl-safe", "ppo"]
    _name = "PPO"
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
        *,
        score_sources: Mapping[str, ScoreSource] | None = None,
        score_processing_classes: Mapping[str, PreTrainedTokenizerBase | None] | None = None,
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
        if score_sources is None:
            score_sources = {"reward": reward_model}
        elif reward_model is not None:
            raise ValueError("Pass the reward either as `reward_model` or in `score_sources`, not both.")
        check_score_sources(score_sources, self.value_head_names, type(self).__name__)
        score_processing_classes = {"reward": reward_processing_class, **(score_processing_classes or {})}
        # Adapters and new value heads are initialised randomly: seed before building any model.
        set_seed(args.seed)

        # Policy π_θ and its tokenizer.
        policy = load_model(model, AutoModelForCausalLM, args) if isinstance(model, str) else model
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
        self.scorers = {
            name: load_score_stream(name, source, score_processing_classes.get(name), processing_class, args)
            for name, source in score_sources.items()
        }
        critic = build_value_model(
            value_model, policy, self.scorers, self.value_head_names, processing_class.pad_token_id, args
        )

        # Reference π_ref: given, or the adapter-free policy under PEFT (None), or a frozen copy of the initial policy.
        uses_peft = peft_config is not None or is_peft_model(policy)
        self.ref_model = build_reference_model(ref_model, model, policy, uses_peft, args)

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
        backends = {
            "accelerator": self.accelerator,
            "deepspeed": self.is_deepspeed_enabled,
            "fsdp": self.is_fsdp_enabled,
        }
        if self.ref_model is not None:
            self.ref_model = prepare_frozen_model(self.ref_model, **backends, shard_with_fsdp=True)
        for scorer in self.scorers.values():
            if scorer.model is not None:
                scorer.model = prepare_frozen_model(scorer.model, **backends, shard_with_fsdp=False)

        # Every process samples different completions (the seed above was the same on all of them).
        set_seed(args.seed, device_specific=True)
        backend = make_generation_backend(
            self.model.policy, self.accelerator, processing_class, self.eos_token_ids, args
        )
        if args.use_vllm:
            self.vllm_generation = backend
            self._vllm_weights_step = -1  # the global step whose policy weights vLLM holds; -1: none sent yet
        else:
            self.generation_config = backend
        self._distributed = DistributedBackend(self.accelerator)

        # PTX (pre-training mix): supervised examples mixed into every PPO micro-batch's loss when ptx_coef > 0.
        self.ptx = build_ptx_data(ptx_dataset, self.tokenizer, args)

        # Rollout buffer: the micro-batches of the current rollout, and the micro-step counter that walks them.
        self._micro_batches: list[dict[str, Any]] = []
        self._micro_step = 0
        # Metric sums and counts since the last log, per mode; reduced across processes when logged.
        self._metrics: dict[str, dict[str, torch.Tensor]] = {"train": {}, "eval": {}}
        # Set while `_save_checkpoint` runs: checkpoints always contain the critic.
        self._saving_checkpoint = False

    # ------------------------------------------------------------------------------------------------------------
    # Hooks that define the algorithm's streams (PPOLagTrainer overrides them)
    # ------------------------------------------------------------------------------------------------------------

    def _dual_step(self, scores: dict[str, torch.Tensor]) -> None:
        """The dual step of a constrained subclass (PPO-Lag: λ from the costs), once per rollout, after scoring and
        before the advantages, which then use the updated multipliers. Plain PPO has no constraint: nothing."""

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
        inputs: Experience,
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor:
        if return_outputs:
            raise ValueError(f"{type(self).__name__} does not return model outputs from `compute_loss`.")
        return self._compute_ppo_loss(model, inputs)

    def _compute_ppo_loss(self, model: nn.Module, micro_batch: Experience) -> torch.Tensor:
        """L = L_policy(Â) + vf_coef · Σ_heads L_value, for one micro-batch of the rollout."""
        args = self.args
        mask = micro_batch.completion_mask
        logprobs, values, logits = self._policy_forward(model, micro_batch.model_inputs())

        # PPO-clip on the actor's advantage, ρ_t = π_θ(y_t|·) / π_old(y_t|·).
        policy_loss, ratio, policy_clipped = clipped_policy_loss(
            logprobs, micro_batch.logprobs, micro_batch.advantages, mask, args.cliprange, args.loss_aggregation
        )
        # Clipped value loss for each head (reward; and cost for PPO-Lag), summed.
        value_losses, value_clipped = [], []
        for k in range(values.shape[-1]):
            loss_k, clipped_k = clipped_value_loss(
                values[..., k],
                micro_batch.values[..., k],
                micro_batch.returns[..., k],
                mask,
                args.cliprange_value,
                args.loss_aggregation,
            )
            value_losses.append(loss_k)
            value_clipped.append(clipped_k)
        value_loss = torch.stack(value_losses).sum()
        loss = policy_loss + args.vf_coef * value_loss
        ptx_weight = self.ptx_weight()
        if ptx_weight > 0:  # PTX: supervised loss on the pre-training mix, L += ptx_coef · L_ptx
            loss_ptx = self._ptx_loss(model)
            loss = loss + ptx_weight * loss_ptx
            self._record("train", "loss/ptx", loss_ptx.detach())
        if self.ptx is not None:
            self._record("train", "ptx/weight", ptx_weight)

        with torch.no_grad():
            log_ratio = logprobs - micro_batch.logprobs
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
        `value_weight_decay` is set (`trl_safe.ppo.models.split_critic_param_groups`)."""
        optimizer = super().create_optimizer(model)
        critic = self.accelerator.unwrap_model(self.model).value_model
        split_critic_param_groups(optimizer, critic, self.args.value_learning_rate, self.args.value_weight_decay)
        return optimizer

    def ptx_weight(self) -> float:
        """The PTX weight of the current optimizer step: `ptx_coef`, decayed linearly to 0 at `ptx_decay_steps` when
        that is set (0 when PTX is off)."""
        if self.ptx is None:
            return 0.0
        if self.args.ptx_decay_steps is None:
            return self.args.ptx_coef
        return self.args.ptx_coef * max(0.0, 1.0 - self.state.global_step / self.args.ptx_decay_steps)

    def _ptx_loss(self, model: nn.Module) -> torch.Tensor:
        """L_ptx on this micro-batch's PTX examples, drawn by (optimizer step, micro-step, process): resumable."""
        accumulation = self.args.gradient_accumulation_steps
        micro_step = self.state.global_step * accumulation + (self._micro_step - 1) % accumulation
        draw = micro_step * self.accelerator.num_processes + self.accelerator.process_index
        batch = self.ptx.batch(draw, self.args.per_device_train_batch_size, self.accelerator.device)
        logits, _ = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], compute_values=False)
        loss, nll, unlikely = ptx_objective(
            logits, batch["labels"], batch["desirable"], self.args.ptx_unlikelihood_coef
        )
        if self.ptx.has_undesirable:  # each term over the micro-batches that drew a row of its kind
            for name, term in (("loss/ptx_nll", nll), ("loss/ptx_unlikelihood", unlikely)):
                if term is not None:
                    self._record("train", name, term.detach())
        return loss

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
        with torch.no_grad(), self.accelerator.autocast():  # in the training precision, as the rollouts are
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
        checkpoint_dir = current_checkpoint_dir(self, trial)
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
