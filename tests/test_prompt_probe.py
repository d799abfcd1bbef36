"""`benchmarks/prompt_probe.py`: a linear probe for harmful against harmless prompts on a policy's hidden states."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "prompt_probe.py"


def test_logistic_probe_separates_a_separable_set_and_cross_validates(module):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5))
    y = x[:, 0] + 0.5 * x[:, 1] > 0
    logits = module.fit_logistic(x, y, l2=1e-3)(x)
    assert ((logits > 0) == y).all()
    assert module.cross_validated_accuracy(x, y, l2=1e-3) > 0.9
    # a label unrelated to the features cross-validates near chance
    assert module.cross_validated_accuracy(x, rng.random(60) > 0.5, l2=1e-3) < 0.75


def test_demo_prompt_sets_are_disjoint_and_labelled(module):
    train, held = module.demo_prompt_sets()
    assert not set(train.prompts) & set(held.prompts)
    assert len(held.prompts) == 111 and held.groups.count("look-alike") == 29 and int(held.harmful.sum()) == 63
    assert all((g == "harmful") == h for g, h in zip(train.groups, train.harmful))
    assert len(set(train.prompts)) == len(train.prompts)


def test_probe_row_counts_flags_per_group(module):
    groups = ["harmful"] * 5 + ["look-alike"] * 3 + ["benign"] * 2
    held = module.PromptSet(
        prompts=list("abcdefghij"), harmful=np.array([g == "harmful" for g in groups]), groups=groups
    )
    x = np.array([[5.0], [4.0], [3.0], [2.0], [1.0], [-1.0], [-2.0], [-3.0], [-4.0], [-5.0]])
    row = module.probe_row(3, x, held, x, held, l2=1e-3)
    assert row["flagged"] == {"harmful": (5, 5), "look-alike": (0, 3), "benign": (0, 2)}
    assert row["held_out_accuracy"] == 1.0 and row["harmful_flagged_at_most_one_harmless"] == 1.0
    assert row["held_out_auroc"] == 1.0
    with pytest.raises(ValueError, match="at least 5 rows"):
        module.cross_validated_accuracy(x[:3], held.harmful[:3], l2=1e-3)


def test_auroc_by_hand(module):
    assert module.auroc(np.array([3.0, 1.0]), np.array([2.0, 0.0])) == 0.75  # 3 of the 4 pairs ordered right
    assert module.auroc(np.array([1.0]), np.array([1.0])) == 0.5


def test_decline_logprob_is_the_log_sum_of_the_openings_probabilities(module):
    import torch

    model, tokenizer = module.load_model("tiny")
    ids = module.prompt_ids(tokenizer, "Hi")
    opening = tokenizer("No", add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logprobs = model(input_ids=torch.cat([ids, opening], 1)).logits[0].log_softmax(-1)
    by_hand = sum(logprobs[ids.shape[1] - 1 + i, opening[0, i]].item() for i in range(opening.shape[1]))
    (score,) = module.decline_logprobs(model, tokenizer, ["Hi"], ["No"])
    assert score == pytest.approx(by_hand, abs=1e-5)
    (twice,) = module.decline_logprobs(model, tokenizer, ["Hi"], ["No", "No"])
    assert twice == pytest.approx(by_hand + np.log(2), abs=1e-5)
    with pytest.raises(ValueError, match="at least one"):
        module.decline_logprobs(model, tokenizer, ["Hi"], [])


def test_main_on_the_tiny_model(module, tmp_path, capsys):
    argv = ["--model", "tiny", "--layers", "0", "2", "--decline_openings", "No", "--output", str(tmp_path / "p.json")]
    rows = module.main(argv)
    assert [row["layer"] for row in rows] == [0, 2]
    assert sum(n for n, _ in rows[0]["flagged"].values()) <= 111
    assert "| layer |" in capsys.readouterr().out
    written = json.loads((tmp_path / "p.json").read_text())
    assert written["rows"][1]["layer"] == 2 and 0 <= written["decline"]["auroc"] <= 1
    assert len(written["decline"]["held_out_logprobs"]) == 111
    with pytest.raises(ValueError, match="out of range"):
        module.main(["--model", "tiny", "--layers", "99"])
