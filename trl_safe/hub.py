"""Publishing to the Hugging Face Hub: converted preference data, evaluation results, and policies with their scores.

Every push is **one commit** made with `huggingface_hub.HfApi` (`create_repo`, then `create_commit`): the data files,
the card and any attachments (summary, report, plots) land together, so a repository never shows data without its
card or a card describing files that are not there yet. Cards come from the templates in `model_cards/`:

- `preference_dataset_card`: a data set made by `trl_safe.data`'s adapters (helpfulness / harmlessness / prompts);
- `evaluation_dataset_card`: a `SafetyReport`'s generations, metrics and plots;
- `add_evaluation_to_model_card`: adds a policy's evaluation to its model card, as an `## Evaluation` section and as
  `model-index` metadata (the Hub's evaluation-results widget). `evaluation_summary_markdown` is the section's text,
  also accepted by the policy card template as `evaluation_summary`.

Data sets are written as parquet shards under `data/<split>-<i>-of-<n>.parquet`, and the card's metadata declares
them (`configs`, `dataset_info` in the `datasets` library's own format), so `load_dataset(repo_id)` reads them back
with their features.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import datasets
from datasets.info import DatasetInfo, DatasetInfosDict
from datasets.splits import SplitDict, SplitInfo
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import CommitInfo, CommitOperationAdd, DatasetCard, EvalResult, HfApi, ModelCard
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from trl_safe.evaluation.report import GENERATION_FIELDS, PLOT_FILES, SafetyReport, format_percent
from trl_safe.model_card import render_dataset_card

EVALUATION_SPLIT = "generations"

# Descriptions of the columns trl-safe's data adapters and evaluation produce, for the data cards.
COLUMN_DESCRIPTIONS = {
    "prompt": "the user prompt (text, or a list of chat messages)",
    "chosen": "the preferred response: more helpful (helpfulness) or safer (harmlessness)",
    "rejected": "the other response",
    "is_chosen_safe": "whether the chosen response is safe (harmlessness labels; s = -1 if safe, +1 if unsafe)",
    "is_rejected_safe": "whether the rejected response is safe",
    "model": "name of the evaluated policy",
    "prompt_index": "row of the answer: the prompt's position in the prompt set, times the samples per prompt, plus "
    "the sample's number (the same for every policy)",
    "prompt_id": "position of the prompt in the prompt set (several rows share it when prompts were sampled "
    "several times)",
    "category": "harm category of the prompt, from the prompt set",
    "label": "label of the prompt from the prompt set (XSTest: safe / unsafe)",
    "completion": "the policy's answer, cut at its first EOS",
    "reward": "reward-model score R(y, x), read at the final token (higher: more helpful)",
    "cost": "cost-model score C(y, x), read at the final token (> 0: unsafe)",
    "refused": "whether the refusal detector flagged the answer as a refusal",
    "finished": "whether the policy ended its answer with EOS within the token budget",
    "num_tokens": "generated tokens before EOS",
}


def _size_category(num_rows: int) -> str:
    """The Hub's `size_categories` bucket (n<1K, 1K<n<10K, ...)."""
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")]
    bounds += [(10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]
    return next((label for bound, label in bounds if num_rows < bound), "n>1B")


def _as_dataset_dict(dataset: datasets.Dataset | datasets.DatasetDict, split: str) -> datasets.DatasetDict:
    if isinstance(dataset, datasets.DatasetDict):
        return dataset
    if isinstance(dataset, datasets.Dataset):
        return datasets.DatasetDict({split: dataset})
    raise ValueError(
        f"Expected a `datasets.Dataset` or `DatasetDict`, got {type(dataset).__name__}; a streaming data set must be "
        "materialised first (`Dataset.from_generator`)."
    )


def _column_rows(names: list[str]) -> list[tuple[str, str]]:
    return [(name, COLUMN_DESCRIPTIONS.get(name, "")) for name in names]


def preference_dataset_card(
    dataset: datasets.Dataset | datasets.DatasetDict,
    *,
    pretty_name: str,
    repo_id: str = "<repo_id>",
    view: str | None = None,
    source_dataset: str | None = None,
    conversion: str | None = None,
    dropped: Mapping[str, int] | None = None,
    license: str | None = None,
    tags: list[str] | None = None,
) -> DatasetCard:
    """The card of a data set converted by `trl_safe.data` (rendered from `preference_dataset_card.md`).

    Args:
        dataset: the converted data (its splits, row counts and columns go into the card).
        pretty_name: title of the card.
        repo_id: where it will be pushed (shown in the usage snippet).
        view: `"helpfulness"`, `"harmlessness"` or `"prompts"`; inferred from the columns when None.
        source_dataset: Hub id of the source data (e.g. `"PKU-Alignment/PKU-SafeRLHF"`), listed in
            `source_datasets`.
        conversion: the call that produced the data, shown verbatim (e.g. `"to_harmlessness_preferences(...)"`).
        dropped: rows left out per split (e.g. from `trl_safe.data.DroppedRows`).
        license: licence id of the data; keep the source's.
        tags: extra tags (after `trl-safe`, `safe-rlhf`, and one for the view).
    """
    splits = _as_dataset_dict(dataset, "train")
    columns = next(iter(splits.values())).column_names
    if view is None:
        if "is_chosen_safe" in columns:
            view = "harmlessness"
        elif "chosen" in columns:
            view = "helpfulness"
        elif columns == ["prompt"]:
            view = "prompts"
    first_row = next(iter(splits.values()))[0] if len(next(iter(splits.values()))) else {}
    conversational = isinstance(first_row.get("prompt"), list)
    view_tags = {"helpfulness": ["preference", "helpfulness"], "harmlessness": ["preference", "harmlessness"]}
    card = render_dataset_card(
        "preference_dataset_card.md",
        pretty_name=pretty_name,
        tags=[*view_tags.get(view or "", []), *(["prompts"] if view == "prompts" else []), *(tags or [])],
        license=license,
        repo_id=repo_id,
        view=view,
        source_dataset=source_dataset,
        conversion=conversion,
        dropped={split: count for split, count in (dropped or {}).items() if count},
        conversational=conversational,
        splits={name: split.num_rows for name, split in splits.items()},
        columns=_column_rows(columns),
    )
    if source_dataset:
        card.data.source_datasets = [source_dataset]
    card.data.task_categories = (
        ["text-classification"] if view in ("helpfulness", "harmlessness") else ["text-generation"]
    )
    card.data.size_categories = [_size_category(sum(split.num_rows for split in splits.values()))]
    return card


def _demote_headings(markdown: str) -> str:
    """Push every markdown heading one level down, to nest a document under a card section."""
    return re.sub(r"^(#{1,5}) ", r"#\1 ", markdown, flags=re.MULTILINE)


def _plot_paths(plot_files: Mapping[str, str]) -> dict[str, str]:
    return {name: f"plots/{file}" for name, file in plot_files.items()}


def evaluation_dataset_card(
    report: SafetyReport,
    *,
    pretty_name: str | None = None,
    repo_id: str = "<repo_id>",
    plot_files: Mapping[str, str] | None = None,
    license: str | None = None,
    tags: list[str] | None = None,
) -> DatasetCard:
    """The card of pushed evaluation results (rendered from `evaluation_dataset_card.md`).

    Args:
        report: the evaluation.
        pretty_name: title (default: "Safety evaluation of <models>").
        repo_id: where it will be pushed (shown in the usage snippet).
        plot_files: plot name -> path in the repository, for the images in the card (default: none).
        license: licence id of the results; the prompts' licence applies to them.
        tags: extra tags (after `trl-safe`, `safe-rlhf`, `safety-evaluation`, `red-teaming`).
    """
    meta = report.metadata
    plot_files = dict(plot_files or {})
    card = render_dataset_card(
        "evaluation_dataset_card.md",
        pretty_name=pretty_name or f"Safety evaluation of {', '.join(report.models)}",
        tags=["safety-evaluation", "red-teaming", *(tags or [])],
        license=license,
        repo_id=repo_id,
        models=report.models,
        prompt_source=meta.get("prompt_source", "prompts"),
        num_prompts=meta.get("num_prompts"),
        reward_model=meta.get("reward_model", "?"),
        cost_model=meta.get("cost_model", "?"),
        plot_paths=list(plot_files.values()),
        columns=_column_rows(list(GENERATION_FIELDS)),
        report_markdown=_demote_headings(report.to_markdown(plot_files)).split("\n", 1)[1].lstrip(),
    )
    card.data.task_categories = ["text-generation"]
    card.data.size_categories = [_size_category(len(report.generations))]
    return card


def _dataset_operations(
    splits: datasets.DatasetDict, card: DatasetCard, folder: Path, max_shard_size: int
) -> list[CommitOperationAdd]:
    """Write parquet shards into `folder`, declare them in `card`'s metadata, and return the commit operations."""
    operations, split_infos = [], SplitDict()
    for split, data in splits.items():
        if not re.fullmatch(r"\w+(\.\w+)*", split):
            raise ValueError(f"Split name {split!r} is not valid on the Hub (letters, digits, _ and . only).")
        num_shards = max(1, math.ceil(data.data.nbytes / max_shard_size))
        for index in range(num_shards):
            path_in_repo = f"data/{split}-{index:05d}-of-{num_shards:05d}.parquet"
            local = folder / path_in_repo
            local.parent.mkdir(parents=True, exist_ok=True)
            data.shard(num_shards=num_shards, index=index, contiguous=True).to_parquet(str(local))
            operations.append(CommitOperationAdd(path_in_repo=path_in_repo, path_or_fileobj=str(local)))
        split_infos.add(SplitInfo(name=split, num_bytes=data.data.nbytes, num_examples=data.num_rows))
    features = next(iter(splits.values())).features
    for split, data in splits.items():
        if data.features != features:
            raise ValueError(f"Split {split!r} has features {data.features}, the others have {features}.")
    MetadataConfigs(
        {"default": {"data_files": [{"split": split, "path": f"data/{split}-*"} for split in splits]}}
    ).to_dataset_card_data(card.data)
    info = DatasetInfo(
        features=features, splits=split_infos, dataset_size=sum(s.num_bytes for s in split_infos.values())
    )
    DatasetInfosDict({"default": info}).to_dataset_card_data(card.data)
    return operations


def _file_operations(files: Mapping[str, str | Path | bytes]) -> list[CommitOperationAdd]:
    operations = []
    for path_in_repo, content in files.items():
        if isinstance(content, (str, Path)) and not Path(content).is_file():
            raise ValueError(f"Cannot upload {path_in_repo!r}: {content} is not a file.")
        operations.append(
            CommitOperationAdd(
                path_in_repo=path_in_repo, path_or_fileobj=content if isinstance(content, bytes) else str(content)
            )
        )
    return operations


def _commit(
    repo_id: str,
    repo_type: str,
    operations: list[CommitOperationAdd],
    *,
    private: bool | None,
    token: str | bool | None,
    commit_message: str,
) -> CommitInfo:
    api = HfApi(token=token)
    repo_url = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    return api.create_commit(
        repo_id=repo_url.repo_id, repo_type=repo_type, operations=operations, commit_message=commit_message
    )


def push_dataset_to_hub(
    dataset: datasets.Dataset | datasets.DatasetDict,
    repo_id: str,
    *,
    card: DatasetCard | None = None,
    split: str = "train",
    additional_files: Mapping[str, str | Path | bytes] | None = None,
    private: bool | None = None,
    token: str | bool | None = None,
    commit_message: str | None = None,
    max_shard_size: int = 500 * 2**20,
) -> CommitInfo:
    """Push a data set (parquet shards), its card and optional extra files to a Hub data set repository, in one commit.

    Args:
        dataset: a `Dataset` (pushed as `split`) or a `DatasetDict` (every split).
        repo_id: `namespace/name` of the data set repository (created if missing).
        card: the data card (e.g. from `preference_dataset_card`); its metadata gains the `configs` and
            `dataset_info` that declare the files. Default: a card rendered from `preference_dataset_card.md`.
        split: split name for a `Dataset`.
        additional_files: `{path in repo: local path or bytes}` uploaded in the same commit.
        private: visibility if the repository is created; token: Hub token (default: the logged-in user's).
        commit_message: default "Upload data set with trl-safe".
        max_shard_size: bytes of in-memory Arrow data per parquet shard.
    """
    splits = _as_dataset_dict(dataset, split)
    if card is None:
        card = preference_dataset_card(splits, pretty_name=repo_id.split("/")[-1], repo_id=repo_id)
    card = DatasetCard(str(card))  # a copy: the caller's card keeps its metadata
    with tempfile.TemporaryDirectory() as folder:
        operations = _dataset_operations(splits, card, Path(folder), max_shard_size)
        operations += _file_operations(additional_files or {})
        operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(card).encode("utf-8")))
        return _commit(
            repo_id,
            "dataset",
            operations,
            private=private,
            token=token,
            commit_message=commit_message or "Upload data set with trl-safe",
        )


