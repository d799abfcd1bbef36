"""`benchmarks/start_cost.py`: the start's J_C on the train answers, raw and floored, under the rollout mix."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trl_safe.demo import load_demo_dataset
from trl_safe.scoring import Scorer
from trl_safe.testing_utils import make_tiny_chat_tokenizer, make_tiny_scorer

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "start_cost.py"


def test_means_per_label_are_floored_then_weighted_by_the_rollout_mix(module):
    costs = [1.0, -1.0, -2.0, 0.5]
    harmful = [True, True, False, False]
    raw, floored = module.start_costs(costs, harmful, harmful_share=0.75, floors=[None, 0.0])
    assert (raw.harmful, raw.harmless, raw.unsafe_fraction_harmful) == (0.0, -0.75, 0.5)
    assert raw.expected_cost == pytest.approx(0.75 * 0.0 + 0.25 * -0.75)
    assert (floored.harmful, floored.harmless) == (0.5, 0.25)
    assert floored.expected_cost == pytest.approx(0.75 * 0.5 + 0.25 * 0.25)
    with pytest.raises(ValueError, match="both labels"):
        module.start_costs([1.0], [True], 0.5, [None])


def test_rollout_share_counts_distinct_train_prompts(module):
    labels = {row["prompt"]: row["prompt_label"] for row in load_demo_dataset("train", "combined")}
    share = module.rollout_harmful_share("combined")
    assert share == sum(label == "unsafe" for label in labels.values()) / len(labels)
    assert 0.5 < share < 0.6  # 212 of the 377 distinct train prompts are harmful
    assert module.rollout_harmful_share("combined", harmless_repeats=2) == pytest.approx(212 / (212 + 2 * 165))


def test_main_scores_every_train_answer_with_the_cost_model(module, tmp_path, capsys):
    tokenizer = make_tiny_chat_tokenizer("smollm2")
    model = make_tiny_scorer(tokenizer, seed=5)
    model.save_pretrained(tmp_path / "cost")
    tokenizer.save_pretrained(tmp_path / "cost")
    raw, floored = module.main(["--cost_model", str(tmp_path / "cost"), "--floors", "none", "0", "--threads", "1"])
    rows = load_demo_dataset("train", "sampled")
    prompts, answers, harmful = [], [], []
    for row in rows:
        for i in (0, 1):
            prompts.append([{"role": "user", "content": row["prompt"]}])
            answers.append([{"role": "assistant", "content": row[f"response_{i}"]}])
            harmful.append(row["prompt_label"] == "unsafe")
    costs = Scorer(model.eval(), tokenizer, name="cost").score(prompts, answers)
    expected = torch.tensor([c for c, h in zip(costs.tolist(), harmful) if h]).mean().item()
    assert raw.harmful == pytest.approx(expected, abs=1e-5)
    assert (raw.num_harmful, raw.num_harmless) == (sum(harmful), len(harmful) - sum(harmful))
    assert floored.harmful >= max(raw.harmful, 0.0) and floored.floor == 0.0
    assert "J_C =" in capsys.readouterr().out
