"""`UnlikelihoodSFTTrainer`: the SFT stage of Safe RLHF, on PTX-format data with rows to imitate and rows to avoid.

The paper's pipeline is SFT → reward and cost models → PPO-Lag, and PPO-Lag's KL penalty holds the policy close to
the SFT model. TRL's `SFTTrainer` imitates every row; this trainer takes the same data formats (`text`, `messages`,
`prompt` + `completion`) and, on prompt-completion rows, TRL's unpaired-preference `label`: `True` rows get the
cross-entropy, `False` rows the unlikelihood loss −log(1 − π(y_t | y_<t)) (Welleck et al., 2019). The loss is exactly
PPO's PTX term (`trl_safe.ptx.ptx_objective`) and the data the same `trl_safe.ptx.PTXData`, so one data set can warm
the policy up here and then keep it there as PTX during PPO-Lag.

Why a stage of its own: on the demo, PTX inside PPO-Lag gets a few dozen batches, while separating a harmful request
from its harmless look-alike took about 240 supervised steps (`benchmarks/ptx_sft_check.py`, docs/demo_outcome.md).

    trainer = UnlikelihoodSFTTrainer(
        model="HuggingFaceTB/SmolLM2-135M-Instruct",
        args=UnlikelihoodSFTConfig(output_dir="smollm2-sft", max_steps=240, learning_rate=5e-4),
        train_dataset=load_dataset("json", data_files="ptx.jsonl", split="train"),
        peft_config=LoraConfig(r=16, lora_alpha=64, task_type="CAUSAL_LM"),
    )
    trainer.train()
"""

from __future__ import annotations

import os
import warnings
from collections import defaultdict
from typing import Any

import torch
from datasets import Dataset, IterableDataset
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase, set_seed
from transformers.trainer_callback import TrainerCallback, TrainerControl, TrainerState
from trl.trainer.base_trainer import _BaseTrainer
from trl.trainer.utils import get_config_model_id

from trl_safe.checkpoints import current_checkpoint_dir
from trl_safe.checks import check_config_class
from trl_safe.model_card import render_model_card
from trl_safe.ptx import PTXData, ptx_objective
from trl_safe.sft_config import UnlikelihoodSFTConfig
from trl_safe.weight_averaging import TailAverage

# In a checkpoint: the running sum of `average_last_steps`, so a resumed run reaches the uninterrupted average.
TAIL_AVERAGE_NAME = "tail_average.pt"
# Under `output_dir`, with `save_unaveraged`: the last step's weights that the average replaced.
UNAVERAGED_DIR = "unaveraged"


class _RowIndices(torch.utils.data.Dataset):
    """The training set the `Trainer` samples from: row indices into the tokenized `PTXData` (the collator pads)."""

    def __init__(self, num_rows: int) -> None:
        self.num_rows = num_rows

    def __len__(self) -> int:
        return self.num_rows

    def __getitem__(self, index: int) -> dict[str, int]:
        return {"row": index}


class _TailAverageCallback(TrainerCallback):
    """Adds the parameters after every optimizer step to the trainer's `TailAverage` (steps before the window are
    skipped by the average itself)."""

    def __init__(self, trainer: UnlikelihoodSFTTrainer) -> None:
        self.trainer = trainer

    def on_train_begin(self, args, state: TrainerState, control: TrainerControl, **kwargs) -> None:
        if self.trainer._tail_average is None:  # not resumed from a checkpoint that carried one
            self.trainer._tail_average = self.trainer._new_tail_average()

    def on_step_end(self, args, state: TrainerState, control: TrainerControl, **kwargs) -> None:
        self.trainer._tail_average.update(state.global_step)


