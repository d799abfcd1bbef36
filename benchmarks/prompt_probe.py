"""Can the starting policy tell a harmful request from a harmless one that sounds like it? A linear probe says.

Every PPO-Lag run of the demo that learnt to decline harmful requests also learnt to decline harmless look-alikes
("How do I kill a Python process?"), at about one look-alike per five harmful declines (docs/demo_outcome.md). Two
explanations predict different things: either a 135M-parameter model cannot represent the difference (then only a
larger policy helps), or it can and the training signal does not teach the policy to use it (then the data or the
objective is what to change). A linear probe separates the two: a logistic regression on the policy's hidden state
at the position where its answer's first token is chosen (the last token of the chat-templated prompt, after the
generation prompt), trained on the train split's prompt labels only, and read on the held-out prompts.

Train: the distinct prompts of the demo's train split (`combined`) and the look-alike twins (harmless), labelled
harmful or harmless by the data's `prompt_label`. Held out: the test split's prompts, which the pipeline evaluates on
(no stage trains on them, and nothing here is chosen on them: the layers and the L2 weight are fixed in advance or
by cross-validation on the train prompts). Reported per layer: the train prompts' 5-fold cross-validated accuracy;
held-out accuracy; how many held-out harmful prompts, harmless look-alikes and other harmless prompts the probe
flags as harmful at its own threshold (logit 0); and, as a best case only, the share of harmful prompts flagged when
the threshold is set on the held-out scores to flag at most one harmless prompt.

    python benchmarks/prompt_probe.py                                  # SmolLM2-135M-Instruct
    python benchmarks/prompt_probe.py --model outputs/demo/policy      # a trained policy
    python benchmarks/prompt_probe.py --model tiny --layers 1 2        # the CI-sized check

With `--decline_openings` (the trained policy's own ways of opening a decline, e.g. "I'm sorry for" "I'm not
going"), it also asks whether the policy's decline follows what it represents: the log-probability that its answer
opens with one of them, per held-out prompt, and how well that separates harmful from harmless prompts (AUROC)
beside the probe's own AUROC on the same prompts.

Prints a markdown table; `--output` also writes it as JSON, with every held-out prompt's logit per layer (to set
beside what a policy did with the prompt). `main` returns the rows.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trl_safe.rl_math import selective_logprobs


@dataclass(frozen=True)
class PromptSet:
    """Prompts with their labels (`harmful`) and groups (`harmful`, `look-alike`, `benign`)."""

    prompts: list[str]
    harmful: np.ndarray
    groups: list[str]


def demo_prompt_sets() -> tuple[PromptSet, PromptSet]:
    """The demo's train prompts (the `combined` train split and the look-alike twins) and its held-out prompts (the
    `combined` test split, as the pipeline evaluates them). A prompt in both is an error."""
    from trl_safe.demo import load_demo_prompts, load_demo_twins
    from trl_safe.evaluation.outcome import LOOKALIKE_CATEGORIES

    def group(row: dict[str, str]) -> str:
        if row["label"] == "unsafe":
            return "harmful"
        return "look-alike" if row["category"] in LOOKALIKE_CATEGORIES else "benign"

    train_rows = list(load_demo_prompts("train", "combined"))
    known = {row["prompt"] for row in train_rows}
    twins = [row["prompt"] for row in load_demo_twins("train") if row["prompt"] not in known]
    train_rows += [{"prompt": p, "label": "safe", "category": "benign_lookalike"} for p in dict.fromkeys(twins)]
    held_rows = list(load_demo_prompts("test", "combined"))
    overlap = known & {row["prompt"] for row in held_rows}
    if overlap:
        raise ValueError(f"{len(overlap)} held-out prompts are also train prompts, e.g. {sorted(overlap)[0]!r}.")

    def to_set(rows: list[dict[str, str]]) -> PromptSet:
        return PromptSet(
            prompts=[row["prompt"] for row in rows],
            harmful=np.array([row["label"] == "unsafe" for row in rows]),
            groups=[group(row) for row in rows],
        )

    return to_set(train_rows), to_set(held_rows)


def prompt_ids(tokenizer, prompt: str) -> torch.Tensor:
    """`prompt` as the policy sees it before it answers (`trl_safe.evaluation.generation.encode_prompt`: a one-turn
    chat with the generation prompt added), `[1, tokens]`."""
    from trl_safe.evaluation.generation import encode_prompt

    return torch.tensor([encode_prompt(tokenizer, prompt)])


@torch.no_grad()
def prompt_features(model, tokenizer, prompts: Sequence[str], layers: Sequence[int]) -> dict[int, np.ndarray]:
    """Each prompt's hidden state at its last token (chat template, generation prompt added), per layer in `layers`
    (0: the embeddings, k: the output of block k), as float64 arrays of shape (len(prompts), hidden)."""
    features: dict[int, list[np.ndarray]] = {layer: [] for layer in layers}
    num_layers = model.config.num_hidden_layers
    for layer in layers:
        if not 0 <= layer <= num_layers:
            raise ValueError(f"layer {layer} is out of range: the model has layers 0 (embeddings) to {num_layers}.")
    model.eval()
    for prompt in prompts:
        hidden = model(input_ids=prompt_ids(tokenizer, prompt), output_hidden_states=True).hidden_states
        for layer in layers:
            features[layer].append(hidden[layer][0, -1].double().numpy())
    return {layer: np.stack(rows) for layer, rows in features.items()}


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float) -> Callable[[np.ndarray], np.ndarray]:
    """L2-regularised logistic regression on standardised features (means and scales of `x`), fitted by L-BFGS in
    float64. Returns the function from features to logits."""
    mean, scale = x.mean(0), x.std(0) + 1e-6
    inputs = torch.tensor((x - mean) / scale)
    targets = torch.tensor(y, dtype=torch.float64)
    weight = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = inputs @ weight + bias
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets) + l2 * weight @ weight
        loss.backward()
        return loss

    optimizer.step(closure)
    weight, bias = weight.detach(), bias.detach()
    return lambda z: (torch.tensor((z - mean) / scale) @ weight + bias).numpy()


def cross_validated_accuracy(x: np.ndarray, y: np.ndarray, l2: float, folds: int = 5, seed: int = 0) -> float:
    """Mean accuracy over `folds` seeded folds of the rows."""
    if len(y) < folds:
        raise ValueError(f"{folds}-fold cross-validation needs at least {folds} rows, got {len(y)}.")
    order = np.random.default_rng(seed).permutation(len(y))
    accuracies = []
    for fold in np.array_split(order, folds):
        rest = np.setdiff1d(order, fold)
        logits = fit_logistic(x[rest], y[rest], l2)(x[fold])
        accuracies.append(float(((logits > 0) == y[fold]).mean()))
    return float(np.mean(accuracies))


@torch.no_grad()
def decline_logprobs(model, tokenizer, prompts: Sequence[str], openings: Sequence[str]) -> np.ndarray:
    """log Σ_o π(o | prompt) over the `openings` (each its tokens' summed log-probabilities right after the chat
    template's generation prompt): how likely the policy is to begin its answer with a decline."""
    if not openings:
        raise ValueError("Give at least one decline opening.")
    opening_ids = [tokenizer(o, add_special_tokens=False, return_tensors="pt")["input_ids"] for o in openings]
    model.eval()
    scores = []
    for prompt in prompts:
        ids = prompt_ids(tokenizer, prompt)
        per_opening = []
        for o_ids in opening_ids:
            logits = model(input_ids=torch.cat([ids, o_ids], dim=1)).logits
            # the logits at position t predict token t + 1: the opening's tokens from the prompt's last position on
            per_opening.append(selective_logprobs(logits[:, ids.shape[1] - 1 : -1], o_ids).sum())
        scores.append(torch.logsumexp(torch.stack(per_opening), 0).item())
    return np.array(scores)


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a random positive scores above a random negative), ties counting half."""
    positive, negative = np.asarray(positive)[:, None], np.asarray(negative)[None, :]
    return float((positive > negative).mean() + 0.5 * (positive == negative).mean())


def probe_row(layer: int, train_x: np.ndarray, train: PromptSet, held_x: np.ndarray, held: PromptSet, l2: float):
    """One layer's figures (see the module docstring)."""
    logits = fit_logistic(train_x, train.harmful, l2)(held_x)
    groups = np.array(held.groups)
    flagged = {name: (int((logits[groups == name] > 0).sum()), int((groups == name).sum())) for name in GROUPS}
    harmless_scores = np.sort(logits[~held.harmful])
    # best case: the threshold just below the second-highest harmless score flags at most one harmless prompt
    threshold = harmless_scores[-2] if len(harmless_scores) > 1 else -np.inf
    return {
        "layer": layer,
        "train_cv_accuracy": cross_validated_accuracy(train_x, train.harmful, l2),
        "held_out_accuracy": float(((logits > 0) == held.harmful).mean()),
        "held_out_auroc": auroc(logits[held.harmful], logits[~held.harmful]),
        "flagged": flagged,
        "harmful_flagged_at_most_one_harmless": float((logits[held.harmful] > threshold).mean()),
        "held_out_logits": {prompt: float(logit) for prompt, logit in zip(held.prompts, logits)},
    }


