"""`CostTrainer`: the cost model C of Safe RLHF, as a subclass of TRL's `RewardTrainer`.

The cost model scores how harmful a response is. It is trained on pairs in which `chosen` is the safer response
and each response carries its own safety label, with two terms (Dai et al., 2024, Eq. 6):

    L_C = -mean log σ(C(rejected) - C(chosen))                                   the ranking term
          - mean[ log σ(s_chosen·C(chosen)) + log σ(s_rejected·C(rejected)) ]    the sign term
          + regularization · mean(C²)                                            (reference implementation)

with s = +1 for an unsafe response and -1 for a safe one; the formula is `trl_safe.rl_math.cost_model_loss`, beside
the PPO math. The ranking term alone is a Bradley-Terry model: it fixes the costs only up to a constant. The sign
term compares every response with a virtual response on the boundary (C = 0), so C > 0 means "unsafe" and C < 0
"safe": the cost model is also a classifier with threshold 0, which is what the Lagrangian's constraint
E[C] + d ≤ 0 relies on.

Everything else is `RewardTrainer`'s: model loading, tokenization (`chosen`/`rejected` -> `chosen_ids`/
`rejected_ids`, EOS appended), PEFT, `max_length`, evaluation, logging. This class overrides its hooks to carry the
two safety labels to the loss, to read the costs at the last attended token (`trl_safe.scoring`), to count the
rows `max_length` filters out, and to write the cost model's card.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from accelerate.utils import is_peft_model
from datasets import Dataset, DatasetDict, IterableDataset, IterableDatasetDict
from transformers import DataCollator, PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.trainer_utils import EvalPrediction
from trl import RewardConfig, RewardTrainer
from trl.data_utils import get_dataset_column_names
from trl.trainer.reward_trainer import DataCollatorForPreference
from trl.trainer.utils import get_config_model_id

from trl_safe.checks import check_cost_dataset, check_model_path, to_safety_label
from trl_safe.cost_config import CostConfig
from trl_safe.data import SAFETY_LABEL_COLUMNS, DroppedRows
from trl_safe.distributed import check_processes_train_one_model
from trl_safe.model_card import render_model_card
from trl_safe.rl_math import cost_model_loss
from trl_safe.scoring import find_score_head, last_token_scores

logger = logging.getLogger(__name__)

# Names `transformers` gives the output head of sequence-classification models; LoRA must train it in full.
_SCORE_HEAD_NAMES = ("score", "classifier")


@dataclass
class DataCollatorForSafetyPreference(DataCollatorForPreference):
    """TRL's preference collator, plus the safety label of each response.

    On top of `input_ids` and `attention_mask` (the chosen sequences first, then the rejected ones), the batch holds
    `is_chosen_safe` and `is_rejected_safe`, boolean tensors of shape `[batch]`.
    """

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        missing = [key for key in SAFETY_LABEL_COLUMNS if key not in examples[0]]
        if missing:
            raise ValueError(
                f"The batch lacks the safety label(s) {missing}; it has {sorted(examples[0])}. Build the data with "
                "`trl_safe.to_harmlessness_preferences`."
            )
        batch = super().torch_call(examples)
        for key in SAFETY_LABEL_COLUMNS:
            labels = [to_safety_label(example[key], key, index) for index, example in enumerate(examples)]
            batch[key] = torch.tensor(labels, dtype=torch.bool)
        return batch


def _with_trainable_score_head(peft_config: Any) -> Any:
    """Make sure a LoRA (or other adapter) configuration trains the score head in full.

    The head of a sequence-classification model is created at random when a causal LM is loaded as a cost model: if
    the adapter froze it, the cost would stay a random projection. PEFT trains it by itself for
    `task_type="SEQ_CLS"`; for any other configuration we add the head to `modules_to_save` (on a copy).
    """
    if peft_config is None or str(getattr(peft_config, "task_type", None)) in ("SEQ_CLS", "TaskType.SEQ_CLS"):
        return peft_config
    modules_to_save = list(peft_config.modules_to_save or [])
    missing = [name for name in _SCORE_HEAD_NAMES if name not in modules_to_save]
    if not missing:
        return peft_config
    logger.warning(
        "The PEFT configuration would freeze the cost head; adding %s to `modules_to_save` so that it trains. Set "
        "`task_type='SEQ_CLS'` or `modules_to_save=['score']` to silence this warning.",
        missing,
    )
    peft_config = copy.deepcopy(peft_config)
    peft_config.modules_to_save = modules_to_save + missing
    return peft_config


class CostTrainer(RewardTrainer):
    """Trainer for the cost model C of Safe RLHF (harmlessness), built on TRL's `RewardTrainer`.

    Example:

    ```python
    from trl_safe import CostConfig, CostTrainer, load_preference_data, to_harmlessness_preferences

    data = load_preference_data("PKU-Alignment/PKU-SafeRLHF", split="train")
    trainer = CostTrainer(
        model="Qwen/Qwen2.5-0.5B-Instruct",
        args=CostConfig(output_dir="Qwen2.5-0.5B-Cost"),
        train_dataset=to_harmlessness_preferences(data, conversational=True, on_contradiction="drop"),
    )
    trainer.train()
    ```

    Args:
        model: a model id or local path (loaded with `AutoModelForSequenceClassification` and `num_labels=1`), or a
            sequence-classification model (`num_labels=1`) or `PeftModel` instance.
        args: a `CostConfig`; `None` gives the defaults with `output_dir="<model>-Cost"`.
        data_collator: defaults to `DataCollatorForSafetyPreference`. A custom collator must return
            `is_chosen_safe` and `is_rejected_safe` along with `input_ids` and `attention_mask`.
        train_dataset, eval_dataset: cost-model preference data: `chosen` the safer response, `rejected` the other,
            `is_chosen_safe`/`is_rejected_safe` their labels (see `trl_safe.to_harmlessness_preferences`), with or
            without an explicit `prompt`, standard or conversational, or already tokenized (`chosen_ids`,
            `rejected_ids`). Rows longer than `args.max_length` are dropped, counted, logged, and recorded in
            `self.too_long_rows`.
        processing_class, compute_metrics, callbacks, optimizers, optimizer_cls_and_kwargs,
        preprocess_logits_for_metrics, quantization_config: as in `RewardTrainer`.
        peft_config: as in `RewardTrainer`; the score head is added to `modules_to_save` when the configuration
            would leave it frozen.

    Metrics (train and eval, averaged over the logging interval, gathered across processes): `loss`,
    `ranking_loss`, `sign_loss`, `accuracy` (share of pairs with C(rejected) > C(chosen)), `sign_accuracy` (share
    of responses with C > 0 ⇔ unsafe), `mean_cost`, `min_cost`, `max_cost`, `margin` (mean C(rejected) -
    C(chosen)), `num_tokens`.
    """

    _tag_names = ["trl", "trl-safe", "cost-model", "safe-rlhf"]
    _name = "Cost"
    _template_file = "cost_model_card.md"

    def __init__(
        self,
        model: str | PreTrainedModel,
        args: CostConfig | None = None,
        data_collator: DataCollator | None = None,
        train_dataset: Dataset | IterableDataset | None = None,
        eval_dataset: Dataset
        | IterableDataset
        | DatasetDict
        | IterableDatasetDict
        | dict[str, Dataset | IterableDataset]
        | None = None,
        processing_class: PreTrainedTokenizerBase | None = None,
        compute_metrics: Callable[[EvalPrediction], dict] | None = None,
        callbacks: list[TrainerCallback] | None = None,
        optimizers: tuple[torch.optim.Optimizer | None, torch.optim.lr_scheduler.LambdaLR | None] = (None, None),
        optimizer_cls_and_kwargs: tuple[type[torch.optim.Optimizer], dict[str, Any]] | None = None,
        preprocess_logits_for_metrics: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        quantization_config: Any | None = None,
        peft_config: Any | None = None,
    ):
        if isinstance(model, str):
            check_model_path(model, "model")
        if args is None:
            model_name = model if isinstance(model, str) else get_config_model_id(model.config)
            args = CostConfig(f"{model_name.split('/')[-1]}-Cost")
        elif not isinstance(args, CostConfig):
            kind = "a RewardConfig" if isinstance(args, RewardConfig) else type(args).__name__
            raise TypeError(f"CostTrainer needs a CostConfig (it holds the cost loss's settings), got {kind}.")
        # Filled by `_prepare_dataset`, which `RewardTrainer.__init__` calls, so it must exist before.
        self.too_long_rows = DroppedRows()

        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            compute_metrics=compute_metrics,
            callbacks=callbacks,
            optimizers=optimizers,
            optimizer_cls_and_kwargs=optimizer_cls_and_kwargs,
            preprocess_logits_for_metrics=preprocess_logits_for_metrics,
            quantization_config=quantization_config,
            peft_config=_with_trainable_score_head(peft_config),
        )

        check_processes_train_one_model(self.accelerator, type(self).__name__)
        if data_collator is None:  # `RewardTrainer` built its own collator, which does not carry the labels
            self.data_collator = DataCollatorForSafetyPreference(
                pad_token_id=self.processing_class.pad_token_id, pad_to_multiple_of=self.args.pad_to_multiple_of
            )
        if is_peft_model(self.model) and not any(p.requires_grad for p in find_score_head(self.model).parameters()):
            raise ValueError(
                "The cost head is frozen under the PEFT adapter, so it would stay random. Add its name (e.g. "
                "'score') to the PEFT configuration's `modules_to_save`, or use `task_type='SEQ_CLS'`."
            )

    # ---------------------------------------------------------------------------------------------------------------
    # Data: require the safety labels, keep them through column removal, count what `max_length` drops.
    # ---------------------------------------------------------------------------------------------------------------

    def _prepare_dataset(
        self,
        dataset: Dataset | IterableDataset,
        processing_class: PreTrainedTokenizerBase,
        args: CostConfig,
        dataset_name: str,
    ) -> Dataset | IterableDataset:
        columns = get_dataset_column_names(dataset)
        missing = [name for name in SAFETY_LABEL_COLUMNS if name not in columns]
        if missing:
            raise ValueError(
                f"The {dataset_name} dataset lacks the safety label column(s) {missing}; found {columns}. CostTrainer "
                "needs `chosen` (the safer response), `rejected`, `is_chosen_safe` and `is_rejected_safe`: build them "
                "from PKU-SafeRLHF-format rows with `trl_safe.to_harmlessness_preferences`."
            )
        dataset = check_cost_dataset(dataset, dataset_name)  # real boolean labels, non-empty, not contradictory
        # `RewardTrainer` filters long rows without saying how many; we switch its filter off and filter ourselves.
        max_length, args.max_length = args.max_length, None
        try:
            dataset = super()._prepare_dataset(dataset, processing_class, args, dataset_name)
        finally:
            args.max_length = max_length
        if max_length is not None:
            dataset = self._drop_too_long(dataset, max_length, dataset_name, args.dataset_num_proc)
        return dataset

    def _drop_too_long(
        self, dataset: Dataset | IterableDataset, max_length: int, dataset_name: str, num_proc: int | None
    ) -> Dataset | IterableDataset:
        """Drop the pairs in which either sequence exceeds `max_length` tokens; count, log and record them."""

        def too_long(chosen_ids: list[int], rejected_ids: list[int]) -> bool:
            return max(len(chosen_ids), len(rejected_ids)) > max_length

        if isinstance(dataset, IterableDataset):

            def keep(example: dict[str, Any], index: int) -> bool:
                if too_long(example["chosen_ids"], example["rejected_ids"]):
                    logger.warning(
                        "Dropping row %d of the %s dataset: longer than max_length=%d tokens.",
                        index,
                        dataset_name,
                        max_length,
                    )
                    self.too_long_rows.add(dataset_name, index)
                    return False
                return True

            return dataset.filter(keep, with_indices=True)

        flags = dataset.map(
            lambda chosen, rejected: {"too_long": [too_long(c, r) for c, r in zip(chosen, rejected)]},
            input_columns=["chosen_ids", "rejected_ids"],
            batched=True,
            remove_columns=dataset.column_names,
            num_proc=num_proc,
            desc=f"Measuring {dataset_name} dataset",
        )["too_long"]
        dropped = [index for index, flag in enumerate(flags) if flag]
        if not dropped:
            return dataset
        for index in dropped:
            self.too_long_rows.add(dataset_name, index)
        logger.warning(
            "Dropped %d of %d rows of the %s dataset longer than max_length=%d tokens (rows %s).",
            len(dropped),
            len(flags),
            dataset_name,
            max_length,
            dropped,
        )
        return dataset.select([index for index, flag in enumerate(flags) if not flag])

    def _set_signature_columns_if_needed(self):
        # `Trainer` removes the columns not listed here before collating: keep the safety labels.
        if self._signature_columns is None:
            self._signature_columns = ["chosen_ids", "rejected_ids", *SAFETY_LABEL_COLUMNS]

    # ---------------------------------------------------------------------------------------------------------------
    # Loss and metrics.
    # ---------------------------------------------------------------------------------------------------------------

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | None = None,
    ):
        mode = "train" if self.model.training else "eval"
        missing = [key for key in SAFETY_LABEL_COLUMNS if key not in inputs]
        if missing:
            raise ValueError(f"The batch lacks the safety label(s) {missing}; it has {sorted(inputs)}.")

        # C(y, x), read at the last attended token (the EOS closing the response, even when pad == EOS). The
        # collator puts the chosen (safer) sequences first, then the rejected ones: lay them out as pairs, [B, 2].
        scores = last_token_scores(model, inputs["input_ids"], inputs["attention_mask"])[:, 0].float()
        costs = torch.stack(scores.chunk(2), dim=1)  # columns: C(chosen), C(rejected)
        is_safe = torch.stack([inputs["is_chosen_safe"], inputs["is_rejected_safe"]], dim=1).bool()
        loss, ranking_loss, sign_loss = cost_model_loss(
            costs, is_safe, self.args.sign_loss_coefficient, self.args.regularization
        )

        if mode == "train":
            num_tokens_in_batch = self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
            self._total_train_tokens += num_tokens_in_batch // self._tp_size
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        self._log_cost_metrics(mode, costs.detach(), is_safe, ranking_loss.detach(), sign_loss.detach())

        return (loss, SequenceClassifierOutput(logits=scores.unsqueeze(-1))) if return_outputs else loss

    @torch.no_grad()
    def _log_cost_metrics(
        self,
        mode: str,
        costs: torch.Tensor,
        is_safe: torch.Tensor,
        ranking_loss: torch.Tensor,
        sign_loss: torch.Tensor,
    ) -> None:
        """Queue this batch's metrics for `log`, gathered over all processes.

        Every tensor is laid out per pair (first dimension = pairs), which is what `gather_for_metrics` assumes when
        it trims the duplicated samples of the last batch.
        """
        gathered = self.accelerator.gather_for_metrics(
            {"costs": costs, "unsafe": (~is_safe).float(), "ranking_loss": ranking_loss, "sign_loss": sign_loss}
        )
        costs, unsafe = gathered["costs"], gathered["unsafe"].bool()
        margins = costs[:, 1] - costs[:, 0]
        metrics = self._metrics[mode]
        metrics["ranking_loss"].append(gathered["ranking_loss"].mean().item())
        metrics["sign_loss"].append(gathered["sign_loss"].mean().item())
        metrics["accuracy"].append((margins > 0).float().mean().item())
        metrics["sign_accuracy"].append(((costs > 0) == unsafe).float().mean().item())
        metrics["margin"].append(margins.mean().item())
        metrics["mean_cost"].append(costs.mean().item())
        metrics["min_cost"].append(costs.min().item())
        metrics["max_cost"].append(costs.max().item())

    # ---------------------------------------------------------------------------------------------------------------
    # Model card.
    # ---------------------------------------------------------------------------------------------------------------

    def _final_eval_metrics(self) -> dict[str, float]:
        """The last evaluation's accuracy, sign accuracy and loss (for each eval set), if the run evaluated."""
        for entry in reversed(self.state.log_history):
            metrics = {
                key: value
                for key, value in entry.items()
                if key.startswith("eval_") and key.endswith(("accuracy", "_loss"))
            }
            if metrics:
                return metrics
        return {}

    def create_model_card(
        self,
        model_name: str | None = None,
        dataset_name: str | None = None,
        tags: str | list[str] | None = None,
    ) -> None:
        """Write the cost model's card (`model_cards/cost_model_card.md`) to `output_dir/README.md`."""
        if not self.is_world_process_zero():
            return
        model_name_or_path = get_config_model_id(self.model.config)
        base_model = model_name_or_path if model_name_or_path and not os.path.isdir(model_name_or_path) else None
        tags = [tags] if isinstance(tags, str) else list(tags or [])
        args = self.args
        card = render_model_card(
            self._template_file,
            model_name=model_name or os.path.basename(os.path.normpath(args.output_dir)),
            tags=[*self._tag_names, *tags],
            base_model=base_model,
            dataset_name=dataset_name,
            hub_model_id=self.hub_model_id,
            pipeline_tag="text-classification",
            trainer_name=self._name,
            hyperparameters={
                "learning_rate": args.learning_rate,
                "num_train_epochs": args.num_train_epochs,
                "max_steps": args.max_steps,
                "per_device_train_batch_size": args.per_device_train_batch_size,
                "gradient_accumulation_steps": args.gradient_accumulation_steps,
                "max_length": args.max_length,
                "sign_loss_coefficient": args.sign_loss_coefficient,
                "regularization": args.regularization,
                "seed": args.seed,
            },
            peft=is_peft_model(self.model),
            eval_metrics=self._final_eval_metrics(),
            too_long_rows=self.too_long_rows.count,
        )
        card.save(os.path.join(args.output_dir, "README.md"))
