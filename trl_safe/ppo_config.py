"""Configuration of `PPOTrainer`."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from trl.trainer.base_config import _BaseConfig

from trl_safe.checks import check_finite_fields
from trl_safe.config_defaults import HardwareDefaultsMixin

logger = logging.getLogger(__name__)

# Float settings of PPOConfig (and PPOLagConfig) that must be finite numbers when set.
_FLOAT_FIELDS = (
    "temperature",
    "top_p",
    "missing_eos_penalty",
    "kl_coef",
    "cliprange",
    "cliprange_value",
    "vf_coef",
    "gamma",
    "lam",
    "cliprange_score",
    "vllm_gpu_memory_utilization",
)


@dataclass
class PPOConfig(HardwareDefaultsMixin, _BaseConfig):
    r"""
    Configuration class for [`PPOTrainer`]: PPO with a learned critic for RLHF (Ziegler et al. 2019; Ouyang et al.
    2022), run inside `transformers`' `Trainer` loop.

    Only the parameters specific to PPO are listed here; see [`~transformers.TrainingArguments`] for the rest. Batch
    sizes follow `Trainer`'s meaning: `per_device_train_batch_size` sequences per forward/backward pass, and
    `gradient_accumulation_steps` passes per optimizer step (one PPO mini-batch). One rollout therefore holds
    `per_device_train_batch_size × gradient_accumulation_steps × num_mini_batches` prompts per process and feeds
    `num_ppo_epochs × num_mini_batches` optimizer steps (`Trainer`'s `global_step` counts optimizer steps).

    Parameters:
        > Models

        model_init_kwargs (`dict[str, Any]`, *optional*):
            Keyword arguments for `from_pretrained` when the policy, reference, reward/cost or value model is passed
            as a path or Hub id. `dtype` defaults to `float32`.
        trust_remote_code (`bool`, *optional*, defaults to `False`):
            Whether to run model and tokenizer code shipped with a checkpoint on the Hub, for models passed as ids.
        ds3_gather_for_generation (`bool`, *optional*, defaults to `True`):
            Under DeepSpeed ZeRO-3, gather the weights of the trained module (the policy and the critic, one module)
            for generation (fast); `False` generates with sharded weights (slow, but fits models larger than one
            device).
        allow_untrained_score_head (`bool`, *optional*, defaults to `False`):
            A reward or cost model given as a path must be a trained sequence classifier: a checkpoint without score
            head weights (a base or chat model) would be loaded with a random head and score noise, so it is refused.
            `True` lets it through (tests, or experiments that want a random scorer).
        save_value_model (`bool`, *optional*, defaults to `False`):
            Whether `save_model` also writes the critic, to `<output_dir>/value_model`. Checkpoints always contain
            it (a resumed run needs it); the final model is the policy alone.

        > Data and generation

        max_prompt_length (`int` or `None`, *optional*, defaults to `512`):
            Longer prompts keep their last `max_prompt_length` tokens (the end of a prompt, where the chat template
            opens the assistant turn, matters most). The share of truncated prompts is logged as
            `prompts/truncated_ratio`. `None` never truncates.
        max_completion_length (`int`, *optional*, defaults to `128`):
            Maximum number of tokens generated per completion. Completions that reach it without EOS are
            "truncated"; see `missing_eos_penalty`.
        temperature (`float`, *optional*, defaults to `1.0`):
            Sampling temperature. The log-probabilities of the policy and the reference use the same temperature.
        top_k (`int`, *optional*, defaults to `0`):
            Sample among the `top_k` most likely tokens; `0` disables top-k filtering.
        top_p (`float`, *optional*, defaults to `1.0`):
            Nucleus sampling threshold; `1.0` disables it.
        generation_kwargs (`dict[str, Any]`, *optional*):
            Extra sampling arguments, applied over the ones above: `GenerationConfig` arguments, or vLLM
            `SamplingParams` arguments with `use_vllm`.
        chat_template_kwargs (`dict[str, Any]`, *optional*):
            Extra arguments of `apply_chat_template` for conversational prompts (e.g. `{"enable_thinking": False}`).
        missing_eos_penalty (`float`, *optional*):
            Subtracted from the reward score of completions that end without EOS (the usual way to discourage
            rambling to the length limit). `None` applies no penalty.
        shuffle_dataset (`bool`, *optional*, defaults to `True`):
            Whether to shuffle the prompts (seeded by `seed` and the epoch, so a resumed run sees the same order).
        ptx_coef (`float`, *optional*, defaults to `0.0`):
            PTX, the pre-training mix: weight of the supervised loss on the trainer's `ptx_dataset`, added to each PPO
            micro-batch's loss, L = L_PPO + ptx_coef · L_ptx (`trl_safe.ptx`). 0 disables it. The reference's
            published PPO-Lag run uses 16 with Alpaca SFT data.
        ptx_decay_steps (`int` or `None`, *optional*):
            Decay the PTX weight linearly from `ptx_coef` at the first optimizer step to 0 at step `ptx_decay_steps`;
            from there on PTX is off (and its forward pass skipped). PTX teaches the written answers early, and the
            remaining steps are the RL objective's alone, which can then correct what the imitation over-generalised
            (on the demo it did not: docs/ptx.md). `None` (the default, the reference): a constant weight.
        ptx_unlikelihood_coef (`float`, *optional*, defaults to `1.0`):
            Weight of the unlikelihood term on PTX rows labelled undesirable (`label` False, TRL's unpaired-preference
            form), relative to the cross-entropy on the desirable ones (`trl_safe.ptx`). Used only when the PTX data
            has such rows; not in the reference.
        value_learning_rate (`float` or `None`, *optional*):
            Initial learning rate of the critic, in its own optimizer parameter group (the reference trains the
            critics at 5e-6 and the actor at 1e-5). `None`: the critic uses `learning_rate`.
        value_weight_decay (`float` or `None`, *optional*):
            Weight decay of the critic (0.0 in the reference, 0.01 for its actor). `None`: `weight_decay`.
        value_trainable_layers (`int` or `None`, *optional*):
            Train only the critic's top `value_trainable_layers` transformer layers (and its value head, final norm);
            its embeddings and lower layers stay frozen, so back-propagation stops early. The reference trains the
            whole critic (`None`, the default); on a CPU, where the critic's backward pass is most of a PPO step,
            freezing the lower layers as LoRA does for the policy is what makes a short run affordable.
        ptx_max_length (`int` or `None`, *optional*, defaults to `512`):
            PTX examples longer than this keep their first `ptx_max_length` tokens (the count is logged).

        > Fast generation with vLLM (GPU only; the same fields as TRL's `GRPOConfig`)

        use_vllm (`bool`, *optional*, defaults to `False`):
            Sample the rollouts' completions with vLLM instead of `model.generate()` (`pip install vllm`). The
            policy's weights are sent to vLLM before every rollout that follows an update. vLLM only provides the
            tokens: log π_old, the reference's log-probs and the values still come from the trainer's own forward
            passes, so PPO's ratio is unaffected by numerical differences between vLLM and the training model.
        vllm_mode (`str`, *optional*, defaults to `"colocate"`):
            `"colocate"`: one vLLM engine inside every training process, sharing its GPU. `"server"`: a separate
            vLLM server (`trl vllm-serve --model ...`) on other GPUs generates for all processes.
        vllm_model_impl (`str`, *optional*, defaults to `"vllm"`):
            Model implementation inside vLLM: `"vllm"` or `"transformers"`.
        vllm_enable_sleep_mode (`bool`, *optional*, defaults to `False`):
            Colocate mode: release vLLM's weights and KV cache while the trainer runs its PPO epochs (less GPU memory,
            slower wake-up).
        vllm_server_base_url (`str`, *optional*):
            Server mode: the server's URL (e.g. `"http://localhost:8000"`); overrides host and port.
        vllm_server_host (`str`, *optional*, defaults to `"0.0.0.0"`):
            Server mode: the server's host.
        vllm_server_port (`int`, *optional*, defaults to `8000`):
            Server mode: the server's port.
        vllm_server_timeout (`float`, *optional*, defaults to `240.0`):
            Server mode: seconds to wait for the server to come up.
        vllm_group_port (`int`, *optional*, defaults to `51216`):
            Server mode: port of the process group that streams the weights to the server.
        vllm_gpu_memory_utilization (`float`, *optional*, defaults to `0.3`):
            Colocate mode: share of each GPU's memory that vLLM may take (weights and KV cache).
        vllm_max_model_length (`int`, *optional*):
            Colocate mode: vLLM's context length; at least the longest prompt plus `max_completion_length`.
            Default: the model's.
        vllm_tensor_parallel_size (`int`, *optional*, defaults to `1`):
            Colocate mode: GPUs each vLLM engine spans (must divide the number of processes).

        > PPO

        num_ppo_epochs (`int`, *optional*, defaults to `4`):
            Passes over each rollout. Each pass shuffles the rollout and splits it into `num_mini_batches`
            mini-batches.
        num_mini_batches (`int`, *optional*, defaults to `1`):
            Optimizer steps per pass over a rollout.
        local_rollout_forward_batch_size (`int` or `None`, *optional*):
            Rows per forward pass when a rollout is read without gradient (the policy's and the reference's
            log-probs, the critic's values). `None`: `per_device_train_batch_size`, whose activations are known to
            fit. On a GPU a larger value is faster when passes are short: on an H200 a pass of SmolLM2-135M over 16
            or 64 rows took about 20 ms, so a rollout of 256 read in passes of 32 took 0.22 s per model against
            0.07 s for one pass of 256 (docs/benchmarks.md, "GPU results").
        kl_coef (`float`, *optional*, defaults to `0.05`):
            β, the weight of the per-token KL penalty -β·KL(π_θ ‖ π_ref) in the reward.
        kl_estimator (`str`, *optional*, defaults to `"k1"`):
            Per-token KL estimator: `"k1"` (log π_θ - log π_ref, unbiased, the reference's) or `"k3"`
            ((r - 1) - log r with r = π_ref/π_θ, unbiased, never negative, lower variance).
        cliprange (`float`, *optional*, defaults to `0.2`):
            ε of the PPO-clip policy loss.
        cliprange_value (`float`, *optional*, defaults to `0.2`):
            How far a value prediction may move from the rollout's value before its loss is clipped.
        vf_coef (`float`, *optional*, defaults to `0.1`):
            Weight of the value loss in the total loss `L_policy + vf_coef · L_value`.
        gamma (`float`, *optional*, defaults to `1.0`):
            Discount factor γ of the per-token returns.
        lam (`float`, *optional*, defaults to `0.95`):
            λ_GAE, the bias/variance trade-off of generalised advantage estimation.
        whiten_advantages (`bool`, *optional*, defaults to `True`):
            Normalise the actor's advantages to mean 0 and variance 1 over each rollout (per process). TRL's
            default; the Safe RLHF reference does not whiten (see `PPOLagConfig`).
        whiten_rewards (`bool`, *optional*, defaults to `False`):
            Scale the per-token rewards of each rollout to unit variance (mean kept) before GAE.
        cliprange_score (`float`, *optional*):
            Clamp the per-token rewards (score plus KL penalty) to [-c, c], as the reference does with
            `clip_range_score`. `None` does not clamp.
        loss_aggregation (`str`, *optional*, defaults to `"token_mean"`):
            How the policy and value losses average their per-token terms: `"token_mean"` over all completion
            tokens of the micro-batch (TRL's last PPOTrainer; long completions weigh more) or `"sequence_mean"`
            over each completion's tokens, then over completions (the Safe RLHF reference; every completion weighs
            the same).
    """

    _VALID_DICT_FIELDS = _BaseConfig._VALID_DICT_FIELDS + ["model_init_kwargs", "generation_kwargs"]

    # Defaults of TrainingArguments that PPO changes.
    learning_rate: float = field(
        default=3e-6, metadata={"help": "Initial learning rate of AdamW, shared by the policy and the critic."}
    )
    remove_unused_columns: bool | None = field(
        default=False,
        metadata={
            "help": "Keep the data set's extra columns: they are passed to reward/cost functions as keyword "
            "arguments. Only `prompt` is required."
        },
    )

    # Models
    model_init_kwargs: dict[str, Any] | str | None = field(
        default=None,
        metadata={"help": "Keyword arguments for `from_pretrained` when a model is passed as a path or Hub id."},
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Whether to run model code shipped with a Hub checkpoint."}
    )
    ds3_gather_for_generation: bool = field(
        default=True,
        metadata={"help": "Under DeepSpeed ZeRO-3, gather the policy's and critic's weights for generation."},
    )
    allow_untrained_score_head: bool = field(
        default=False,
        metadata={
            "help": "Accept a reward/cost model path whose checkpoint has no trained score head (random scores)."
        },
    )
    save_value_model: bool = field(
        default=False,
        metadata={"help": "Whether `save_model` also writes the critic to `<output_dir>/value_model`."},
    )

    # Data and generation
    max_prompt_length: int | None = field(
        default=512,
        metadata={"help": "Prompts longer than this keep their last tokens (the share is logged). None: no limit."},
    )
    max_completion_length: int = field(
        default=128, metadata={"help": "Maximum number of tokens generated per completion."}
    )
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature (also used for log-probs)."})
    top_k: int = field(default=0, metadata={"help": "Top-k sampling; 0 disables it."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling threshold; 1.0 disables it."})
    generation_kwargs: dict[str, Any] | str | None = field(
        default=None, metadata={"help": "Extra `GenerationConfig` arguments, applied over the ones above."}
    )
    chat_template_kwargs: dict[str, Any] | None = field(
        default=None, metadata={"help": "Extra arguments of `apply_chat_template` for conversational prompts."}
    )
    missing_eos_penalty: float | None = field(
        default=None,
        metadata={"help": "Subtracted from the reward score of completions that end without EOS. None: no penalty."},
    )
    shuffle_dataset: bool = field(default=True, metadata={"help": "Whether to shuffle the prompts."})

    # PTX: the pre-training mix (the reference's `ptx_coeff`; 16 in its published PPO-Lag run)
    ptx_coef: float = field(
        default=0.0,
        metadata={
            "help": "Weight of the supervised loss on `ptx_dataset` added to every PPO micro-batch's loss "
            "(L = L_PPO + ptx_coef · L_ptx). 0 disables PTX. The reference's published run uses 16."
        },
    )
    ptx_decay_steps: int | None = field(
        default=None,
        metadata={
            "help": "Decay the PTX weight linearly from ptx_coef to 0 over this many optimizer steps, then turn PTX "
            "off. None: a constant weight (the reference)."
        },
    )
    ptx_unlikelihood_coef: float = field(
        default=1.0,
        metadata={
            "help": "Weight of the unlikelihood loss on PTX rows labelled undesirable (`label` False), relative to "
            "the cross-entropy on the desirable rows. Used only when the PTX data has such rows (not in the "
            "reference)."
        },
    )
    value_learning_rate: float | None = field(
        default=None,
        metadata={"help": "Initial learning rate of the critic (the reference: 5e-6). None: `learning_rate`."},
    )
    value_weight_decay: float | None = field(
        default=None,
        metadata={"help": "Weight decay of the critic (the reference: 0.0). None: `weight_decay`."},
    )
    value_trainable_layers: int | None = field(
        default=None,
        metadata={"help": "Train only the critic's top layers (and its head); None: the whole critic (reference)."},
    )
    ptx_max_length: int | None = field(
        default=512,
        metadata={
            "help": "PTX examples longer than this keep their first tokens (the count is logged). None: no limit."
        },
    )

    # Fast generation with vLLM (names and meaning as in TRL's GRPOConfig)
    use_vllm: bool = field(
        default=False,
        metadata={"help": "Sample the rollouts with vLLM (`pip install vllm`); weights are synced after each update."},
    )
    vllm_mode: str = field(
        default="colocate",
        metadata={
            "help": "'colocate': vLLM inside each training process; 'server': a separate vLLM server.",
            "choices": ["colocate", "server"],
        },
    )
    vllm_model_impl: str = field(
        default="vllm", metadata={"help": "Model implementation inside vLLM: 'vllm' or 'transformers'."}
    )
    vllm_enable_sleep_mode: bool = field(
        default=False, metadata={"help": "Colocate mode: release vLLM's memory while the trainer updates."}
    )
    vllm_server_base_url: str | None = field(
        default=None, metadata={"help": "Server mode: the server's URL; overrides host and port."}
    )
    vllm_server_host: str = field(default="0.0.0.0", metadata={"help": "Server mode: the server's host."})
    vllm_server_port: int = field(default=8000, metadata={"help": "Server mode: the server's port."})
    vllm_server_timeout: float = field(
        default=240.0, metadata={"help": "Server mode: seconds to wait for the server to come up."}
    )
    vllm_group_port: int = field(
        default=51216, metadata={"help": "Server mode: port of the process group that streams the weights."}
    )
    vllm_gpu_memory_utilization: float = field(
        default=0.3, metadata={"help": "Colocate mode: share of each GPU's memory that vLLM may take."}
    )
    vllm_max_model_length: int | None = field(
        default=None, metadata={"help": "Colocate mode: vLLM's context length. Default: the model's."}
    )
    vllm_tensor_parallel_size: int = field(default=1, metadata={"help": "Colocate mode: GPUs each vLLM engine spans."})

    # PPO
    num_ppo_epochs: int = field(default=4, metadata={"help": "Passes over each rollout."})
    num_mini_batches: int = field(default=1, metadata={"help": "Optimizer steps per pass over a rollout."})
    local_rollout_forward_batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Rows per no-gradient forward pass over a rollout (log-probs, values). "
            "None: per_device_train_batch_size."
        },
    )
    kl_coef: float = field(default=0.05, metadata={"help": "β, the weight of the per-token KL penalty."})
    kl_estimator: str = field(
        default="k1",
        metadata={"help": "Per-token KL estimator.", "choices": ["k1", "k3"]},
    )
    cliprange: float = field(default=0.2, metadata={"help": "ε of the PPO-clip policy loss."})
    cliprange_value: float = field(default=0.2, metadata={"help": "Clip range of the value loss."})
    vf_coef: float = field(default=0.1, metadata={"help": "Weight of the value loss."})
    gamma: float = field(default=1.0, metadata={"help": "Discount factor γ."})
    lam: float = field(default=0.95, metadata={"help": "λ_GAE of generalised advantage estimation."})
    whiten_advantages: bool = field(
        default=True, metadata={"help": "Normalise the actor's advantages over each rollout (per process)."}
    )
    whiten_rewards: bool = field(default=False, metadata={"help": "Scale the per-token rewards to unit variance."})
    cliprange_score: float | None = field(
        default=None, metadata={"help": "Clamp the per-token rewards to [-c, c]. None: no clamping."}
    )
    loss_aggregation: str = field(
        default="token_mean",
        metadata={
            "help": "Average the per-token loss terms over all tokens, or per completion then over completions.",
            "choices": ["token_mean", "sequence_mean"],
        },
    )

    def __post_init__(self) -> None:
        # `HardwareDefaultsMixin`: bf16 only where the hardware runs it natively (on a CPU it is slow and loses
        # precision for nothing), activation checkpointing under its current name, no pin_memory without a GPU.
        super().__post_init__()
        # NaN passes none of the comparisons below (NaN >= 0 is False, so is NaN < 0): refuse it first.
        check_finite_fields(self, _FLOAT_FIELDS)

        def require(condition: bool, message: str) -> None:
            if not condition:
                raise ValueError(f"{type(self).__name__}: {message}")

        require(self.num_ppo_epochs >= 1, f"num_ppo_epochs must be >= 1, got {self.num_ppo_epochs}")
        require(self.num_mini_batches >= 1, f"num_mini_batches must be >= 1, got {self.num_mini_batches}")
        require(
            self.local_rollout_forward_batch_size is None or self.local_rollout_forward_batch_size >= 1,
            f"local_rollout_forward_batch_size must be >= 1 or None, got {self.local_rollout_forward_batch_size}",
        )
        require(
            self.max_completion_length >= 1, f"max_completion_length must be >= 1, got {self.max_completion_length}"
        )
        require(
            self.max_prompt_length is None or self.max_prompt_length >= 1,
            f"max_prompt_length must be >= 1 or None, got {self.max_prompt_length}",
        )
        require(self.temperature > 0, f"temperature must be > 0, got {self.temperature}")
        require(
            math.isfinite(self.ptx_coef) and self.ptx_coef >= 0,
            f"ptx_coef must be finite and >= 0, got {self.ptx_coef}",
        )
        require(
            math.isfinite(self.ptx_unlikelihood_coef) and self.ptx_unlikelihood_coef >= 0,
            f"ptx_unlikelihood_coef must be finite and >= 0, got {self.ptx_unlikelihood_coef}",
        )
        require(
            self.ptx_decay_steps is None or self.ptx_decay_steps >= 1,
            f"ptx_decay_steps must be >= 1 or None, got {self.ptx_decay_steps}",
        )
        require(
            self.ptx_decay_steps is None or self.ptx_coef > 0,
            f"ptx_decay_steps={self.ptx_decay_steps} decays PTX, which is off (ptx_coef=0): set ptx_coef, or drop it",
        )
        for name in ("value_learning_rate", "value_weight_decay"):
            value = getattr(self, name)
            require(
                value is None or (math.isfinite(value) and value >= 0), f"{name} must be >= 0 or None, got {value}"
            )
        require(
            self.value_trainable_layers is None or self.value_trainable_layers >= 0,
            f"value_trainable_layers must be >= 0 or None, got {self.value_trainable_layers}",
        )
        require(
            self.ptx_max_length is None or self.ptx_max_length >= 2,
            f"ptx_max_length must be >= 2 or None, got {self.ptx_max_length}",
        )
        require(self.kl_estimator in ("k1", "k3"), f"kl_estimator must be 'k1' or 'k3', got {self.kl_estimator!r}")
        require(self.kl_coef >= 0, f"kl_coef must be >= 0, got {self.kl_coef}")
        require(0 < self.cliprange, f"cliprange must be > 0, got {self.cliprange}")
        require(0 < self.cliprange_value, f"cliprange_value must be > 0, got {self.cliprange_value}")
        require(
            self.vf_coef >= 0,
            f"vf_coef must be >= 0 (a negative weight would maximise the value loss), got {self.vf_coef}",
        )
        require(0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p}")
        require(self.top_k >= 0, f"top_k must be >= 0, got {self.top_k}")
        require(0 <= self.gamma <= 1, f"gamma must be in [0, 1], got {self.gamma}")
        require(0 <= self.lam <= 1, f"lam must be in [0, 1], got {self.lam}")
        require(
            self.loss_aggregation in ("token_mean", "sequence_mean"),
            f"loss_aggregation must be 'token_mean' or 'sequence_mean', got {self.loss_aggregation!r}",
        )
        require(
            self.cliprange_score is None or self.cliprange_score > 0,
            f"cliprange_score must be > 0 or None, got {self.cliprange_score}",
        )
        require(
            self.vllm_mode in ("colocate", "server"),
            f"vllm_mode must be 'colocate' or 'server', got {self.vllm_mode!r}",
        )
        require(
            0 < self.vllm_gpu_memory_utilization <= 1,
            f"vllm_gpu_memory_utilization must be in (0, 1], got {self.vllm_gpu_memory_utilization}",
        )
        require(
            self.vllm_tensor_parallel_size >= 1,
            f"vllm_tensor_parallel_size must be >= 1, got {self.vllm_tensor_parallel_size}",
        )
        if self.save_strategy == "steps" and self.save_steps >= 1 and self.save_steps % self.steps_per_rollout:
            # The rollout buffer is not part of a checkpoint: a run resumed from the middle of a rollout starts a
            # fresh one there. Training stays correct, but it no longer replays the interrupted run exactly.
            logger.warning(
                "save_steps=%s is not a multiple of the optimizer steps per rollout (num_ppo_epochs × "
                "num_mini_batches = %d): runs resumed from these checkpoints start a fresh rollout and do not replay "
                "the original run exactly.",
                self.save_steps,
                self.steps_per_rollout,
            )

    @property
    def steps_per_rollout(self) -> int:
        """Optimizer steps (`Trainer`'s global steps) taken on each rollout."""
        return self.num_ppo_epochs * self.num_mini_batches

    @property
    def local_rollout_batch_size(self) -> int:
        """Prompts per process in one rollout."""
        return self.per_device_train_batch_size * self.gradient_accumulation_steps * self.num_mini_batches
