"""How well does the independent judge agree with the hand labels? Precision, recall and accuracy per label set.

Hand-labelled SmolLM2-135M-Instruct answers to the demo's harmful *train* prompts (and round one's test split), each
read and labelled safe or unsafe (docs/demo_data.md's rules), scored against the judge
(`trl_safe.evaluation.judge.ComplianceJudge`), positive class "unsafe":

- `train`, `test`: the starting policy's sampled answers (`sampled` configuration); the judge's first rules and
  `min_engagement` were written on `train`;
- `round 2`, `round 4`: trained policies' sampled answers (the second and fourth rounds of labels);
- `RL checkpoints`: greedy answers of three PPO-Lag checkpoints of the checkpoint-selection pilot to their runs'
  validation prompts (`data/judge_labels/rl_checkpoints_validation.jsonl`); the second version's patterns were
  written on them;
- `RL checkpoints, seed 50`: the same for two checkpoints of a later run, labelled after the second version was
  frozen (`data/judge_labels/rl_checkpoints_seed50_validation.jsonl`): the out-of-sample check of that version.

It also counts the answers the refusal detector flags, since the judge's second rule is the detector: a change to
either shows here first.

    python benchmarks/judge_agreement.py                    # the table in docs/evaluation.md
    python benchmarks/judge_agreement.py --judge_version 1  # the first version's patterns
    python benchmarks/judge_agreement.py --min_engagement none

No model is loaded; it runs in seconds.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from trl_safe.demo import load_demo_dataset
from trl_safe.evaluation.judge import ComplianceJudge, add_judge_version_argument
from trl_safe.evaluation.refusal import RefusalDetector
from trl_safe.evaluation.report import markdown_table


@dataclass(frozen=True)
class Agreement:
    """The judge against the hand labels on one split's answers to harmful prompts."""

    split: str
    answers: int
    labelled_unsafe: int
    judged_unsafe: int
    true_positives: int
    agreements: int
    refusals: int

    @property
    def precision(self) -> float:
        return self.true_positives / self.judged_unsafe if self.judged_unsafe else float("nan")

    @property
    def recall(self) -> float:
        return self.true_positives / self.labelled_unsafe if self.labelled_unsafe else float("nan")

    @property
    def accuracy(self) -> float:
        return self.agreements / self.answers


LABELS = Path(__file__).resolve().parents[1] / "data" / "judge_labels"
RL_LABELS = {
    "RL checkpoints": LABELS / "rl_checkpoints_validation.jsonl",
    "RL checkpoints, seed 50": LABELS / "rl_checkpoints_seed50_validation.jsonl",
}

# A labelled answer: (prompt, answer, labelled unsafe).
Labelled = tuple[str, str, bool]


def _pair_answers(rows: list[dict]) -> list[Labelled]:
    """Both answers of every pair whose prompt is harmful, with their hand labels."""
    return [
        (row["prompt"], row[f"response_{i}"], not row[f"is_response_{i}_safe"])
        for row in rows
        if row["prompt_label"] == "unsafe"
        for i in (0, 1)
    ]


def label_sets() -> dict[str, list[Labelled]]:
    """Every hand-labelled set of answers to harmful prompts, by name (the table's rows, in order)."""
    rounds = load_demo_dataset("train", "iterated_round4")
    sets = {
        "train": _pair_answers(load_demo_dataset("train", "sampled")),
        "test": _pair_answers(load_demo_dataset("test", "sampled")),
        "round 2": _pair_answers([r for r in rounds if r["pair_type"].startswith("round2_")]),
        "round 4": _pair_answers([r for r in rounds if r["pair_type"].startswith("round4_")]),
    }
    for name, path in RL_LABELS.items():
        with path.open(encoding="utf-8") as handle:
            sets[name] = [(r["prompt"], r["answer"], r["unsafe"]) for r in map(json.loads, handle)]
    return sets


def agreement(split: str, answers: list[Labelled], judge: ComplianceJudge, detector: RefusalDetector) -> Agreement:
    """The judge's verdicts on `answers` against their hand labels."""
    labelled = [unsafe for _, _, unsafe in answers]
    judged = [judge.is_unsafe(prompt, answer, "unsafe") for prompt, answer, _ in answers]
    return Agreement(
        split=split,
        answers=len(answers),
        labelled_unsafe=sum(labelled),
        judged_unsafe=sum(judged),
        true_positives=sum(a and b for a, b in zip(labelled, judged)),
        agreements=sum(a == b for a, b in zip(labelled, judged)),
        refusals=sum(detector(answer) for _, answer, _ in answers),
    )


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument(
        "--min_engagement",
        default="default",
        help="The judge's off-topic threshold: `default` (the judge's own), a number, or `none` (rule off).",
    )
    add_judge_version_argument(parser)
    return parser


def main(argv: list[str] | None = None) -> list[Agreement]:
    args = make_parser().parse_args(argv)
    detector = RefusalDetector()
    options = {}
    if args.min_engagement != "default":
        options["min_engagement"] = None if args.min_engagement.lower() == "none" else float(args.min_engagement)
    judge = ComplianceJudge.of_version(args.judge_version, refusal_detector=detector, **options)
    results = [agreement(name, answers, judge, detector) for name, answers in label_sets().items()]
    header = [
        "label set",
        "answers",
        "labelled unsafe",
        "judged unsafe",
        "precision",
        "recall",
        "accuracy",
        "refusals",
    ]
    rows = [
        [
            r.split,
            r.answers,
            r.labelled_unsafe,
            r.judged_unsafe,
            f"{r.precision:.0%}",
            f"{r.recall:.0%}",
            f"{r.accuracy:.0%}",
            r.refusals,
        ]
        for r in results
    ]
    print("\n".join(markdown_table(header, rows)))
    return results


if __name__ == "__main__":
    main()
