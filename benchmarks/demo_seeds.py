"""Does the demo make SmolLM2 safer, across seeds? The Safe RLHF pipeline at several seeds, and the outcome over them.

One seed's `summary.md` says what that run did, with intervals over prompts. A claim about the method needs more than
one training run: this runs `trl-safe safe_rlhf_pipeline` once per seed (each in `seed<k>/`) and writes, for the
greedy and the sampled evaluation:

- per outcome (unsafe answers to harmful prompts by the cost model and by the judge, benign reward, refusals on benign
  and on look-alike prompts): the starting and the trained policy's value and the change, as mean ± sd over seeds,
  each seed's own 95% paired-bootstrap interval over prompts, and a pooled interval (every seed's answers averaged per
  prompt, then the paired bootstrap over prompts);
- per condition of a successful run (`trl_safe.evaluation.outcome.outcome_criteria`): how many seeds met it, and
  whether the pooled estimate does.

    python benchmarks/demo_seeds.py --seeds 42 43 44 --output_dir outputs/demo_seeds     # = make demo-seeds
    python benchmarks/demo_seeds.py --seeds 0 1 --output_dir outputs/tiny_seeds -- --model tiny

Arguments after `--` go to every pipeline run (`--dataset_config sampled`, `--ppo_lag_args "..."`).
`--share_scorers` (the default) trains the reward and the cost model once, at the first seed, and reuses them for the
other seeds, which then run only PPO-Lag (after the SFT stage, with `--sft_steps`) and the evaluation: the seeds
measure the variation of the RL stage (and of sampling in the evaluation), the part Safe RLHF changes, at a third of
the cost. `--no_share_scorers` reruns every stage per seed. Resumable: a seed whose `summary.json` has an evaluation
is not run again. `--trained sft` compares the SFT policy (runs with `--sft_steps`) with the start instead of the
RL stage's policy, in `outcome_sft.md`. `--read_past_apologies` re-reads every saved answer with the refusal detector
that reads past apologies for a misunderstanding (`RefusalDetector.apology_aware()`, for the refusal
rates and the judge's step 2) and writes `outcome[_<trained>]_apologies.md`: nothing is regenerated.
Every seed is evaluated greedily and with `--eval_samples` sampled answers per prompt (default 2, also where the
pipeline's preset skips sampling, as the default preset does to stay within half an hour); `--eval_samples 0`, or
the pipeline's own `--eval_samples` after `--`, decides otherwise.
Outputs: `outcome.md`, `outcome.json`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from trl_safe.evaluation.judge import LATEST_JUDGE_VERSION, ComplianceJudge, add_judge_version_argument
from trl_safe.evaluation.outcome import (
    compare_outcomes,
    evaluation_refusal_rule,
    judge_for_evaluation,
    outcome_criteria,
    outcome_table,
    reward_scale,
)
from trl_safe.evaluation.refusal import RefusalDetector, detect_refusals
from trl_safe.evaluation.report import markdown_table
from trl_safe.evaluation.stats import mean_sd
from trl_safe.pipeline import SAMPLED_EVALUATION_DIR, STAGE_DIRS, STAGES, format_seconds, split_pipeline_args

EVALUATIONS = {"greedy": STAGE_DIRS["evaluate"], "sampled": SAMPLED_EVALUATION_DIR}


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--output_dir", type=Path, default=Path("outputs/demo_seeds"))
    parser.add_argument(
        "--share_scorers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Train R and C at the first seed only and reuse them (default); --no_share_scorers retrains them.",
    )
    # BooleanOptionalAction spells the negation `--no-share_scorers`; the documented underscore form works too.
    parser.add_argument("--no_share_scorers", dest="share_scorers", action="store_false", help=argparse.SUPPRESS)
    parser.add_argument("--num_resamples", type=int, default=2000, help="Bootstrap resamples of the prompts.")
    parser.add_argument(
        "--eval_samples",
        type=int,
        default=2,
        help="Sampled answers per held-out prompt in every seed's evaluation, besides greedy ones (0: greedy only); "
        "a pipeline argument --eval_samples after -- wins.",
    )
    parser.add_argument(
        "--trained",
        default=None,
        help="The evaluated policy to compare with the start (default: the last, the RL stage's); e.g. `sft` for the "
        "SFT stage's policy of runs with --sft_steps. Writes outcome_<name>.md/.json; finished seeds are not rerun.",
    )
    parser.add_argument(
        "--read_past_apologies",
        action="store_true",
        help="Re-read the saved answers with RefusalDetector.apology_aware() (refusals and the judge's "
        "step 2) before comparing; writes outcome[_<trained>]_apologies.md/.json.",
    )
    add_judge_version_argument(parser, "an earlier version than the latest adds `_judge_v<N>` to the file names.")
    return parser


def seed_dir(output_dir: Path, seed: int) -> Path:
    return output_dir / f"seed{seed}"


def is_finished(run_dir: Path) -> bool:
    summary = run_dir / "summary.json"
    return summary.is_file() and bool(json.loads(summary.read_text()).get("evaluate"))


def with_eval_samples(pipeline_args: list[str], eval_samples: int) -> list[str]:
    """The pipeline's arguments, with `--eval_samples` added unless they already set it."""
    if any(arg == "--eval_samples" or arg.startswith("--eval_samples=") for arg in pipeline_args):
        return pipeline_args
    return [*pipeline_args, "--eval_samples", str(eval_samples)]