GROUPS = ("harmful", "look-alike", "benign")


def markdown(rows: list[dict[str, Any]], model: str, train: PromptSet, held: PromptSet, l2: float) -> str:
    counts = {name: held.groups.count(name) for name in GROUPS}
    lines = [
        f"Probe on `{model}`: {len(train.prompts)} train prompts ({int(train.harmful.sum())} harmful), "
        f"{len(held.prompts)} held-out ({counts['harmful']} harmful, {counts['look-alike']} look-alikes, "
        f"{counts['benign']} other harmless); L2 {l2}.",
        "",
        "| layer | train 5-fold CV accuracy | held-out accuracy | held-out AUROC | harmful flagged "
        "| look-alikes flagged | other harmless flagged | harmful flagged at ≤ 1 harmless flagged (best case) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        flagged = [f"{row['flagged'][name][0]} of {row['flagged'][name][1]}" for name in GROUPS]
        lines.append(
            f"| {row['layer']} | {row['train_cv_accuracy']:.1%} | {row['held_out_accuracy']:.1%} | "
            f"{row['held_out_auroc']:.3f} | "
            + " | ".join(flagged)
            + f" | {row['harmful_flagged_at_most_one_harmless']:.0%} |"
        )
    return "\n".join(lines)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--model", default="smollm2", help="smollm2 (embedded), tiny, or a model directory.")
    parser.add_argument(
        "--layers", type=int, nargs="+", default=None, help="Layers to probe (default: the middle, 3/4 and last)."
    )
    parser.add_argument("--l2", type=float, default=0.01, help="L2 weight of the probe (on standardised features).")
    parser.add_argument(
        "--decline_openings",
        nargs="+",
        default=None,
        help="The policy's decline openings (\"I'm sorry for\"): also report how well their log-probability "
        "separates harmful from harmless held-out prompts.",
    )
    parser.add_argument("--output", type=Path, default=None, help="Also write the rows as JSON here.")
    return parser


def load_model(name: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if name == "tiny":
        from trl_safe.testing_utils import make_tiny_causal_lm, make_tiny_chat_tokenizer

        tokenizer = make_tiny_chat_tokenizer("smollm2")
        return make_tiny_causal_lm(tokenizer, seed=0), tokenizer
    if name == "smollm2":
        from trl_safe.demo import smollm2_path

        name = str(smollm2_path())
    return AutoModelForCausalLM.from_pretrained(name), AutoTokenizer.from_pretrained(name)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = make_parser().parse_args(sys.argv[1:] if argv is None else argv)
    model, tokenizer = load_model(args.model)
    num_layers = model.config.num_hidden_layers
    layers = args.layers or sorted({num_layers // 2, (3 * num_layers) // 4, num_layers})
    train, held = demo_prompt_sets()
    train_features = prompt_features(model, tokenizer, train.prompts, layers)
    held_features = prompt_features(model, tokenizer, held.prompts, layers)
    rows = [probe_row(k, train_features[k], train, held_features[k], held, args.l2) for k in layers]
    print(markdown(rows, args.model, train, held, args.l2))
    result: dict[str, Any] = {"model": args.model, "l2": args.l2, "rows": rows}
    if args.decline_openings:
        scores = decline_logprobs(model, tokenizer, held.prompts, args.decline_openings)
        result["decline"] = {
            "openings": args.decline_openings,
            "auroc": auroc(scores[held.harmful], scores[~held.harmful]),
            "mean_logprob": {name: float(scores[np.array(held.groups) == name].mean()) for name in GROUPS},
            "held_out_logprobs": {prompt: float(score) for prompt, score in zip(held.prompts, scores)},
        }
        means = ", ".join(f"{name} {value:.2f}" for name, value in result["decline"]["mean_logprob"].items())
        print(
            f"\nThe policy's decline ({' / '.join(args.decline_openings)}): log-probability AUROC, harmful against "
            f"harmless held-out prompts, {result['decline']['auroc']:.3f}; mean log-probability {means}."
        )
    if args.output is not None:
        args.output.write_text(json.dumps(result, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
