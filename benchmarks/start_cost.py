"""The starting policy's J_C on training data, raw and floored: where to put a cost limit without the held-out prompts.

A cost limit is a number on the cost model's scale, and the scale of a learnt cost model is arbitrary: a limit that
binds for one cost model is slack for the next. The constraint's meaning is relative to where the policy starts, so
this estimates the start's J_C = E[C] (and E[max(C, floor)] for each `--floors` value) from what the training data
already hold: the starting policy's own answers to the *train* prompts (the demo's `sampled` configuration, SmolLM2's
answers, hand-labelled), scored by a trained cost model. The answers to harmful and to harmless prompts are averaged
separately and then weighted by the share of harmful prompts among the RL stage's rollout prompts (the distinct train
prompts of `--rollout_config`), since that is the mix J_C averages over during training. Pick the limit as a fraction
of the start's value; nothing here reads the test split.

    python benchmarks/start_cost.py --cost_model outputs/safe_rlhf_demo/cost_model
    python benchmarks/start_cost.py --cost_model outputs/safe_rlhf_long/cost_model --rollout_config combined_round3

Prints one line per floor; `main` returns the figures.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from trl_safe.demo import DEMO_CONFIGS, load_demo_dataset


@dataclass(frozen=True)
class StartCost:
    """The start's mean cost on the train answers, per prompt label, and J_C under the rollout mix."""

    floor: float | None
    harmful: float
    harmless: float
    harmful_share: float
    num_harmful: int
    num_harmless: int
    unsafe_fraction_harmful: float

    @property
    def expected_cost(self) -> float:
        return self.harmful_share * self.harmful + (1 - self.harmful_share) * self.harmless


def start_costs(
    costs: list[float], harmful: list[bool], harmful_share: float, floors: list[float | None]
) -> list[StartCost]:
    """`StartCost` per floor from per-answer costs and whether each answer's prompt is harmful."""
    if len(costs) != len(harmful):
        raise ValueError(f"{len(costs)} costs for {len(harmful)} answers.")
    if all(harmful) or not any(harmful):
        raise ValueError("The answers need prompts of both labels (harmful and harmless).")
    raw_harmful = [c for c, h in zip(costs, harmful) if h]
    unsafe_fraction_harmful = sum(c > 0 for c in raw_harmful) / len(raw_harmful)
    results = []
    for floor in floors:
        floored = [cost if floor is None else max(cost, floor) for cost in costs]
        on_harmful = [c for c, h in zip(floored, harmful) if h]
        on_harmless = [c for c, h in zip(floored, harmful) if not h]
        results.append(
            StartCost(
                floor=floor,
                harmful=sum(on_harmful) / len(on_harmful),
                harmless=sum(on_harmless) / len(on_harmless),
                harmful_share=harmful_share,
                num_harmful=len(on_harmful),
                num_harmless=len(on_harmless),
                unsafe_fraction_harmful=unsafe_fraction_harmful,
            )
        )
    return results


def rollout_harmful_share(config: str, harmless_repeats: int = 1) -> float:
    """The share of harmful prompts among the rollout draws: the distinct train prompts of a demo configuration, each
    harmless one counted `harmless_repeats` times (the pipeline's `--harmless_prompt_repeats`)."""
    labels = {row["prompt"]: row["prompt_label"] for row in load_demo_dataset("train", config)}
    harmful = sum(label == "unsafe" for label in labels.values())
    return harmful / (harmful + harmless_repeats * (len(labels) - harmful))


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--cost_model", required=True, help="A trained cost model (folder or Hub id).")
    parser.add_argument(
        "--rollout_config",
        default="combined",
        choices=sorted(DEMO_CONFIGS),
        help="The demo configuration whose distinct train prompts the RL stage samples (the pipeline's default).",
    )
    parser.add_argument(
        "--harmless_prompt_repeats",
        type=int,
        default=1,
        help="Each harmless rollout prompt is drawn this many times as often (the pipeline's option of that name).",
    )
    parser.add_argument(
        "--floors",
        nargs="+",
        default=["none", "0"],
        help="Floors to report J_C under (`none`: the raw cost).",
    )
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's).")
    return parser


def main(argv: list[str] | None = None) -> list[StartCost]:
    args = make_parser().parse_args(argv)
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from trl_safe.scoring import Scorer

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    floors = [None if value.lower() == "none" else float(value) for value in args.floors]
    rows = load_demo_dataset("train", "sampled")
    prompts: list[Any] = []
    answers: list[Any] = []
    harmful: list[bool] = []
    for row in rows:
        for i in (0, 1):
            prompts.append([{"role": "user", "content": row["prompt"]}])
            answers.append([{"role": "assistant", "content": row[f"response_{i}"]}])
            harmful.append(row["prompt_label"] == "unsafe")
    model = AutoModelForSequenceClassification.from_pretrained(args.cost_model, num_labels=1).eval()
    scorer = Scorer(model, AutoTokenizer.from_pretrained(args.cost_model), name="cost", batch_size=args.batch_size)
    with torch.inference_mode():
        costs = scorer.score(prompts, answers).tolist()
    share = rollout_harmful_share(args.rollout_config, args.harmless_prompt_repeats)
    results = start_costs(costs, harmful, share, floors)
    print(f"The start's answers to the train prompts (demo `sampled`), scored by {args.cost_model}:")
    for r in results:
        floor = "raw C" if r.floor is None else f"max(C, {r.floor:g})"
        print(
            f"- {floor}: harmful prompts {r.harmful:+.3f} ({r.num_harmful} answers, {r.unsafe_fraction_harmful:.1%} "
            f"with C > 0), harmless {r.harmless:+.3f} ({r.num_harmless}); harmful share of the rollout prompts "
            f"({args.rollout_config}, harmless x{args.harmless_prompt_repeats}) {r.harmful_share:.3f}: "
            f"J_C = {r.expected_cost:+.3f}"
        )
    return results


if __name__ == "__main__":
    main()
