"""Data adapters: PKU-SafeRLHF rows to the preference and prompt data sets the trainers take.

A PKU-SafeRLHF row holds one prompt, two responses, and two separate judgements about them:

    prompt, response_0, response_1,
    is_response_0_safe, is_response_1_safe,   # harmlessness, per response
    better_response_id,                       # helpfulness: which response is more helpful (0 or 1)
    safer_response_id                         # harmlessness: which response is less harmful (0 or 1)

Safe RLHF keeps helpfulness and harmlessness apart, so one row gives three views:

- `to_helpfulness_preferences`: `prompt, chosen, rejected` with `chosen` the more helpful response, for TRL's
  `RewardTrainer` (the reward model R).
- `to_harmlessness_preferences`: `prompt, chosen, rejected, is_chosen_safe, is_rejected_safe` with `chosen` the
  safer response, for `CostTrainer` (the cost model C).
- `to_prompts`: the distinct prompts, in first-seen order, for the RL stage.

Each view comes in TRL's standard (text) form or its conversational form (lists of `{"role", "content"}`
messages), and accepts a `Dataset`, a `DatasetDict` (every split), or a streaming `IterableDataset` /
`IterableDatasetDict` (converted lazily; each row is validated when it streams past). Every row goes through one
validator, `_validate_row`, which names the split, the row and the field at fault.

Upstream PKU-SafeRLHF has rows whose labels contradict each other: the response marked *safer* is labelled unsafe
while the other one is labelled safe. The cost model's two loss terms would then pull in opposite directions, so
`to_harmlessness_preferences` refuses such rows by default; `on_contradiction="drop"` drops them, logs how many,
and records them in a `DroppedRows` the caller can pass in. Nothing is dropped silently.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from typing import Any, Literal

import numpy as np
from datasets import Dataset, DatasetDict, IterableDataset, IterableDatasetDict, load_dataset
from trl import ScriptArguments

from trl_safe.checks import first_bad_json_line

logger = logging.getLogger(__name__)

AnyDataset = Dataset | DatasetDict | IterableDataset | IterableDatasetDict

PROMPT_COLUMNS = ("prompt",)
HELPFULNESS_COLUMNS = ("prompt", "response_0", "response_1", "better_response_id")
HARMLESSNESS_COLUMNS = (
    "prompt",
    "response_0",
    "response_1",
    "is_response_0_safe",
    "is_response_1_safe",
    "safer_response_id",
)
# Columns the cost model's loss needs on top of TRL's `prompt, chosen, rejected`.
SAFETY_LABEL_COLUMNS = ("is_chosen_safe", "is_rejected_safe")

_TEXT_FIELDS = ("prompt", "response_0", "response_1")
_ID_FIELDS = ("better_response_id", "safer_response_id")
_LABEL_FIELDS = ("is_response_0_safe", "is_response_1_safe")
# Local files `load_preference_data` reads, by suffix (a trailing compression suffix such as `.gz` is skipped).
_FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}
_COMPRESSION_SUFFIXES = {".gz", ".bz2", ".xz", ".zst", ".zip"}
_DROP_FLAG = "__trl_safe_contradiction__"


@dataclass
class DroppedRows:
    """The rows a conversion left out, by split, so that a caller can report them.

    Pass one to `to_harmlessness_preferences(..., on_contradiction="drop", dropped=...)`. For an in-memory
    `Dataset` it is complete when the function returns; for a streaming `IterableDataset` it fills up as the rows
    stream past (within the process that iterates them).

    Fields:
        indices: for each split, the positions (in the input) of the rows dropped.
    """

    indices: dict[str, list[int]] = field(default_factory=dict)

    def add(self, split: str, index: int) -> None:
        """Record a dropped row; a stream read once per epoch records each row once."""
        rows = self.indices.setdefault(split, [])
        if index not in rows:
            rows.append(index)

    @property
    def count(self) -> int:
        """The number of rows dropped, all splits together."""
        return sum(len(rows) for rows in self.indices.values())


# --------------------------------------------------------------------------------------------------------------------
# Validation: one function for every view and every kind of data set.
# --------------------------------------------------------------------------------------------------------------------


def _check_columns(found: list[str] | tuple[str, ...], required: tuple[str, ...], where: str) -> None:
    missing = [name for name in required if name not in found]
    if missing:
        raise ValueError(
            f"{where}: missing column(s) {missing}; found {list(found)}. A PKU-SafeRLHF-format data set needs "
            f"{list(required)} for this conversion."
        )


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool | np.bool_)


def _is_binary_id(value: Any) -> bool:
    # 1.0 is accepted: pandas and CSV readers turn an integer column with a gap into floats. NaN is not 0 or 1.
    return isinstance(value, Real) and not _is_bool(value) and value in (0, 1)


def _is_contradiction(row: dict[str, Any]) -> bool:
    """The response marked safer is labelled unsafe while the other one is labelled safe."""
    safer = int(row["safer_response_id"])
    return not row[f"is_response_{safer}_safe"] and bool(row[f"is_response_{1 - safer}_safe"])


def _validate_row(row: dict[str, Any], index: int, split: str, required: tuple[str, ...]) -> None:
    """Check the fields of `row` that a conversion reads; raise a `ValueError` naming the split, row and field."""
    where = f"split {split!r}, row {index}"
    _check_columns(list(row), required, where)
    for name in required:
        value = row[name]
        if name in _TEXT_FIELDS and not isinstance(value, str):
            raise ValueError(f"{where}: {name!r} must be a string, got {value!r} ({type(value).__name__}).")
        if name in _TEXT_FIELDS and not value.strip():
            raise ValueError(f"{where}: {name!r} is empty; every prompt and response needs some text.")
        if name in _ID_FIELDS and not _is_binary_id(value):
            raise ValueError(f"{where}: {name!r} must be 0 or 1, got {value!r} ({type(value).__name__}).")
        if name in _LABEL_FIELDS and not _is_bool(value):
            raise ValueError(f"{where}: {name!r} must be a boolean, got {value!r} ({type(value).__name__}).")


def _contradiction_message(row: dict[str, Any], index: int, split: str) -> str:
    return (
        f"split {split!r}, row {index}: contradictory safety labels: safer_response_id="
        f"{row['safer_response_id']} but is_response_0_safe={row['is_response_0_safe']} and "
        f"is_response_1_safe={row['is_response_1_safe']} (the safer response is labelled unsafe, the other safe)"
    )


# --------------------------------------------------------------------------------------------------------------------
# Row conversions.
# --------------------------------------------------------------------------------------------------------------------


def _format_prompt(prompt: str, conversational: bool, separator: str) -> str | list[dict[str, str]]:
    return [{"role": "user", "content": prompt}] if conversational else prompt + separator


def _format_response(response: str, conversational: bool) -> str | list[dict[str, str]]:
    return [{"role": "assistant", "content": response}] if conversational else response


def _pair(row: dict[str, Any], chosen_id: int, conversational: bool, separator: str) -> dict[str, Any]:
    return {
        "prompt": _format_prompt(row["prompt"], conversational, separator),
        "chosen": _format_response(row[f"response_{chosen_id}"], conversational),
        "rejected": _format_response(row[f"response_{1 - chosen_id}"], conversational),
    }


def _helpfulness_row(row: dict[str, Any], conversational: bool, separator: str) -> dict[str, Any]:
    return _pair(row, int(row["better_response_id"]), conversational, separator)


def _harmlessness_row(row: dict[str, Any], conversational: bool, separator: str) -> dict[str, Any]:
    safer = int(row["safer_response_id"])
    return {
        **_pair(row, safer, conversational, separator),
        "is_chosen_safe": bool(row[f"is_response_{safer}_safe"]),
        "is_rejected_safe": bool(row[f"is_response_{1 - safer}_safe"]),
    }


# --------------------------------------------------------------------------------------------------------------------
# Applying a row conversion to every kind of data set.
# --------------------------------------------------------------------------------------------------------------------


def _column_names(dataset: Dataset | IterableDataset) -> list[str]:
    """The columns of a data set; a stream whose features are unknown is peeked at (its first row is read)."""
    if dataset.column_names is not None:
        return list(dataset.column_names)
    return list(next(iter(dataset), {}))


def _split_name(dataset: Dataset | IterableDataset, default: str = "dataset") -> str:
    return str(dataset.split) if getattr(dataset, "split", None) is not None else default


def _per_split(
    data: AnyDataset, convert: Callable[[Dataset | IterableDataset, str], Dataset | IterableDataset]
) -> AnyDataset:
    if isinstance(data, DatasetDict | IterableDatasetDict):
        return type(data)({split: convert(dataset, split) for split, dataset in data.items()})
    if isinstance(data, Dataset | IterableDataset):
        return convert(data, _split_name(data))
    raise TypeError(
        f"Expected a datasets.Dataset, DatasetDict, IterableDataset or IterableDatasetDict, got {type(data).__name__}."
    )


def _convert_pairs(
    dataset: Dataset | IterableDataset,
    split: str,
    required: tuple[str, ...],
    to_row: Callable[[dict[str, Any]], dict[str, Any]],
    on_contradiction: Literal["raise", "drop"] | None,
    dropped: DroppedRows | None,
) -> Dataset | IterableDataset:
    """Validate and convert every row; with `on_contradiction` set, handle contradictory safety labels too."""
    streaming = isinstance(dataset, IterableDataset)
    if not streaming and len(dataset) == 0:
        raise ValueError(f"split {split!r} is empty: there are no rows to convert.")
    columns = _column_names(dataset)
    _check_columns(columns, required, f"split {split!r}")  # fail before converting any row

    def convert(row: dict[str, Any], index: int) -> dict[str, Any]:
        _validate_row(row, index, split, required)
        contradiction = on_contradiction is not None and _is_contradiction(row)
        if contradiction and on_contradiction == "raise":
            raise ValueError(
                _contradiction_message(row, index, split) + ". Pass on_contradiction='drop' to drop such rows "
                "(they are counted and logged)."
            )
        if contradiction and streaming:  # an in-memory data set is counted once, below
            logger.warning("Dropping %s.", _contradiction_message(row, index, split))
            if dropped is not None:
                dropped.add(split, index)
        return {**to_row(row), _DROP_FLAG: contradiction}

    map_kwargs: dict[str, Any] = {"with_indices": True, "remove_columns": columns}
    if not streaming:
        map_kwargs["desc"] = f"Converting {split}"
    converted = dataset.map(convert, **map_kwargs)

    if streaming:
        return converted.filter(lambda row: not row[_DROP_FLAG]).remove_columns(_DROP_FLAG)
    drop_indices = [index for index, flag in enumerate(converted[_DROP_FLAG]) if flag]
    if drop_indices:
        logger.warning(
            "Dropped %d of %d rows of split %r with contradictory safety labels (the safer response labelled "
            "unsafe, the other safe); rows %s.",
            len(drop_indices),
            len(converted),
            split,
            drop_indices,
        )
        if dropped is not None:
            for index in drop_indices:
                dropped.add(split, index)
        if len(drop_indices) == len(converted):
            raise ValueError(
                f"split {split!r}: all {len(converted)} rows have contradictory safety labels and were dropped; "
                "nothing is left to train on. Check how the labels were produced (is_response_*_safe and "
                "safer_response_id may be swapped)."
            )
        converted = converted.filter(lambda flag: not flag, input_columns=_DROP_FLAG)
    return converted.remove_columns(_DROP_FLAG)


# --------------------------------------------------------------------------------------------------------------------
# Public conversions.
# --------------------------------------------------------------------------------------------------------------------


def to_helpfulness_preferences(data: AnyDataset, *, conversational: bool = False, separator: str = "\n") -> AnyDataset:
    """PKU-SafeRLHF rows -> TRL preference data (`prompt, chosen, rejected`) for the reward model R.

    `chosen` is the more helpful response (`better_response_id`), whatever its safety: helpfulness and
    harmlessness are separate judgements in Safe RLHF. Other columns are dropped.

    Args:
        data: a `Dataset`, `DatasetDict`, `IterableDataset` or `IterableDatasetDict` with the columns `prompt`,
            `response_0`, `response_1`, `better_response_id`.
        conversational: emit TRL's conversational form (`prompt` a user message, `chosen`/`rejected` an assistant
            message) instead of text.
        separator: appended to the prompt in the text form. TRL joins prompt and response as they are, so without
            it the question's last word and the answer's first word would run together. Unused in the
            conversational form, where the chat template separates the turns.

    Raises:
        ValueError: a column is missing, or a row has a non-string text or an id other than 0/1 (the message names
            the split and row).
    """

    def convert(dataset: Dataset | IterableDataset, split: str) -> Dataset | IterableDataset:
        to_row = lambda row: _helpfulness_row(row, conversational, separator)  # noqa: E731
        return _convert_pairs(dataset, split, HELPFULNESS_COLUMNS, to_row, None, None)

    return _per_split(data, convert)


def to_harmlessness_preferences(
    data: AnyDataset,
    *,
    conversational: bool = False,
    separator: str = "\n",
    on_contradiction: Literal["raise", "drop"] = "raise",
    dropped: DroppedRows | None = None,
) -> AnyDataset:
    """PKU-SafeRLHF rows -> cost-model preference data for `CostTrainer`.

    Columns: `prompt`, `chosen` (the safer response, `safer_response_id`), `rejected` (the less safe one),
    `is_chosen_safe`, `is_rejected_safe` (booleans). Other columns are dropped.

    Args:
        data: a `Dataset`, `DatasetDict`, `IterableDataset` or `IterableDatasetDict` with the columns `prompt`,
            `response_0`, `response_1`, `is_response_0_safe`, `is_response_1_safe`, `safer_response_id`.
        conversational: emit TRL's conversational form instead of text.
        separator: appended to the prompt in the text form (see `to_helpfulness_preferences`).
        on_contradiction: what to do with a row whose safer response is labelled unsafe while the other is labelled
            safe. `"raise"` (default): a `ValueError` naming the row and its labels. `"drop"`: leave the row out,
            log a warning with the count, and record it in `dropped`.
        dropped: filled with the rows dropped, by split (see `DroppedRows`).

    Raises:
        ValueError: a column is missing, a row has a non-string text, an id other than 0/1 or a non-boolean label,
            or (with `on_contradiction="raise"`) contradictory labels; the message names the split and row.
    """
    if on_contradiction not in ("raise", "drop"):
        raise ValueError(f"on_contradiction must be 'raise' or 'drop', got {on_contradiction!r}.")

    def convert(dataset: Dataset | IterableDataset, split: str) -> Dataset | IterableDataset:
        to_row = lambda row: _harmlessness_row(row, conversational, separator)  # noqa: E731
        return _convert_pairs(dataset, split, HARMLESSNESS_COLUMNS, to_row, on_contradiction, dropped)

    return _per_split(data, convert)


def to_prompts(
    data: AnyDataset, *, conversational: bool = False, separator: str = "\n", deduplicate: bool = True
) -> AnyDataset:
    """PKU-SafeRLHF rows (or any data set with a `prompt` column) -> the distinct prompts, in first-seen order.

    The result has one column, `prompt`: text, or a one-message conversation when `conversational`. Repeated
    prompts are left out and their number is logged. A streaming data set is de-duplicated lazily, afresh on
    every pass over it.

    A PKU-SafeRLHF prompt repeats once per pair of answers, so by default each prompt is kept once: the rollouts
    then see every prompt equally often however many answers were labelled for it. With `deduplicate=False` every
    row is kept instead, so that a prompt file can weight its prompts: a prompt listed k times is drawn k times as
    often (the demo pipeline's `harmless_prompt_repeats`).

    Args:
        data: a `Dataset`, `DatasetDict`, `IterableDataset` or `IterableDatasetDict` with a `prompt` column.
        conversational: emit `[{"role": "user", "content": prompt}]` instead of text.
        separator: appended to the prompt in the text form, the same as in the preference views, so that the policy
            continues from exactly the text the reward and cost models saw before each response.
        deduplicate: keep each prompt once (`False`: keep every row, repeats included).

    Raises:
        ValueError: the `prompt` column is missing or a prompt is not a string (the message names the split and row).
    """

    def distinct(rows: Iterator[dict[str, Any]], split: str) -> Iterator[dict[str, Any]]:
        seen: set[str] = set()
        index = -1
        for index, row in enumerate(rows):
            _validate_row(row, index, split, PROMPT_COLUMNS)
            if not deduplicate or row["prompt"] not in seen:
                seen.add(row["prompt"])
                yield {"prompt": _format_prompt(row["prompt"], conversational, separator)}
        kept = "repeats kept: each row is a rollout prompt" if not deduplicate else "repeats left out"
        logger.info("Split %r: %d distinct prompts in %d rows (%s).", split, len(seen), index + 1, kept)

    def convert(dataset: Dataset | IterableDataset, split: str) -> Dataset | IterableDataset:
        if isinstance(dataset, Dataset) and len(dataset) == 0:
            raise ValueError(f"split {split!r} is empty: there are no prompts.")
        _check_columns(_column_names(dataset), PROMPT_COLUMNS, f"split {split!r}")
        if isinstance(dataset, IterableDataset):
            # `from_generator` calls `distinct` anew on every pass, so each epoch starts with an empty `seen`.
            return IterableDataset.from_generator(distinct, gen_kwargs={"rows": dataset, "split": split})
        column = ({"prompt": prompt} for prompt in dataset["prompt"])
        return Dataset.from_list(list(distinct(column, split)), split=dataset.split)

    return _per_split(data, convert)


# --------------------------------------------------------------------------------------------------------------------
# Loading.
# --------------------------------------------------------------------------------------------------------------------


def _file_builder(path: Path) -> str | None:
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION_SUFFIXES:
        suffixes = suffixes[:-1]
    return _FILE_BUILDERS.get(suffixes[-1]) if suffixes else None


def load_preference_data(
    name_or_path: str | Path,
    *,
    name: str | None = None,
    split: str | None = None,
    streaming: bool = False,
    **load_kwargs: Any,
) -> AnyDataset:
    """Load PKU-SafeRLHF-format data from a local file or the Hub.

    A local `.json`, `.jsonl`, `.csv` or `.parquet` file (optionally compressed, e.g. `.jsonl.gz`) is read with the
    matching `datasets` builder and gives a single split, `"train"`. Anything else (a Hub data set such as
    `"PKU-Alignment/PKU-SafeRLHF"`, or a local data set folder) goes to `datasets.load_dataset` as it is.

    Args:
        name_or_path: file path, folder, or Hub data set name.
        name: the data set configuration (`datasets.load_dataset`'s `name`), e.g. `"alpaca3-8b"`.
        split: one split (a `Dataset`) instead of all of them (a `DatasetDict`).
        streaming: return an `IterableDataset` / `IterableDatasetDict` read lazily.
        **load_kwargs: passed on to `datasets.load_dataset`.

    Raises:
        FileNotFoundError: `name_or_path` names a data file (by its suffix) that does not exist.
        ValueError: the data file is empty, or (JSON) holds a line that is not valid JSON; the message names the file
            and the line.
    """
    path = Path(name_or_path)
    builder = _file_builder(path)
    if builder is not None:
        if not path.is_file():
            raise FileNotFoundError(f"No such data file: {str(path)!r}.")
        compressed = path.suffix.lower() in _COMPRESSION_SUFFIXES
        if not compressed and builder in ("json", "csv") and not path.read_bytes().strip():
            raise ValueError(f"The data file {str(path)!r} is empty: it has no rows.")
        try:
            return load_dataset(builder, data_files=str(path), split=split, streaming=streaming, **load_kwargs)
        except Exception as error:
            if builder == "json" and not compressed:
                _raise_on_bad_json(path, error)
            raise
    return load_dataset(str(name_or_path), name=name, split=split, streaming=streaming, **load_kwargs)


def _raise_on_bad_json(path: Path, error: Exception) -> None:
    """After `datasets` failed on a JSON / JSON Lines file, find the bad line and raise a short error naming it."""
    if path.suffix.lower() == ".jsonl":
        bad = first_bad_json_line(str(path))
        if bad is not None:
            raise ValueError(f"{str(path)!r}, line {bad[0]}: not a valid JSON object ({bad[1]}).") from None
        return
    try:
        json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except json.JSONDecodeError as json_error:
        raise ValueError(f"{str(path)!r}, line {json_error.lineno}: not valid JSON ({json_error.msg}).") from None


@dataclass
class PreferenceScriptArguments(ScriptArguments):
    """TRL's `ScriptArguments` with the PKU-SafeRLHF defaults and the conversion options of the example scripts.

    Parameters:
        dataset_name (`str`, defaults to `"PKU-Alignment/PKU-SafeRLHF"`):
            Hub data set name, local data set folder, or local `.json`/`.jsonl`/`.csv`/`.parquet` file in the
            PKU-SafeRLHF format.
        dataset_config (`str`, *optional*):
            The Hub data set's configuration (e.g. `"alpaca3-8b"`); unused for local files.
        dataset_train_split (`str`, defaults to `"train"`), dataset_test_split (`str`, defaults to `"test"`),
        dataset_streaming (`bool`, defaults to `False`), ignore_bias_buffers (`bool`, defaults to `False`):
            As in TRL's `ScriptArguments`.
        conversational (`bool`, defaults to `False`):
            Build TRL's conversational form (for chat models: the tokenizer's chat template formats the turns)
            instead of the text form.
        on_contradiction (`str`, defaults to `"drop"`):
            Rows whose safer response is labelled unsafe while the other is labelled safe: `"drop"` (counted and
            logged) or `"raise"`. The scripts drop by default because the upstream data set has such rows.
    """

    dataset_name: str | None = field(
        default="PKU-Alignment/PKU-SafeRLHF",
        metadata={"help": "Hub data set name, local folder, or local .json/.jsonl/.csv/.parquet file (PKU format)."},
    )
    conversational: bool = field(
        default=False,
        metadata={"help": "Build TRL's conversational form (chat models) instead of plain text."},
    )
    on_contradiction: str = field(
        default="drop",
        metadata={
            "help": "Rows whose safer response is labelled unsafe and the other safe: 'drop' (counted, logged) or "
            "'raise'.",
            "choices": ["drop", "raise"],
        },
    )


@dataclass
class PromptScriptArguments(ScriptArguments):
    """TRL's `ScriptArguments` for the RL example scripts (`examples/ppo.py`, `examples/ppo_lag.py`): the prompts.

    Parameters:
        dataset_name (`str`, defaults to `"PKU-Alignment/PKU-SafeRLHF"`):
            Hub data set name, local folder, or local `.json`/`.jsonl`/`.csv`/`.parquet` file with a `prompt`
            column (PKU-SafeRLHF rows work as they are: their distinct prompts are used).
        dataset_config, dataset_train_split, dataset_test_split, ignore_bias_buffers:
            As in TRL's `ScriptArguments`.
        dataset_streaming (`bool`, defaults to `False`):
            Must stay `False`: the PPO trainers sample seeded rollout batches from a map-style data set.
        conversational (`bool`, defaults to `False`):
            Give the prompts as user messages, formatted by the policy tokenizer's chat template.
        max_prompts (`int`, *optional*):
            Use only the first `max_prompts` distinct prompts (quick runs).
        deduplicate_prompts (`bool`, defaults to `True`):
            Keep each prompt once. `False` keeps every row, so that a prompt file weights its prompts: one listed k
            times is drawn k times as often in the rollouts.
        ptx_dataset_name (`str`, *optional*):
            Supervised data for PTX, the pre-training mix (used with `--ptx_coef > 0`): Hub data set or local file
            with `text`, `messages` or `prompt` + `completion` columns (the reference uses Alpaca SFT data).
        ptx_dataset_config, ptx_dataset_split:
            Its configuration and split (default `"train"`).
    """

    dataset_name: str | None = field(
        default="PKU-Alignment/PKU-SafeRLHF",
        metadata={"help": "Hub data set, local folder, or local .json/.jsonl/.csv/.parquet file with prompts."},
    )
    conversational: bool = field(default=False, metadata={"help": "Give the prompts as user messages."})
    max_prompts: int | None = field(default=None, metadata={"help": "Use only the first N distinct prompts."})
    deduplicate_prompts: bool = field(
        default=True,
        metadata={
            "help": "Keep each prompt once; false: every row, so a prompt listed k times is drawn k times as often."
        },
    )
    ptx_dataset_name: str | None = field(
        default=None,
        metadata={"help": "PTX data (text, messages or prompt+completion), mixed in with --ptx_coef > 0."},
    )
    ptx_dataset_config: str | None = field(default=None, metadata={"help": "Configuration of the PTX data set."})
    ptx_dataset_split: str = field(default="train", metadata={"help": "Split of the PTX data set."})

    def load_ptx_dataset(self) -> Dataset | None:
        """The PTX data set named by `ptx_dataset_name`, or `None`."""
        if self.ptx_dataset_name is None:
            return None
        return load_preference_data(self.ptx_dataset_name, name=self.ptx_dataset_config, split=self.ptx_dataset_split)

    def __post_init__(self) -> None:
        if self.dataset_streaming:
            raise ValueError("The PPO trainers need a map-style data set of prompts: drop --dataset_streaming.")


def load_prompt_dataset(
    name_or_path: str | Path,
    *,
    name: str | None = None,
    split: str = "train",
    conversational: bool = False,
    max_prompts: int | None = None,
    deduplicate: bool = True,
) -> Dataset:
    """The distinct prompts of one split of a prompt or PKU-SafeRLHF-format data set, ready for the PPO trainers.

    `load_preference_data` followed by `to_prompts`, optionally cut to the first `max_prompts` prompts (rows, with
    `deduplicate=False`).
    """
    rows = load_preference_data(name_or_path, name=name, split=split)
    prompts = to_prompts(rows, conversational=conversational, deduplicate=deduplicate)
    if max_prompts is not None:
        prompts = prompts.select(range(min(max_prompts, len(prompts))))
    return prompts
