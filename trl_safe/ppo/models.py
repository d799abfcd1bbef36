"""Model construction for PPO: the policy-and-critic module, loading, the critic's value heads, copies under ZeRO-3.

- `PolicyAndValueModel`: the policy π_θ and the critic V_φ as one module, so one optimizer, one distributed wrapper
  and one checkpoint cover both.
- `load_model`: a model from a path / Hub id with the config's `model_init_kwargs`.
- `build_value_model`: the critic, with one output column (value head) per score, initialised from a score model
  that reads the policy's tokens, or from the policy's backbone.
- `build_reference_model`: the frozen reference policy π_ref (or `None` under PEFT: the adapter-free policy).
- `prepare_frozen_model`: a frozen model (reference, score models) set up for inference on every process, sharded
  under DeepSpeed ZeRO-3 or FSDP.
- `copy_model`, `copy_parameters`, `gathered`: copies that also work when DeepSpeed ZeRO-3 has partitioned the
  weights (`transformers` builds models partitioned when the training arguments enable ZeRO-3).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from accelerate.utils import is_peft_model
from torch import nn
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, PreTrainedModel
from trl.models import prepare_deepspeed, prepare_fsdp
from trl.trainer.utils import create_model_from_path

from trl_safe.checks import check_model_path
from trl_safe.ppo_config import PPOConfig
from trl_safe.scoring import find_score_head, per_token_scores

if TYPE_CHECKING:
    from accelerate import Accelerator

    from trl_safe.ppo.score_streams import ScoreStream

# Sub-folder of a checkpoint (and, with `save_value_model`, of the output directory) that holds the critic.
VALUE_MODEL_DIR = "value_model"


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


def load_model(path: str, auto_class: type, args: PPOConfig, **kwargs: Any) -> PreTrainedModel:
    check_model_path(path, "model")  # a mistyped folder is "no such directory", not a failed Hub connection
    init_kwargs = {**(args.model_init_kwargs or {}), **kwargs}
    # Placement is accelerate's job: "auto" device maps would split models across devices under DDP.
    init_kwargs.setdefault("device_map", None)
    init_kwargs.setdefault("trust_remote_code", args.trust_remote_code)
    return create_model_from_path(path, architecture=auto_class, **init_kwargs)


def build_reference_model(
    ref_model: str | PreTrainedModel | None, model: str | PreTrainedModel, policy: nn.Module, uses_peft: bool, args
) -> nn.Module | None:
    """π_ref: the given model, else (under PEFT) `None`, meaning the policy with its adapter disabled, else a frozen
    copy of the initial policy (loaded again from its path, or copied)."""
    if ref_model is not None:
        return load_model(ref_model, AutoModelForCausalLM, args) if isinstance(ref_model, str) else ref_model
    if uses_peft:
        return None
    return load_model(model, AutoModelForCausalLM, args) if isinstance(model, str) else copy_model(policy)


def build_value_model(
    value_model: str | nn.Module | None,
    policy: nn.Module,
    scorers: Mapping[str, ScoreStream],
    value_head_names: tuple[str, ...],
    pad_token_id: int,
    args: PPOConfig,
) -> nn.Module:
    """The critic, with one output column per entry of `value_head_names`.

    Default initialisation, in order of preference:
    1. a copy of the first score *model* in column order that reads the policy's tokens (the reward model for
       PPO): backbone, and the head row of that score in its own column; the other columns start at zero;
    2. the policy's backbone with an all-zero value head (when every score is a function).
    A given `value_model` keeps its weights; its head is resized if it has another number of outputs.
    """
    num_heads = len(value_head_names)
    if value_model is not None:
        critic = (
            load_model(value_model, AutoModelForSequenceClassification, args)
            if isinstance(value_model, str)
            else value_model
        )
        if critic.config.num_labels != num_heads:
            head = find_score_head(critic)
            replace_value_head(critic, num_heads, {i: i for i in range(min(head.out_features, num_heads))})
    else:
        critic = None
        for column, name in enumerate(value_head_names):
            scorer = scorers.get(name)
            if scorer is not None and scorer.model is not None and scorer.processing_class is None:
                critic = copy_model(scorer.model)
                replace_value_head(critic, num_heads, {column: 0})
                break
        if critic is None:
            critic = value_model_from_policy(policy, num_heads)
    critic.config.pad_token_id = pad_token_id
    critic.train().requires_grad_(True)
    if args.value_trainable_layers is not None:
        freeze_lower_layers(critic, args.value_trainable_layers)
    return critic


def freeze_lower_layers(model: nn.Module, trainable_layers: int) -> int:
    """Freeze the embeddings and all but the top `trainable_layers` transformer layers of `model` (what sits above
    them, the final norm and the head, stays trainable). Returns the number of frozen layers.

    Raises:
        ValueError: if the model's transformer layers cannot be found (the message says where it looked).
    """
    backbone = getattr(model, getattr(model, "base_model_prefix", "model"), None)
    layers = getattr(backbone, "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(
            f"value_trainable_layers: cannot find the transformer layers of {type(model).__name__} (looked for "
            f"`model.{getattr(model, 'base_model_prefix', 'model')}.layers`); leave value_trainable_layers=None."
        )
    frozen = max(0, len(layers) - trainable_layers)
    backbone.get_input_embeddings().requires_grad_(False)
    for layer in layers[:frozen]:
        layer.requires_grad_(False)
    return frozen


def split_critic_param_groups(
    optimizer: torch.optim.Optimizer,
    critic: nn.Module,
    value_learning_rate: float | None,
    value_weight_decay: float | None,
) -> None:
    """Put the critic's parameters in their own groups of `optimizer`, with `value_learning_rate` and (where the group
    decays) `value_weight_decay`; nothing when both are `None`.

    The reference trains actor and critics with separate optimizers (1e-5 / 5e-6, weight decay 0.01 / 0.0). The
    groups must be split before the scheduler is built, so that each keeps its own peak learning rate.
    """
    if value_learning_rate is None and value_weight_decay is None:
        return
    critic_ids = {id(p) for p in critic.parameters()}
    groups = []
    for group in optimizer.param_groups:
        policy_params = [p for p in group["params"] if id(p) not in critic_ids]
        critic_params = [p for p in group["params"] if id(p) in critic_ids]
        if policy_params:
            groups.append({**group, "params": policy_params})
        if critic_params:
            critic_group = {**group, "params": critic_params}
            if value_learning_rate is not None:
                critic_group["lr"] = value_learning_rate
            if value_weight_decay is not None and group["weight_decay"] > 0:
                critic_group["weight_decay"] = value_weight_decay
            groups.append(critic_group)
    optimizer.param_groups = groups


def prepare_frozen_model(
    model: nn.Module, accelerator: Accelerator, deepspeed: bool, fsdp: bool, shard_with_fsdp: bool
) -> nn.Module:
    """A frozen model in inference mode on every process: a DeepSpeed inference engine (sharded under ZeRO-3), an
    FSDP module (`shard_with_fsdp`), or placed on the device."""
    if deepspeed:
        return prepare_deepspeed(model, accelerator)
    if fsdp and shard_with_fsdp:
        return prepare_fsdp(model, accelerator)
    return accelerator.prepare_model(model, evaluation_mode=True, device_placement=True)


def gathered(
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


def copy_parameters(source: nn.Module, target: nn.Module) -> None:
    """target ← source for every parameter (matched by name) and buffer of `target`.

    One parameter at a time, so that under ZeRO-3 no more than one whole tensor is gathered at once.
    """
    source_parameters = dict(source.named_parameters())
    missing = [name for name, _ in target.named_parameters() if name not in source_parameters]
    if missing:
        raise ValueError(f"Cannot copy {type(source).__name__} into {type(target).__name__}: no {missing[:5]}.")
    with torch.no_grad():
        for name, parameter in target.named_parameters():
            with gathered([source_parameters[name]]), gathered([parameter], modifier_rank=0):
                parameter.data.copy_(source_parameters[name].data)
        source_buffers = dict(source.named_buffers())
        for name, buffer in target.named_buffers():
            if name in source_buffers:
                buffer.copy_(source_buffers[name])


def copy_model(model: nn.Module) -> nn.Module:
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
    copy_parameters(model, clone)
    if getattr(model, "generation_config", None) is not None:
        clone.generation_config = copy.deepcopy(model.generation_config)
    return clone


def replace_value_head(critic: nn.Module, num_heads: int, rows: dict[int, int]) -> None:
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
    with torch.no_grad(), gathered(head.parameters()):
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


def value_model_from_policy(policy: nn.Module, num_heads: int) -> PreTrainedModel:
    """A sequence-classification critic with the policy's backbone weights and an all-zero value head."""
    if is_peft_model(policy):
        raise ValueError(
            "Cannot build the critic from a policy that is already a PeftModel: pass `value_model`, or a reward "
            "(cost) model to copy it from."
        )
    config = copy.deepcopy(policy.config)
    config.num_labels = num_heads
    critic = AutoModelForSequenceClassification.from_config(config, dtype=policy.dtype)
    copy_parameters(policy.base_model, critic.base_model)
    critic.to(policy.device)
    replace_value_head(critic, num_heads, {})
    return critic