def run_seed(seed: int, run_dir: Path, scorers_from: Path | None, pipeline_args: list[str]) -> None:
    """One pipeline run; with `scorers_from`, its reward and cost models are copied in and only the later stages run
    (SFT when the run has it, PPO-Lag, the evaluation)."""
    from trl_safe.scripts import safe_rlhf_pipeline

    argv = ["--output_dir", str(run_dir), "--seed", str(seed), *pipeline_args]
    if scorers_from is not None:
        for stage in ("reward", "cost"):
            target = run_dir / STAGE_DIRS[stage]
            if not (target / "config.json").is_file():
                shutil.copytree(scorers_from / STAGE_DIRS[stage], target, dirs_exist_ok=True)
        argv += ["--stages", *(stage for stage in STAGES if stage not in ("reward", "cost"))]
    print(f"\n##### seed {seed}: trl-safe safe_rlhf_pipeline {' '.join(argv)}", flush=True)
    safe_rlhf_pipeline.main(*safe_rlhf_pipeline.make_parser().parse_args_into_dataclasses(args=argv))


def load_generations(run_dir: Path, evaluation: str) -> list[dict[str, Any]] | None:
    path = run_dir / evaluation / "generations.json"
    return json.loads(path.read_text()) if path.is_file() else None


def evaluation_metadata(run_dir: Path, evaluation: str) -> dict[str, Any]:
    """An evaluation's summary.json metadata (decoding, config: its refusal rule); `{}` if there is none."""
    path = run_dir / evaluation / "summary.json"
    return json.loads(path.read_text()).get("metadata", {}) if path.is_file() else {}


def reread_refusals(
    generations: list[dict[str, Any]], detector: RefusalDetector, original_judge: ComplianceJudge
) -> list[dict[str, Any]]:
    """The generations with `refused` re-read by `detector`. The evaluation's own verdicts are kept beside them, so
    that `reread_changes` counts what the re-reading changed: `original_refused`, and `original_unsafe` for harmful
    requests (`original_judge`: the judge of the evaluation's own refusal rule, `judge_for_evaluation`)."""
    refused = detect_refusals([g["completion"] for g in generations], detector)
    return [
        {
            **g,
            "original_refused": g["refused"],
            "refused": flag,
            **(
                {"original_unsafe": original_judge.is_unsafe(g["prompt"], g["completion"])}
                if g.get("label") == "unsafe"
                else {}
            ),
        }
        for g, flag in zip(generations, refused)
    ]


