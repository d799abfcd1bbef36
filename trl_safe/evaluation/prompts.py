"""Loading evaluation prompt sets from the formats red-team and over-refusal benchmarks ship in.

Safety benchmarks arrive as plain text, JSON, JSON Lines, CSV or Hub data sets, each with its own column names
(`prompt` in Safe RLHF's red-team set and XSTest, `goal` in AdvBench, `Behavior` in HarmBench; the harm category as
`category`, `type`, `risk_area` or `SemanticCategory`). `load_prompts` turns any of them into one `datasets.Dataset`
with the columns the evaluator reads:

- `prompt`: the user turn, a string, or a conversation (a list of `{"role", "content"}` messages);
- `category` (only when the source has a category column): the harm category, used for per-category breakdowns;
- `label` (only when the source has a label column): e.g. XSTest's `safe`/`unsafe`, used for the over-refusal rate.

A row that cannot be used raises a `ValueError` that names the file, the row and the column, rather than being
dropped: a silently shorter prompt set would make two evaluations incomparable.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
from transformers.utils import logging

logger = logging.get_logger(__name__)

# Tried in order, case-insensitively, when no column is named explicitly.
PROMPT_COLUMN_CANDIDATES = ("prompt", "prompts", "goal", "behavior", "question", "instruction", "query", "input")
CATEGORY_COLUMN_CANDIDATES = ("category", "risk_area", "type", "semanticcategory", "harm_category", "category_name")
LABEL_COLUMN_CANDIDATES = ("label", "safety_label")

_TEXT_SUFFIXES = {".txt", ".text"}
_JSON_SUFFIXES = {".json"}
_JSONL_SUFFIXES = {".jsonl", ".ndjson"}
_CSV_SUFFIXES = {".csv": ",", ".tsv": "\t"}
_PARQUET_SUFFIXES = {".parquet"}

# One record of the source and where it came from, for error messages ("line 12", "row 3", "item 0").
_Record = tuple[str, Mapping[str, Any]]


def _read_text_lines(path: Path) -> list[_Record]:
    """One prompt per non-blank line; blank lines are separators, counted and logged."""
    records, blank = [], 0
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            records.append((f"line {line_number}", {"prompt": line.rstrip("\r")}))
        else:
            blank += 1
    if blank:
        logger.info(f"{path}: skipped {blank} blank line(s).")
    return records


def _read_json(path: Path) -> list[_Record]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON (line {error.lineno}, column {error.colno}): {error.msg}") from None
    if isinstance(data, dict):  # {"data": [...]} / {"prompts": [...]}: a single list-valued key holding the rows
        lists = [key for key, value in data.items() if isinstance(value, list)]
        if len(lists) != 1:
            raise ValueError(
                f"{path}: expected a JSON list of records (or an object with exactly one list of records), "
                f"found an object with keys {sorted(data)}."
            )
        data = data[lists[0]]
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of records, found {type(data).__name__}.")
    return [(f"item {index}", _as_record(item, path, f"item {index}")) for index, item in enumerate(data)]


def _read_jsonl(path: Path) -> list[_Record]:
    records = []
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: line {line_number} is not valid JSON: {error.msg}") from None
        records.append((f"line {line_number}", _as_record(item, path, f"line {line_number}")))
    return records


def _read_csv(path: Path, delimiter: str) -> list[_Record]:
    with path.open(encoding="utf-8-sig", newline="") as handle:  # -sig: spreadsheet exports start with a BOM
        reader = csv.DictReader(handle, delimiter=delimiter)
        if not reader.fieldnames:
            raise ValueError(f"{path}: the file is empty (no header row).")
        records = []
        for row in reader:
            # DictReader stores the cells beyond the header under the key None; a short row fills with None.
            if None in row:
                raise ValueError(
                    f"{path}: line {reader.line_num} has {len(reader.fieldnames) + len(row[None])} cells, "
                    f"the header has {len(reader.fieldnames)}."
                )
            records.append((f"line {reader.line_num}", row))
    return records


def _as_record(item: Any, path: Path | str, where: str) -> Mapping[str, Any]:
    if isinstance(item, str):
        return {"prompt": item}
    if isinstance(item, Mapping):
        return item
    raise ValueError(f"{path}: {where} is a {type(item).__name__}; expected an object or a string.")


def _read_dataset(dataset: datasets.Dataset) -> list[_Record]:
    return [(f"row {index}", row) for index, row in enumerate(dataset)]


def _read_source(
    source: str | Path | datasets.Dataset | Sequence[str] | Sequence[Mapping[str, Any]],
    subset: str | None,
    split: str,
) -> tuple[str, list[_Record]]:
    """Return a printable name for `source` and its records."""
    if isinstance(source, datasets.DatasetDict):
        if split not in source:
            raise ValueError(f"The DatasetDict has no split {split!r}; its splits are {list(source)}.")
        source = source[split]
    if isinstance(source, datasets.Dataset):
        return "the given dataset", _read_dataset(source)
    if isinstance(source, Sequence) and not isinstance(source, str):
        return "the given prompts", [
            (f"item {i}", _as_record(item, "the given prompts", f"item {i}")) for i, item in enumerate(source)
        ]
    path = Path(source)
    suffix = path.suffix.lower()
    if path.is_file():
        if suffix in _TEXT_SUFFIXES:
            return str(path), _read_text_lines(path)
        if suffix in _JSON_SUFFIXES:
            return str(path), _read_json(path)
        if suffix in _JSONL_SUFFIXES:
            return str(path), _read_jsonl(path)
        if suffix in _CSV_SUFFIXES:
            return str(path), _read_csv(path, _CSV_SUFFIXES[suffix])
        if suffix in _PARQUET_SUFFIXES:
            return str(path), _read_dataset(datasets.Dataset.from_parquet(str(path)))
        raise ValueError(
            f"{path}: unsupported file type {suffix!r}; use .txt (one prompt per line), .json, .jsonl, .csv, .tsv "
            "or .parquet, or a `datasets` data set."
        )
    if suffix and not path.exists() and suffix in {*_TEXT_SUFFIXES, *_JSON_SUFFIXES, *_JSONL_SUFFIXES, *_CSV_SUFFIXES}:
        raise ValueError(f"{path}: no such file.")
    # A Hub data set id or a local data set folder.
    try:
        loaded = datasets.load_dataset(str(source), name=subset, split=split)
    except Exception as error:  # the `datasets` error types vary by cause; keep the cause, add what we tried
        raise ValueError(
            f"{source}: not a prompt file and could not be loaded with `datasets.load_dataset` "
            f"(subset={subset!r}, split={split!r}): {error}"
        ) from error
    return str(source), _read_dataset(loaded)


def read_records(source: str | Path) -> list[dict[str, Any]]:
    """Every record of a prompt file (`.txt`, `.json`, `.jsonl`, `.csv`, `.tsv`, `.parquet`), every column kept: the
    reader `load_prompts` uses, for callers that need the other columns too (a set's own ids, types or filters).
    A malformed file raises the same `ValueError`, naming the file and the line."""
    if not Path(source).is_file():
        raise ValueError(f"{source}: no such file.")
    return [dict(record) for _, record in _read_source(source, None, "train")[1]]


def _find_column(
    columns: Iterable[str], requested: str | None, candidates: Sequence[str], kind: str, source: str
) -> str | None:
    columns = list(columns)
    if requested is not None:
        if requested not in columns:
            raise ValueError(f"{source}: no {kind} column {requested!r}; the columns are {columns}.")
        return requested
    by_lower = {column.lower(): column for column in columns}
    for candidate in candidates:
        if candidate in by_lower:
            return by_lower[candidate]
    return None


def _check_prompt(value: Any, source: str, where: str, column: str) -> str | list[dict[str, str]]:
    if isinstance(value, str):
        if not value.strip():
            raise ValueError(f"{source}: {where} has an empty prompt in column {column!r}.")
        return value
    if isinstance(value, list) and value and all(isinstance(m, Mapping) for m in value):
        for message in value:
            if not isinstance(message.get("role"), str) or not isinstance(message.get("content"), str):
                raise ValueError(
                    f"{source}: {where}, column {column!r}: every message needs string 'role' and 'content' "
                    f"fields, got {dict(message)}."
                )
        if value[-1]["role"] != "user":
            raise ValueError(
                f"{source}: {where}, column {column!r}: a conversational prompt must end with a user message, "
                f"it ends with a {value[-1]['role']!r} message."
            )
        return [{"role": m["role"], "content": m["content"]} for m in value]
    raise ValueError(
        f"{source}: {where} has a {type(value).__name__} in column {column!r}; expected a non-empty string or a "
        "list of chat messages."
    )


def _optional_text(value: Any, source: str, where: str, column: str) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, (str, int, float, bool)):
        return str(value).strip()
    raise ValueError(f"{source}: {where} has a {type(value).__name__} in column {column!r}; expected text.")


def load_prompts(
    source: str | Path | datasets.Dataset | Sequence[str] | Sequence[Mapping[str, Any]],
    *,
    prompt_column: str | None = None,
    category_column: str | None = None,
    label_column: str | None = None,
    subset: str | None = None,
    split: str = "train",
    limit: int | None = None,
) -> datasets.Dataset:
    """Load an evaluation prompt set into a `Dataset` with a `prompt` and, when present, `category` and `label`.

    Args:
        source: a file (`.txt` one prompt per line, `.json` a list of objects or strings, `.jsonl`, `.csv`, `.tsv`,
            `.parquet`), a `datasets.Dataset`/`DatasetDict`, a list of strings or of dicts, or a Hub data set id or
            local data set folder (loaded with `datasets.load_dataset`).
        prompt_column: column holding the prompt; by default the first of `PROMPT_COLUMN_CANDIDATES` present
            (case-insensitive). Values are strings or conversations (lists of `{"role", "content"}` messages).
        category_column: column holding the harm category; by default the first of `CATEGORY_COLUMN_CANDIDATES`
            present, none if there is none.
        label_column: column holding a safe/unsafe label (XSTest); by default the first of `LABEL_COLUMN_CANDIDATES`
            present, none if there is none.
        subset: configuration name for `datasets.load_dataset`.
        split: split to read from a Hub data set or a `DatasetDict`.
        limit: keep only the first `limit` prompts (logged).

    Raises:
        ValueError: naming the source, the row and the column, for a missing column, an empty or malformed prompt,
            a malformed file, or an unsupported source.
    """
    name, records = _read_source(source, subset, split)
    if not records:
        raise ValueError(f"{name}: no prompts found.")
    columns = list(dict.fromkeys(key for _, record in records for key in record))
    prompt_key = _find_column(columns, prompt_column, PROMPT_COLUMN_CANDIDATES, "prompt", name)
    if prompt_key is None:
        raise ValueError(
            f"{name}: no prompt column found among {columns}; tried {list(PROMPT_COLUMN_CANDIDATES)}. "
            "Name it with `prompt_column=`."
        )
    category_key = _find_column(columns, category_column, CATEGORY_COLUMN_CANDIDATES, "category", name)
    label_key = _find_column(columns, label_column, LABEL_COLUMN_CANDIDATES, "label", name)

    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}.")
        if limit < len(records):
            logger.info(f"{name}: keeping the first {limit} of {len(records)} prompts (limit={limit}).")
            records = records[:limit]

    rows: dict[str, list] = {"prompt": []}
    if category_key is not None:
        rows["category"] = []
    if label_key is not None:
        rows["label"] = []
    for where, record in records:
        if prompt_key not in record:
            raise ValueError(f"{name}: {where} has no {prompt_key!r} field.")
        rows["prompt"].append(_check_prompt(record[prompt_key], name, where, prompt_key))
        if category_key is not None:
            rows["category"].append(_optional_text(record.get(category_key), name, where, category_key))
        if label_key is not None:
            rows["label"].append(_optional_text(record.get(label_key), name, where, label_key))
    kinds = {type(prompt) for prompt in rows["prompt"]}
    if len(kinds) > 1:
        first_text = next(i for i, p in enumerate(rows["prompt"]) if isinstance(p, str))
        first_chat = next(i for i, p in enumerate(rows["prompt"]) if isinstance(p, list))
        raise ValueError(
            f"{name}: column {prompt_key!r} mixes plain-text prompts ({records[first_text][0]}) and conversations "
            f"({records[first_chat][0]}); use one form."
        )
    logger.info(
        f"{name}: {len(rows['prompt'])} prompts (prompt column {prompt_key!r}, category column {category_key!r}, "
        f"label column {label_key!r})."
    )
    return datasets.Dataset.from_dict(rows)


def prompt_text(prompt: str | Sequence[Mapping[str, str]]) -> str:
    """The text of a prompt for tables and plots: the string itself, or the last user message of a conversation."""
    if isinstance(prompt, str):
        return prompt
    return next(m["content"] for m in reversed(prompt) if m["role"] == "user")
