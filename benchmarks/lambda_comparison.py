"""The Safe RLHF paper's third question: does an adaptive λ beat reward shaping with a fixed λ?

Given a trained reward model, a trained cost model and a starting policy, this trains the same policy with the same
budget under every method, with several seeds each, evaluates every trained policy on held-out prompts, and writes a
table and the reward-vs-cost plot (one point per method, ± one standard deviation over seeds, the cost limit drawn).

Methods (all through the `ppo_lag` script, `trl-safe ppo_lag`, so that only λ differs: same trainer, critic, KL
penalty and budget):

- `ppo`: no constraint, λ fixed at 0 (the advantage is then the reward advantage alone, as in plain PPO);
- `ppo_lag_sgd`: PPO-Lag, λ adapted by gradient ascent on log λ (the paper's rule);
- `ppo_lag_pid`: PPO-Lag, λ from the PID rule;
- `shaping_<λ>`: reward shaping, λ fixed (`--lambda_lr 0`) at each value of `--fixed_lambdas`.

    python benchmarks/lambda_comparison.py --policy outputs/safe_rlhf_demo/tiny_base_model \\
        --reward_model outputs/safe_rlhf_demo/reward_model --cost_model outputs/safe_rlhf_demo/cost_model \\
        --output_dir outputs/lambda_comparison --seeds 0 1 2 --fixed_lambdas 0.1 1 5

Resumable: each (method, seed) run lives in `runs/<method>/seed<k>/`; a run whose `result.json` exists is skipped,
one whose policy exists but not its evaluation is only evaluated. Rerun the same command after an interruption.
Outputs: `table.md`, `table.json` (per method: mean ± sd over seeds of the held-out metrics) and `tradeoff.png`.
Metrics per run: mean reward and mean cost of all answers, the unsafe ratio (C > 0) and the independent judge's unsafe
ratio on harmful prompts, the refusal rate on safe prompts, and training's final λ and J_C.
"""

from __future__ import annotations

import argparse
import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trl_safe.lora_checkpoints import merge_lora
from trl_safe.pipeline import lora_target_modules


@dataclass(frozen=True)
class Method:
    """One way of setting λ; `ppo_lag_args` are appended to the shared `trl-safe ppo_lag` arguments."""

    name: str
    description: str
    ppo_lag_args: tuple[str, ...]


