"""The Lagrange multiplier λ of Safe RLHF's constrained objective.

Safe RLHF maximises the reward J_R(θ) = E[R(y,x)] subject to a constraint on the expected cost,

    J_C(θ) = E[C(y,x)] ≤ cost_limit        (the paper writes E[C(y,x)] + d ≤ 0, so cost_limit = -d),

and solves it as the saddle point min_θ max_{λ≥0} -J_R(θ) + λ·(J_C(θ) - cost_limit). The policy update (in the
trainer) uses the current λ; this module owns the other half: the dual step that raises λ while the constraint is
violated (J_C > cost_limit) and lowers it once the policy is safe enough.

Two update rules are available:

- `"sgd"`, the reference implementation's rule (PKU-Alignment/safe-rlhf, `ppo_lag`): λ = exp(log_λ), one SGD step on
  the loss -(J_C - cost_limit)·exp(log_λ) per update, then log_λ is clamped at log(λ_max).
- `"pid"`, the PID Lagrangian of Stooke, Achiam and Abbeel (2020), "Responsive Safety in Reinforcement Learning by
  PID Lagrangian Methods": λ = clip(K_P·Δ + I + K_D·(J_C - J_C,prev)_+, 0, λ_max) with I ← (I + K_I·Δ)_+, which
  damps the oscillation and overshoot that the integral-only "sgd" rule shows when J_C reacts to λ with a delay.

The object is plain Python floats and a deque, on purpose: the trainer gathers the episode costs from every rank
before calling `update`, and every rank runs the same deterministic arithmetic on the same numbers, so λ is identical
on all ranks without a broadcast. The window mean is computed with `math.fsum`, which is exact and therefore does
not depend on the order in which the ranks' costs were gathered.

See docs/lagrange.md for the sign conventions and how to choose the settings.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from trl_safe.checks import load_json_file

logger = logging.getLogger(__name__)

UpdateRule = Literal["sgd", "pid"]

# log_λ above this overflows `math.exp` (the largest finite double is about e^709.78).
_MAX_LOG_LAMBDA = 709.0

# Hyperparameters stored in the state dict; a resume with different values is allowed but logged.
_HYPERPARAMETERS = (
    "cost_limit",
    "lambda_init",
    "lambda_lr",
    "lambda_max",
    "update_delay_steps",
    "window_size",
    "update_rule",
    "pid_kp",
    "pid_ki",
    "pid_kd",
    "pid_p_ema_alpha",
    "pid_d_ema_alpha",
)
_STATE_KEYS = (
    "hyperparameters",
    "window",
    "num_updates",
    "log_lambda",
    "pid_lambda",
    "pid_integral",
    "pid_delta_p",
    "pid_cost_d",
)


class LagrangeMultiplier:
    """λ for the constraint J_C = E[C(y,x)] ≤ `cost_limit`, updated from a moving window of episode costs.

    Sign convention: the paper's constraint is E[C] + d ≤ 0, so `cost_limit = -d`; the reference code's `threshold` is
    this `cost_limit`. A cost model trained with Safe RLHF's classification term has C > 0 for unsafe responses and
    C < 0 for safe ones, so `cost_limit = 0` asks for a policy that is safe on average.

    Args:
        cost_limit: the bound on J_C, the mean episode cost (the reference's `threshold`, the paper's -d).
        lambda_init: λ before the first update. Must be > 0 for `"sgd"` (λ = exp(log_λ), and λ = 0 would be a fixed
            point of its multiplicative step), except with `lambda_lr=0`, where λ = 0 gives plain reward
            maximisation. Must be ≥ 0 for `"pid"`.
        lambda_lr: learning rate of the SGD step on log_λ (`"sgd"` only). 0 keeps λ fixed at `lambda_init`: the
            paper's reward-shaping baseline.
        lambda_max: upper bound on λ; `None` for no bound.
        update_delay_steps: no dual step while `step < update_delay_steps`; episode costs are still recorded, so the
            window is full when the updates start.
        window_size: number of most recent episode costs (across all ranks) whose mean estimates J_C.
        update_rule: `"sgd"` (the reference implementation) or `"pid"` (PID Lagrangian).
        pid_kp: proportional gain K_P (`"pid"` only), in λ per unit of cost. The default 1.0 reacts at once with what
            the integral term would accumulate in 10 updates.
        pid_ki: integral gain K_I (`"pid"` only): λ rises by K_I·Δ per update while J_C exceeds the limit by Δ. The
            default 0.1 matches the reference's SGD rule (lr 0.1) at λ = 1, where that rule moves λ by about
            0.1·Δ·λ².
        pid_kd: derivative gain K_D (`"pid"` only): raises λ while J_C is rising, before the limit is crossed. 0 by
            default: J_C is already a window mean whose change per update is small and noisy (docs/lagrange.md).
        pid_p_ema_alpha: EMA coefficient α for Δ in the proportional term (x ← α·x + (1 - α)·Δ); 0 = no smoothing.
        pid_d_ema_alpha: EMA coefficient α for J_C in the derivative term; 0 = no smoothing.
    """

    def __init__(
        self,
        cost_limit: float = 0.0,
        lambda_init: float = 1.0,
        lambda_lr: float = 0.1,
        lambda_max: float | None = 5.0,
        update_delay_steps: int = 0,
        window_size: int = 128,
        update_rule: UpdateRule = "sgd",
        pid_kp: float = 1.0,
        pid_ki: float = 0.1,
        pid_kd: float = 0.0,
        pid_p_ema_alpha: float = 0.0,
        pid_d_ema_alpha: float = 0.0,
    ) -> None:
        if update_rule not in ("sgd", "pid"):
            raise ValueError(f"update_rule must be 'sgd' or 'pid', got {update_rule!r}")
        _check_finite("cost_limit", cost_limit)
        _check_finite("lambda_init", lambda_init)
        _check_finite("lambda_lr", lambda_lr)
        if lambda_lr < 0:
            raise ValueError(f"lambda_lr must be >= 0 (0 keeps λ fixed), got {lambda_lr}")
        if lambda_max is not None:
            _check_finite("lambda_max", lambda_max)
            if lambda_max <= 0:
                raise ValueError(f"lambda_max must be > 0 or None, got {lambda_max}")
        if lambda_init < 0:
            raise ValueError(f"lambda_init must be >= 0, got {lambda_init}")
        if update_rule == "sgd" and lambda_init == 0 and lambda_lr > 0:
            raise ValueError(
                "lambda_init must be > 0 for update_rule='sgd': λ = exp(log_λ) and its step is proportional to λ, so "
                "λ = 0 would never move. Use a small positive value (e.g. 0.01), or lambda_lr=0 for a fixed λ = 0."
            )
        if lambda_max is not None and lambda_init > lambda_max:
            raise ValueError(f"lambda_init ({lambda_init}) must not exceed lambda_max ({lambda_max})")
        if not isinstance(update_delay_steps, int) or update_delay_steps < 0:
            raise ValueError(f"update_delay_steps must be an integer >= 0, got {update_delay_steps!r}")
        if not isinstance(window_size, int) or window_size < 1:
            raise ValueError(f"window_size must be an integer >= 1, got {window_size!r}")
        for name, gain in (("pid_kp", pid_kp), ("pid_ki", pid_ki), ("pid_kd", pid_kd)):
            _check_finite(name, gain)
            if gain < 0:
                raise ValueError(f"{name} must be >= 0, got {gain}")
        for name, alpha in (("pid_p_ema_alpha", pid_p_ema_alpha), ("pid_d_ema_alpha", pid_d_ema_alpha)):
            if not 0 <= alpha < 1:
                raise ValueError(f"{name} must be in [0, 1) (0 = no smoothing), got {alpha}")

        self.cost_limit = float(cost_limit)
        self.lambda_init = float(lambda_init)
        self.lambda_lr = float(lambda_lr)
        self.lambda_max = None if lambda_max is None else float(lambda_max)
        self.update_delay_steps = update_delay_steps
        self.window_size = window_size
        self.update_rule = update_rule
        self.pid_kp = float(pid_kp)
        self.pid_ki = float(pid_ki)
        self.pid_kd = float(pid_kd)
        self.pid_p_ema_alpha = float(pid_p_ema_alpha)
        self.pid_d_ema_alpha = float(pid_d_ema_alpha)

        self._window: deque[float] = deque(maxlen=window_size)
        self._num_updates = 0
        # "sgd" state: log_λ (-inf encodes the fixed λ = 0 baseline).
        self._log_lambda = math.log(self.lambda_init) if self.lambda_init > 0 else -math.inf
        # "pid" state: λ itself, the integral I (initialised so that λ starts at lambda_init), the smoothed Δ of the
        # proportional term and the smoothed J_C of the derivative term (None until the first update).
        self._pid_lambda = self.lambda_init
        self._pid_integral = self.lambda_init
        self._pid_delta_p: float | None = None
        self._pid_cost_d: float | None = None

    @property
    def value(self) -> float:
        """The current λ ≥ 0."""
        if self.update_rule == "sgd":
            return math.exp(self._log_lambda)
        return self._pid_lambda

    @property
    def episode_cost(self) -> float:
        """J_C, the estimate of the expected episode cost: the mean of the window (nan while it is empty)."""
        if not self._window:
            return math.nan
        return math.fsum(self._window) / len(self._window)

    @property
    def num_updates(self) -> int:
        """How many dual steps have been taken (updates during the delay do not count)."""
        return self._num_updates

    def update(self, episode_costs: Sequence[float] | torch.Tensor, step: int) -> float:
        """Record one rollout's episode costs and take one dual step; return the new λ.

        Args:
            episode_costs: C(y, x) of every episode of this rollout, ALREADY gathered from all ranks (e.g. with
                `accelerator.gather`), as a 1-D tensor or a sequence of numbers.
            step: the trainer's global step; no dual step is taken while `step < update_delay_steps`.
        """
        costs = _as_float_list(episode_costs)
        self._window.extend(costs)
        if step < self.update_delay_steps:
            return self.value

        cost_violation = self.episode_cost - self.cost_limit  # Δ = J_C - cost_limit, the dual gradient
        if self.update_rule == "sgd":
            self._sgd_step(cost_violation)
        else:
            self._pid_step(cost_violation)
        self._num_updates += 1
        return self.value

    def _sgd_step(self, cost_violation: float) -> None:
        # The reference minimises loss = -(J_C - cost_limit)·exp(log_λ) with SGD; d loss / d log_λ = -Δ·λ, so the
        # step is gradient ascent on log_λ: log_λ ← log_λ + lr·Δ·λ. λ = 0 (log_λ = -inf, only with lr = 0) stays 0.
        if self.lambda_lr == 0 or self._log_lambda == -math.inf:
            return
        log_lambda = self._log_lambda + self.lambda_lr * cost_violation * math.exp(self._log_lambda)
        if self.lambda_max is not None:
            log_lambda = min(log_lambda, math.log(self.lambda_max))
        if log_lambda > _MAX_LOG_LAMBDA:
            raise OverflowError(
                f"log λ reached {log_lambda:.1f}: λ overflows a float. The unbounded SGD rule grows λ "
                "super-exponentially while the constraint stays violated; set lambda_max."
            )
        self._log_lambda = log_lambda

    def _pid_step(self, cost_violation: float) -> None:
        episode_cost = self.episode_cost
        # I: the integral of the violation, kept ≥ 0 (λ must not need to "unwind" a negative integral before it can
        # rise again) and, when λ is bounded, ≤ λ_max (anti-windup: a saturated λ must not keep accumulating).
        integral = max(0.0, self._pid_integral + self.pid_ki * cost_violation)
        if self.lambda_max is not None:
            integral = min(integral, self.lambda_max)
        # P: the current violation, optionally EMA-smoothed (the first update starts the average at Δ itself).
        a_p = self.pid_p_ema_alpha
        delta_p = cost_violation if self._pid_delta_p is None else a_p * self._pid_delta_p + (1 - a_p) * cost_violation
        # D: only a rising J_C raises λ (the paper's (J_C - J_C,prev)_+); no previous value at the first update.
        a_d = self.pid_d_ema_alpha
        cost_d = episode_cost if self._pid_cost_d is None else a_d * self._pid_cost_d + (1 - a_d) * episode_cost
        derivative = 0.0 if self._pid_cost_d is None else max(0.0, cost_d - self._pid_cost_d)

        pid_lambda = max(0.0, self.pid_kp * delta_p + integral + self.pid_kd * derivative)
        if self.lambda_max is not None:
            pid_lambda = min(pid_lambda, self.lambda_max)

        self._pid_integral = integral
        self._pid_delta_p = delta_p
        self._pid_cost_d = cost_d
        self._pid_lambda = pid_lambda

    def metrics(self) -> dict[str, float]:
        """Scalars worth logging every step: λ, J_C, Δ = J_C - cost_limit, and the PID terms for `"pid"`."""
        episode_cost = self.episode_cost
        metrics = {
            "lambda": self.value,
            "episode_cost": episode_cost,
            "cost_violation": episode_cost - self.cost_limit,
        }
        if self.update_rule == "pid":
            metrics["pid_integral"] = self._pid_integral
        return metrics

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the exact trajectory: the window, log_λ, the PID state and the settings.

        Only built-in Python types, so the dict can be saved with `torch.save` or `json` alike.
        """
        return {
            "hyperparameters": {name: getattr(self, name) for name in _HYPERPARAMETERS},
            "window": list(self._window),
            "num_updates": self._num_updates,
            "log_lambda": self._log_lambda,
            "pid_lambda": self._pid_lambda,
            "pid_integral": self._pid_integral,
            "pid_delta_p": self._pid_delta_p,
            "pid_cost_d": self._pid_cost_d,
        }

    def load_state_dict(self, state: dict[str, Any], source: str | None = None) -> None:
        """Restore a state saved by `state_dict`.

        The settings of this object (its constructor arguments) stay in force: resuming with, say, a different
        `lambda_lr` is allowed and logged. A different `update_rule` is an error (the saved state would be
        meaningless), and a smaller `window_size` keeps only the most recent costs (logged); a smaller `lambda_max`
        clamps λ (logged). A state that could not have been saved (NaN or infinite values, λ above the `lambda_max`
        it was saved with, a negative PID λ) is an error naming the field and `source` (the file it came from), not
        a crash a few rollouts later.
        """
        where = source or "LagrangeMultiplier state"
        if not isinstance(state, dict):
            raise ValueError(f"{where}: expected a JSON object (a dict), got {type(state).__name__}.")
        missing = [key for key in _STATE_KEYS if key not in state]
        if missing:
            raise ValueError(f"{where} is missing {missing}; was it saved by `state_dict()`?")
        _check_state(state, self, where)
        saved = state["hyperparameters"]
        if saved.get("update_rule") != self.update_rule:
            raise ValueError(
                f"the state was saved with update_rule={saved.get('update_rule')!r}, but this multiplier uses "
                f"update_rule={self.update_rule!r}"
            )
        changed = {
            name: (saved[name], getattr(self, name))
            for name in _HYPERPARAMETERS
            if name in saved and saved[name] != getattr(self, name)
        }
        if changed:
            details = ", ".join(f"{name}: {old!r} -> {new!r}" for name, (old, new) in changed.items())
            logger.warning("Resuming the Lagrange multiplier with changed settings (%s).", details)
        window = _as_float_list(state["window"]) if len(state["window"]) else []
        if len(window) > self.window_size:
            logger.warning(
                "The saved cost window holds %d costs but window_size is %d: keeping the %d most recent.",
                len(window),
                self.window_size,
                self.window_size,
            )
        self._window = deque(window, maxlen=self.window_size)
        self._num_updates = int(state["num_updates"])
        self._log_lambda = float(state["log_lambda"])
        self._pid_lambda = float(state["pid_lambda"])
        self._pid_integral = float(state["pid_integral"])
        if self.lambda_max is not None and self.value > self.lambda_max:
            logger.warning("The saved λ = %g exceeds lambda_max = %g: clamping it.", self.value, self.lambda_max)
            self._log_lambda = min(self._log_lambda, math.log(self.lambda_max))
            self._pid_lambda = min(self._pid_lambda, self.lambda_max)
            self._pid_integral = min(self._pid_integral, self.lambda_max)
        self._pid_delta_p = None if state["pid_delta_p"] is None else float(state["pid_delta_p"])
        self._pid_cost_d = None if state["pid_cost_d"] is None else float(state["pid_cost_d"])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(rule={self.update_rule!r}, λ={self.value:.6g}, J_C={self.episode_cost:.6g}, "
            f"cost_limit={self.cost_limit}, window={len(self._window)}/{self.window_size}, steps={self._num_updates})"
        )