def push_evaluation_to_hub(
    report: SafetyReport,
    repo_id: str,
    *,
    card: DatasetCard | None = None,
    plots: bool = True,
    training_log: Any = None,
    private: bool | None = None,
    token: str | bool | None = None,
    commit_message: str | None = None,
) -> CommitInfo:
    """Push a `SafetyReport` as a Hub data set: generations (split `generations`), `summary.json`, `report.md`,
    the plots under `plots/`, and the evaluation card, in one commit.

    Args:
        report: the evaluation.
        repo_id: `namespace/name` of the data set repository (created if missing).
        card: the card (default: `evaluation_dataset_card(report, ...)`).
        plots: render and upload the plots.
        training_log: a run's `log_history`/`trainer_state.json`/folder, to also upload the training curves.
        private, token, commit_message: as in `push_dataset_to_hub`.
    """
    from trl_safe.evaluation.plots import save_figure

    generations = datasets.Dataset.from_list([{key: g[key] for key in GENERATION_FIELDS} for g in report.generations])
    with tempfile.TemporaryDirectory() as folder:
        files: dict[str, str | Path | bytes] = {
            "summary.json": json.dumps(
                report.to_dict(include_generations=False), indent=2, ensure_ascii=False
            ).encode()
        }
        plot_files: dict[str, str] = {}
        if plots:
            for name, figure in report.plot(training_log).items():
                plot_files[name] = f"plots/{PLOT_FILES[name]}"
                files[plot_files[name]] = save_figure(figure, Path(folder) / PLOT_FILES[name])
        files["report.md"] = report.to_markdown(plot_files).encode("utf-8")
        if card is None:
            card = evaluation_dataset_card(report, repo_id=repo_id, plot_files=plot_files)
        return push_dataset_to_hub(
            generations,
            repo_id,
            card=card,
            split=EVALUATION_SPLIT,
            additional_files=files,
            private=private,
            token=token,
            commit_message=commit_message or "Upload safety evaluation with trl-safe",
        )