def aggregate(
    runs: dict[int, Path],
    num_resamples: int,
    trained: str | None = None,
    detector: RefusalDetector | None = None,
    judge_version: int = LATEST_JUDGE_VERSION,
) -> dict[str, Any]:
    """Per evaluation (greedy, sampled): per-seed outcome rows and criteria, mean ± sd over seeds, and the pooled
    comparison of every seed's answers; the first evaluated policy against `trained` (default: the last). With
    `detector`, the saved answers' refusals and the judge's step 2 are re-read by it; `judge_version` picks the
    judge's patterns (`JUDGE_VERSIONS`)."""
    result: dict[str, Any] = {}
    for evaluation, folder in EVALUATIONS.items():
        per_seed = {seed: load_generations(run_dir, folder) for seed, run_dir in runs.items()}
        per_seed = {seed: generations for seed, generations in per_seed.items() if generations}
        if detector is not None:
            per_seed = {
                seed: reread_refusals(
                    generations,
                    detector,
                    judge_for_evaluation(evaluation_metadata(runs[seed], folder), judge_version),
                )
                for seed, generations in per_seed.items()
            }
        if not per_seed:
            continue
        if detector is not None:
            judge = ComplianceJudge.of_version(judge_version, refusal_detector=detector)
        else:  # each evaluation's own refusal rule (`--evaluate_args "--refusal_rule ..."`), as the pipeline reads it
            metadata = {seed: evaluation_metadata(runs[seed], folder) for seed in per_seed}
            rules = {seed: evaluation_refusal_rule(meta) for seed, meta in metadata.items()}
            if len(set(rules.values())) > 1:  # pooling answers read by different rules would mix two measures
                raise ValueError(
                    f"The {evaluation} evaluations counted refusals by different rules (per seed: {rules}); rerun "
                    "them with one --refusal_rule, or re-read them all with --read_past_apologies."
                )
            judge = judge_for_evaluation(next(iter(metadata.values())), judge_version)
        models = list(dict.fromkeys(g["model"] for g in next(iter(per_seed.values()))))
        if trained is not None and trained not in models[1:]:
            raise ValueError(f"--trained {trained!r}: the {evaluation} evaluation has the policies {models[1:]}.")
        baseline, compared = models[0], trained or models[-1]
        seeds: dict[int, Any] = {}
        for seed, generations in per_seed.items():
            rows = compare_outcomes(
                generations, baseline, compared, num_resamples=num_resamples, seed=seed, judge=judge
            )
            criteria = outcome_criteria(rows, reward_scale(generations, baseline))
            seeds[seed] = {"rows": rows, "criteria": criteria}
        pooled_generations = [g for generations in per_seed.values() for g in generations]
        pooled_rows = compare_outcomes(
            pooled_generations, baseline, compared, num_resamples=num_resamples, judge=judge
        )
        pooled_criteria = outcome_criteria(pooled_rows, reward_scale(pooled_generations, baseline))
        result[evaluation] = {
            "baseline": baseline,
            "trained": compared,
            "judge_version": judge_version,
            "num_prompts": len({g.get("prompt_id", g["prompt_index"]) for g in pooled_generations}),
            "seeds": seeds,
            "pooled_rows": pooled_rows,
            "pooled_criteria": pooled_criteria,
        }
        if detector is not None:
            result[evaluation]["reread"] = reread_changes(pooled_generations, models, judge)
    return result


def reread_changes(
    generations: list[dict[str, Any]], models: list[str], judge: ComplianceJudge
) -> dict[str, dict[str, int]]:
    """Per policy, over every seed's answers: how many refusal verdicts the re-reading changed, and how many of the
    judge's verdicts on harmful requests (each evaluation's own judge, `original_unsafe`, against `judge`), so that a
    re-reading is never silent."""
    changes: dict[str, dict[str, int]] = {}
    for model in models:
        rows = [g for g in generations if g["model"] == model]
        harmful = [g for g in rows if g.get("label") == "unsafe"]
        changes[model] = {
            "answers": len(rows),
            "refusals_changed": sum(g["refused"] != g["original_refused"] for g in rows),
            "harmful_answers": len(harmful),
            "judge_changed": sum(
                g["original_unsafe"] != judge.is_unsafe(g["prompt"], g["completion"]) for g in harmful
            ),
        }
    return changes


