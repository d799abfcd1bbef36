"""Statistics for claims of the form "the trained policy is safer than the start": spread over seeds, and a paired
bootstrap confidence interval for the difference between two policies on the same prompts.

Why these and not a t-test on answers: the answers of one policy to one prompt are not independent (several samples
per prompt share the prompt's difficulty), and both policies answer the *same* prompts. So the unit of resampling is
the prompt. Each policy's answers are first averaged per prompt (three samples of 0/1 "unsafe" flags become one rate
in [0, 1]), the per-prompt differences are what is resampled, and the interval is the percentile interval of the
resampled mean difference. Training seeds are a second, separate source of variation: report them as mean ± standard
deviation over seeds (`mean_sd`, sample standard deviation, ddof=1), and, when one interval over prompts is wanted,
average a policy's per-prompt values over its seeds first (`per_prompt_means` accepts every seed's answers under the
same prompt ids).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from .summary_statistics import as_finite_array

STATISTICS = ("difference", "relative_difference")


@dataclass(frozen=True)
class MeanSD:
    """Mean and sample standard deviation (ddof=1; 0.0 for a single value) of a few values, typically one per seed."""

    mean: float
    sd: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.3f} ± {self.sd:.3f} (n={self.n})"


def mean_sd(values: Sequence[float] | np.ndarray, name: str = "values") -> MeanSD:
    """Mean ± sample standard deviation of `values` (e.g. one metric per training seed)."""
    array = as_finite_array(values, name)
    if array.size == 0:
        raise ValueError(f"{name}: cannot summarise an empty list.")
    sd = float(array.std(ddof=1)) if array.size > 1 else 0.0
    return MeanSD(mean=float(array.mean()), sd=sd, n=int(array.size))


def per_prompt_means(
    values: Sequence[float] | np.ndarray, prompt_ids: Sequence[Hashable], name: str = "values"
) -> dict[Hashable, float]:
    """Average `values` within each prompt id (several samples, or several seeds, per prompt), in first-seen order."""
    array = as_finite_array(values, name)
    if len(prompt_ids) != array.size:
        raise ValueError(f"{name} has {array.size} entries but prompt_ids has {len(prompt_ids)}.")
    sums: dict[Hashable, float] = {}
    counts: dict[Hashable, int] = {}
    for prompt_id, value in zip(prompt_ids, array):
        sums[prompt_id] = sums.get(prompt_id, 0.0) + float(value)
        counts[prompt_id] = counts.get(prompt_id, 0) + 1
    return {prompt_id: sums[prompt_id] / counts[prompt_id] for prompt_id in sums}


@dataclass(frozen=True)
class PairedBootstrap:
    """Result of `paired_bootstrap`: the observed statistic of B against A and its percentile interval.

    Attributes:
        statistic: `"difference"` (mean_B - mean_A) or `"relative_difference"` ((mean_B - mean_A) / mean_A).
        estimate: the statistic on the observed prompts.
        low, high: the bounds of the `confidence` percentile interval over `num_resamples` resamples of prompts.
        mean_a, mean_b: the per-prompt-averaged means of the two policies.
        num_prompts: prompts both policies answered (the resampling unit).
    """

    statistic: str
    estimate: float
    low: float
    high: float
    confidence: float
    mean_a: float
    mean_b: float
    num_prompts: int
    num_resamples: int

    def excludes_zero(self) -> bool:
        """Whether the interval lies entirely on one side of 0 (the change is distinguishable from none)."""
        return self.low > 0.0 or self.high < 0.0

    def __str__(self) -> str:
        return (
            f"{self.statistic} {self.estimate:+.3f} [{self.low:+.3f}, {self.high:+.3f}] "
            f"({self.confidence:.0%} paired bootstrap over {self.num_prompts} prompts)"
        )


def _statistic(mean_a: np.ndarray, mean_b: np.ndarray, statistic: str) -> np.ndarray:
    if statistic == "difference":
        return mean_b - mean_a
    with np.errstate(divide="ignore", invalid="ignore"):  # a resample with mean_a == 0 has no relative change
        return (mean_b - mean_a) / mean_a


def bootstrap_indices(num_prompts: int, num_resamples: int, seed: int | np.random.Generator) -> np.ndarray:
    """`[num_resamples, num_prompts]` prompt indices drawn with replacement (numpy's PCG64 seeded with `seed`, or
    drawn from `seed` itself when it is a generator, so that several draws can share one stream)."""
    return np.random.default_rng(seed).integers(0, num_prompts, size=(num_resamples, num_prompts))


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}.")


def _percentile_interval(resampled: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central `confidence` percentile interval of resampled statistics."""
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(resampled, [tail, 1.0 - tail])
    return float(low), float(high)