def make_methods(fixed_lambdas: list[float], lambda_init: float, lambda_lr: float) -> list[Method]:
    """The compared methods, in table order."""
    methods = [
        Method("ppo", "PPO, no constraint (λ = 0)", ("--lambda_init", "0", "--lambda_lr", "0")),
        Method(
            "ppo_lag_sgd",
            f"PPO-Lag, adaptive λ (sgd on log λ, lr {lambda_lr:g})",
            ("--lambda_init", str(lambda_init), "--lambda_lr", str(lambda_lr), "--lambda_update_rule", "sgd"),
        ),
        Method(
            "ppo_lag_pid",
            "PPO-Lag, adaptive λ (PID)",
            ("--lambda_init", str(lambda_init), "--lambda_update_rule", "pid"),
        ),
    ]
    for value in fixed_lambdas:
        if value < 0:
            raise ValueError(f"--fixed_lambdas must be >= 0, got {value}.")
        methods.append(
            Method(
                f"shaping_{value:g}",
                f"reward shaping, fixed λ = {value:g}",
                ("--lambda_init", str(value), "--lambda_lr", "0", "--lambda_max", str(max(value, 5.0))),
            )
        )
    return methods


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    inputs = parser.add_argument_group("inputs")
    inputs.add_argument("--policy", required=True, help="Starting policy (a from_pretrained directory).")
    inputs.add_argument("--reward_model", required=True, help="Trained reward model directory.")
    inputs.add_argument("--cost_model", required=True, help="Trained cost model directory (C > 0 unsafe).")
    inputs.add_argument("--dataset_name", default=None, help="Training prompts, PKU format (default: demo data).")
    inputs.add_argument("--dataset_config", default=None, help="Configuration of the data (demo: combined, ...).")
    inputs.add_argument("--dataset_train_split", default="train")
    inputs.add_argument(
        "--eval_prompts", default=None, help="Held-out prompts, any load_prompts file (default: the demo's test)."
    )
    inputs.add_argument("--output_dir", required=True)
    methods = parser.add_argument_group("methods")
    methods.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    methods.add_argument("--fixed_lambdas", type=float, nargs="+", default=[0.1, 1.0, 5.0])
    methods.add_argument("--lambda_init", type=float, default=1.0, help="Initial λ of the adaptive methods.")
    methods.add_argument("--lambda_lr", type=float, default=0.1, help="λ's learning rate of the sgd rule.")
    methods.add_argument("--methods", nargs="+", default=None, help="Run only these methods (default: all).")
    methods.add_argument(
        "--aggregate_only",
        action="store_true",
        help="Train and evaluate nothing: write the table and the plot from the runs already finished.",
    )
    budget = parser.add_argument_group("budget (the same for every method)")
    budget.add_argument("--cost_limit", type=float, default=0.0)
    budget.add_argument("--ppo_steps", type=int, default=36, help="Rollouts per run.")
    budget.add_argument("--ppo_batch_size", type=int, default=8)
    budget.add_argument("--ppo_epochs", type=int, default=2)
    budget.add_argument("--learning_rate", type=float, default=5e-4)
    budget.add_argument("--max_completion_length", type=int, default=48)
    budget.add_argument("--lora_layers", type=int, default=None, help="LoRA on the top layers (default: none).")
    budget.add_argument("--ppo_lag_args", default="", help="Extra arguments of `trl-safe ppo_lag` (all runs).")
    evaluation = parser.add_argument_group("evaluation")
    evaluation.add_argument("--eval_limit", type=int, default=None, help="First held-out prompts only.")
    evaluation.add_argument("--eval_samples", type=int, default=1, help="Answers per prompt (>1 samples).")
    evaluation.add_argument("--eval_temperature", type=float, default=0.7, help="With --eval_samples > 1.")
    evaluation.add_argument("--eval_batch_size", type=int, default=16)
    return parser


# --------------------------------------------------------------------------------------------------------------------
# Training and evaluation of one run
# --------------------------------------------------------------------------------------------------------------------


def ppo_lag_argv(args: argparse.Namespace, method: Method, seed: int, policy_dir: Path, dataset: str) -> list[str]:
    """The command line of `trl-safe ppo_lag` for one run: the shared budget, then the method's λ settings."""
    argv = [
        "--model_name_or_path", args.policy,
        "--reward_model_name_or_path", args.reward_model,
        "--cost_model_name_or_path", args.cost_model,
        "--dataset_name", dataset,
        "--dataset_train_split", args.dataset_train_split,
        *(["--dataset_config", args.dataset_config] if args.dataset_config else []),
        "--conversational",
        "--output_dir", str(policy_dir),
        "--seed", str(seed),
        "--report_to", "none",
        "--save_strategy", "no",
        "--logging_steps", "1",
        "--activation_checkpointing", "false",
        "--eval_strategy", "no",
        "--max_steps", str(args.ppo_steps * args.ppo_epochs),
        "--per_device_train_batch_size", str(args.ppo_batch_size),
        "--num_ppo_epochs", str(args.ppo_epochs),
        "--learning_rate", str(args.learning_rate),
        "--max_completion_length", str(args.max_completion_length),
        "--temperature", "0.7",
        "--cost_limit", str(args.cost_limit),
        "--window_size", str(4 * args.ppo_batch_size),
    ]  # fmt: skip
    if args.lora_layers is not None:
        from transformers import AutoConfig

        num_layers = AutoConfig.from_pretrained(args.policy).num_hidden_layers
        argv += [
            "--use_peft", "--lora_task_type", "CAUSAL_LM", "--lora_r", "16", "--lora_alpha", "64",
            "--lora_dropout", "0.0",
            "--lora_target_modules", lora_target_modules(num_layers, args.lora_layers),
        ]  # fmt: skip
    return argv + shlex.split(args.ppo_lag_args) + list(method.ppo_lag_args)


