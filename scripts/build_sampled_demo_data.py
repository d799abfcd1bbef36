"""Build the policy-sampled demo pairs from the prompts, SmolLM2's raw answers and the hand labels.

    python scripts/build_sampled_demo_data.py          # rewrites trl_safe/resources/demo/sampled_{train,test}.jsonl,
                                                       # round2_train.jsonl, round3_train.jsonl,
                                                       # contrast_train.jsonl, round4_train.jsonl,
                                                       # round5_train.jsonl,
                                                       # twins_train.jsonl, declines_train.jsonl,
                                                       # twins_sampled_train.jsonl and
                                                       # lookalikes_{train,test,train_more}.jsonl
    python scripts/build_sampled_demo_data.py --report # ... and prints the label mix and the judge's agreement

Inputs (in `data/demo_sampled/`, outside the wheel; see docs/demo_data.md, "Policy-sampled pairs"):

- `prompts.jsonl`: the authored prompts (`id, category, prompt_label, prompt`);
- `raw_samples*.jsonl`: SmolLM2-135M-Instruct's sampled answers (`scripts/sample_demo_answers.py`), two per prompt,
  `answer_id` `<prompt id>.s0` / `.s1`;
- `labels.jsonl`: one line per labelled prompt: `prompt_id`, `safe` (`[bool, bool]`, answers s0 and s1), `better`
  (0/1, the more helpful answer) and, only when both answers are unsafe, `safer` (0/1, the less harmful one).

The later rounds (`data/demo_round2/` to `data/demo_round5/`) have the same `raw_samples.jsonl` and `labels.jsonl`,
for answers sampled from a trained policy to round one's train prompts; the labels of rounds three to five also say
which answers decline the request (`refusal`, two booleans).

The contrast pairs (`contrast_train.jsonl`) need no new labels: each answer of round three labelled as declining a
harmless request, against the starting policy's own more helpful answer to the same prompt (round one's `better`,
labelled safe). Both are safe; the answer is the better and the safer one (`contrast_answer_vs_decline`). Round three's
own pairs hold 25 such contrasts; the cost model trained on them still rated a decline of a harmless request safer
than the start's answer (docs/demo_outcome.md), and these 49 pairs state the same preference once per decline, against
the answer the policy starts from. A decline that round one labelled unsafe, or a start answer the refusal detector
flags, is an error.

Output: PKU-SafeRLHF rows with the same columns as the templated demo data. The pair is (s0, s1) in that order;
`safer_response_id` is the safe answer when exactly one is safe, `better_response_id` when both are safe (no
harmlessness preference, as in the templated data), and the labelled `safer` when both are unsafe. The split is by
prompt: within each category, `TEST_FRACTION` of the labelled prompts (rounded, at least one) go to `test`, drawn
with `random.Random(SEED)` from the prompt ids in sorted order. Prompts without labels or without both answers are
counted and listed (`unsampled_prompts`: the sampling run did not reach them; `unlabelled_prompts`), never silently
left out. Deterministic: `tests/test_demo_sampled.py` rebuilds and compares.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter, defaultdict
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIR = REPO_ROOT / "data" / "demo_sampled"
ROUND2_DIR = REPO_ROOT / "data" / "demo_round2"
ROUND3_DIR = REPO_ROOT / "data" / "demo_round3"
ROUND4_DIR = REPO_ROOT / "data" / "demo_round4"
ROUND5_DIR = REPO_ROOT / "data" / "demo_round5"
TWINS_DIR = REPO_ROOT / "data" / "demo_twins"
TWINS_SAMPLED_DIR = REPO_ROOT / "data" / "demo_twins_sampled"
DECLINES_DIR = REPO_ROOT / "data" / "demo_declines"
LOOKALIKES_DIR = REPO_ROOT / "data" / "demo_lookalikes"
TEMPLATES_FILE = REPO_ROOT / "data" / "demo" / "templates.yaml"
# The kinds of look-alike in `data/demo_lookalikes/` (XSTest's published taxonomy names the same kinds; the prompts are
# the project's own): a harmful-sounding act in a game, story, stage or sport; private-sounding details of fictional
# characters; documented facts about public figures and institutions; what a harmful-sounding term means; history.
LOOKALIKE_KINDS = (
    "safe_context",
    "fictional_privacy",
    "public_figure",
    "definition",
    "history",
    "figurative",
    "protective",  # train_more.yaml only: guarding against, spotting or reporting the harm the words name
)
OUTPUT_DIR = REPO_ROOT / "trl_safe" / "resources" / "demo"
SEED = 20261202
TEST_FRACTION = 0.25
SAMPLE_IDS = ("s0", "s1")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--source_dir", type=Path, default=SOURCE_DIR, help="prompts, raw samples and labels")
    parser.add_argument("--round2_dir", type=Path, default=ROUND2_DIR, help="second round's raw samples and labels")
    parser.add_argument("--round3_dir", type=Path, default=ROUND3_DIR, help="third round's raw samples and labels")
    parser.add_argument("--round4_dir", type=Path, default=ROUND4_DIR, help="fourth round's raw samples and labels")
    parser.add_argument("--round5_dir", type=Path, default=ROUND5_DIR, help="fifth round's raw samples and labels")
    parser.add_argument(
        "--twins_dir", type=Path, default=TWINS_DIR, help="look-alike twins: prompts, answers, choices"
    )
    parser.add_argument(
        "--twins_sampled_dir",
        type=Path,
        default=TWINS_SAMPLED_DIR,
        help="look-alike twins of the sampled pairs' harmful train prompts: prompts, answers, choices",
    )
    parser.add_argument(
        "--declines_dir", type=Path, default=DECLINES_DIR, help="written declines to the harmful train prompts"
    )
    parser.add_argument(
        "--lookalikes_dir",
        type=Path,
        default=LOOKALIKES_DIR,
        help="look-alikes by kind: train.yaml (with answers) and test.yaml (held out)",
    )
    parser.add_argument(
        "--output_dir",
        type=Path,
        default=OUTPUT_DIR,
        help="where sampled_{train,test}.jsonl, round{2,3,4}_train.jsonl, contrast_train.jsonl, twins_train.jsonl, "
        "declines_train.jsonl, twins_sampled_train.jsonl and lookalikes_{train,test}.jsonl go",
    )
    parser.add_argument("--report", action="store_true", help="Print the label mix and the judge's agreement.")
    return parser


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not JSON ({error}).") from error
    return rows


def check_label(label: dict, where: str) -> None:
    """A label line must have two booleans, a better id, and a safer id exactly when both answers are unsafe."""
    safe = label.get("safe")
    if not (isinstance(safe, list) and len(safe) == 2 and all(isinstance(s, bool) for s in safe)):
        raise ValueError(f"{where}: `safe` must be a list of two booleans, got {safe!r}.")
    if label.get("better") not in (0, 1):
        raise ValueError(f"{where}: `better` must be 0 or 1, got {label.get('better')!r}.")
    if not any(safe) and label.get("safer") not in (0, 1):
        raise ValueError(f"{where}: both answers are unsafe, so `safer` (0 or 1) is required.")
    if any(safe) and "safer" in label:
        raise ValueError(f"{where}: `safer` is only given when both answers are unsafe (it follows from `safe`).")
    refusal = label.get("refusal", [False, False])
    if not (isinstance(refusal, list) and len(refusal) == 2 and all(isinstance(r, bool) for r in refusal)):
        raise ValueError(f"{where}: `refusal` (optional) must be a list of two booleans, got {refusal!r}.")


def pair_row(prompt: dict, answers: dict[str, dict], label: dict, kind: str = "sampled") -> dict:
    """One PKU-SafeRLHF row: the two sampled answers in s0, s1 order, with the labels' ids; `pair_type` is
    `<kind>_safe_vs_unsafe`, `<kind>_both_safe` or `<kind>_both_unsafe`."""
    safe0, safe1 = label["safe"]
    if safe0 != safe1:
        safer, pair_type = (0 if safe0 else 1), f"{kind}_safe_vs_unsafe"
    elif safe0:
        safer, pair_type = label["better"], f"{kind}_both_safe"
    else:
        safer, pair_type = label["safer"], f"{kind}_both_unsafe"
    return {
        "prompt": prompt["prompt"],
        "response_0": answers["s0"]["response"],
        "response_1": answers["s1"]["response"],
        "is_response_0_safe": safe0,
        "is_response_1_safe": safe1,
        "better_response_id": label["better"],
        "safer_response_id": safer,
        "category": prompt["category"],
        "prompt_label": prompt["prompt_label"],
        "pair_type": pair_type,
    }


def split_prompts(prompt_ids_by_category: dict[str, list[str]]) -> set[str]:
    """The test prompt ids: `TEST_FRACTION` of each category (at least one), seeded, from sorted ids."""
    rng = random.Random(SEED)
    test = set()
    for category in sorted(prompt_ids_by_category):
        ids = sorted(prompt_ids_by_category[category])
        count = max(1, round(TEST_FRACTION * len(ids)))
        test.update(rng.sample(ids, count))
    return test


def read_labelled(source_dir: Path, prompts: dict[str, dict]) -> tuple[dict[str, dict[str, dict]], dict[str, dict]]:
    """The sampled answers (`raw_samples*.jsonl`) and the checked labels (`labels.jsonl`) of `source_dir`."""
    answers: dict[str, dict[str, dict]] = defaultdict(dict)
    for path in sorted(source_dir.glob("raw_samples*.jsonl")):
        for row in read_jsonl(path):
            if row["prompt_id"] not in prompts:
                raise ValueError(f"{path}: answer {row['answer_id']} belongs to no prompt in prompts.jsonl.")
            if row.get("decoding", "sample") != "sample":
                continue
            sample = row["answer_id"].rsplit(".", 1)[1]
            if sample in answers[row["prompt_id"]]:
                raise ValueError(f"{path}: answer {row['answer_id']} occurs twice.")
            answers[row["prompt_id"]][sample] = row
    labels = {}
    for number, label in enumerate(read_jsonl(source_dir / "labels.jsonl"), start=1):
        where = f"{source_dir.name}/labels.jsonl:{number} ({label.get('prompt_id')})"
        if label.get("prompt_id") not in prompts:
            raise ValueError(f"{where}: no such prompt.")
        if label["prompt_id"] in labels:
            raise ValueError(f"{where}: the prompt is labelled twice.")
        if set(answers[label["prompt_id"]]) != set(SAMPLE_IDS):
            raise ValueError(f"{where}: the raw samples lack one of {SAMPLE_IDS}.")
        check_label(label, where)
        labels[label["prompt_id"]] = label
    return answers, labels


def read_prompts(source_dir: Path) -> dict[str, dict]:
    """The authored prompts by id, in file order."""
    return {row["id"]: row for row in read_jsonl(source_dir / "prompts.jsonl")}


def build(source_dir: Path) -> tuple[dict[str, list[dict]], dict]:
    """The rows of each split and a report of what was used and what was not."""
    prompts = read_prompts(source_dir)
    answers, labels = read_labelled(source_dir, prompts)
    by_category: dict[str, list[str]] = defaultdict(list)
    for prompt_id in labels:
        by_category[prompts[prompt_id]["category"]].append(prompt_id)
    test_ids = split_prompts(by_category)
    splits: dict[str, list[dict]] = {"train": [], "test": []}
    for prompt_id, prompt in prompts.items():  # file order
        if prompt_id in labels:
            split = "test" if prompt_id in test_ids else "train"
            splits[split].append(pair_row(prompt, answers[prompt_id], labels[prompt_id]))
    sampled = {prompt_id for prompt_id, found in answers.items() if set(found) == set(SAMPLE_IDS)}
    report = {
        "unsampled_prompts": sorted(set(prompts) - sampled),
        "unlabelled_prompts": sorted(sampled - set(labels)),
        "prompts_per_split": {split: len(rows) for split, rows in splits.items()},
        "categories": {
            split: dict(sorted(Counter(row["category"] for row in rows).items())) for split, rows in splits.items()
        },
    }
    return splits, report


def build_round(round_dir: Path, prompts: dict[str, dict], test_prompts: set[str], kind: str) -> list[dict]:
    """A later round's pairs (`kind`: `round2` to `round5`): answers sampled from a PPO-Lag policy trained on
    the earlier rounds, labelled under the same rules. Train only: a prompt of round one's test split here is an error
    (it would leak the held-out prompts into the scorers' data), and so is an answer without a label (nothing is
    dropped silently)."""
    answers, labels = read_labelled(round_dir, prompts)
    leaked = sorted(prompt_id for prompt_id in labels if prompts[prompt_id]["prompt"] in test_prompts)
    if leaked:
        raise ValueError(f"{round_dir}: prompts of the held-out test split were labelled: {leaked}.")
    unlabelled = sorted(prompt_id for prompt_id in answers if prompt_id not in labels)
    if unlabelled:
        raise ValueError(f"{round_dir}: answers without labels: {unlabelled}.")
    return [
        pair_row(prompt, answers[prompt_id], labels[prompt_id], kind=kind)
        for prompt_id, prompt in prompts.items()  # file order
        if prompt_id in labels
    ]


def build_contrast(source_dir: Path, round3_dir: Path, prompts: dict[str, dict], test_prompts: set[str]) -> list[dict]:
    """Round three's declines of harmless train prompts, each against the start's better answer to that prompt (see
    the module docstring). The order of the two answers in a row is drawn with `random.Random(SEED)`."""
    from trl_safe.evaluation.refusal import detect_refusals

    start_answers, start_labels = read_labelled(source_dir, prompts)
    answers, labels = read_labelled(round3_dir, prompts)
    rng = random.Random(SEED)
    rows = []
    for prompt_id, prompt in prompts.items():  # file order
        if prompt_id not in labels:
            continue
        where = f"{round3_dir.name}/labels.jsonl ({prompt_id})"
        if prompt["prompt_label"] != "safe" or prompt["prompt"] in test_prompts:
            raise ValueError(f"{where}: contrast pairs are for harmless train prompts only.")
        if prompt_id not in start_labels:
            raise ValueError(f"{where}: round one has no labelled answer to contrast with.")
        start = start_labels[prompt_id]
        better = SAMPLE_IDS[start["better"]]
        if not start["safe"][start["better"]]:
            raise ValueError(f"{where}: round one's better answer is labelled unsafe.")
        answer = start_answers[prompt_id][better]["response"]
        if detect_refusals([answer])[0]:
            raise ValueError(f"{where}: round one's better answer reads as a refusal: {answer[:80]!r}.")
        label = labels[prompt_id]
        for index, sample in enumerate(SAMPLE_IDS):
            if not label.get("refusal", [False, False])[index]:
                continue
            if not label["safe"][index]:
                raise ValueError(f"{where}: the declining answer {sample} is labelled unsafe.")
            decline = answers[prompt_id][sample]["response"]
            answer_id = 1 if rng.random() < 0.5 else 0
            responses = [decline, decline]
            responses[answer_id] = answer
            rows.append(
                {
                    "prompt": prompt["prompt"],
                    "response_0": responses[0],
                    "response_1": responses[1],
                    "is_response_0_safe": True,
                    "is_response_1_safe": True,
                    "better_response_id": answer_id,
                    "safer_response_id": answer_id,
                    "category": prompt["category"],
                    "prompt_label": prompt["prompt_label"],
                    "pair_type": "contrast_answer_vs_decline",
                }
            )
    return rows


TWIN_SOURCES = {"g": "greedy", "s0": "sampled", "s1": "sampled", "written": "written"}


def build_twins(
    twins_dir: Path, harmful_train_prompts: set[str], held_out_prompts: set[str], of: str = "the templated train split"
) -> list[dict]:
    """One harmless answer per look-alike twin: a harmless request in the words of a harmful train prompt.

    PTX's written declines of harmful requests spread to harmless requests that sound alike (docs/demo_outcome.md).
    Each twin (`prompts.jsonl`: `id`, `prompt`, `twin_of`, the harmful train prompt it borrows its words from: one
    of `harmful_train_prompts`, those of `of`, which names them in errors) gets the starting policy's greedy answer
    (`raw_greedy.jsonl`), or, where `labels.jsonl` rejects that answer (a decline, a misreading, unsafe or false
    advice; the reason is recorded), one of its two sampled answers (`raw_samples.jsonl`) or an answer written here
    (`"answer": "written"`, `text`). `finished` says whether the answer is whole (written, or ended by the model)
    or was cut at the sampling limit (most of SmolLM2's), so that PTX does not teach an end of turn there. Refused:
    a twin without a choice, a `twin_of` that is not a harmful train prompt, a twin that is a held-out prompt, a
    chosen answer the refusal detector flags.
    """
    from trl_safe.evaluation.refusal import detect_refusals

    twins = {row["id"]: row for row in read_jsonl(twins_dir / "prompts.jsonl")}
    answers: dict[str, dict[str, dict]] = defaultdict(dict)
    for name in ("raw_greedy.jsonl", "raw_samples.jsonl"):
        for row in read_jsonl(twins_dir / name):
            answers[row["prompt_id"]][row["answer_id"].rsplit(".", 1)[1]] = row
    labels = {row["prompt_id"]: row for row in read_jsonl(twins_dir / "labels.jsonl")}
    rows = []
    for twin_id, twin in twins.items():  # file order
        where = f"{twins_dir.name}/labels.jsonl ({twin_id})"
        if twin_id not in labels:
            raise ValueError(f"{where}: the twin has no chosen answer.")
        if twin["twin_of"] not in harmful_train_prompts:
            raise ValueError(f"{where}: twin_of is not a harmful prompt of {of}.")
        if twin["prompt"] in held_out_prompts:
            raise ValueError(f"{where}: the twin is a held-out prompt.")
        label = labels[twin_id]
        choice = label["answer"]
        if choice not in TWIN_SOURCES:
            raise ValueError(f"{where}: answer must be one of {list(TWIN_SOURCES)}, not {choice!r}.")
        if choice == "written":
            answer, finished = label["text"], True
        elif choice in answers[twin_id]:
            answer, finished = answers[twin_id][choice]["response"], answers[twin_id][choice]["finished"]
        else:
            raise ValueError(f"{where}: no raw answer {choice!r}.")
        if detect_refusals([answer])[0]:
            raise ValueError(f"{where}: the chosen answer reads as a refusal: {answer[:80]!r}.")
        rows.append(
            {
                "prompt": twin["prompt"],
                "response": answer,
                "twin_of": twin["twin_of"],
                "source": TWIN_SOURCES[choice],
                "finished": finished,
                "category": twin["category"],
                "prompt_label": "safe",
            }
        )
    return rows


def build_declines(declines_dir: Path, prompts: dict[str, dict], test_prompts: set[str]) -> list[dict]:
    """One written decline for every harmful train prompt of the sampled configuration (PTX rows).

    The templated pairs carry written declines for their 77 harmful train prompts, and PTX taught SmolLM2 to decline
    from those; the 135 harmful train prompts of the sampled configuration, worded as a user would ask rather than
    from templates, had none, and the policy trained on the templated declines declined them half as often
    (docs/demo_outcome.md). `declines.jsonl` (`prompt_id`, `text`) holds one decline per prompt, written here in the
    templated answers' form: say no and name what is declined, say why in one clause, offer the safe thing nearest to
    the request (docs/demo_data.md). Refused: a prompt id that is not a harmful prompt, a held-out prompt, a second
    decline for a prompt, a harmful train prompt without one, a text the refusal detector does not flag.
    """
    from trl_safe.evaluation.refusal import detect_refusals

    rows, seen = [], set()
    for label in read_jsonl(declines_dir / "declines.jsonl"):  # file order
        prompt_id = label["prompt_id"]
        where = f"{declines_dir.name}/declines.jsonl ({prompt_id})"
        prompt = prompts.get(prompt_id)
        if prompt is None or prompt["prompt_label"] != "unsafe":
            raise ValueError(f"{where}: not a harmful prompt of {SOURCE_DIR.name}/prompts.jsonl.")
        if prompt["prompt"] in test_prompts:
            raise ValueError(f"{where}: the prompt is held out (test split).")
        if prompt_id in seen:
            raise ValueError(f"{where}: a second decline for the same prompt.")
        if not detect_refusals([label["text"]])[0]:
            raise ValueError(f"{where}: the text does not read as a refusal: {label['text'][:80]!r}.")
        seen.add(prompt_id)
        rows.append(
            {
                "prompt": prompt["prompt"],
                "response": label["text"],
                "prompt_id": prompt_id,
                "source": "written",
                "category": prompt["category"],
                "prompt_label": "unsafe",
            }
        )
    harmful_train = {
        i for i, row in prompts.items() if row["prompt_label"] == "unsafe" and row["prompt"] not in test_prompts
    }
    if missing := sorted(harmful_train - seen):
        raise ValueError(f"{declines_dir.name}/declines.jsonl: harmful train prompts without a decline: {missing}.")
    return rows


def build_lookalikes(lookalikes_dir: Path, known_prompts: set[str]) -> dict[str, list[dict]]:
    """The look-alikes by kind: train rows for PTX (each with its written answer and an over-cautious decline to
    unlearn) and held-out prompts for the evaluation.

    The demo's first 48 look-alikes are mostly homonyms and household tasks ("kill a Python process"); the 480-step
    SFT policies declined a quarter of a public set's look-alikes, most in kinds those 48 barely hold (a game or a
    story, fictional people's private details; docs/demo_outcome.md). `train.yaml` (`prompt`, `kind`, `topic`,
    `answer`) and `test.yaml` (`prompt`, `kind`, `topic`, no answer: a separate author's, evaluation only) hold
    such prompts, written for trl-safe; `train_more.yaml` (optional, as `train.yaml`) a second batch of train rows,
    written for what a check on train prompts found still declined (`benchmarks/ptx_sft_check.py`), the only file
    with the `protective` kind. Each train row gets one of the templated over-refusals (`templates.yaml`'s
    `over_refusals`, with its `topic`, drawn with `random.Random(SEED)` in file order) as `decline`: PTX's
    unlikelihood rows train it away after the prompt, as the twins' rows do with their harmful twin's decline.
    (Of the six templates, the one the refusal detector does not read as a decline is not drawn; `train_more.yaml`'s
    are drawn after the others, which left theirs as they were.)
    Refused, naming the file and entry: a missing or unknown field, an unknown kind, an answer in the held-out file
    or none in the train file, a prompt twice, a prompt already in the demo's data (`known_prompts`), an answer the
    refusal detector flags, a decline it does not.
    """
    import yaml

    from trl_safe.evaluation.refusal import detect_refusals

    templates = yaml.safe_load(TEMPLATES_FILE.read_text(encoding="utf-8"))["over_refusals"]
    # Only the templates the refusal detector reads as declines: a decline to unlearn must be one by the same reading
    # the evaluation uses ("That sounds like it could be harmful, so I'm not able to help with ..." is not, as yet).
    readings = detect_refusals([template.format(topic="it") for template in templates])
    over_refusals = [template for template, read in zip(templates, readings) if read]
    rng = random.Random(SEED)
    known = {" ".join(prompt.split()) for prompt in known_prompts}
    seen: set[str] = set()
    splits: dict[str, list[dict]] = {}
    for split in ("train", "test", "train_more"):
        path = lookalikes_dir / f"{split}.yaml"
        if split == "train_more" and not path.exists():  # optional: the second batch of train rows
            continue
        entries = yaml.safe_load(path.read_text(encoding="utf-8")) or []
        answered = split != "test"  # the train files: written answers, declines to unlearn
        fields = {"prompt", "kind", "topic"} | ({"answer"} if answered else set())
        rows = []
        for number, entry in enumerate(entries, start=1):
            where = f"{lookalikes_dir.name}/{path.name} entry {number}"
            if not isinstance(entry, dict) or set(entry) != fields:
                got = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
                raise ValueError(f"{where}: expected the fields {sorted(fields)}, got {got}.")
            if entry["kind"] not in LOOKALIKE_KINDS:
                raise ValueError(f"{where}: kind {entry['kind']!r} is not one of {list(LOOKALIKE_KINDS)}.")
            prompt = " ".join(str(entry["prompt"]).split())
            if prompt in seen or prompt in known:
                raise ValueError(f"{where}: {prompt!r} is already a prompt of the demo's data.")
            seen.add(prompt)
            row = {"prompt": prompt, "kind": entry["kind"], "topic": entry["topic"]}
            if answered:
                row["response"] = " ".join(str(entry["answer"]).split())
                row["decline"] = rng.choice(over_refusals).format(topic=entry["topic"])
            # The held-out file is a prompt file for `trl-safe evaluate --dataset_name`: `label`, as in XSTest.
            label = "prompt_label" if answered else "label"
            rows.append({**row, "source": "written", "category": "benign_lookalike", label: "safe"})
        splits[split] = rows
    for split, train in splits.items():
        if split == "test":
            continue
        answers = detect_refusals([row["response"] for row in train])
        declines = detect_refusals([row["decline"] for row in train])
        for row, answer_refused, decline_refused in zip(train, answers, declines):
            if answer_refused or not decline_refused:
                what = "its answer reads as a refusal" if answer_refused else "its decline does not read as one"
                raise ValueError(f"{lookalikes_dir.name}/{split}.yaml, {row['prompt']!r}: {what}.")
    return splits


def refusal_mix(round_dir: Path) -> dict[str, dict[str, int]]:
    """Per category: answers, and answers labelled as declining the request (the labels' optional `refusal`)."""
    mix: dict[str, dict[str, int]] = defaultdict(lambda: {"answers": 0, "refusals": 0})
    prompts = {row["prompt_id"]: row["category"] for row in read_jsonl(round_dir / "raw_samples.jsonl")}
    for label in read_jsonl(round_dir / "labels.jsonl"):
        counts = mix[prompts[label["prompt_id"]]]
        counts["answers"] += 2
        counts["refusals"] += sum(label.get("refusal", [False, False]))
    return dict(sorted(mix.items()))


def label_mix(rows: list[dict]) -> dict[str, dict[str, int]]:
    """Per category: prompts, sampled answers, and answers labelled unsafe."""
    mix: dict[str, dict[str, int]] = defaultdict(lambda: {"prompts": 0, "answers": 0, "unsafe": 0})
    for row in rows:
        counts = mix[row["category"]]
        counts["prompts"] += 1
        counts["answers"] += 2
        counts["unsafe"] += (not row["is_response_0_safe"]) + (not row["is_response_1_safe"])
    return dict(sorted(mix.items()))


def print_label_mix(rows: list[dict], prefix: str = "") -> None:
    for category, counts in label_mix(rows).items():
        share = counts["unsafe"] / counts["answers"]
        print(f"{prefix}{category} | {counts['prompts']} | {counts['answers']} | {counts['unsafe']} ({share:.0%})")


def write_pairs(path: Path, rows: list[dict], what: str = "pairs") -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    print(f"{path}: {len(rows)} {what}")


def judge_agreement(rows: list[dict]) -> dict[str, float]:
    """Agreement of `trl_safe.evaluation.judge.ComplianceJudge` with the hand labels on the harmful prompts' answers
    (positive class: unsafe)."""
    from trl_safe.evaluation.judge import ComplianceJudge

    judge = ComplianceJudge()
    tp = fp = fn = tn = 0
    for row in rows:
        if row["prompt_label"] != "unsafe":
            continue
        for index in (0, 1):
            unsafe = not row[f"is_response_{index}_safe"]
            flagged = judge.is_unsafe(row["prompt"], row[f"response_{index}"])
            tp, fp = tp + (unsafe and flagged), fp + (flagged and not unsafe)
            fn, tn = fn + (unsafe and not flagged), tn + (not unsafe and not flagged)
    total = tp + fp + fn + tn
    return {
        "answers": total,
        "labelled_unsafe": tp + fn,
        "judged_unsafe": tp + fp,
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
        "accuracy": (tp + tn) / total if total else float("nan"),
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
        "true_negatives": tn,
    }


def templated_prompts() -> tuple[set[str], set[str]]:
    """The templated demo data's (`data/demo/build_demo_data.py`) harmful train prompts and held-out prompts."""
    harmful = {row["prompt"] for row in read_jsonl(OUTPUT_DIR / "train.jsonl") if row["prompt_label"] == "unsafe"}
    return harmful, {row["prompt"] for row in read_jsonl(OUTPUT_DIR / "test.jsonl")}


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    splits, report = build(args.source_dir)
    prompts, test_prompts = read_prompts(args.source_dir), {row["prompt"] for row in splits["test"]}
    round2 = build_round(args.round2_dir, prompts, test_prompts, kind="round2")
    round3 = build_round(args.round3_dir, prompts, test_prompts, kind="round3")
    contrast = build_contrast(args.source_dir, args.round3_dir, prompts, test_prompts)
    round4 = build_round(args.round4_dir, prompts, test_prompts, kind="round4")
    round5 = build_round(args.round5_dir, prompts, test_prompts, kind="round5")
    harmful_train, templated_test = templated_prompts()
    twins = build_twins(args.twins_dir, harmful_train, templated_test | test_prompts)
    declines = build_declines(args.declines_dir, prompts, test_prompts)
    sampled_harmful_train = {row["prompt"] for row in splits["train"] if row["prompt_label"] == "unsafe"}
    twins_sampled = build_twins(
        args.twins_sampled_dir, sampled_harmful_train, templated_test | test_prompts, of="the sampled train split"
    )
    # Every prompt of the demo's other data: the templated files and what this build made (not the output folder's
    # files, which are the last build's, or none when --output_dir is a new folder).
    built = (*splits.values(), round2, round3, contrast, round4, round5, twins, declines, twins_sampled)
    templated_train = {row["prompt"] for row in read_jsonl(OUTPUT_DIR / "train.jsonl")}
    known = templated_train | templated_test | {row["prompt"] for rows in built for row in rows}
    lookalikes = build_lookalikes(args.lookalikes_dir, known)
    if args.report:
        print("category | prompts | answers | unsafe answers")
        print_label_mix(splits["train"] + splits["test"])
        for split in ("train", "test"):
            print(f"judge vs labels, {split}: {judge_agreement(splits[split])}")
        print_label_mix(round2, prefix="round 2, ")
        print(f"judge vs labels, round 2: {judge_agreement(round2)}")
        for category, counts in refusal_mix(args.round3_dir).items():
            print(f"round 3, {category}: {counts['refusals']} of {counts['answers']} answers decline")
        for number, rows, folder in ((4, round4, args.round4_dir), (5, round5, args.round5_dir)):
            print_label_mix(rows, prefix=f"round {number}, ")
            print(f"judge vs labels, round {number}: {judge_agreement(rows)}")
            for category, counts in refusal_mix(folder).items():
                print(f"round {number}, {category}: {counts['refusals']} of {counts['answers']} answers decline")
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        write_pairs(args.output_dir / f"sampled_{split}.jsonl", rows)
    write_pairs(args.output_dir / "round2_train.jsonl", round2)
    write_pairs(args.output_dir / "round3_train.jsonl", round3)
    write_pairs(args.output_dir / "contrast_train.jsonl", contrast)
    write_pairs(args.output_dir / "round4_train.jsonl", round4)
    write_pairs(args.output_dir / "round5_train.jsonl", round5)
    write_pairs(args.output_dir / "twins_train.jsonl", twins, what="answered look-alike twins (PTX rows)")
    write_pairs(args.output_dir / "declines_train.jsonl", declines, what="written declines (PTX rows)")
    write_pairs(
        args.output_dir / "twins_sampled_train.jsonl", twins_sampled, what="answered look-alike twins (PTX rows)"
    )
    for split, rows in lookalikes.items():
        write_pairs(args.output_dir / f"lookalikes_{split}.jsonl", rows, what=f"look-alikes by kind ({split})")
    print(f"Look-alike twins: {dict(Counter(row['source'] for row in twins))} answers")
    print(f"Look-alike twins (sampled pairs): {dict(Counter(row['source'] for row in twins_sampled))} answers")
    print(f"Per category: {report['categories']}")
    for key, what in (("unsampled_prompts", "no sampled answers"), ("unlabelled_prompts", "answers but no labels")):
        if report[key]:
            print(f"{len(report[key])} prompts have {what} yet and are not in the output: {report[key]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
