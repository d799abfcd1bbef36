"""PTX: the pre-training mix of Safe RLHF's PPO (InstructGPT's "PPO-ptx").

While the policy learns from rewards and costs it can forget how to answer well. The reference implementation's
published PPO-Lag run (PKU-Alignment/safe-rlhf, `scripts/ppo-lag.sh`) therefore mixes a supervised language-modelling
term on a second data set (Alpaca SFT data) into training, weighted by `ptx_coeff` (16 there):

    L = L_PPO(θ) + ptx_coef · L_ptx(θ),     L_ptx(θ) = −(1/|T|) Σ_{t∈T} log π_θ(y_t | y_<t)

where T are the supervised tokens of a batch of PTX examples (the completion, for prompt-completion data).

Prompt-completion rows may carry TRL's unpaired-preference `label` (as in KTO data): `True` for a completion to
imitate, `False` for one to avoid. Undesirable rows get the unlikelihood loss of Welleck et al. (2019) instead,

    L_ptx(θ) = −(1/|T⁺|) Σ_{t∈T⁺} log π_θ(y_t | y_<t)  −  c · (1/|T⁻|) Σ_{t∈T⁻} log(1 − π_θ(y_t | y_<t))

(T⁺ / T⁻: the completion tokens of the batch's desirable / undesirable rows, c = `ptx_unlikelihood_coef`; a term
with no tokens in the batch is 0).
Not in the reference. Why: supervised declines of harmful requests spread to harmless requests that look like them
(docs/demo_outcome.md); the same decline marked undesirable after a harmless look-alike's prompt is a signal that
ties the decline to what differs between the two prompts, not to the words they share.

Prompt-completion rows may also carry `finished` (not in TRL): `False` for a completion that was cut short, e.g.
sampled with a token limit. Such a row is rendered open-ended, as the policy left it (a conversation with
`continue_final_message=True`, a plain-text example without the closing EOS), so no loss falls on an end of turn the
completion never had. Why: trained with the end of turn after answers cut at 48 tokens, SmolLM2 learnt to stop
answers mid-sentence (docs/demo_outcome.md). Rows without the column are whole completions, as in TRL.

The data follow TRL's SFT formats: `{"text": ...}` (language modelling, every token), `{"messages": [...]}` (a whole
conversation rendered with the chat template, every token, as `SFTTrainer` does by default), or
`{"prompt": ..., "completion": ...}` in text or conversational form (loss on the completion only, like the reference,
which masks the prompt with -100 labels). Each PPO micro-batch draws `per_device_train_batch_size` PTX examples; the
draw is a pure function of (seed, optimizer step, micro-step, process), so a resumed run sees the same PTX batches.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import PreTrainedTokenizerBase

from trl_safe.scoring import encode_for_scoring, is_conversation
from trl_safe.seeding import epoch_permutation

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100


def ptx_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the labelled tokens: logits `[B, T, V]` predict `labels[:, 1:]`.

    Equals `transformers`' causal-LM `loss` for the same labels (the token mean over labels != -100).
    """
    shifted_logits = logits[:, :-1].float()
    shifted_labels = labels[:, 1:]
    return F.cross_entropy(
        shifted_logits.reshape(-1, shifted_logits.shape[-1]), shifted_labels.reshape(-1), ignore_index=IGNORE_INDEX
    )


