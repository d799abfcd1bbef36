"""Seed spread and the paired bootstrap, against hand computations and cases whose answer is known."""

import math

import numpy as np
import pytest

from trl_safe.evaluation.stats import (
    bootstrap_indices,
    halves_difference,
    mean_sd,
    paired_bootstrap,
    per_prompt_means,
)


def test_mean_sd_is_the_sample_standard_deviation():
    summary = mean_sd([0.2, 0.4, 0.9])
    assert summary.mean == pytest.approx(0.5)
    # deviations -0.3, -0.1, 0.4: squares sum to 0.26, over n - 1 = 2 -> 0.13
    assert summary.sd == pytest.approx(math.sqrt(0.13))
    assert summary.n == 3
    assert str(summary) == "0.500 ± 0.361 (n=3)"
    assert mean_sd([0.7]).sd == 0.0


def test_mean_sd_rejects_empty_and_non_finite():
    with pytest.raises(ValueError, match="empty"):
        mean_sd([])
    with pytest.raises(ValueError, match=r"seeds\[1\] is nan"):
        mean_sd([0.1, float("nan")], name="seeds")


def test_per_prompt_means_average_samples_within_each_prompt():
    means = per_prompt_means([1, 0, 1, 1, 0, 0], ["p", "p", "q", "q", "q", "r"])
    assert means == {"p": 0.5, "q": pytest.approx(2 / 3), "r": 0.0}
    with pytest.raises(ValueError, match="prompt_ids has 2"):
        per_prompt_means([1, 0, 1], ["p", "q"])


def test_constant_shift_gives_a_degenerate_interval_at_the_shift():
    rng = np.random.default_rng(3)
    a = rng.normal(size=40)
    result = paired_bootstrap(a, a - 0.25, num_resamples=500)
    # every prompt moved by exactly -0.25, so every resample's mean difference is -0.25
    assert result.estimate == pytest.approx(-0.25)
    assert result.low == pytest.approx(-0.25) and result.high == pytest.approx(-0.25)
    assert result.excludes_zero()


def test_interval_is_the_percentile_interval_of_the_resampled_mean_differences():
    a = np.array([1.0, 0.0, 1.0, 1.0, 0.0])
    b = np.array([0.0, 0.0, 1.0, 0.0, 0.0])
    result = paired_bootstrap(a, b, num_resamples=200, confidence=0.9, seed=7)
    indices = bootstrap_indices(5, 200, 7)
    by_hand = [(b[row] - a[row]).mean() for row in indices]
    assert result.estimate == pytest.approx(0.2 - 0.6)
    assert result.low == pytest.approx(np.quantile(by_hand, 0.05))
    assert result.high == pytest.approx(np.quantile(by_hand, 0.95))
    assert (result.mean_a, result.mean_b, result.num_prompts) == (0.6, 0.2, 5)


def test_samples_are_averaged_per_prompt_before_pairing():
    # A: p has 2 answers (1, 1), q has 2 (0, 1). B: p has 3 (0, 0, 1), q has 1 (0). Order of B's answers differs.
    result = paired_bootstrap(
        [1, 1, 0, 1], [0, 0, 0, 1], ["p", "p", "q", "q"], ["q", "p", "p", "p"], num_resamples=100
    )
    assert result.num_prompts == 2
    assert result.mean_a == pytest.approx((1.0 + 0.5) / 2)
    assert result.mean_b == pytest.approx((1 / 3 + 0.0) / 2)
    assert result.estimate == pytest.approx(result.mean_b - result.mean_a)


def test_relative_difference_reads_half_as_often_as_minus_one_half():
    a = [1, 1, 1, 1, 0, 0, 0, 0]
    b = [1, 0, 1, 0, 0, 0, 0, 0]
    result = paired_bootstrap(a, b, statistic="relative_difference", num_resamples=300)
    assert result.estimate == pytest.approx(-0.5)
    assert -1.0 <= result.low <= result.estimate <= result.high
    with pytest.raises(ValueError, match="A's mean is 0"):
        paired_bootstrap([0, 0], [1, 0], statistic="relative_difference")


def test_a_real_but_noisy_difference_is_detected_and_a_null_one_is_not():
    rng = np.random.default_rng(0)
    start = rng.binomial(1, 0.6, size=300).astype(float)
    trained = np.where(rng.random(300) < 0.5, 0.0, start)  # about half of the unsafe answers become safe
    assert paired_bootstrap(start, trained, num_resamples=2000).high < 0
    same = paired_bootstrap(start, rng.permutation(start), num_resamples=2000)
    assert same.low < 0 < same.high


def test_paired_bootstrap_rejects_mismatched_input():
    with pytest.raises(ValueError, match="different prompts"):
        paired_bootstrap([1, 0], [1, 0], ["p", "q"], ["p", "r"])
    with pytest.raises(ValueError, match="for both policies"):
        paired_bootstrap([1, 0], [1, 0], ["p", "q"])
    with pytest.raises(ValueError, match="must pair"):
        paired_bootstrap([1, 0], [1, 0, 1])
    with pytest.raises(ValueError, match="statistic must be"):
        paired_bootstrap([1], [0], statistic="ratio")
    with pytest.raises(ValueError, match="confidence"):
        paired_bootstrap([1], [0], confidence=95)


def test_halves_difference_compares_the_two_halves_and_drops_the_middle_of_an_odd_count():
    result = halves_difference([1.0, 3.0, 100.0, 4.0, 6.0], num_resamples=500)
    assert (result.first, result.second, result.difference, result.num_values) == (2.0, 5.0, 3.0, 2)
    # Each half resampled on its own: the interval's ends are differences of resampled half means (2..5 minus 1..3).
    assert 1.0 <= result.low <= result.difference <= result.high <= 5.0
    constant = halves_difference([2.0, 2.0, 2.0, 2.0])
    assert (constant.low, constant.high) == (0.0, 0.0) and not constant.excludes_zero()


def test_halves_difference_tells_a_drift_from_rollout_noise():
    """18 rollouts of sd 0.9 (the demo's): no drift is not read as one; a drift of 2 sd is."""
    rng = np.random.default_rng(1)
    noise = rng.normal(-1.0, 0.9, size=18)
    assert not halves_difference(noise).excludes_zero()
    drift = noise + np.r_[np.zeros(9), np.full(9, 1.8)]
    assert halves_difference(drift).low > 0


def test_halves_difference_rejects_too_few_values():
    with pytest.raises(ValueError, match="rollout costs: need at least 4 values"):
        halves_difference([1.0, 2.0, 3.0], name="rollout costs")
    with pytest.raises(ValueError, match="confidence"):
        halves_difference([1.0, 2.0, 3.0, 4.0], confidence=1.5)
