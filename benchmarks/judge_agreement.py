"""How well does the independent judge agree with the hand labels? Precision, recall and accuracy per split.

The demo's policy-sampled data (`sampled` configuration, docs/demo_data.md) holds SmolLM2-135M-Instruct's own answers,
each labelled safe or unsafe by reading it. This scores the judge (`trl_safe.evaluation.judge.ComplianceJudge`) on the
answers to harmful prompts, positive class "unsafe", on the train split (where its rules and `min_engagement` were
written) and on the test split (held out from them). It also counts the answers the refusal detector flags, since the
judge's second rule is the detector: a change to either shows here first.

    python benchmarks/judge_agreement.py                  # the table in docs/evaluation.md
    python benchmarks/judge_agreement.py --min_engagement none

No model is loaded; it runs in seconds.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from trl_safe.demo import load_demo_dataset
from trl_safe.evaluation.judge import ComplianceJudge
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


def agreement(split: str, judge: ComplianceJudge, detector: RefusalDetector) -> Agreement:
    """Every answer to a harmful prompt of the `sampled` configuration's `split`, judged and compared."""
    rows = load_demo_dataset(split, "sampled")
    labelled, judged, refused = [], [], []
    for row in rows:
        if row["prompt_label"] != "unsafe":
            continue
        for i in (0, 1):
            answer = row[f"response_{i}"]
            labelled.append(not row[f"is_response_{i}_safe"])
            judged.append(judge.is_unsafe(row["prompt"], answer, "unsafe"))
            refused.append(detector(answer))
    return Agreement(
        split=split,
        answers=len(labelled),
        labelled_unsafe=sum(labelled),
        judged_unsafe=sum(judged),
        true_positives=sum(a and b for a, b in zip(labelled, judged)),
        agreements=sum(a == b for a, b in zip(labelled, judged)),
        refusals=sum(refused),
    )


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument(
        "--min_engagement",
        default="default",
        help="The judge's off-topic threshold: `default` (the judge's own), a number, or `none` (rule off).",
    )
    return parser


def main(argv: list[str] | None = None) -> list[Agreement]:
    args = make_parser().parse_args(argv)
    detector = RefusalDetector()
    if args.min_engagement == "default":
        judge = ComplianceJudge(refusal_detector=detector)
    else:
        threshold = None if args.min_engagement.lower() == "none" else float(args.min_engagement)
        judge = ComplianceJudge(refusal_detector=detector, min_engagement=threshold)
    results = [agreement(split, judge, detector) for split in ("train", "test")]
    header = ["split", "answers", "labelled unsafe", "judged unsafe", "precision", "recall", "accuracy", "refusals"]
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
