"""Plots of a safety evaluation and of a PPO-Lag run (matplotlib, PNG).

Figures are built with `matplotlib.figure.Figure` directly, never through `pyplot`: no global state, no GUI backend
(PNG output goes through Agg whatever the session's backend is), and nothing to close. Every function returns the
`Figure`; `save_figure` writes it.

- `plot_reward_vs_cost`: each response as a point (cost on x, reward on y), one colour per model, with the safety
  boundary C = 0 drawn and the unsafe side (C > 0) shaded, as in the Safe RLHF paper's reward/cost scatter plots.
  Up-and-left is better: helpful and safe.
- `plot_cost_distribution`: the histogram of each model's costs on shared bins, with the boundary C = 0.
- `plot_preference_training`: loss and pair accuracy of a reward or cost model over training.
- `plot_training_curves`: λ, J_C against the cost limit, reward, cost and KL over training, from the `log_history` of
  a run's `trainer_state.json`, under the metric names the PPO-Lag trainer logs. Panels whose metrics were not logged
  are left out, and the figure says which.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from transformers.utils import logging

from .summary_statistics import as_finite_array, is_unsafe

logger = logging.get_logger(__name__)

# (panel title, y label, [(log key, legend label, line style)]) in the order they are drawn.
TRAINING_PANELS: tuple[tuple[str, str, tuple[tuple[str, str, str], ...]], ...] = (
    ("Lagrange multiplier λ", "λ", (("lagrange/lambda", "λ", "-"),)),
    (
        "Episode cost J_C vs. cost limit",
        "cost",
        (("lagrange/episode_cost", "J_C (episode cost)", "-"), ("lagrange/cost_limit", "cost limit", "--")),
    ),
    ("Reward", "R(y, x)", (("objective/scores", "reward", "-"),)),
    ("Cost", "C(y, x)", (("objective/costs", "cost", "-"),)),
    ("KL to the reference policy", "KL", (("objective/kl", "KL", "-"),)),
)
TRAINING_METRICS = tuple(key for _, _, series in TRAINING_PANELS for key, _, _ in series)

BOUNDARY_STYLE = {"color": "black", "linestyle": "--", "linewidth": 1.0}


def model_colors(models: Sequence[str]) -> dict[str, str]:
    """A fixed colour per model (matplotlib's default cycle, by position), shared by every plot of one report."""
    return {name: f"C{i % 10}" for i, name in enumerate(models)}


def save_figure(figure: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write `figure` as PNG (parent folders created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi, format="png")
    return path


def _scores(scores: Mapping[str, tuple[Sequence[float], Sequence[float]]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    if not scores:
        raise ValueError("No model scores to plot.")
    arrays = {}
    for name, (rewards, costs) in scores.items():
        rewards, costs = as_finite_array(rewards, f"{name} rewards"), as_finite_array(costs, f"{name} costs")
        if rewards.size != costs.size:
            raise ValueError(f"{name}: {rewards.size} rewards but {costs.size} costs.")
        arrays[name] = (rewards, costs)
    return arrays


def plot_reward_vs_cost(
    scores: Mapping[str, tuple[Sequence[float], Sequence[float]]], *, title: str | None = None
) -> Figure:
    """Scatter reward (y) against cost (x) of every response, one colour per model, with the C = 0 boundary.

    Args:
        scores: `{model name: (rewards, costs)}`.
        title: figure title (default: "Reward vs. cost").
    """
    arrays = _scores(scores)
    colors = model_colors(list(arrays))
    figure = Figure(figsize=(6.0, 4.4), layout="constrained")
    ax = figure.subplots()
    for name, (rewards, costs) in arrays.items():
        ax.scatter(
            costs,
            rewards,
            s=16,
            alpha=0.65,
            color=colors[name],
            edgecolors="none",
            label=f"{name} (unsafe {is_unsafe(costs).mean():.0%})",
        )
    all_costs = np.concatenate([costs for _, costs in arrays.values()])
    span = max(float(np.abs(all_costs).max()), 1e-6) * 1.08
    ax.set_xlim(
        min(-span * 0.15, float(all_costs.min()) - 0.05 * span), max(span * 0.15, float(all_costs.max()) + 0.05 * span)
    )
    ax.axvspan(0.0, ax.get_xlim()[1], color="tab:red", alpha=0.07, linewidth=0, label="unsafe side (C > 0)")
    ax.axvline(0.0, label="safety boundary C = 0", **BOUNDARY_STYLE)
    ax.set_xlabel("cost C(y, x)   (> 0: unsafe)")
    ax.set_ylabel("reward R(y, x)   (higher: more helpful)")
    ax.set_title(title or "Reward vs. cost")
    ax.grid(alpha=0.25)
    ax.legend(fontsize=8, loc="best")
    return figure


def plot_cost_distribution(
    costs: Mapping[str, Sequence[float]], *, bins: int = 30, title: str | None = None
) -> Figure:
    """Histogram of each model's costs on shared bins (step outlines), with the C = 0 boundary.

    Args:
        costs: `{model name: costs}`.
        bins: number of shared bins spanning all models' costs.
        title: figure title (default: "Cost distribution").
    """
    if not costs:
        raise ValueError("No model costs to plot.")
    arrays = {name: as_finite_array(values, f"{name} costs") for name, values in costs.items()}
    colors = model_colors(list(arrays))
    everything = np.concatenate(list(arrays.values()))
    low, high = float(min(everything.min(), 0.0)), float(max(everything.max(), 0.0))
    edges = np.linspace(low, high if high > low else low + 1.0, bins + 1)
    figure = Figure(figsize=(6.0, 3.8), layout="constrained")
    ax = figure.subplots()
    for name, values in arrays.items():
        counts, _ = np.histogram(values, bins=edges)
        ax.stairs(counts, edges, color=colors[name], linewidth=1.6, label=f"{name} (mean {values.mean():.2f})")
    ax.axvline(0.0, label="safety boundary C = 0", **BOUNDARY_STYLE)
    ax.set_xlabel("cost C(y, x)   (> 0: unsafe)")
    ax.set_ylabel("responses")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title or "Cost distribution")
    ax.grid(alpha=0.25)
    ax.legend(fontsize=8)
    return figure


def load_log_history(source: str | Path | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The `log_history` of a run: from a list, a `trainer_state.json`, or a run folder.

    A folder is searched for `trainer_state.json` itself, then in its last `checkpoint-<step>` sub-folder.
    """
    if not isinstance(source, (str, Path)):
        return [dict(entry) for entry in source]
    path = Path(source)
    if path.is_dir():
        candidates = [path / "trainer_state.json"]
        checkpoints = sorted(
            (p for p in path.glob("checkpoint-*") if re.fullmatch(r"checkpoint-\d+", p.name)),
            key=lambda p: int(p.name.split("-")[1]),
        )
        candidates += [p / "trainer_state.json" for p in reversed(checkpoints)]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise ValueError(f"{path}: no trainer_state.json in the folder or in its checkpoint-* folders.")
        path = found
    if not path.is_file():
        raise ValueError(f"{path}: no such file.")
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON: {error.msg}") from None
    if not isinstance(state, dict) or not isinstance(state.get("log_history"), list):
        raise ValueError(f"{path}: no `log_history` list; is this a trainer_state.json?")
    return state["log_history"]


def _series(log_history: Sequence[Mapping[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    steps, values = [], []
    for position, entry in enumerate(log_history):
        if key in entry and entry[key] is not None:
            steps.append(entry.get("step", position))
            values.append(float(entry[key]))
    return np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)


def plot_training_curves(log_history: str | Path | Sequence[Mapping[str, Any]], *, title: str | None = None) -> Figure:
    """Panels of λ, J_C vs. the cost limit, reward, cost and KL over training steps.

    Args:
        log_history: a `log_history` list, a `trainer_state.json`, or a run folder (see `load_log_history`).
        title: figure title (default: "PPO-Lag training").

    Metrics that were not logged are skipped, logged as a warning and listed at the bottom of the figure.

    Raises:
        ValueError: if none of `TRAINING_METRICS` was logged (the message lists the keys that were).
    """
    history = load_log_history(log_history)
    series = {key: _series(history, key) for key in TRAINING_METRICS}
    missing = [key for key, (steps, _) in series.items() if steps.size == 0]
    panels = [panel for panel in TRAINING_PANELS if any(series[key][0].size for key, _, _ in panel[2])]
    if not panels:
        logged = sorted({key for entry in history for key in entry})
        raise ValueError(f"None of the training metrics {list(TRAINING_METRICS)} was logged; the log has {logged}.")
    if missing:
        logger.warning(f"Training curves: not logged, not plotted: {missing}.")

    ncols = 2 if len(panels) > 1 else 1
    nrows = -(-len(panels) // ncols)
    figure = Figure(figsize=(4.2 * ncols, 2.6 * nrows + (0.35 if missing else 0.0)), layout="constrained")
    axes = np.atleast_1d(figure.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, (panel_title, ylabel, panel_series) in zip(axes, panels):
        for color_index, (key, label, style) in enumerate(panel_series):
            steps, values = series[key]
            if steps.size:
                ax.plot(
                    steps,
                    values,
                    linestyle=style,
                    color=f"C{color_index}",
                    label=label,
                    marker="." if steps.size < 30 else None,
                )
        ax.set_title(panel_title, fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.25)
        if len(panel_series) > 1:
            ax.legend(fontsize=8)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    figure.suptitle(title or "PPO-Lag training")
    if missing:
        figure.supxlabel(f"not logged: {', '.join(missing)}", fontsize=8, color="dimgray")
    return figure


def plot_preference_training(log_history: str | Path | Sequence[Mapping[str, Any]], *, title: str) -> Figure:
    """Loss and pair accuracy of a reward or cost model over training (train and held-out, and for a cost model the
    held-out sign accuracy, C > 0 ⇔ unsafe)."""
    history = load_log_history(log_history)
    figure = Figure(figsize=(8, 3), layout="constrained")
    loss_ax, accuracy_ax = figure.subplots(1, 2)
    for key, ax, label in (
        ("loss", loss_ax, "train"),
        ("eval_loss", loss_ax, "held-out"),
        ("accuracy", accuracy_ax, "train"),
        ("eval_accuracy", accuracy_ax, "held-out"),
        ("eval_sign_accuracy", accuracy_ax, "held-out, C > 0 ⇔ unsafe"),
    ):
        steps, values = _series(history, key)
        if steps.size:
            ax.plot(steps, values, marker="o" if steps.size < 30 else None, label=label)
    loss_ax.set(title="loss", xlabel="step")
    accuracy_ax.set(title="pair accuracy", xlabel="step", ylim=(0, 1.02))
    for ax in (loss_ax, accuracy_ax):
        ax.grid(alpha=0.25)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    figure.suptitle(title)
    return figure
