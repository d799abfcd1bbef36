"""The public prompt sets as one held-out evaluation file, checked for overlap with every prompt the demo trains on.

The demo's own held-out split (111 prompts, 29 of them look-alikes) decides the demo's conditions, and with 29
look-alikes one answer is 3.4 points. The public sets in `../shared/data` are larger and written by others, so they
are the final report's second reading: XSTest v2's 250 safe prompts that look unsafe (over-refusal, the look-alike
condition read on 250 prompts instead of 29) and its 200 unsafe contrasts, the Safe RLHF paper's 83 red-team
prompts, AdvBench, HarmBench's standard behaviours and do-not-answer. They are for evaluation only: never train on
them or choose settings by their scores.

This script writes them in the form `trl-safe evaluate` and the pipeline's `--eval_prompts` read (`prompt`, `label`
safe/unsafe, `category`, plus `source` and `source_id`). XSTest's safe prompts get the category `lookalike`, so that
the outcome table's look-alike row (`trl_safe.evaluation.outcome.LOOKALIKE_CATEGORIES`) reads them; their XSTest type
stays in `xstest_type`. Every prompt is compared with every prompt of the demo's data files (train and test): one
that matches a demo prompt after normalisation, or shares at least `--overlap_threshold` of its content words with
one (Jaccard), is left out, counted, and listed in `overlap.json` beside the output, so the report never reads a
prompt the demo trained on under another spelling.

    python benchmarks/public_prompts.py --sets xstest safe_rlhf_eval --output outputs/public/prompts.jsonl
    python benchmarks/demo_seeds.py --seeds 42 43 44 --no_share_scorers --eval_samples 0 --output_dir outputs/public \\
        -- --eval_prompts outputs/public/prompts.jsonl --stages evaluate ...   # with the run's folders in place
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from trl_safe.evaluation import read_records

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
DEMO_DATA_DIR = Path(__file__).resolve().parents[1] / "trl_safe" / "resources" / "demo"

# Words too common to say two prompts are about the same thing.
STOP_WORDS = frozenset(
    "a an the and or but if of to in on at by for with from about into as is are was were be been being do does did "
    "i me my you your we our they them their he him his she her it its this that these those what which who whom how "
    "why when where can could would should will shall may might must not no so than then there here just some any "
    "all also very get got make want like please tell give write".split()
)


def _xstest(records: list[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for record in records:
        if record["label"] not in ("safe", "unsafe"):
            raise ValueError(f"xstest row id={record['id']}: label {record['label']!r} is neither safe nor unsafe.")
        category = "lookalike" if record["label"] == "safe" else f"xstest_{record['type']}"
        yield {"prompt": record["prompt"], "label": record["label"], "category": category,
               "source_id": record["id"], "xstest_type": record["type"]}  # fmt: skip


def _safe_rlhf_eval(records: list[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for index, record in enumerate(records):
        yield {"prompt": record["prompt"], "label": "unsafe", "category": f"safe_rlhf: {record['category']}",
               "source_id": str(index)}  # fmt: skip


def _advbench(records: list[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for index, record in enumerate(records):
        yield {"prompt": record["goal"], "label": "unsafe", "category": "advbench", "source_id": str(index)}


def _harmbench(records: list[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    """The standard behaviours only: the contextual ones need their context string, the copyright ones a different
    judge (does the answer reproduce the text?)."""
    for record in records:
        if record["FunctionalCategory"] == "standard":
            category, behaviour = f"harmbench: {record['SemanticCategory']}", record["BehaviorID"]
            yield {"prompt": record["Behavior"], "label": "unsafe", "category": category, "source_id": behaviour}


def _do_not_answer(records: list[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for index, record in enumerate(records):
        yield {"prompt": record["prompt"], "label": "unsafe", "category": f"do_not_answer: {record['risk_area']}",
               "source_id": str(index)}  # fmt: skip


# name: (file in the data folder, its reader)
PUBLIC_SETS: dict[str, tuple[str, Callable[[list[dict[str, Any]]], Iterable[dict[str, Any]]]]] = {
    "xstest": ("xstest_prompts.csv", _xstest),
    "safe_rlhf_eval": ("safe_rlhf_eval_problem.json", _safe_rlhf_eval),
    "advbench": ("advbench_harmful_behaviors.csv", _advbench),
    "harmbench": ("harmbench_behaviors_text_all.csv", _harmbench),
    "do_not_answer": ("do_not_answer_prompts.jsonl", _do_not_answer),
}


def load_public_prompts(data_dir: Path, sets: Iterable[str]) -> list[dict[str, Any]]:
    """Every prompt of `sets`, in file order, as `{prompt, label, category, source, source_id, ...}`."""
    prompts = []
    for name in sets:
        if name not in PUBLIC_SETS:
            raise ValueError(f"Unknown prompt set {name!r}; choose from {list(PUBLIC_SETS)}.")
        filename, reader = PUBLIC_SETS[name]
        path = data_dir / filename
        if not path.is_file():
            raise FileNotFoundError(f"{name}: {path} not found (--data_dir is the shared data folder).")
        for row in reader(read_records(path)):
            if not isinstance(row["prompt"], str) or not row["prompt"].strip():
                raise ValueError(f"{name} ({path.name}) row {row['source_id']}: empty prompt.")
            prompts.append({**row, "source": name})
    return prompts


def normalize(text: str) -> str:
    """Lower case, letters and digits only, single spaces: two spellings of one prompt compare equal."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def content_words(text: str) -> frozenset[str]:
    return frozenset(word for word in normalize(text).split() if word not in STOP_WORDS)