def train(args: argparse.Namespace, method: Method, seed: int, policy_dir: Path, dataset: str) -> dict[str, float]:
    """Train one policy with the `ppo_lag` script (`trl-safe ppo_lag`); return its final λ and J_C."""
    from transformers import AutoModelForCausalLM

    from trl_safe.cli import run_script

    argv = ppo_lag_argv(args, method, seed, policy_dir, dataset)
    print(f"\n=== {method.name}, seed {seed}\n    trl-safe ppo_lag {shlex.join(argv)}", flush=True)
    trainer = run_script("ppo_lag", argv)
    trainer.save_state()
    result = {"final_lambda": trainer.lagrange.value, "final_episode_cost": trainer.lagrange.episode_cost}
    del trainer
    if (policy_dir / "adapter_config.json").is_file():
        merge_lora(policy_dir, AutoModelForCausalLM)
    return result


def load_eval_prompts(args: argparse.Namespace):
    """The held-out prompts (with `category` and `label` when known); `evaluate` answers each `--eval_samples`
    times."""
    from trl_safe.demo import load_demo_prompts
    from trl_safe.evaluation import load_prompts

    prompts = load_prompts(args.eval_prompts, limit=args.eval_limit) if args.eval_prompts else load_demo_prompts()
    if args.eval_prompts is None and args.eval_limit is not None:
        prompts = prompts.select(range(min(args.eval_limit, len(prompts))))
    return prompts


def evaluate(args: argparse.Namespace, policy: str, name: str, prompts) -> dict[str, Any]:
    """Answer the held-out prompts with `policy`; score with R and C, the judge and the refusal detector."""
    from trl_safe.evaluation import SafetyEvaluationConfig, evaluate_safety
    from trl_safe.evaluation.judge import ComplianceJudge

    sampling = args.eval_samples > 1
    config = SafetyEvaluationConfig(
        batch_size=args.eval_batch_size,
        max_new_tokens=args.max_completion_length,
        do_sample=sampling,
        temperature=args.eval_temperature if sampling else 1.0,
        num_samples_per_prompt=args.eval_samples,
    )
    report = evaluate_safety({name: policy}, args.reward_model, args.cost_model, prompts, config=config)
    judge = ComplianceJudge()
    answers = []
    for record in report.generations:
        answers.append(
            {
                "prompt_id": record["prompt_id"],
                "label": record["label"],
                "completion": record["completion"],
                "reward": record["reward"],
                "cost": record["cost"],
                "refused": record["refused"],
                "judge_unsafe": judge.is_unsafe(record["prompt"], record["completion"], record["label"]),
            }
        )
    return {"metrics": run_metrics(answers), "answers": answers}


def run_metrics(answers: list[dict[str, Any]]) -> dict[str, float | None]:
    """The table's metrics of one run's answers; a rate over an empty group is None."""

    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    harmful = [a for a in answers if a["label"] == "unsafe"]
    safe = [a for a in answers if a["label"] == "safe"]
    return {
        "reward_mean": mean([a["reward"] for a in answers]),
        "cost_mean": mean([a["cost"] for a in answers]),
        "unsafe_ratio_cost": mean([float(a["cost"] > 0) for a in harmful]),
        "unsafe_ratio_judge": mean([float(a["judge_unsafe"]) for a in harmful]),
        "refusal_rate_safe": mean([float(a["refused"]) for a in safe]),
        "reward_mean_safe": mean([a["reward"] for a in safe]),
    }


# --------------------------------------------------------------------------------------------------------------------
# The comparison
# --------------------------------------------------------------------------------------------------------------------

TABLE_METRICS = (
    ("reward_mean", "reward R"),
    ("cost_mean", "cost C"),
    ("unsafe_ratio_cost", "unsafe, harmful prompts (C > 0)"),
    ("unsafe_ratio_judge", "unsafe, harmful prompts (judge)"),
    ("refusal_rate_safe", "refusals, safe prompts"),
    ("final_lambda", "final λ"),
    ("final_episode_cost", "final J_C"),
)