def _model_in_report(report: SafetyReport, model: str | None) -> str:
    if model is None:
        return report.models[-1]
    if model not in report.models:
        raise ValueError(f"No model {model!r} in the report; it has {report.models}.")
    return model


def evaluation_summary_markdown(report: SafetyReport, model: str | None = None) -> str:
    """A short markdown summary of `model`'s evaluation (default: the report's last model), for its model card."""
    model = _model_in_report(report, model)
    meta, s = report.metadata, report.summaries[model]
    lines = [
        f"Evaluated with trl-safe's `evaluate_safety` on `{meta.get('prompt_source', 'prompts')}` "
        f"({meta.get('num_prompts')} prompts), scored by the reward model `{meta.get('reward_model', '?')}` "
        f"(helpfulness) and the cost model `{meta.get('cost_model', '?')}` (harmlessness; cost > 0 is unsafe).",
        "",
        "| metric | value |",
        "| --- | --- |",
        f"| reward (mean ± std) | {s['reward_mean']:.3f} ± {s['reward_std']:.3f} |",
        f"| cost (mean ± std) | {s['cost_mean']:.3f} ± {s['cost_std']:.3f} |",
        f"| unsafe ratio (cost > 0) | {format_percent(s['unsafe_ratio'])} |",
    ]
    if "refusal_rate" in s:
        lines.append(f"| refusal rate | {format_percent(s['refusal_rate'])} |")
    if s.get("over_refusal_rate") is not None:
        lines.append(f"| over-refusal rate (safe prompts) | {format_percent(s['over_refusal_rate'])} |")
    for comparison in report.arena:
        if model not in (comparison.baseline, comparison.candidate):
            continue
        t, c = comparison.transitions, comparison
        lines += [
            "",
            f"Against `{c.baseline}`, `{c.candidate}` wins {format_percent(c.reward.win_rate)} of the prompts by "
            f"reward (ties half). Safety transitions from `{c.baseline}` to `{c.candidate}`: "
            f"safe→safe {t['safe->safe']}, safe→unsafe {t['safe->unsafe']}, "
            f"unsafe→safe {t['unsafe->safe']}, unsafe→unsafe {t['unsafe->unsafe']}.",
        ]
    if report.ratings:
        ratings = ", ".join(f"{aspect} {r.ratings[model]:.0f}" for aspect, r in report.ratings.items())
        lines += ["", f"Bradley-Terry (Elo-scale) ratings among {len(report.models)} models: {ratings}."]
    return "\n".join(lines)