def demo_prompts(demo_dir: Path = DEMO_DATA_DIR) -> dict[str, str]:
    """Every prompt in the demo's data files (train and test, every configuration): normalised text -> the file."""
    prompts = {}
    for path in sorted(demo_dir.glob("*.jsonl")):
        for record in read_records(path):
            prompts.setdefault(normalize(record["prompt"]), path.name)
    return prompts


def find_overlaps(prompts: list[dict[str, Any]], reference: dict[str, str], threshold: float) -> list[dict[str, Any]]:
    """The prompts equal to a reference prompt after `normalize`, or whose content words overlap one's by a Jaccard
    index of at least `threshold`; each with its closest reference prompt and the index."""
    reference_words = [(text, content_words(text)) for text in reference]
    overlaps = []
    for index, row in enumerate(prompts):
        text = normalize(row["prompt"])
        if text in reference:
            overlaps.append({"index": index, "prompt": row["prompt"], "source": row["source"], "match": text,
                             "demo_file": reference[text], "jaccard": 1.0})  # fmt: skip
            continue
        words = content_words(text)
        if not words:
            continue
        best, best_text = 0.0, ""
        for other_text, other in reference_words:
            if other:
                jaccard = len(words & other) / len(words | other)
                if jaccard > best:
                    best, best_text = jaccard, other_text
        if best >= threshold:
            overlaps.append({"index": index, "prompt": row["prompt"], "source": row["source"], "match": best_text,
                             "demo_file": reference[best_text], "jaccard": round(best, 3)})  # fmt: skip
    return overlaps


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--data_dir", type=Path, default=DEFAULT_DATA_DIR, help="The shared data folder.")
    parser.add_argument("--sets", nargs="+", default=["xstest", "safe_rlhf_eval"], choices=list(PUBLIC_SETS))
    parser.add_argument(
        "--overlap_threshold",
        type=float,
        default=0.5,
        help="Leave out a prompt whose content words overlap a demo prompt's by at least this Jaccard index.",
    )
    parser.add_argument("--output", type=Path, required=True, help="The prompt file to write (.jsonl).")
    return parser


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = make_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if not 0 < args.overlap_threshold <= 1:
        raise SystemExit(f"--overlap_threshold must be in (0, 1], got {args.overlap_threshold}.")
    prompts = load_public_prompts(args.data_dir, args.sets)
    overlaps = find_overlaps(prompts, demo_prompts(), args.overlap_threshold)
    left_out = {overlap["index"] for overlap in overlaps}
    seen: dict[str, int] = {}
    for index, row in enumerate(prompts):  # a prompt in two sets (or twice in one) would be counted twice
        text = normalize(row["prompt"])
        if text in seen and index not in left_out:
            overlaps.append(
                {"index": index, "prompt": row["prompt"], "source": row["source"], "duplicate_of": seen[text]}
            )
            left_out.add(index)
        seen.setdefault(text, index)
    kept = [row for index, row in enumerate(prompts) if index not in left_out]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in kept), encoding="utf-8")
    overlap_file = args.output.with_name("overlap.json")
    overlap_file.write_text(json.dumps(overlaps, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    counts = Counter((row["source"], row["label"]) for row in kept)
    print(f"{len(kept)} of {len(prompts)} prompts written to {args.output}:")
    for (source, label), count in sorted(counts.items()):
        print(f"  {source:15s} {label:6s} {count}")
    print(f"{len(overlaps)} left out (listed in {overlap_file}):")
    for overlap in overlaps:
        reason = (
            f"duplicate of prompt {overlap['duplicate_of']}"
            if "duplicate_of" in overlap
            else f"Jaccard {overlap['jaccard']:.2f} with {overlap['demo_file']}: {overlap['match']!r}"
        )
        print(f"  [{overlap['source']}] {overlap['prompt']!r}: {reason}")
    return kept


if __name__ == "__main__":
    main()
