"""Configuration of `UnlikelihoodSFTTrainer`: supervised fine-tuning on PTX-format data, with undesirable rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trl.trainer.base_config import _BaseConfig

from trl_safe.checks import check_finite_fields
from trl_safe.config_defaults import HardwareDefaultsMixin


@dataclass
class UnlikelihoodSFTConfig(HardwareDefaultsMixin, _BaseConfig):
    r"""
    Configuration class for the [`UnlikelihoodSFTTrainer`]: the SFT stage of Safe RLHF's pipeline (the model PPO-Lag
    starts from and is held close to), on the same data and with the same loss as PPO's PTX term (`trl_safe.ptx`).

    Everything in `transformers.TrainingArguments` applies (steps, batch size, learning rate and schedule, logging,
    saving, precision); only what this trainer adds is listed here. Unlike TRL's configs, `bf16` defaults to what the
    hardware supports (`trl_safe.config_defaults`).

    Parameters:
        model_init_kwargs (`dict[str, Any]`, *optional*):
            Keyword arguments of `AutoModelForCausalLM.from_pretrained` when the model is given as a path or Hub id.
        max_length (`int` or `None`, *optional*, defaults to `1024`):
            Longer examples keep their first `max_length` tokens (the count is logged). `None`: no limit.
        unlikelihood_coef (`float`, *optional*, defaults to `1.0`):
            Weight c of the unlikelihood term on rows labelled undesirable (`label` False), as PPO's
            `ptx_unlikelihood_coef`: L = CE(desirable tokens) + c · UL(undesirable tokens).
        chat_template_kwargs (`dict[str, Any]`, *optional*):
            Extra arguments of `apply_chat_template` for conversational rows.
        average_last_steps (`int` or `None`, *optional*):
            Tail averaging: at the end of training, the trainable parameters become their mean over the last N
            optimizer steps (`trl_safe.weight_averaging.TailAverage`), which damps the step-to-step noise of a
            constant learning rate; checkpoints carry the running sum, so a resumed run reaches the same average.
            `None`: the last step's weights.
        save_unaveraged (`bool`, *optional*, defaults to `False`):
            With `average_last_steps`, also save the last step's weights to `<output_dir>/unaveraged/`, so both
            policies of the one trajectory can be read.
    """

    _VALID_DICT_FIELDS = _BaseConfig._VALID_DICT_FIELDS + ["model_init_kwargs"]

    # Defaults of TrainingArguments that change here: TRL's SFT learning rate, and the data set is tokenized by the
    # trainer itself (its rows are indices into `trl_safe.ptx.PTXData`, which no column filter may touch).
    learning_rate: float = field(default=2e-5, metadata={"help": "Initial learning rate of AdamW."})
    remove_unused_columns: bool | None = field(
        default=False, metadata={"help": "Kept False: the trainer tokenizes the data set itself."}
    )

    model_init_kwargs: dict[str, Any] | str | None = field(
        default=None,
        metadata={"help": "Keyword arguments for `from_pretrained` when the model is passed as a path or Hub id."},
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Whether to run model code shipped with a Hub checkpoint."}
    )
    max_length: int | None = field(
        default=1024,
        metadata={"help": "Examples longer than this keep their first tokens (counted and logged). None: no limit."},
    )
    unlikelihood_coef: float = field(
        default=1.0,
        metadata={
            "help": "Weight of the unlikelihood loss -log(1 - p) on the tokens of rows labelled undesirable "
            "(`label` False); desirable rows get the cross-entropy."
        },
    )
    chat_template_kwargs: dict[str, Any] | None = field(
        default=None, metadata={"help": "Extra arguments of `apply_chat_template` for conversational rows."}
    )
    average_last_steps: int | None = field(
        default=None,
        metadata={
            "help": "Tail averaging: end with the trainable parameters averaged over the last N optimizer steps "
            "instead of the last step's. None: the last step's weights."
        },
    )
    save_unaveraged: bool = field(
        default=False,
        metadata={"help": "With --average_last_steps, also save the last step's weights to <output_dir>/unaveraged."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check_finite_fields(self, ("unlikelihood_coef",))
        if self.unlikelihood_coef < 0:
            raise ValueError(f"`unlikelihood_coef` must be >= 0, got {self.unlikelihood_coef}.")
        if self.max_length is not None and self.max_length < 2:
            raise ValueError(f"`max_length` must be >= 2 or None, got {self.max_length}.")
        if self.average_last_steps is not None:
            if self.average_last_steps < 1:
                raise ValueError(f"`average_last_steps` must be >= 1 or None, got {self.average_last_steps}.")
            if self.max_steps > 0 and self.average_last_steps > self.max_steps:
                raise ValueError(
                    f"`average_last_steps` ({self.average_last_steps}) is more than the run's `max_steps` "
                    f"({self.max_steps})."
                )
            if self.load_best_model_at_end:
                raise ValueError(
                    "`average_last_steps` ends with the average of the last steps, `load_best_model_at_end` with the "
                    "best checkpoint: choose one."
                )
        elif self.save_unaveraged:
            raise ValueError("`save_unaveraged` saves the weights that `average_last_steps` replaces: set both.")