def _check_state(state: dict[str, Any], multiplier: LagrangeMultiplier, where: str) -> None:
    """Refuse a state that `state_dict` could not have written (hand-edited or corrupted), naming the field."""

    def number(name: str, allow_none: bool = False) -> float | None:
        value = state[name]
        if value is None and allow_none:
            return None
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ValueError(f"{where}: {name} must be a number, got {value!r}.")
        return float(value)

    if not isinstance(state["hyperparameters"], dict):
        raise ValueError(f"{where}: hyperparameters must be a dict, got {state['hyperparameters']!r}.")
    saved_max = state["hyperparameters"].get("lambda_max", multiplier.lambda_max)
    log_lambda = number("log_lambda")
    if math.isnan(log_lambda) or log_lambda == math.inf:
        raise ValueError(f"{where}: log_lambda is {log_lambda}; λ = exp(log_lambda) must be a finite number.")
    if log_lambda == -math.inf and multiplier.update_rule == "sgd" and multiplier.lambda_lr > 0:
        raise ValueError(
            f"{where}: log_lambda is -inf (λ = 0), which the 'sgd' rule can never move away from with lambda_lr > 0."
        )
    if isinstance(saved_max, int | float) and saved_max > 0 and log_lambda > math.log(saved_max) + 1e-9:
        raise ValueError(
            f"{where}: log_lambda = {log_lambda} is above log(lambda_max) = {math.log(saved_max):.6g} (lambda_max "
            f"= {saved_max}), which the update never produces; the file was edited or corrupted."
        )
    for name in ("pid_lambda", "pid_integral"):
        value = number(name)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{where}: {name} must be a finite number >= 0, got {value}.")
    for name in ("pid_delta_p", "pid_cost_d"):
        value = number(name, allow_none=True)
        if value is not None and not math.isfinite(value):
            raise ValueError(f"{where}: {name} must be a finite number or null, got {value}.")
    num_updates = state["num_updates"]
    if not isinstance(num_updates, int) or isinstance(num_updates, bool) or num_updates < 0:
        raise ValueError(f"{where}: num_updates must be an integer >= 0, got {num_updates!r}.")
    window = state["window"]
    if not isinstance(window, list):
        raise ValueError(f"{where}: window must be a list of episode costs, got {type(window).__name__}.")
    for index, cost in enumerate(window):
        if not isinstance(cost, int | float) or isinstance(cost, bool) or not math.isfinite(cost):
            raise ValueError(f"{where}: window[{index}] must be a finite number, got {cost!r}.")


