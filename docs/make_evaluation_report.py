"""Produce the example evaluation report shown in docs/evaluation.md (markdown + PNGs in docs/assets/evaluation/).

    python docs/make_evaluation_report.py                      # tiny models, offline, a few minutes on a CPU
    python docs/make_evaluation_report.py --policies path/to/sft path/to/ppo-lag \
        --reward_model_name_or_path path/to/reward --cost_model_name_or_path path/to/cost \
        --trainer_state path/to/ppo-lag

Without models, it builds tiny ones in-process (`trl_safe.testing_utils`): a random reward model and a random cost
model (initialised with a wider weight distribution, `initializer_range=0.3`, so that their scores spread over both
sides of the safety boundary), a random policy `tiny-sft`, and `tiny-ppo-lag`: the same policy after
`--ppo_lag_steps` steps of `PPOLagTrainer` against those two scorers, with a cost limit (-0.5) below the initial mean
cost so that the constraint binds and λ rises. The numbers illustrate the report's format and say nothing about
safety. The prompts are the Safe RLHF red-team prompts (../shared/data/safe_rlhf_eval_problem.json), for training and
evaluation alike. The report replaces the text between the `<!-- report:start -->` and `<!-- report:end -->` markers
of docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
from pathlib import Path

import torch
from datasets import Dataset

from trl_safe import PPOLagConfig, PPOLagTrainer
from trl_safe.evaluation import SafetyEvaluationConfig, evaluate_safety, load_prompts
from trl_safe.testing_utils import make_tiny_causal_lm, make_tiny_scorer, make_tiny_tokenizer

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
START, END = "<!-- report:start -->", "<!-- report:end -->"


def train_tiny_ppo_lag(policy, reward, cost, tokenizer, prompts: list[str], steps: int, output_dir: Path):
    """Train `policy` in place for `steps` PPO-Lag steps; returns the trainer (for its `state.log_history`)."""
    args = PPOLagConfig(
        output_dir=str(output_dir),
        per_device_train_batch_size=16,
        max_completion_length=24,
        max_steps=steps,
        num_ppo_epochs=2,
        learning_rate=3e-3,
        cost_limit=-0.5,
        lambda_lr=0.1,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        activation_checkpointing=False,
        disable_tqdm=True,
        seed=0,
    )
    trainer = PPOLagTrainer(
        model=policy,
        reward_model=reward,
        cost_model=cost,
        args=args,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        processing_class=tokenizer,
    )
    trainer.train()
    return trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policies", nargs="*", help="policy paths (first: baseline); default: tiny policies")
    parser.add_argument("--reward_model_name_or_path", help="reward model path; default: a tiny random one")
    parser.add_argument("--cost_model_name_or_path", help="cost model path; default: a tiny random one")
    parser.add_argument("--dataset_name", default=str(SHARED_DATA / "safe_rlhf_eval_problem.json"))
    parser.add_argument("--trainer_state", help="a PPO-Lag run's trainer_state.json or folder, for training curves")
    parser.add_argument("--max_new_tokens", type=int, default=48)
    parser.add_argument("--ppo_lag_steps", type=int, default=40, help="PPO-Lag steps of the tiny candidate")
    parser.add_argument("--assets", default=str(REPO / "docs" / "assets" / "evaluation"))
    parser.add_argument("--doc", default=str(REPO / "docs" / "evaluation.md"))
    args = parser.parse_args()
    torch.manual_seed(0)

    prompts = load_prompts(args.dataset_name)
    config = SafetyEvaluationConfig(max_new_tokens=args.max_new_tokens, batch_size=16, num_examples=3)
    training_log = args.trainer_state
    with tempfile.TemporaryDirectory() as scratch:
        if args.policies:
            report = evaluate_safety(
                args.policies,
                args.reward_model_name_or_path,
                args.cost_model_name_or_path,
                prompts,
                config=config,
                prompt_source=Path(args.dataset_name).name,
            )
        else:
            tokenizer = make_tiny_tokenizer()
            reward = make_tiny_scorer(tokenizer, seed=2, initializer_range=0.3)
            cost = make_tiny_scorer(tokenizer, seed=3, initializer_range=0.3)
            policy = make_tiny_causal_lm(tokenizer, seed=0)
            trainer = train_tiny_ppo_lag(
                policy, reward, cost, tokenizer, prompts["prompt"], args.ppo_lag_steps, Path(scratch) / "ppo-lag"
            )
            training_log = trainer.state.log_history
            policies = {"tiny-sft": make_tiny_causal_lm(tokenizer, seed=0), "tiny-ppo-lag": policy}  # trained in place
            report = evaluate_safety(
                policies,
                reward,
                cost,
                prompts,
                tokenizer=tokenizer,
                config=config,
                prompt_source=Path(args.dataset_name).name,
            )
            report.metadata.update(reward_model="tiny-random-reward", cost_model="tiny-random-cost")
        output = Path(scratch) / "report"
        report.save(output, training_log=training_log, dpi=90)
        assets = Path(args.assets)
        assets.mkdir(parents=True, exist_ok=True)
        for path in output.iterdir():
            if path.suffix in (".png", ".md"):
                shutil.copy(path, assets / path.name)

    # The report in the docs page: its headings nested under "## Example report", its images from the assets folder.
    relative = Path(args.assets).resolve().relative_to(Path(args.doc).resolve().parent).as_posix()
    markdown = (assets / "report.md").read_text(encoding="utf-8")
    markdown = re.sub(r"\]\(([\w.-]+\.png)\)", rf"]({relative}/\1)", markdown)
    markdown = markdown.split("\n", 1)[1]  # the page has its own title
    markdown = re.sub(r"^(#{1,5}) ", r"#\1 ", markdown, flags=re.MULTILINE)
    doc = Path(args.doc)
    text = doc.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise ValueError(f"{doc} lacks the {START} ... {END} markers.")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    doc.write_text(f"{head}{START}\n\n{markdown.strip()}\n\n{END}{tail}", encoding="utf-8")
    print(f"Wrote {assets} and updated {doc}")


if __name__ == "__main__":
    main()