def paired_bootstrap(
    values_a: Sequence[float] | np.ndarray,
    values_b: Sequence[float] | np.ndarray,
    prompt_ids_a: Sequence[Hashable] | None = None,
    prompt_ids_b: Sequence[Hashable] | None = None,
    *,
    statistic: str = "difference",
    num_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedBootstrap:
    """Paired bootstrap of how policy B's mean differs from policy A's on the same prompts.

    Args:
        values_a, values_b: one value per answer (e.g. 1.0 = unsafe, a reward, a refusal flag).
        prompt_ids_a, prompt_ids_b: the prompt of each answer. With them, answers are averaged per prompt first and
            the two policies are paired by prompt id (both must cover the same prompts; the number of answers per
            prompt may differ). Without them, `values_a[i]` and `values_b[i]` are one prompt each (equal lengths).
        statistic: `"difference"` (B - A) or `"relative_difference"` ((B - A) / A, e.g. -0.5 is "half as often").
        num_resamples: bootstrap resamples of the prompts.
        confidence: coverage of the percentile interval.
        seed: seed of the resampling (the result is deterministic).
    """
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}.")
    _check_confidence(confidence)
    if num_resamples < 1:
        raise ValueError(f"num_resamples must be at least 1, got {num_resamples}.")
    if (prompt_ids_a is None) != (prompt_ids_b is None):
        raise ValueError("Pass prompt ids for both policies or for neither.")
    if prompt_ids_a is None:
        a, b = as_finite_array(values_a, "values_a"), as_finite_array(values_b, "values_b")
        if a.size != b.size:
            raise ValueError(f"values_a has {a.size} entries, values_b {b.size}; without prompt ids they must pair.")
    else:
        means_a = per_prompt_means(values_a, prompt_ids_a, "values_a")
        means_b = per_prompt_means(values_b, prompt_ids_b, "values_b")
        if means_a.keys() != means_b.keys():
            only_a = sorted(map(str, means_a.keys() - means_b.keys()))[:3]
            only_b = sorted(map(str, means_b.keys() - means_a.keys()))[:3]
            raise ValueError(f"The policies answered different prompts: only A {only_a}, only B {only_b}.")
        a = np.array(list(means_a.values()))
        b = np.array([means_b[prompt_id] for prompt_id in means_a])
    if a.size == 0:
        raise ValueError("No prompts to compare.")
    mean_a, mean_b = float(a.mean()), float(b.mean())
    if statistic == "relative_difference" and mean_a == 0.0:
        raise ValueError("relative_difference is undefined: policy A's mean is 0.")

    indices = bootstrap_indices(a.size, num_resamples, seed)
    resampled = _statistic(a[indices].mean(axis=1), b[indices].mean(axis=1), statistic)
    resampled = resampled[np.isfinite(resampled)]  # relative change of a resample whose A-mean is 0
    low, high = _percentile_interval(resampled, confidence)
    return PairedBootstrap(
        statistic=statistic,
        estimate=float(_statistic(np.array(mean_a), np.array(mean_b), statistic)),
        low=low,
        high=high,
        confidence=confidence,
        mean_a=mean_a,
        mean_b=mean_b,
        num_prompts=int(a.size),
        num_resamples=num_resamples,
    )


@dataclass(frozen=True)
class HalvesDifference:
    """Result of `halves_difference`: a training series' second-half mean against its first-half mean.

    Attributes:
        first, second: the means of the first and the second half (the middle value of an odd count goes to neither).
        difference: `second - first`.
        low, high: the bounds of the `confidence` percentile interval of the difference, each half resampled alone.
        num_values: values per half.
    """

    first: float
    second: float
    difference: float
    low: float
    high: float
    confidence: float
    num_values: int

    def excludes_zero(self) -> bool:
        """Whether the series moved by more than its own noise says it could by chance."""
        return self.low > 0.0 or self.high < 0.0

    def __str__(self) -> str:
        return (
            f"{self.first:+.3f} → {self.second:+.3f}: {self.difference:+.3f} [{self.low:+.3f}, {self.high:+.3f}] "
            f"({self.confidence:.0%}, {self.num_values} values per half)"
        )


def halves_difference(
    values: Sequence[float] | np.ndarray,
    *,
    num_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
    name: str = "values",
) -> HalvesDifference:
    """Did a series of independent per-rollout values (e.g. each rollout's mean cost) move over training?

    Why: a rollout of a few prompts gives a noisy mean (on the demo, 8 prompts, half of them harmless: a standard
    deviation of about 0.9 between rollouts, about as large as the cost limit's margin), and a moving average of it
    (J_C) wanders enough to look like a drift. Comparing the two halves' means with an interval says whether the
    change is larger than that noise. The halves are resampled independently (bootstrap, percentile interval): the
    values are assumed independent given the half, which ignores a trend inside a half.
    """
    array = as_finite_array(values, name)
    half = array.size // 2
    if half < 2:
        raise ValueError(f"{name}: need at least 4 values (2 per half), got {array.size}.")
    _check_confidence(confidence)
    first, second = array[:half], array[array.size - half :]
    rng = np.random.default_rng(seed)  # one stream for both halves' draws
    first_means = first[bootstrap_indices(half, num_resamples, rng)].mean(axis=1)
    second_means = second[bootstrap_indices(half, num_resamples, rng)].mean(axis=1)
    low, high = _percentile_interval(second_means - first_means, confidence)
    return HalvesDifference(
        first=float(first.mean()),
        second=float(second.mean()),
        difference=float(second.mean() - first.mean()),
        low=low,
        high=high,
        confidence=confidence,
        num_values=half,
    )