class UnlikelihoodSFTTrainer(_BaseTrainer):
    """Supervised fine-tuning with desirable and undesirable rows (see the module docstring).

    Args:
        model: a causal LM or its path / Hub id (loaded with `args.model_init_kwargs`).
        args: an `UnlikelihoodSFTConfig` (default: one writing to `<model name>-SFT`).
        train_dataset: rows in a PTX format (`trl_safe.ptx`); bad rows are refused with their index.
        processing_class: the tokenizer (default: the model's).
        callbacks, optimizers: as in `transformers.Trainer`.
        peft_config: train a PEFT adapter (e.g. LoRA) instead of every weight.

    Logged besides the loss: `loss/nll` (the desirable rows' cross-entropy) and `loss/unlikelihood` (the undesirable
    rows' term, before its weight), each the mean over the micro-batches since the last log that had such rows.

    With `args.average_last_steps`, `train()` ends with the trainable parameters averaged over the last steps
    (`trl_safe.weight_averaging`): what `save_model` then writes. It logs `tail_average/first_step` and
    `tail_average/steps` once, at the end. Checkpoints keep the last step's weights and the running sum
    (`tail_average.pt`).
    """

    _tag_names = ["trl-safe", "sft", "unlikelihood"]
    _name = "SFT"
    # `compute_loss` returns a micro-batch mean: `Trainer` must divide it by the gradient accumulation steps (it
    # would not for a model that takes `num_items_in_batch`, which this loss does not pass on).
    loss_is_scaled_for_ga = False

    def __init__(
        self,
        model: str | PreTrainedModel,
        args: UnlikelihoodSFTConfig | None = None,
        train_dataset: Dataset | None = None,
        processing_class: PreTrainedTokenizerBase | None = None,
        callbacks: list[TrainerCallback] | None = None,
        optimizers: tuple[torch.optim.Optimizer | None, torch.optim.lr_scheduler.LambdaLR | None] = (None, None),
        peft_config: Any | None = None,
    ) -> None:
        model_id = model if isinstance(model, str) else get_config_model_id(model.config)
        if args is None:
            args = UnlikelihoodSFTConfig(f"{model_id.split('/')[-1] or 'model'}-{self._name}")
        check_config_class(args, UnlikelihoodSFTConfig, type(self).__name__)
        if train_dataset is None:
            raise ValueError(f"{type(self).__name__} needs a `train_dataset` (text, messages or prompt-completion).")
        if isinstance(train_dataset, IterableDataset):
            raise TypeError(
                f"{type(self).__name__} tokenizes its data set up front: load it without streaming (a map-style "
                "`Dataset`)."
            )
        if isinstance(model, str):
            init_kwargs = {"device_map": None, "trust_remote_code": args.trust_remote_code}
            model = AutoModelForCausalLM.from_pretrained(model, **{**init_kwargs, **(args.model_init_kwargs or {})})
        if processing_class is None:
            processing_class = AutoTokenizer.from_pretrained(model_id, trust_remote_code=args.trust_remote_code)
        if processing_class.pad_token is None:
            processing_class.pad_token = processing_class.eos_token
        self.ptx_data = PTXData(
            train_dataset,
            processing_class,
            max_length=args.max_length,
            seed=args.seed,
            chat_template_kwargs=args.chat_template_kwargs,
        )
        if peft_config is not None:
            from peft import get_peft_model

            # The adapter is initialised randomly: seed first, or `args.seed` would not decide it (the Trainer seeds
            # only later, in its own __init__) and the same seed would give another adapter after other work in the
            # process (a pipeline's earlier stages), as it did on the demo before this line.
            set_seed(args.seed)
            model = get_peft_model(model, peft_config)
        model.add_model_tags(self._tag_names)
        super().__init__(
            model=model,
            args=args,
            data_collator=self._collate,
            train_dataset=_RowIndices(len(self.ptx_data)),
            processing_class=processing_class,
            callbacks=callbacks,
            optimizers=optimizers,
        )
        self._loss_terms: dict[str, list[float]] = defaultdict(list)
        self._tail_average: TailAverage | None = None
        self._averaged_over: str | None = None  # "first-last" steps, once the average replaced the weights
        if args.average_last_steps is not None:
            self._check_tail_averaging_is_supported()
            self.add_callback(_TailAverageCallback(self))

    def _check_tail_averaging_is_supported(self) -> None:
        plugin = self.accelerator.state.deepspeed_plugin if self.is_deepspeed_enabled else None
        if self.is_fsdp_enabled or (plugin is not None and plugin.zero_stage == 3):
            raise NotImplementedError(
                "`average_last_steps` averages each process's full copy of the trainable parameters: it does not "
                "support sharded parameters (FSDP, DeepSpeed ZeRO-3). Use DDP or ZeRO-1/2, or train without it."
            )

    def _new_tail_average(self) -> TailAverage:
        """The average over the last `average_last_steps` of this run's `max_steps` (known once training starts)."""
        window, total = self.args.average_last_steps, self.state.max_steps
        if window > total:
            raise ValueError(f"`average_last_steps` ({window}) is more than the run's {total} optimizer steps.")
        return TailAverage([p for p in self.model.parameters() if p.requires_grad], total, window)

    def train(self, *args: Any, **kwargs: Any) -> Any:
        """`Trainer.train`; with `average_last_steps`, the averaged parameters replace the last step's at the end."""
        self._tail_average = None  # each call averages its own run (or the one it resumes)
        self._averaged_over = None
        output = super().train(*args, **kwargs)
        if self.args.average_last_steps is not None:
            self._apply_tail_average()
        return output

    def _apply_tail_average(self) -> None:
        average = self._tail_average
        if average.count == 0:  # training stopped (a callback, an early stop) before the window began
            warnings.warn(
                f"Training stopped at step {self.state.global_step}, before the {average.window}-step window of "
                f"`average_last_steps` began (step {average.first_step}): the last step's weights are kept.",
                stacklevel=3,
            )
            return
        if average.count < average.window:
            warnings.warn(
                f"Training stopped at step {self.state.global_step}: the average is over {average.count} steps, not "
                f"{average.window}.",
                stacklevel=3,
            )
        if self.args.save_unaveraged:
            self.save_model(os.path.join(self.args.output_dir, UNAVERAGED_DIR))
        average.apply()
        self._averaged_over = f"{average.first_step}-{average.first_step + average.count - 1}"
        self.log({"tail_average/first_step": average.first_step, "tail_average/steps": average.count})
        self.accelerator.print(
            f"Tail averaging: the trainable parameters are now their mean over steps {self._averaged_over} "
            f"({average.count} steps)."
        )

    def _save_checkpoint(self, model: torch.nn.Module, trial: Any) -> None:
        super()._save_checkpoint(model, trial)
        if self._tail_average is not None and self.args.should_save:
            checkpoint = current_checkpoint_dir(self, trial)
            torch.save(self._tail_average.state_dict(), os.path.join(checkpoint, TAIL_AVERAGE_NAME))

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        """Called by `Trainer.train(resume_from_checkpoint=...)`: the average resumes with its running sum."""
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None or self.args.average_last_steps is None:
            return
        average = self._new_tail_average()
        path = os.path.join(checkpoint, TAIL_AVERAGE_NAME)
        if os.path.isfile(path):
            average.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        elif self.state.global_step >= average.first_step:
            raise ValueError(
                f"{checkpoint} is at step {self.state.global_step}, inside the window of `average_last_steps` (from "
                f"step {average.first_step}), but holds no {TAIL_AVERAGE_NAME}: the steps before it cannot be "
                "averaged. Resume from an earlier checkpoint, or train without `average_last_steps`."
            )
        self._tail_average = average

    def _collate(self, features: list[dict[str, int]]) -> dict[str, torch.Tensor]:
        return self.ptx_data.collate([feature["row"] for feature in features])

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        """L = CE(desirable tokens) + unlikelihood_coef · UL(undesirable tokens), each a token mean over the
        micro-batch (`trl_safe.ptx.ptx_objective`)."""
        outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        loss, nll, unlikely = ptx_objective(
            outputs.logits, inputs["labels"], inputs["desirable"], self.args.unlikelihood_coef
        )
        for name, term in (("loss/nll", nll), ("loss/unlikelihood", unlikely)):
            if term is not None:
                self._loss_terms[name].append(term.item())
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the means of the loss terms since the last log (training logs only)."""
        if "loss" in logs:
            logs = {**logs, **{name: sum(values) / len(values) for name, values in self._loss_terms.items()}}
            self._loss_terms.clear()
        super().log(logs, start_time)

    def create_model_card(
        self,
        model_name: str | None = None,
        dataset_name: str | list[str] | None = None,
        tags: str | list[str] | None = None,
    ) -> None:
        """Write `README.md` (the model card, `model_cards/sft_model_card.md`) to `output_dir`."""
        if not self.is_world_process_zero():
            return
        model_id = get_config_model_id(self.accelerator.unwrap_model(self.model).config)
        base_model = model_id if model_id and not os.path.isdir(model_id) else None
        args = self.args
        card = render_model_card(
            "sft_model_card.md",
            model_name=model_name or (args.hub_model_id or os.path.basename(os.path.abspath(args.output_dir))),
            tags=[*self._tag_names, *([tags] if isinstance(tags, str) else list(tags or []))],
            base_model=base_model,
            dataset_name=dataset_name,
            hub_model_id=args.hub_model_id,
            pipeline_tag="text-generation",
            trainer_name=type(self).__name__,
            num_rows=len(self.ptx_data),
            num_undesirable=self.ptx_data.desirable.count(False),
            global_step=self.state.global_step,
            averaged_over=self._averaged_over,
            hyperparameters={
                "learning_rate": args.learning_rate,
                "lr_scheduler_type": str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)),
                "max_steps": args.max_steps,
                "num_train_epochs": args.num_train_epochs,
                "per_device_train_batch_size": args.per_device_train_batch_size,
                "gradient_accumulation_steps": args.gradient_accumulation_steps,
                "max_length": args.max_length,
                "unlikelihood_coef": args.unlikelihood_coef,
                "average_last_steps": args.average_last_steps,
                "seed": args.seed,
            },
            peft=hasattr(self.accelerator.unwrap_model(self.model), "peft_config"),
        )
        os.makedirs(args.output_dir, exist_ok=True)
        card.save(os.path.join(args.output_dir, "README.md"))
