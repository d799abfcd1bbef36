"""`benchmarks/lambda_comparison.py` on tiny random models: every method trains, evaluates, aggregates and plots,
and a second invocation reuses the finished runs instead of training again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trl_safe.testing_utils import make_tiny_causal_lm, make_tiny_scorer, make_tiny_tokenizer

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "lambda_comparison.py"


@pytest.fixture(scope="module")
def comparison(module):
    """The script under test (the `module` fixture of conftest.py, by this file's name for it)."""
    return module


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_models")
    tokenizer = make_tiny_tokenizer()
    for name, model in (
        ("policy", make_tiny_causal_lm(tokenizer, seed=0)),
        ("reward", make_tiny_scorer(tokenizer, seed=1)),
        ("cost", make_tiny_scorer(tokenizer, seed=2)),
    ):
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
    return root


def argv(tiny_models: Path, output_dir: Path) -> list[str]:
    return [
        "--policy", str(tiny_models / "policy"),
        "--reward_model", str(tiny_models / "reward"),
        "--cost_model", str(tiny_models / "cost"),
        "--output_dir", str(output_dir),
        "--methods", "ppo", "ppo_lag_pid", "shaping_2",
        "--fixed_lambdas", "0.5", "2",
        "--seeds", "0", "1",
        "--ppo_steps", "1", "--ppo_batch_size", "2", "--ppo_epochs", "1",
        "--max_completion_length", "6",
        "--eval_limit", "4", "--eval_samples", "2", "--eval_batch_size", "8",
    ]  # fmt: skip


def test_methods_set_lambda_as_the_paper_compares_them(comparison):
    methods = {m.name: m.ppo_lag_args for m in comparison.make_methods([0.1, 10.0], lambda_init=1.0, lambda_lr=0.2)}
    assert list(methods) == ["ppo", "ppo_lag_sgd", "ppo_lag_pid", "shaping_0.1", "shaping_10"]
    assert methods["ppo"] == ("--lambda_init", "0", "--lambda_lr", "0")
    assert methods["ppo_lag_sgd"][-1] == "sgd" and "0.2" in methods["ppo_lag_sgd"]
    assert methods["shaping_10"] == ("--lambda_init", "10.0", "--lambda_lr", "0", "--lambda_max", "10.0")
    with pytest.raises(ValueError, match="fixed_lambdas"):
        comparison.make_methods([-1.0], 1.0, 0.1)


def test_tiny_comparison_writes_table_and_plot_and_resumes(comparison, tiny_models, tmp_path, monkeypatch):
    output_dir = tmp_path / "comparison"
    table = comparison.main(argv(tiny_models, output_dir))

    assert list(table) == ["start", "ppo", "ppo_lag_pid", "shaping_2"]
    for name in ("ppo", "ppo_lag_pid", "shaping_2"):
        row = table[name]
        assert row["seeds"] == [0, 1]
        assert row["reward_mean"]["n"] == 2 and row["reward_mean"]["sd"] >= 0
        assert 0.0 <= row["unsafe_ratio_judge"]["mean"] <= 1.0
        result = json.loads((output_dir / "runs" / name / "seed1" / "result.json").read_text())
        assert result["method"] == name and result["seed"] == 1
        answers = json.loads((output_dir / "runs" / name / "seed1" / "answers.json").read_text())
        assert len(answers) == 8  # 4 prompts x 2 samples
        assert sorted({a["prompt_id"] for a in answers}) == [0, 1, 2, 3]
    assert table["ppo"]["final_lambda"]["mean"] == 0.0  # no constraint
    assert table["shaping_2"]["final_lambda"] == {"mean": 2.0, "sd": 0.0, "n": 2}  # λ stayed fixed
    assert "final_lambda" not in table["start"]
    assert (output_dir / "tradeoff.png").stat().st_size > 0
    markdown = (output_dir / "table.md").read_text()
    assert "reward shaping, fixed λ = 2" in markdown and "starting policy" in markdown

    # Everything is finished: a rerun trains and evaluates nothing and gives the same table.
    def fail(*args, **kwargs):
        raise AssertionError("a finished run was redone")

    monkeypatch.setattr(comparison, "train", fail)
    monkeypatch.setattr(comparison, "evaluate", fail)
    assert comparison.main(argv(tiny_models, output_dir)) == table
    # --aggregate_only reports the runs that finished (here: one seed of one method removed) and trains nothing.
    (output_dir / "runs" / "shaping_2" / "seed1" / "result.json").unlink()
    partial = comparison.main([*argv(tiny_models, output_dir), "--aggregate_only"])
    assert partial["shaping_2"]["seeds"] == [0] and partial["ppo"] == table["ppo"]