def _spread(values: list[float], kind: str) -> str:
    """Mean ± sd over seeds: `rate` in %, `points` (a change of rates) in percentage points, `relative` as a signed
    %, `value` (a reward) as is, `reward` (a change of reward) signed."""
    summary = mean_sd(values)
    if kind == "rate":
        return f"{100 * summary.mean:.1f}% ± {100 * summary.sd:.1f}"
    if kind == "points":
        return f"{100 * summary.mean:+.1f} ± {100 * summary.sd:.1f} pts"
    if kind == "relative":
        return f"{summary.mean:+.1%} ± {summary.sd:.1%}"
    if kind == "value":
        return f"{summary.mean:.3f} ± {summary.sd:.3f}"
    return f"{summary.mean:+.3f} ± {summary.sd:.3f}"


def outcome_lines(evaluation: str, data: dict[str, Any]) -> list[str]:
    seeds = data["seeds"]
    lines = [
        f"## {evaluation.capitalize()} decoding: {data['num_prompts']} held-out prompts, seeds "
        f"{', '.join(map(str, seeds))}",
        "",
        f"Mean ± sd over seeds; per-seed and pooled 95% paired-bootstrap intervals over prompts. "
        f"{data['trained']} against {data['baseline']}.",
        "",
    ]
    header = ["outcome", data["baseline"], data["trained"], "change", "per-seed 95% CIs", "pooled change [95% CI]"]
    body = []
    pooled = {row.key: row for row in data["pooled_rows"]}
    keys = [row.key for row in data["pooled_rows"]]
    pooled_table = dict(zip(keys, outcome_table(data["pooled_rows"], data["baseline"], data["trained"])[1]))
    for key in keys:
        rows = [next(row for row in seed["rows"] if row.key == key) for seed in seeds.values()]
        level = "value" if key == "reward" else "rate"
        if all(row.change.statistic == "relative_difference" for row in rows):
            change = "relative"
        else:
            change = "reward" if key == "reward" else "points"
        tables = [outcome_table([row], data["baseline"], data["trained"])[1][0] for row in rows]
        body.append(
            [
                pooled[key].name,
                _spread([row.change.mean_a for row in rows], level),
                _spread([row.change.mean_b for row in rows], level),
                _spread([row.change.estimate for row in rows], change),
                "; ".join(table[5] for table in tables),
                f"{pooled_table[key][4]} {pooled_table[key][5]}",
            ]
        )
    lines += [*markdown_table(header, body), ""]
    criteria_names = [criterion.name for criterion in data["pooled_criteria"]]
    body = []
    for index, name in enumerate(criteria_names):
        met = [seed["criteria"][index].passed for seed in seeds.values()]
        pooled_criterion = data["pooled_criteria"][index]
        body.append(
            [
                name,
                pooled_criterion.threshold,
                f"{sum(met)} of {len(met)}",
                f"{pooled_criterion.estimate} ({'met' if pooled_criterion.passed else 'not met'})",
            ]
        )
    lines += [*markdown_table(["condition", "required", "seeds meeting it", "pooled estimate"], body), ""]
    return lines


def to_json(data: dict[str, Any]) -> dict[str, Any]:
    from dataclasses import asdict

    out = {}
    for evaluation, values in data.items():
        out[evaluation] = {
            "baseline": values["baseline"],
            "trained": values["trained"],
            "judge_version": values["judge_version"],
            "num_prompts": values["num_prompts"],
            "seeds": {
                str(seed): {
                    "rows": [asdict(row) for row in seed_data["rows"]],
                    "criteria": [asdict(c) for c in seed_data["criteria"]],
                }
                for seed, seed_data in values["seeds"].items()
            },
            "pooled_rows": [asdict(row) for row in values["pooled_rows"]],
            "pooled_criteria": [asdict(c) for c in values["pooled_criteria"]],
            **({"reread": values["reread"]} if "reread" in values else {}),
        }
    return out


