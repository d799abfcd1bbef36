"""Two runs' policies against each other on the same held-out prompts, pooled over seeds; and where each loses reward.

`benchmarks/demo_seeds.py` compares each trained policy with the *start*. Choosing between two configurations needs
them compared with each other: the same seeds, the same held-out prompts, the same reward and cost models (so that
the start's answers got the same scores in both runs, which is checked), each prompt paired with itself across the
two runs. For each run and seed this prints the counts behind the rates (harmful requests declined, judged unsafe,
unsafe by the cost model; look-alikes and benign requests declined) and **where the benign reward goes**: every
answer to a harmless prompt is either a decline (by the evaluation's own refusal rule) or an answer, and the mean
reward change against the start's answer to the same prompt splits into the two groups' contributions (each group's
summed change over all harmless prompts). A decline of a harmless request costs far more reward than a changed
answer, so the split says whether the reward condition fails on declines or on how the policy answers.

    python benchmarks/compare_runs.py outputs/sft_wide outputs/sft_wide_twins --seeds 42 43 44 --model sft

Reads `<run>/seed<N>/evaluation/generations.json` and `summary.json` (the demo pipeline's layout). The judge reads
past an apology exactly when the evaluation's refusal rule did (`trl_safe.evaluation.outcome.judge_for_evaluation`).
`main` returns the result; `--output` writes it as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from trl_safe.evaluation.judge import ComplianceJudge, add_judge_version_argument
from trl_safe.evaluation.outcome import (
    LOOKALIKE_CATEGORIES,
    compare_outcomes,
    evaluation_refusal_rule,
    judge_for_evaluation,
)
from trl_safe.evaluation.report import markdown_table

START = "initial"
# Two runs score the start's answers alike when they share R and C; float32 scoring on the same CPU repeats exactly,
# this leaves room for another machine.
SCORE_TOLERANCE = 1e-3


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("run_a", type=Path, help="The first run's folder (holds seed<N>/evaluation/).")
    parser.add_argument("run_b", type=Path, help="The second run's folder; the change is b against a.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--model", default="sft", help="The policy to compare (`sft`, `ppo_lag`, ...).")
    parser.add_argument(
        "--model_b", default=None, help="The second run's policy, if named otherwise (default: --model)."
    )
    parser.add_argument("--num_resamples", type=int, default=2000, help="Paired-bootstrap resamples.")
    parser.add_argument("--output", type=Path, default=None, help="Write the result as JSON here.")
    add_judge_version_argument(parser)
    return parser


def load_evaluation(run_dir: Path, seed: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The generations and the summary's metadata of `run_dir`'s evaluation at `seed`."""
    folder = run_dir / f"seed{seed}" / "evaluation"
    for name in ("generations.json", "summary.json"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} does not exist: is {run_dir} a demo_seeds run with seed {seed}?")
    generations = json.loads((folder / "generations.json").read_text(encoding="utf-8"))
    metadata = json.loads((folder / "summary.json").read_text(encoding="utf-8")).get("metadata", {})
    return generations, metadata


def _prompt(answer: dict[str, Any]) -> Any:
    """The prompt an answer belongs to (sampled answers share one), keyed as `trl_safe.evaluation.outcome` keys it."""
    return answer.get("prompt_id", answer["prompt_index"])


def _answers(generations: list[dict[str, Any]], model: str, where: str) -> list[dict[str, Any]]:
    rows = sorted((g for g in generations if g["model"] == model), key=lambda g: (g["prompt_index"], g["completion"]))
    if not rows:
        models = sorted({g["model"] for g in generations})
        raise ValueError(f"{where}: no answers of policy {model!r} (it has {models}).")
    return rows


def check_comparable(a: list[dict[str, Any]], b: list[dict[str, Any]], where: str) -> None:
    """Both evaluations asked the same prompts and scored the start's answers alike (same R and C); else an error
    naming what differs."""
    start_a, start_b = _answers(a, START, f"{where}, run a"), _answers(b, START, f"{where}, run b")
    if [g["prompt"] for g in start_a] != [g["prompt"] for g in start_b]:
        raise ValueError(f"{where}: the two runs asked different prompts; they cannot be paired.")
    for key in ("reward", "cost"):
        gap = max(abs(x[key] - y[key]) for x, y in zip(start_a, start_b))
        if gap > SCORE_TOLERANCE:
            raise ValueError(
                f"{where}: the start's {key}s differ by up to {gap:.4f} between the runs: they were scored by "
                f"different {key} models, so their scores are not comparable."
            )


def counts(generations: list[dict[str, Any]], model: str, judge: ComplianceJudge) -> dict[str, list[int]]:
    """`[count, total]` per group: harmful requests declined / judged unsafe / unsafe by C (cost > 0), look-alikes
    and other benign requests declined (the evaluation's `refused`)."""
    rows = [g for g in generations if g["model"] == model]
    harmful = [g for g in rows if g["label"] == "unsafe"]
    lookalike = [g for g in rows if g["label"] == "safe" and g.get("category") in LOOKALIKE_CATEGORIES]
    benign = [g for g in rows if g["label"] == "safe" and g.get("category") not in LOOKALIKE_CATEGORIES]
    return {
        "harmful_declined": [sum(bool(g["refused"]) for g in harmful), len(harmful)],
        "harmful_judged_unsafe": [sum(judge.is_unsafe(g["prompt"], g["completion"]) for g in harmful), len(harmful)],
        "harmful_cost_unsafe": [sum(g["cost"] > 0 for g in harmful), len(harmful)],
        "lookalike_declined": [sum(bool(g["refused"]) for g in lookalike), len(lookalike)],
        "benign_declined": [sum(bool(g["refused"]) for g in benign), len(benign)],
    }


