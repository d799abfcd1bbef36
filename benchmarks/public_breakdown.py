"""Where a policy declines and complies on the public prompt sets: per XSTest type and per harm category, over seeds.

The pipeline's outcome table (`demo_seeds.py`) pools the public prompts into the issue's four conditions. XSTest was
built to say *which kind* of look-alike a model over-refuses (homonyms such as "kill a Python process", figurative
language, safe targets, safe contexts, definitions, discrimination against nonsense groups, historical events,
privacy of public or fictional people), and its unsafe contrasts mirror each kind. This script splits the
evaluation's saved answers by those kinds:

- safe prompts: the share the policy declined (the evaluation's own `refused` column, read by its refusal rule);
- unsafe prompts: the share judged compliant (`ComplianceJudge`, reading past an apology exactly when the evaluation's
  refusal rule did) and the share the cost model scored unsafe (C > 0).

    python benchmarks/public_breakdown.py outputs/public --prompts outputs/public/prompts.jsonl --seeds 42 43 44

Reads `<run>/seed<N>/evaluation/generations.json` and `summary.json` (the pipeline's layout) and the prompt file
written by `benchmarks/public_prompts.py`, whose `source` and `xstest_type` name each prompt's group. The demo's
held-out look-alikes by kind (`trl_safe/resources/demo/lookalikes_test.jsonl`, or `load_demo_prompts(lookalikes=True)`
written to a file) split the same way, by their `kind`:

    python benchmarks/public_breakdown.py outputs/kinds_eval --prompts trl_safe/resources/demo/lookalikes_test.jsonl
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from trl_safe.evaluation import read_records
from trl_safe.evaluation.outcome import judge_for_evaluation
from trl_safe.evaluation.report import markdown_table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_runs import load_evaluation  # noqa: E402

START = "initial"


def group_of(prompt: dict[str, Any]) -> str:
    """XSTest prompts by their type (safe ones and their unsafe contrasts side by side), the demo's look-alikes by
    kind (`trl_safe.demo.load_demo_lookalikes`), the others by category."""
    if prompt.get("source") == "xstest":
        return f"xstest {prompt['label']}: {prompt['xstest_type'].removeprefix('contrast_')}"
    if prompt.get("kind"):
        return f"look-alike: {prompt['kind']}"
    return prompt["category"]


def seed_rates(run: Path, seed: int, prompts: dict[str, dict[str, Any]], model: str) -> dict[str, dict[str, Any]]:
    """Per group and model (start, `model`): the counts behind each rate of one seed's evaluation."""
    generations, metadata = load_evaluation(run, seed)
    judge = judge_for_evaluation(metadata)
    counts: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for record in generations:
        if record["model"] not in (START, model):
            continue
        prompt = prompts.get(record["prompt"])
        if prompt is None:
            raise ValueError(f"{run} seed {seed}: prompt {record['prompt']!r} is not in the prompt file.")
        group, who = group_of(prompt), "start" if record["model"] == START else "trained"
        if prompt["label"] == "safe":
            measures = {"declined": bool(record["refused"])}
        else:
            measures = {
                "judged compliant": judge.is_unsafe(record["prompt"], record["completion"]),
                "cost model unsafe": record["cost"] > 0,
            }
        for measure, value in measures.items():
            tally = counts[(group, measure)][who]
            tally[0], tally[1] = tally[0] + int(value), tally[1] + 1
    return counts


def breakdown(run: Path, prompt_file: Path, seeds: list[int], model: str) -> list[dict[str, Any]]:
    """One row per group and measure: prompts, the start's rate (mean over seeds: greedy answers repeat) and the
    trained policy's, mean ± sd over seeds, and the change."""
    prompts = {row["prompt"]: row for row in read_records(prompt_file)}
    per_seed = [seed_rates(run, seed, prompts, model) for seed in seeds]
    rows = []
    for key in sorted(per_seed[0]):
        group, measure = key
        start = [counts[key]["start"][0] / counts[key]["start"][1] for counts in per_seed]
        trained = [counts[key]["trained"][0] / counts[key]["trained"][1] for counts in per_seed]
        rows.append({
            "group": group,
            "measure": measure,
            "prompts": per_seed[0][key]["trained"][1],
            "start": statistics.fmean(start),
            "trained": statistics.fmean(trained),
            "trained_sd": statistics.stdev(trained) if len(trained) > 1 else 0.0,
            "trained_per_seed": trained,
            "change_pts": 100 * (statistics.fmean(trained) - statistics.fmean(start)),
        })  # fmt: skip
    return rows


def markdown(rows: list[dict[str, Any]], seeds: list[int]) -> str:
    header = ["group", "measure", "prompts", "start", f"trained, mean ± sd over seeds {seeds}", "per seed", "change"]
    table = [
        [
            row["group"],
            row["measure"],
            str(row["prompts"]),
            f"{100 * row['start']:.1f}%",
            f"{100 * row['trained']:.1f}% ± {100 * row['trained_sd']:.1f}",
            " / ".join(f"{100 * rate:.0f}%" for rate in row["trained_per_seed"]),
            f"{row['change_pts']:+.1f} pts",
        ]
        for row in rows
    ]
    return "\n".join(markdown_table(header, table))


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("run", type=Path, help="The run folder (seed<N>/evaluation inside).")
    parser.add_argument("--prompts", type=Path, required=True, help="benchmarks/public_prompts.py's output.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--model", default="sft", help="The trained policy's name in the evaluation.")
    parser.add_argument("--output", type=Path, default=None, help="Also write the rows as JSON here.")
    return parser


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = make_parser().parse_args(sys.argv[1:] if argv is None else argv)
    rows = breakdown(args.run, args.prompts, args.seeds, args.model)
    print(markdown(rows, args.seeds))
    if args.output is not None:
        args.output.write_text(json.dumps(rows, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
