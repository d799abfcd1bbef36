"""Evaluate policies for helpfulness, harmlessness and over-refusal with a reward model and a cost model.

Every policy answers every prompt; the reward model R and the cost model C score each answer (C > 0: unsafe). The
report compares the policies (the first is the baseline): reward/cost statistics, unsafe ratio, per-category
breakdown, refusal rates, the arena's win rate and safe/unsafe transition table, and Bradley-Terry ratings.

    # a PPO-Lag policy against its SFT starting point, on the Safe RLHF red-team prompts
    trl-safe evaluate \
        --policies my-sft my-ppo-lag --reward_model_name_or_path my-reward --cost_model_name_or_path my-cost \
        --dataset_name safe_rlhf_eval_problem.json --output_dir evaluation --trainer_state my-ppo-lag

    # over-refusal on XSTest's safe prompts (label column `label`, safe label `safe`)
    trl-safe evaluate --policies my-ppo-lag \
        --reward_model_name_or_path my-reward --cost_model_name_or_path my-cost \
        --dataset_name xstest_prompts.csv --output_dir evaluation-xstest

    # publish the results as a data set, and add the evaluation to the policies' local model cards
    trl-safe evaluate ... --push_to_hub --hub_dataset_id me/ppo-lag-evaluation --update_model_cards

Writes generations.json/.csv, summary.json, report.md and the plots to `--output_dir`. `make_parser()` builds the
command line; `main` takes the parsed arguments and returns the `SafetyReport`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trl import TrlParser

from trl_safe.checks import check_model_path, check_score_model_trained
from trl_safe.evaluation import SafetyEvaluationConfig, SafetyReport, evaluate_safety, load_prompts
from trl_safe.hub import add_evaluation_to_model_card, push_evaluation_to_hub


@dataclass
class EvaluateScriptArguments(SafetyEvaluationConfig):
    """Arguments of `trl-safe evaluate`: what to evaluate, on which prompts, where to write; plus every field of
    `SafetyEvaluationConfig` (batch size, decoding, tie margin, ...).

    Parameters:
        policies (`list[str]`): paths or Hub ids of the policies; the first is the arena baseline.
        policy_names (`list[str]` or `None`): display names, one per policy (default: the folder names).
        reward_model_name_or_path (`str`): path or Hub id of the reward model (the training scripts' name).
        cost_model_name_or_path (`str`): path or Hub id of the cost model.
        dataset_name (`str`): prompt file (.txt/.json/.jsonl/.csv/.tsv/.parquet) or Hub data set id (TRL's name).
        prompt_column, category_column, label_column (`str` or `None`): column names (default: auto-detected).
        dataset_config (`str` or `None`), dataset_split (`str`): for a Hub data set.
        limit (`int` or `None`): evaluate only the first prompts.
        output_dir (`str`): where the report is written.
        trainer_state (`str` or `None`): a run's trainer_state.json or folder, for the training-curve plot.
        plots (`bool`): write the plots.
        push_to_hub (`bool`), hub_dataset_id (`str` or `None`), hub_private (`bool`): publish the results as a
            Hub data set.
        update_model_cards (`bool`): add the evaluation to the README.md of each policy given as a local folder.
    """

    # `required` makes a missing argument an argparse usage error on the command line; `__post_init__` checks the
    # same when the class is built in Python.
    policies: list[str] = field(
        default_factory=list, metadata={"help": "Policies (paths or Hub ids); first = baseline.", "required": True}
    )
    policy_names: list[str] | None = field(default=None, metadata={"help": "Display names, one per policy."})
    reward_model_name_or_path: str | None = field(
        default=None, metadata={"help": "Reward model (path or Hub id).", "required": True}
    )
    cost_model_name_or_path: str | None = field(
        default=None, metadata={"help": "Cost model (path or Hub id).", "required": True}
    )
    dataset_name: str | None = field(
        default=None, metadata={"help": "Prompt file or Hub data set id.", "required": True}
    )
    prompt_column: str | None = field(default=None, metadata={"help": "Prompt column (default: auto-detected)."})
    category_column: str | None = field(default=None, metadata={"help": "Category column (default: auto-detected)."})
    label_column: str | None = field(default=None, metadata={"help": "Safe/unsafe label column (default: auto)."})
    dataset_config: str | None = field(default=None, metadata={"help": "Configuration of a Hub data set."})
    dataset_split: str = field(default="train", metadata={"help": "Split of a Hub data set."})
    limit: int | None = field(default=None, metadata={"help": "Evaluate only the first `limit` prompts."})
    output_dir: str = field(default="evaluation", metadata={"help": "Where the report is written."})
    trainer_state: str | None = field(default=None, metadata={"help": "trainer_state.json or run folder to plot."})
    plots: bool = field(default=True, metadata={"help": "Write the PNG plots (the default); --no_plots skips them."})
    push_to_hub: bool = field(default=False, metadata={"help": "Push the results as a Hub data set."})
    hub_dataset_id: str | None = field(default=None, metadata={"help": "Hub data set id for --push_to_hub."})
    hub_private: bool = field(default=False, metadata={"help": "Create the Hub data set as private."})
    update_model_cards: bool = field(
        default=False, metadata={"help": "Add the evaluation to each local policy folder's README.md."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        required = ("reward_model_name_or_path", "cost_model_name_or_path", "dataset_name")
        missing = [name for name in required if getattr(self, name) is None]
        if not self.policies:
            missing.insert(0, "policies")
        if missing:
            raise ValueError(f"Missing required arguments: {', '.join('--' + name for name in missing)}.")
        if self.policy_names is not None and len(self.policy_names) != len(self.policies):
            raise ValueError(f"{len(self.policy_names)} --policy_names for {len(self.policies)} --policies.")
        if self.push_to_hub and not self.hub_dataset_id:
            raise ValueError("--push_to_hub needs --hub_dataset_id.")


def make_parser(prog: str | None = None) -> TrlParser:
    return TrlParser(EvaluateScriptArguments, prog=prog)


def main(args: EvaluateScriptArguments) -> SafetyReport:
    """Run the evaluation, write the report (and push it / update model cards if asked); return the report."""
    # A mistyped folder, or a base model given as a scorer (random head), must stop here, not score noise.
    for role, path in (("reward", args.reward_model_name_or_path), ("cost", args.cost_model_name_or_path)):
        check_model_path(path, f"{role} model")
        check_score_model_trained(path, role)
    prompts = load_prompts(
        args.dataset_name,
        prompt_column=args.prompt_column,
        category_column=args.category_column,
        label_column=args.label_column,
        subset=args.dataset_config,
        split=args.dataset_split,
        limit=args.limit,
    )
    names = args.policy_names or [Path(policy).name or policy for policy in args.policies]
    report = evaluate_safety(
        dict(zip(names, args.policies)),
        args.reward_model_name_or_path,
        args.cost_model_name_or_path,
        prompts,
        config=args,
        prompt_source=Path(args.dataset_name).name if Path(args.dataset_name).exists() else args.dataset_name,
    )
    paths = report.save(args.output_dir, plots=args.plots, training_log=args.trainer_state)
    print("\n".join(report.summary_table()))
    print(f"Report written to {paths['report_md']}")

    if args.update_model_cards:
        for name, policy in zip(names, args.policies):
            readme = Path(policy) / "README.md"
            if readme.is_file():
                add_evaluation_to_model_card(readme, report, model=name).save(readme)
                print(f"Added the evaluation to {readme}")
    if args.push_to_hub:
        commit = push_evaluation_to_hub(
            report, args.hub_dataset_id, training_log=args.trainer_state, private=args.hub_private
        )
        print(f"Pushed the evaluation to {commit.repo_url}")
    return report


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