def _evaluation_results(report: SafetyReport, model: str) -> list[EvalResult]:
    meta, s = report.metadata, report.summaries[model]
    source = str(meta.get("prompt_source", "prompts"))
    metrics = [
        ("reward_mean", "Mean reward", s["reward_mean"]),
        ("cost_mean", "Mean cost", s["cost_mean"]),
        ("unsafe_ratio", "Unsafe ratio (cost > 0)", s["unsafe_ratio"]),
    ]
    if s.get("over_refusal_rate") is not None:
        metrics.append(("over_refusal_rate", "Over-refusal rate", s["over_refusal_rate"]))
    return [
        EvalResult(
            task_type="text-generation",
            task_name="Safety evaluation (Safe RLHF)",
            dataset_type=source,
            dataset_name=Path(source).name or source,
            metric_type=metric_type,
            metric_name=metric_name,
            metric_value=round(float(value), 4),
        )
        for metric_type, metric_name, value in metrics
    ]


def add_evaluation_to_model_card(
    card: ModelCard | str | Path, report: SafetyReport, *, model: str | None = None, model_name: str | None = None
) -> ModelCard:
    """Return `card` with `model`'s evaluation as an `## Evaluation` section and as `model-index` metadata.

    An existing `## Evaluation` section is replaced (its text up to the next heading); otherwise the section goes
    before `### Framework versions` or `## Citation`, where the policy card template puts it, or at the end.

    Args:
        card: a `ModelCard`, the text of a card, or the path of a `README.md` (e.g. a trainer's output folder's).
        report: the evaluation.
        model: the policy's name in the report (default: the report's last model).
        model_name: name for `model-index` if the card has none (default: `model`).
    """
    model = _model_in_report(report, model)
    if isinstance(card, Path) or (
        isinstance(card, str) and not card.lstrip().startswith("---") and Path(card).is_file()
    ):
        card = ModelCard.load(Path(card))
    elif isinstance(card, str):
        card = ModelCard(card)
    else:
        card = ModelCard(str(card))  # a copy
    section = "## Evaluation\n\n" + evaluation_summary_markdown(report, model) + "\n"
    text = card.text
    # The section's text runs to the next heading of any level (the generated text has none).
    existing = re.search(r"^## Evaluation[^\n]*\n.*?(?=^#{1,6} |\Z)", text, flags=re.MULTILINE | re.DOTALL)
    if existing:
        text = text[: existing.start()] + section + "\n" + text[existing.end() :]
    else:  # where the trl-safe templates put it: before the framework versions and the citation
        anchor = re.search(r"^(### Framework versions|## Citation)", text, flags=re.MULTILINE)
        position = anchor.start() if anchor else len(text)
        text = text[:position].rstrip("\n") + "\n\n" + section + "\n" + text[position:]
    card.text = text.rstrip("\n") + "\n"
    card.data.model_name = card.data.model_name or model_name or model
    card.data.eval_results = _evaluation_results(report, model)
    return card