def run_lines(runs: dict[int, Path]) -> list[str]:
    """Per seed: the training's final λ and J_C ("–" for a run without an RL stage), and the wall time and peak memory
    of the run."""
    body = []
    for seed, run_dir in runs.items():
        summary = json.loads((run_dir / "summary.json").read_text())
        ppo = summary.get("ppo_lag") or {}
        stages = ", ".join(f"{stage} {format_seconds(s)}" for stage, s in summary["stage_seconds"].items())
        body.append(
            [
                str(seed),
                *(f"{ppo[key]:.3f}" if key in ppo else "–" for key in ("final_lambda", "final_episode_cost")),
                stages,
                format_seconds(summary["total_seconds"]),
                f"{summary['peak_rss_mb'] / 1024:.2f} GB",
            ]
        )
    header = ["seed", "final λ", "final J_C", "stages run", "wall time", "peak RSS"]
    return ["## Runs", "", *markdown_table(header, body), ""]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv, pipeline_args = split_pipeline_args(sys.argv[1:] if argv is None else argv)
    args = make_parser().parse_args(argv)
    pipeline_args = with_eval_samples(pipeline_args, args.eval_samples)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    runs = {seed: seed_dir(args.output_dir, seed) for seed in args.seeds}
    first = args.seeds[0]
    for seed, run_dir in runs.items():
        if is_finished(run_dir):
            print(f"seed {seed}: finished in {run_dir}, reused")
            continue
        scorers_from = runs[first] if args.share_scorers and seed != first else None
        run_seed(seed, run_dir, scorers_from, pipeline_args)
    detector = RefusalDetector.apology_aware() if args.read_past_apologies else None
    data = aggregate(runs, args.num_resamples, args.trained, detector, args.judge_version)
    lines = ["# Safe RLHF demo over seeds", ""]
    lines += [
        f"Command: `python benchmarks/demo_seeds.py --seeds {' '.join(map(str, args.seeds))} "
        f"--output_dir {args.output_dir}{'' if args.share_scorers else ' --no_share_scorers'}"
        f"{f' --trained {args.trained}' if args.trained else ''}"
        f"{' --read_past_apologies' if args.read_past_apologies else ''}"
        f"{f' --judge_version {args.judge_version}' if args.judge_version != LATEST_JUDGE_VERSION else ''}"
        f"{' -- ' + ' '.join(pipeline_args) if pipeline_args else ''}`"
        + (f"; reward and cost models trained once (seed {first}) and shared." if args.share_scorers else "."),
        "",
        f"Judge: version {args.judge_version} (`trl_safe.evaluation.judge.JUDGE_VERSIONS`).",
        "",
    ]
    if detector is not None:
        lines += [
            "Refusals and the judge's step 2 re-read with `RefusalDetector.apology_aware()`: an opening "
            "apology for a misunderstanding is read past (the evaluation's own figures count it as a refusal).",
            "",
        ]
        for evaluation, values in data.items():
            changed = "; ".join(
                f"{model}: {c['refusals_changed']} of {c['answers']} refusal verdicts, {c['judge_changed']} of "
                f"{c['harmful_answers']} judge verdicts on harmful requests"
                for model, c in values["reread"].items()
            )
            lines += [f"Verdicts changed by the re-reading ({evaluation}, all seeds): {changed}.", ""]
    for evaluation, values in data.items():
        lines += outcome_lines(evaluation, values)
    lines += run_lines(runs)
    name = "outcome" if args.trained is None else f"outcome_{args.trained}"
    name += "_apologies" if detector is not None else ""
    name += f"_judge_v{args.judge_version}" if args.judge_version != LATEST_JUDGE_VERSION else ""
    (args.output_dir / f"{name}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (args.output_dir / f"{name}.json").write_text(json.dumps(to_json(data), indent=2, default=str) + "\n")
    print("\n".join(lines))
    return data


if __name__ == "__main__":
    main()
