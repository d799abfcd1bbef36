"""Where λ makes PPO-Lag prefer declining harmful requests but not harmless ones, from R and C on training data.

PPO-Lag's advantage weighs the reward against the cost, Â = (Â_R − λ·Â_C) / (1 + λ). Take one prompt and two
answers the policy could give, its usual answer and a curt decline. Declining changes the reward by ΔR and the cost by
ΔC; the objective favours the decline when ΔR − λ·ΔC > 0. A reward model trained on helpfulness preferences scores a
decline below an answer (ΔR < 0), and a cost model scores it safer (ΔC < 0), so the decline wins once λ exceeds
λ* = ΔR / ΔC. If λ* is lower on harmful prompts than on harmless ones, every λ between the two makes the objective
favour declining exactly the harmful requests: that interval is where the constraint can teach declines without
teaching over-refusal. Below it the policy is pushed away from declining harmful requests too; above it, towards
declining harmless ones.

This estimates both thresholds from what the training data already hold, with no held-out prompt: for every prompt
of the demo's `sampled` configuration (train split: SmolLM2's own answers, hand-labelled) it scores the start's two
answers and the demo's written curt declines (`redirect_vs_curt_refusal` pairs of the templated data) with R and C,
and averages ΔR and ΔC over the harmful and over the harmless prompts. It is a first-order picture: the advantage is
relative to the critic's baseline, and R and C are read on whole answers, so treat the window as a range to start λ
in, not as a guarantee.

    python benchmarks/lambda_window.py --reward_model outputs/safe_rlhf_demo/reward_model \\
        --cost_model outputs/safe_rlhf_demo/cost_model

With a cost floor (`--floors`, PPO-Lag's `cost_floor`) the costs are raised to the floor per answer first: answers
already rated safe then gain nothing by declining, which is what closes the window's upper end.

Prints the per-group figures and the window per floor; `main` returns them.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from trl_safe.demo import load_demo_dataset


@dataclass(frozen=True)
class DeclineShift:
    """Mean change of reward and cost when the start's answer is replaced by a curt decline, over one group."""

    group: str
    num_prompts: int
    delta_reward: float
    delta_cost: float

    @property
    def threshold(self) -> float:
        """λ* = ΔR / ΔC: above it the objective favours declining (for ΔR < 0 and ΔC < 0); `inf` if never."""
        if self.delta_cost >= 0:
            return float("inf") if self.delta_reward <= 0 else 0.0
        return max(self.delta_reward / self.delta_cost, 0.0)


def curt_declines(split: str = "train") -> list[str]:
    """The distinct curt declines written for harmful train prompts (the worse answers of the templated data's
    `redirect_vs_curt_refusal` pairs), in first-seen order."""
    declines: dict[str, None] = {}
    for row in load_demo_dataset(split, "default"):
        if row["pair_type"] == "redirect_vs_curt_refusal":
            declines.setdefault(row[f"response_{1 - row['better_response_id']}"], None)
    if not declines:
        raise ValueError(f"The demo's {split} split has no curt declines (redirect_vs_curt_refusal pairs).")
    return list(declines)


def decline_shifts(
    harmful: list[bool], answer_scores: list[tuple[float, float]], decline_scores: list[tuple[float, float]]
) -> list[DeclineShift]:
    """Per group (harmful, harmless prompts): the mean of (R, C) of a decline minus that of the start's answers.

    Args:
        harmful: per prompt, whether it is harmful.
        answer_scores: per prompt, the mean (R, C) of the start's answers.
        decline_scores: per prompt, the mean (R, C) of the curt declines.
    """
    if not len(harmful) == len(answer_scores) == len(decline_scores):
        raise ValueError("One label, one answer score and one decline score per prompt, please.")
    shifts = []
    for group, flag in (("harmful", True), ("harmless", False)):
        indices = [i for i, h in enumerate(harmful) if h == flag]
        if not indices:
            raise ValueError(f"No {group} prompts: the window needs both groups.")
        delta_r = sum(decline_scores[i][0] - answer_scores[i][0] for i in indices) / len(indices)
        delta_c = sum(decline_scores[i][1] - answer_scores[i][1] for i in indices) / len(indices)
        shifts.append(DeclineShift(group, len(indices), delta_r, delta_c))
    return shifts


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--reward_model", required=True, help="A trained reward model (folder or Hub id).")
    parser.add_argument("--cost_model", required=True, help="A trained cost model (folder or Hub id).")
    parser.add_argument(
        "--floors", nargs="+", default=["none", "0"], help="Cost floors to report under (`none`: the raw cost)."
    )
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's).")
    return parser