def check_limit_above_floor(limit: float, floor: float | None, limit_name: str, floor_name: str) -> None:
    """A cost floor f makes J_C = E[max(C, f)] ≥ f, so a limit at or below f can never be met and λ would only grow.

    The one check behind `PPOLagConfig.cost_floor`, the critic-free `cost_floors` and the pipeline's `--cost_floor`;
    the names say which fields the user set. `floor=None` (no floor) always passes.
    """
    if floor is not None and not limit > floor:
        raise ValueError(
            f"{limit_name} ({limit}) must lie above {floor_name} ({floor}): with the floor, J_C = E[max(C, {floor})] "
            "is never below it, so the constraint could not be met and λ would only grow. Raise the limit, or lower "
            "the floor."
        )


def _check_finite(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


def _as_float_list(episode_costs: Sequence[float] | torch.Tensor) -> list[float]:
    """The episode costs as Python floats (float64), rejecting anything that is not a flat list of finite numbers."""
    if isinstance(episode_costs, torch.Tensor):
        if episode_costs.dim() != 1:
            raise ValueError(
                f"episode_costs must be a 1-D tensor with one cost per episode, got shape {tuple(episode_costs.shape)}"
            )
        costs = episode_costs.detach().to(device="cpu", dtype=torch.float64).tolist()
    else:
        costs = []
        for index, cost in enumerate(episode_costs):
            try:
                costs.append(float(cost))
            except (TypeError, ValueError) as error:
                raise ValueError(f"episode_costs[{index}] is not a number: {cost!r}") from error
    if not costs:
        raise ValueError("episode_costs is empty: every update needs the costs of at least one episode")
    for index, cost in enumerate(costs):
        if not math.isfinite(cost):
            raise ValueError(f"episode_costs[{index}] is {cost}: costs must be finite")
    return costs


@dataclass
class LagrangeSettings:
    """The λ settings shared by every Lagrangian trainer config (PPO-Lag, GRPO-Lag, RLOO-Lag), as dataclass fields
    named like `LagrangeMultiplier`'s arguments.

    A mixin listed *before* the trainer's own config class (`class PPOLagConfig(LagrangeSettings, PPOConfig)`), so
    that `TrainingArguments`' fields keep their positions (`output_dir` first). The bound on the cost is not here:
    PPO-Lag has one (`cost_limit`), the critic-free trainers one per cost function (`cost_limits`). The fields are
    documented in `PPOLagConfig`.
    """

    lambda_init: float = field(default=1.0, metadata={"help": "λ at the start of training."})
    lambda_lr: float = field(default=0.1, metadata={"help": "Learning rate of λ (0 keeps λ fixed)."})
    lambda_max: float | None = field(default=5.0, metadata={"help": "Upper bound on λ (None: unbounded)."})
    update_delay_steps: int = field(default=0, metadata={"help": "Optimizer steps before λ starts to move."})
    window_size: int = field(default=128, metadata={"help": "Number of most recent episode costs whose mean is J_C."})
    update_rule: str = field(default="sgd", metadata={"help": "Update rule of λ.", "choices": ["sgd", "pid"]})
    pid_kp: float = field(default=1.0, metadata={"help": "Proportional gain of the 'pid' rule."})
    pid_ki: float = field(default=0.1, metadata={"help": "Integral gain of the 'pid' rule."})
    pid_kd: float = field(default=0.0, metadata={"help": "Derivative gain of the 'pid' rule."})
    pid_p_ema_alpha: float = field(default=0.0, metadata={"help": "EMA smoothing of the 'pid' proportional term."})
    pid_d_ema_alpha: float = field(default=0.0, metadata={"help": "EMA smoothing of the 'pid' derivative term."})

    def lagrange_settings(self) -> dict[str, Any]:
        """`LagrangeMultiplier`'s arguments other than `cost_limit`: the fields of the same names."""
        return {name: getattr(self, name) for name in LAGRANGE_MULTIPLIER_ARGS if name != "cost_limit"}


# Every argument of `LagrangeMultiplier`; each is a config field of the same name (`cost_limit` in PPO-Lag's config).
LAGRANGE_MULTIPLIER_ARGS = tuple(inspect.signature(LagrangeMultiplier).parameters)


def lagrange_logs(multiplier: LagrangeMultiplier, prefix: str = "lagrange/") -> dict[str, float]:
    """What a trainer logs about one constraint at every log: its limit and every value of `metrics()` (λ, J_C, the
    violation J_C - limit, the PID integral).

    λ, J_C and the PID terms are state, not averages over the logging interval, so every log shows their current
    values; J_C and what depends on it are left out while no cost has been recorded (a NaN breaks JSON loggers).
    """
    logs = {f"{prefix}cost_limit": multiplier.cost_limit}
    for name, value in multiplier.metrics().items():
        if not math.isnan(value):
            logs[f"{prefix}{name}"] = value
    return logs


def save_lagrange_state(checkpoint_dir: str | os.PathLike, file_name: str, state: Any) -> None:
    """Write the multipliers' state (built-in types) into a checkpoint directory as JSON."""
    with open(os.path.join(checkpoint_dir, file_name), "w") as file:
        json.dump(state, file, indent=2)


def load_lagrange_state(checkpoint_dir: str | os.PathLike, file_name: str, trainer_name: str) -> Any:
    """Read what `save_lagrange_state` wrote; a checkpoint without it cannot resume λ, which is an error."""
    path = os.path.join(checkpoint_dir, file_name)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{checkpoint_dir} has no {file_name}: it was not written by {trainer_name}, so λ cannot resume where it "
            "stopped."
        )
    return load_json_file(path, "Lagrange multiplier state")