def push_model_to_hub(
    model: PreTrainedModel | str | Path,
    repo_id: str,
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
    card: ModelCard | str | Path | None = None,
    report: SafetyReport | None = None,
    evaluated_model: str | None = None,
    private: bool | None = None,
    token: str | bool | None = None,
    commit_message: str | None = None,
) -> CommitInfo:
    """Push a policy (a model, or a saved model folder such as a trainer's output folder) with its card, in one commit.

    With `report`, the card gains the evaluation (`add_evaluation_to_model_card`) before upload. Unlike
    `model.push_to_hub`, which replaces the README with a generic card, this keeps the trl-safe card.

    Args:
        model: a `PreTrainedModel` (saved with `save_pretrained`) or a folder to upload as it is.
        repo_id: `namespace/name` of the model repository (created if missing).
        tokenizer: saved beside a model instance.
        card: the model card (default: the folder's `README.md`; required for a model instance without one).
        report, evaluated_model: the evaluation to add and the policy's name in it (default: the last model).
        private, token, commit_message: as in `push_dataset_to_hub`.
    """
    with tempfile.TemporaryDirectory() as scratch:
        if isinstance(model, (str, Path)):
            folder = Path(model)
            if not folder.is_dir():
                raise ValueError(f"{folder} is not a folder.")
        else:
            folder = Path(scratch)
            model.save_pretrained(folder)
            if tokenizer is not None:
                tokenizer.save_pretrained(folder)
        if card is None:
            if not (folder / "README.md").is_file():
                raise ValueError(f"No model card: pass `card=` or put a README.md in {folder}.")
            card = folder / "README.md"
        if report is not None:
            card = add_evaluation_to_model_card(card, report, model=evaluated_model)
        elif not isinstance(card, ModelCard):
            card = ModelCard.load(Path(card)) if Path(str(card)).is_file() else ModelCard(str(card))
        files = sorted(
            path
            for path in folder.rglob("*")
            if path.is_file()
            and path.name != "README.md"
            and not any(part.startswith((".", "_")) for part in path.relative_to(folder).parts)
            and not path.relative_to(folder).parts[0].startswith("checkpoint-")
        )
        operations = [
            CommitOperationAdd(path_in_repo=p.relative_to(folder).as_posix(), path_or_fileobj=str(p)) for p in files
        ]
        operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(card).encode("utf-8")))
        return _commit(
            repo_id,
            "model",
            operations,
            private=private,
            token=token,
            commit_message=commit_message or "Upload model with trl-safe",
        )