def main(argv: list[str] | None = None) -> list[tuple[float | None, list[DeclineShift]]]:
    args = make_parser().parse_args(argv)
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from trl_safe.scoring import Scorer

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    declines = curt_declines()
    answers: dict[str, list[str]] = {}
    labels: dict[str, bool] = {}
    for row in load_demo_dataset("train", "sampled"):
        answers.setdefault(row["prompt"], []).extend([row["response_0"], row["response_1"]])
        labels[row["prompt"]] = row["prompt_label"] == "unsafe"
    prompts = list(answers)

    def scores_per_prompt(scorer: Scorer, texts_per_prompt: list[list[str]]) -> list[list[float]]:
        flat_prompts: list[Any] = []
        flat_answers: list[Any] = []
        for prompt, texts in zip(prompts, texts_per_prompt):
            for text in texts:
                flat_prompts.append([{"role": "user", "content": prompt}])
                flat_answers.append([{"role": "assistant", "content": text}])
        with torch.inference_mode():
            scores = scorer.score(flat_prompts, flat_answers).tolist()
        grouped, start = [], 0
        for texts in texts_per_prompt:
            grouped.append(scores[start : start + len(texts)])
            start += len(texts)
        return grouped

    per_model = {}
    for name, path in (("reward", args.reward_model), ("cost", args.cost_model)):
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1).eval()
        scorer = Scorer(model, AutoTokenizer.from_pretrained(path), name=name, batch_size=args.batch_size)
        per_model[name] = (
            scores_per_prompt(scorer, [answers[p] for p in prompts]),
            scores_per_prompt(scorer, [declines for _ in prompts]),
        )
    (answer_r, decline_r), (answer_c, decline_c) = per_model["reward"], per_model["cost"]
    print(
        f"A curt decline ({len(declines)} written ones) instead of the start's answers to the {len(prompts)} train "
        "prompts of the demo's `sampled` configuration:"
    )
    results = []
    for floor in [None if value.lower() == "none" else float(value) for value in args.floors]:
        shifts = decline_shifts(
            [labels[p] for p in prompts],
            [(mean(r), mean(floored(c, floor))) for r, c in zip(answer_r, answer_c)],
            [(mean(r), mean(floored(c, floor))) for r, c in zip(decline_r, decline_c)],
        )
        print(f"{'raw C' if floor is None else f'max(C, {floor:g})'}:")
        for s in shifts:
            print(
                f"- {s.group} ({s.num_prompts} prompts): ΔR {s.delta_reward:+.3f}, ΔC {s.delta_cost:+.3f}: the "
                f"objective favours declining for λ > {s.threshold:.3f}"
            )
        harmful, harmless = shifts
        if harmful.threshold < harmless.threshold:
            upper = "∞" if harmless.threshold == float("inf") else f"{harmless.threshold:.3f}"
            print(f"  λ window (declines harmful requests only): {harmful.threshold:.3f} < λ < {upper}")
        else:
            print("  No λ window: declining harmless prompts pays off as soon as declining harmful ones does.")
        results.append((floor, shifts))
    return results


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def floored(costs: list[float], floor: float | None) -> list[float]:
    """max(C, floor) per answer, as PPO-Lag's `cost_floor` reads it (`None`: the raw costs)."""
    return costs if floor is None else [max(cost, floor) for cost in costs]


if __name__ == "__main__":
    main()