def aggregate(results: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per method: mean ± sd over seeds of every metric (metrics a run lacks, e.g. λ of the start, are skipped)."""
    from trl_safe.evaluation.stats import mean_sd

    table = {}
    for name, runs in results.items():
        row: dict[str, Any] = {"seeds": [run["seed"] for run in runs]}
        for key, _ in TABLE_METRICS:
            values = [run[key] for run in runs if run.get(key) is not None]
            if values:
                summary = mean_sd(values, name=f"{name} {key}")
                row[key] = {"mean": summary.mean, "sd": summary.sd, "n": summary.n}
        table[name] = row
    return table


def table_markdown(table: dict[str, dict[str, Any]], descriptions: dict[str, str], cost_limit: float) -> str:
    header = ["method", "seeds", *(label for _, label in TABLE_METRICS)]
    lines = [
        f"Held-out evaluation, mean ± sd over seeds (cost limit {cost_limit:g}).",
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    for name, row in table.items():
        cells = [descriptions.get(name, name), str(len(row["seeds"]))]
        for key, _ in TABLE_METRICS:
            cell = row.get(key)
            cells.append("" if cell is None else f"{cell['mean']:.3f} ± {cell['sd']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_one(args, method: Method, seed: int, prompts, dataset: str) -> dict[str, Any]:
    """Train (unless the policy exists) and evaluate (unless `result.json` exists) one run; return its result."""
    run_dir = Path(args.output_dir) / "runs" / method.name / f"seed{seed}"
    result_file = run_dir / "result.json"
    if result_file.is_file():
        print(f"=== {method.name}, seed {seed}: done, reusing {result_file}")
        return json.loads(result_file.read_text())
    policy_dir = run_dir / "policy"
    training_file = run_dir / "training.json"
    if not training_file.is_file():
        training = train(args, method, seed, policy_dir, dataset)
        training_file.write_text(json.dumps(training, indent=2) + "\n")
    training = json.loads(training_file.read_text())
    evaluation = evaluate(args, str(policy_dir), f"{method.name}-seed{seed}", prompts)
    (run_dir / "answers.json").write_text(json.dumps(evaluation["answers"], indent=1) + "\n")
    result = {"method": method.name, "seed": seed, **training, **evaluation["metrics"]}
    result_file.write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = make_parser().parse_args(argv)
    from trl_safe.demo import demo_data_dir
    from trl_safe.evaluation.plots import plot_method_tradeoff, save_figure

    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    dataset = args.dataset_name or str(demo_data_dir())
    methods = make_methods(args.fixed_lambdas, args.lambda_init, args.lambda_lr)
    if args.methods is not None:
        unknown = sorted(set(args.methods) - {m.name for m in methods})
        if unknown:
            raise SystemExit(f"Unknown --methods {unknown}; known: {[m.name for m in methods]}.")
        methods = [m for m in methods if m.name in args.methods]
    prompts = None if args.aggregate_only else load_eval_prompts(args)

    start_file = output_dir / "start.json"
    if not start_file.is_file() and not args.aggregate_only:
        evaluation = evaluate(args, args.policy, "start", prompts)
        start_file.write_text(json.dumps({"seed": None, **evaluation["metrics"]}, indent=2) + "\n")
    results: dict[str, list[dict[str, Any]]] = {}
    if start_file.is_file():
        results["start"] = [json.loads(start_file.read_text())]
    for method in methods:
        if args.aggregate_only:
            done = [output_dir / "runs" / method.name / f"seed{seed}" / "result.json" for seed in args.seeds]
            runs = [json.loads(path.read_text()) for path in done if path.is_file()]
            if runs:
                results[method.name] = runs
            continue
        results[method.name] = [run_one(args, method, seed, prompts, dataset) for seed in args.seeds]

    table = aggregate(results)
    descriptions = {"start": "starting policy", **{m.name: m.description for m in methods}}
    (output_dir / "table.json").write_text(json.dumps(table, indent=2) + "\n")
    (output_dir / "table.md").write_text(table_markdown(table, descriptions, args.cost_limit))
    points = {
        name: (row["cost_mean"]["mean"], row["cost_mean"]["sd"], row["reward_mean"]["mean"], row["reward_mean"]["sd"])
        for name, row in table.items()
    }
    save_figure(plot_method_tradeoff(points, cost_limit=args.cost_limit), output_dir / "tradeoff.png")
    print((output_dir / "table.md").read_text())
    print(f"Table and plot in {output_dir}/ (table.md, table.json, tradeoff.png).")
    return table


if __name__ == "__main__":
    main()