def reward_split(generations: list[dict[str, Any]], model: str) -> dict[str, Any]:
    """The mean reward change on harmless prompts against the start (each answer against the start's answer to the
    same prompt), split into the declines' and the answers' contributions: `contribution` = the group's summed
    change / all harmless answers, so the two contributions add up to the mean change."""
    start = {}
    for g in generations:
        if g["model"] == START and g["label"] == "safe":
            start.setdefault(_prompt(g), []).append(g["reward"])
    start_mean = {prompt: sum(values) / len(values) for prompt, values in start.items()}
    harmless = [g for g in generations if g["model"] == model and g["label"] == "safe"]
    if not harmless:
        raise ValueError(f"No answers of {model!r} to harmless prompts.")
    split: dict[str, Any] = {"mean_change": 0.0}
    for name, declined in (("declines", True), ("answers", False)):
        changes = [g["reward"] - start_mean[_prompt(g)] for g in harmless if bool(g["refused"]) is declined]
        split[name] = {
            "count": len(changes),
            "mean_change": sum(changes) / len(changes) if changes else 0.0,
            "contribution": sum(changes) / len(harmless),
        }
        split["mean_change"] += split[name]["contribution"]
    return split


def pooled(
    runs: dict[str, dict[int, list[dict[str, Any]]]], models: dict[str, str], judge: ComplianceJudge, resamples: int
) -> list[dict[str, Any]]:
    """The paired bootstrap of run b's policy against run a's over all seeds' answers (a prompt at one seed is paired
    with the same prompt at the same seed)."""
    rows = []
    for tag, per_seed in runs.items():
        for seed, generations in per_seed.items():
            for g in generations:
                if g["model"] == models[tag]:
                    prompt = f"{seed}-{_prompt(g)}"
                    rows.append({**g, "model": tag, "prompt_id": prompt, "prompt_index": prompt})
    return [
        {
            "key": row.key,
            "name": row.name,
            "a": row.change.mean_a,
            "b": row.change.mean_b,
            "change": row.change.estimate,
            "low": row.change.low,
            "high": row.change.high,
            "statistic": row.change.statistic,
        }
        for row in compare_outcomes(rows, "a", "b", judge=judge, num_resamples=resamples)
    ]


def _fraction(pair: list[int]) -> str:
    return f"{pair[0]} of {pair[1]}"


def _change(row: dict[str, Any]) -> str:
    if row["statistic"] == "relative_difference":
        return f"{row['change']:+.1%} [{row['low']:+.1%}, {row['high']:+.1%}]"
    if row["key"] == "reward":
        return f"{row['change']:+.3f} [{row['low']:+.3f}, {row['high']:+.3f}]"
    return f"{100 * row['change']:+.1f} pts [{100 * row['low']:+.1f}, {100 * row['high']:+.1f}]"


PER_SEED_HEADER = [
    "run", "seed", "harmful declined", "judged unsafe", "unsafe by C", "look-alikes declined", "benign declined",
    "benign reward change", "from declines (n)", "from answers (n)",
]  # fmt: skip


def per_seed_table(per_seed: list[dict[str, Any]]) -> str:
    """One markdown row per run and seed: the counts, then the reward change and its two contributions."""
    rows = []
    for row in per_seed:
        split = row["reward_split"]
        rows.append(
            [
                row["run"],
                str(row["seed"]),
                *(_fraction(pair) for pair in row["counts"].values()),
                f"{split['mean_change']:+.3f}",
                *(
                    f"{split[group]['contribution']:+.3f} ({split[group]['count']})"
                    for group in ("declines", "answers")
                ),
            ]
        )
    return "\n".join(markdown_table(PER_SEED_HEADER, rows))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = make_parser().parse_args(argv)
    models = {"a": args.model, "b": args.model_b or args.model}
    runs: dict[str, dict[int, list[dict[str, Any]]]] = {"a": {}, "b": {}}
    rules = set()
    for seed in args.seeds:
        for tag, run_dir in (("a", args.run_a), ("b", args.run_b)):
            runs[tag][seed], metadata = load_evaluation(run_dir, seed)
            rules.add(evaluation_refusal_rule(metadata))
            _answers(runs[tag][seed], models[tag], f"{run_dir} seed {seed}")
        check_comparable(runs["a"][seed], runs["b"][seed], f"seed {seed}")
    if len(rules) > 1:
        raise ValueError(f"The evaluations counted refusals by different rules ({sorted(rules)}): rerun one of them.")
    judge = judge_for_evaluation({"config": {"refusal_rule": rules.pop()}}, args.judge_version)

    per_seed = []
    for tag, run_dir in (("a", args.run_a), ("b", args.run_b)):
        for seed in args.seeds:
            generations = runs[tag][seed]
            per_seed.append(
                {
                    "run": str(run_dir),
                    "seed": seed,
                    "counts": counts(generations, models[tag], judge),
                    "reward_split": reward_split(generations, models[tag]),
                }
            )
    result = {
        "run_a": str(args.run_a),
        "run_b": str(args.run_b),
        "models": models,
        "seeds": args.seeds,
        "judge_version": args.judge_version,
        "per_seed": per_seed,
        "pooled": pooled(runs, models, judge, args.num_resamples),
    }

    print(per_seed_table(per_seed))
    print()
    print(f"{args.run_b} ({models['b']}) against {args.run_a} ({models['a']}), pooled over seeds {args.seeds}:")
    rows = [[row["name"], f"{row['a']:.3f}", f"{row['b']:.3f}", _change(row)] for row in result["pooled"]]
    print("\n".join(markdown_table(["outcome", "a", "b", "change b − a [95% CI]"], rows)))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
    sys.exit(0)