def unlikelihood_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean of −log(1 − π(y_t | y_<t)) over the labelled tokens (Welleck et al., 2019): pushes each token of an
    undesirable completion down, and stops pushing once it is unlikely (unlike a negated cross-entropy, which has
    no floor and would drive the policy off the language to make one completion impossible)."""
    shifted_labels = labels[:, 1:]
    mask = shifted_labels != IGNORE_INDEX
    logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    token_logprobs = logprobs.gather(-1, shifted_labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    # log(1 − p) = log(−expm1(log p)); p is kept below 1 so that a certain token gives a large finite loss
    log_one_minus_p = torch.log(-torch.expm1(token_logprobs.clamp(max=-1e-6)))
    return -(log_one_minus_p * mask).sum() / mask.sum()


def ptx_objective(
    logits: torch.Tensor, labels: torch.Tensor, desirable: torch.Tensor, unlikelihood_coef: float
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """L_ptx of a PTX batch (see the module docstring): the cross-entropy of its desirable rows plus
    `unlikelihood_coef` times the unlikelihood loss of its undesirable ones; also each term (`None` when the batch
    has no row of that kind), for logging."""
    nll = ptx_loss(logits[desirable], labels[desirable]) if desirable.any() else None
    unlikely = unlikelihood_loss(logits[~desirable], labels[~desirable]) if (~desirable).any() else None
    terms = [term for term in (nll, None if unlikely is None else unlikelihood_coef * unlikely) if term is not None]
    return torch.stack(terms).sum(), nll, unlikely


class PTXData:
    """A tokenized PTX data set and the deterministic order in which PPO micro-batches draw from it.

    Args:
        dataset: rows with `text`, `messages`, or `prompt` + `completion` (optionally with a boolean `label`: see
            the module docstring).
        tokenizer: the policy's tokenizer (its chat template renders conversational rows).
        max_length: longer examples keep their first `max_length` tokens (counted and logged once).
        seed: seeds the per-epoch shuffles.
        chat_template_kwargs: extra arguments of `apply_chat_template`.
    """

    def __init__(
        self,
        dataset: Dataset,
        tokenizer: PreTrainedTokenizerBase,
        *,
        max_length: int | None,
        seed: int,
        chat_template_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if len(dataset) == 0:
            raise ValueError("ptx_dataset is empty: give it at least one row, or leave ptx_coef at 0.")
        columns = set(dataset.column_names)
        if "text" in columns:
            form = "text"
        elif "messages" in columns:
            form = "messages"
        elif {"prompt", "completion"} <= columns:
            form = "prompt-completion"
        else:
            raise ValueError(
                "ptx_dataset needs a `text` column (language modelling), a `messages` column (conversations) or "
                f"`prompt` and `completion` columns, like TRL's SFT data; found {sorted(columns)}."
            )
        self.tokenizer = tokenizer
        self.seed = seed
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        kwargs = dict(chat_template_kwargs or {})
        if "label" in columns and form != "prompt-completion":
            raise ValueError(
                "ptx_dataset has a `label` column, which marks prompt-completion rows as desirable (True) or "
                f"undesirable (False) as in TRL's unpaired-preference data; this data set's form is `{form}`."
            )
        if "finished" in columns and form != "prompt-completion":
            raise ValueError(
                "ptx_dataset has a `finished` column, which marks prompt-completion rows whose completion was cut "
                f"short (False); this data set's form is `{form}`."
            )
        self.examples: list[tuple[list[int], list[int]]] = []
        self.desirable: list[bool] = []
        truncated = unfinished = 0
        for index, row in enumerate(dataset):
            label = row.get("label", True)
            if not isinstance(label, bool):
                raise ValueError(f"ptx_dataset row {index}: `label` must be True or False, got {label!r}.")
            finished = row.get("finished", True)
            if not isinstance(finished, bool):
                raise ValueError(f"ptx_dataset row {index}: `finished` must be True or False, got {finished!r}.")
            self.desirable.append(label)
            unfinished += not finished
            input_ids, labels = _tokenize_row(tokenizer, row, form, index, kwargs, finished=finished)
            if max_length is not None and len(input_ids) > max_length:
                input_ids, labels = input_ids[:max_length], labels[:max_length]
                truncated += 1
            if not any(label != IGNORE_INDEX for label in labels[1:]):
                raise ValueError(f"ptx_dataset row {index} has no token to learn from (empty completion or text).")
            self.examples.append((input_ids, labels))
        if truncated:
            logger.warning(
                "%d of %d PTX examples are longer than ptx_max_length=%s tokens and were cut to it.",
                truncated,
                len(self.examples),
                max_length,
            )
        if not any(self.desirable):
            raise ValueError(
                "Every ptx_dataset row is labelled undesirable (`label` False): PTX needs completions to imitate too."
            )
        if unfinished:
            logger.info(
                "PTX: %d of %d completions were cut short: trained without an end of turn.", unfinished, len(self)
            )
        undesirable = len(self.desirable) - sum(self.desirable)
        if undesirable:
            logger.info(
                "PTX: %d desirable rows (cross-entropy), %d undesirable (unlikelihood).",
                sum(self.desirable),
                undesirable,
            )
        self._permutations: dict[int, torch.Tensor] = {}

    @property
    def has_undesirable(self) -> bool:
        """Whether any row is labelled undesirable (then the unlikelihood term is in play)."""
        return not all(self.desirable)

    def __len__(self) -> int:
        return len(self.examples)

    def rows(self, draw: int, batch_size: int) -> list[int]:
        """The example indices of the `draw`-th batch: consecutive slices of seeded per-epoch permutations
        (`trl_safe.seeding`: no two seeds share an epoch's order)."""
        indices = []
        for position in range(draw * batch_size, (draw + 1) * batch_size):
            epoch, offset = divmod(position, len(self.examples))
            if epoch not in self._permutations:
                self._permutations = {epoch: epoch_permutation(self.seed, epoch, len(self.examples))}
            indices.append(int(self._permutations[epoch][offset]))
        return indices

    def batch(self, draw: int, batch_size: int, device: torch.device) -> dict[str, torch.Tensor]:
        """`input_ids`, `attention_mask`, `labels` and `desirable` (one bool per row) of the `draw`-th batch,
        right-padded, on `device`."""
        return self.collate(self.rows(draw, batch_size), device)

    def collate(self, rows: Sequence[int], device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """`input_ids`, `attention_mask`, `labels` and `desirable` of the examples at indices `rows`, right-padded,
        on `device` (PPO's PTX batches, and `UnlikelihoodSFTTrainer`'s, whose sampler picks the rows)."""
        examples = [self.examples[index] for index in rows]
        length = max(len(input_ids) for input_ids, _ in examples)
        input_ids = torch.full((len(examples), length), self.pad_id, dtype=torch.long)
        labels = torch.full((len(examples), length), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(examples), length), dtype=torch.long)
        for row, (ids, row_labels) in enumerate(examples):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            labels[row, : len(ids)] = torch.tensor(row_labels)
            attention_mask[row, : len(ids)] = 1
        return {
            "input_ids": input_ids.to(device),
            "attention_mask": attention_mask.to(device),
            "labels": labels.to(device),
            "desirable": torch.tensor([self.desirable[index] for index in rows], device=device),
        }


def _tokenize_row(
    tokenizer: PreTrainedTokenizerBase,
    row: dict[str, Any],
    form: str,
    index: int,
    chat_template_kwargs: dict,
    finished: bool = True,
) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of one PTX row; labels are -100 where no loss is taken. An unfinished prompt-completion
    row (`finished` False) ends where its completion ends, with no end of turn or EOS after it."""
    if form == "text":
        text = row["text"]
        if not isinstance(text, str):
            raise ValueError(f"ptx_dataset row {index}: `text` must be a string, got {type(text).__name__}.")
        ids = list(tokenizer(text=text)["input_ids"])
        return ids, list(ids)
    if form == "messages":
        messages = row["messages"]
        if not is_conversation(messages) or not messages:
            raise ValueError(f"ptx_dataset row {index}: `messages` must be a non-empty list of chat messages.")
        ids = list(
            tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **chat_template_kwargs)[
                "input_ids"
            ]
        )
        return ids, list(ids)
    prompt, completion = row["prompt"], row["completion"]
    if is_conversation(prompt) != is_conversation(completion) or not isinstance(prompt, (str, Sequence)):
        raise ValueError(
            f"ptx_dataset row {index}: `prompt` and `completion` must both be strings or both be conversations."
        )
    # The whole example is written as a reward model's training example would be (one rule for rendering pairs);
    # the prompt's tokens are the rendered prompt alone (with the generation prompt for conversations).
    ids = encode_for_scoring(tokenizer, prompt, completion, chat_template_kwargs, finished=finished)
    if is_conversation(prompt):
        prompt_ids = tokenizer.apply_chat_template(
            list(prompt), tokenize=True, return_dict=True, add_generation_prompt=True, **chat_template_kwargs
        )["input_ids"]
    else:
        prompt_ids = tokenizer(text=prompt)["input_ids"]
    n_prompt = len(prompt_ids)
    if list(ids[:n_prompt]) != list(prompt_ids):
        raise ValueError(
            f"ptx_dataset row {index}: the tokenized prompt is not a prefix of the tokenized prompt + completion, so "
            "the completion tokens cannot be told apart; use the `text` form for this row."
        )
    return list(ids), [IGNORE_INDEX] * n_prompt + list(ids[n_prompt:])


def build_ptx_data(ptx_dataset: Dataset | None, tokenizer: PreTrainedTokenizerBase, args: Any) -> PTXData | None:
    """The trainer's PTX data from its `ptx_dataset` and config (`ptx_coef`, `ptx_max_length`), or `None` when PTX is
    off; `ptx_coef > 0` without data is an error, data with `ptx_coef == 0` a warning."""
    if args.ptx_coef > 0 and ptx_dataset is None:
        raise ValueError(f"ptx_coef={args.ptx_coef} needs a `ptx_dataset` (text, messages or prompt-completion).")
    if ptx_dataset is None:
        return None
    if args.ptx_coef == 0:
        logger.warning("A ptx_dataset was given but ptx_coef is 0: PTX is off. Set ptx_coef (16 in the reference).")
        return None
    return PTXData(
        ptx_dataset,
        tokenizer,
        max_length=args.ptx_max_length,
        seed=args.seed,
        chat_template_kwargs=args.chat_template_kwargs,
    )
