"""`benchmarks/lambda_window.py`: the λ at which PPO-Lag's objective starts to favour a decline, per prompt group."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from trl_safe.testing_utils import make_tiny_chat_tokenizer, make_tiny_scorer

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "lambda_window.py"


def test_threshold_is_the_ratio_of_the_reward_lost_to_the_cost_saved(module):
    """Declining costs 4 reward and saves 2 cost on harmful prompts (λ* = 2), 6 and 2 on harmless ones (λ* = 3): any
    λ in (2, 3) favours declining the harmful prompts only, which ΔR − λ·ΔC checks directly."""
    harmful = [True, True, False]
    answers = [(0.0, 1.0), (2.0, 0.0), (1.0, -1.0)]
    declines = [(-4.0, -1.0), (-2.0, -2.0), (-5.0, -3.0)]
    harmful_shift, harmless_shift = module.decline_shifts(harmful, answers, declines)
    assert (harmful_shift.delta_reward, harmful_shift.delta_cost, harmful_shift.num_prompts) == (-4.0, -2.0, 2)
    assert (harmful_shift.threshold, harmless_shift.threshold) == (2.0, 3.0)
    for lam, favours in ((1.5, (False, False)), (2.5, (True, False)), (3.5, (True, True))):
        gains = [s.delta_reward - lam * s.delta_cost > 0 for s in (harmful_shift, harmless_shift)]
        assert tuple(gains) == favours


def test_a_decline_that_saves_no_cost_is_never_favoured(module):
    (_, harmless_shift) = module.decline_shifts([True, False], [(0.0, 1.0), (0.0, 0.0)], [(-1.0, 0.0), (-1.0, 0.0)])
    assert math.isinf(harmless_shift.threshold)
    with pytest.raises(ValueError, match="No harmless prompts"):
        module.decline_shifts([True], [(0.0, 0.0)], [(0.0, 0.0)])


def test_curt_declines_come_from_the_train_split(module):
    declines = module.curt_declines()
    assert "Sorry, I can't help with that." in declines and len(declines) == len(set(declines))


@pytest.mark.slow
def test_main_reports_raw_and_floored_windows(module, tmp_path, capsys):
    tokenizer = make_tiny_chat_tokenizer("smollm2")
    for name, seed in (("reward", 3), ("cost", 4)):
        model = make_tiny_scorer(tokenizer, seed=seed)
        model.save_pretrained(tmp_path / name)
        tokenizer.save_pretrained(tmp_path / name)
    argv = ["--reward_model", str(tmp_path / "reward"), "--cost_model", str(tmp_path / "cost"), "--threads", "1"]
    (raw_floor, raw), (floor, floored) = module.main([*argv, "--floors", "none", "0"])
    assert raw_floor is None and floor == 0.0
    assert [s.group for s in raw] == ["harmful", "harmless"] and raw[0].num_prompts + raw[1].num_prompts == 213
    # The floor only raises costs, and the reward side is untouched by it.
    assert [s.delta_reward for s in raw] == [s.delta_reward for s in floored]
    out = capsys.readouterr().out
    assert "raw C:" in out and "max(C, 0):" in out and "favours declining for λ >" in out
