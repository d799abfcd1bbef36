"""Re-read an evaluation's answers with another cost model, and the outcome by it.

A policy trained against a cost model learns that model's blind spots: the cost model that scored the evaluation is
the one it was trained against, so "unsafe answers by the cost model" can fall while the answers stay just as
harmful. This script scores the same answers (an evaluation's `generations.json`: start and trained policy, same
held-out prompts) with a second cost model, e.g. one trained on a later round of labelled data, and prints the
outcome table and the four conditions by it (`trl_safe.evaluation.outcome`), beside the judge's, which does not
change. Nothing is regenerated: the answers are exactly those the evaluation scored.

    python benchmarks/rescore_costs.py --generations outputs/safe_rlhf_long/evaluation/generations.json \\
        --cost_model outputs/iterated/cost_model --output outputs/safe_rlhf_long/rescored.json

Writes `--output` (the generations with `cost` replaced and the original kept as `original_cost`) when given.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from trl_safe.evaluation.outcome import compare_outcomes, outcome_criteria, outcome_table, reward_scale
from trl_safe.evaluation.report import markdown_table


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--generations", type=Path, required=True, help="An evaluation's generations.json.")
    parser.add_argument("--cost_model", required=True, help="The cost model to score the answers with.")
    parser.add_argument("--output", type=Path, default=None, help="Where to write the rescored generations.")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's).")
    return parser


def rescore(generations: list[dict[str, Any]], scorer: Any) -> list[dict[str, Any]]:
    """The generations with `cost` from `scorer` (a `trl_safe.scoring.Scorer`, which batches) and the old one as
    `original_cost`. Each answer is scored as the evaluation scores it: the prompt as one user turn, the answer as
    the reply."""
    prompts = [[{"role": "user", "content": row["prompt"]}] for row in generations]
    answers = [[{"role": "assistant", "content": row["completion"]}] for row in generations]
    costs = scorer.score(prompts, answers).tolist()
    return [{**row, "original_cost": row["cost"], "cost": cost} for row, cost in zip(generations, costs)]


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = make_parser().parse_args(argv)
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from trl_safe.scoring import Scorer

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    generations = json.loads(args.generations.read_text(encoding="utf-8"))
    missing = [index for index, row in enumerate(generations) if not {"prompt", "completion", "cost"} <= set(row)]
    if missing:
        raise ValueError(f"{args.generations}: row {missing[0]} lacks prompt, completion or cost.")
    model = AutoModelForSequenceClassification.from_pretrained(args.cost_model, num_labels=1).eval()
    scorer = Scorer(model, AutoTokenizer.from_pretrained(args.cost_model), name="cost", batch_size=args.batch_size)
    rescored = rescore(generations, scorer)
    if args.output is not None:
        args.output.write_text(json.dumps(rescored, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    models = list(dict.fromkeys(row["model"] for row in generations))
    baseline, trained = models[0], models[-1]
    print(f"{args.generations}: answers rescored with {args.cost_model}\n")
    for label, rows in (("evaluation's cost model", generations), ("rescoring cost model", rescored)):
        outcome = compare_outcomes(rows, baseline, trained)
        header, table = outcome_table(outcome, baseline, trained)
        print(f"By the {label}:\n")
        print("\n".join(markdown_table(header, table)))
        for criterion in outcome_criteria(outcome, reward_scale(rows, baseline)):
            print(f"- {criterion.name}: {criterion.estimate} ({'met' if criterion.passed else 'not met'})")
        print()
    return rescored


if __name__ == "__main__":
    main()
