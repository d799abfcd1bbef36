"""The trained parameters averaged over the last steps of a run (tail averaging, as SWA and Polyak averaging do).

Why: at the demo's constant learning rate (5e-4) the supervised stage's policy is a noisy point of its trajectory.
On one split of train prompts the seed alone, through either the LoRA initialisation or the row order, moved the
480-step SFT policy along the curve of safety against over-refusal as far as any change of the rows did
(docs/demo_outcome.md, "What moves a seed"). Averaging the iterates of the last `window` steps keeps where the
trajectory is heading and shrinks the step-to-step noise around it, without a second run (unlike a soup of seeds,
`trl_safe.interpolation.average_updates`) and without changing the steps taken (unlike a decaying learning rate):
the final and the averaged policy come from one trajectory, so reading both compares them paired.

`TailAverage` keeps a float32 running sum of the parameters it is given (for LoRA: the adapter weights only) from
step `total_steps - window + 1` on; `swapped_in()` puts the average into the model for a reading and restores the
trained weights after, `apply()` keeps it there. Its `state_dict` resumes a run mid-window. The SFT stage uses it
through `UnlikelihoodSFTConfig.average_last_steps`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch


class TailAverage:
    """The uniform mean of `parameters` after each of the last `window` of `total_steps` optimizer steps.

    Call `update(step)` after optimizer step `step` (1-based: the first step is 1); steps before the window are
    ignored, so the caller does not track where the window starts.
    """

    def __init__(self, parameters: Iterable[torch.nn.Parameter], total_steps: int, window: int) -> None:
        if total_steps < 1 or not 1 <= window <= total_steps:
            raise ValueError(
                f"window must be within [1, total_steps] (total_steps >= 1): got window {window} of {total_steps}."
            )
        self.parameters = list(parameters)
        if not self.parameters:
            raise ValueError("TailAverage needs at least one parameter to average (are any trainable?).")
        self.total_steps, self.window = total_steps, window
        self.first_step = total_steps - window + 1
        self.sums: list[torch.Tensor] | None = None
        self.count = 0

    def update(self, step: int) -> None:
        """Adds the parameters after optimizer step `step` to the sum if the step is in the window."""
        if step < self.first_step:
            return
        if step > self.total_steps:
            raise ValueError(f"step {step} is past the run's {self.total_steps} steps.")
        with torch.no_grad():
            if self.sums is None:
                self.sums = [p.detach().float().clone() for p in self.parameters]
            else:
                for total, parameter in zip(self.sums, self.parameters, strict=True):
                    total.add_(parameter.detach().float())
        self.count += 1

    def average(self) -> list[torch.Tensor]:
        """The mean of the parameters over the steps added so far, each in its parameter's dtype."""
        if self.sums is None:
            raise RuntimeError(f"no step of the window (steps {self.first_step} to {self.total_steps}) was added yet.")
        return [(total / self.count).to(p.dtype) for total, p in zip(self.sums, self.parameters, strict=True)]

    def apply(self) -> None:
        """Writes the average into the parameters for good (the end of a run that keeps the averaged model)."""
        self._copy_into_parameters(self.average())

    @contextmanager
    def swapped_in(self) -> Iterator[None]:
        """The averaged parameters in the model inside the block; the trained ones restored after it."""
        averaged = self.average()
        trained = [p.detach().clone() for p in self.parameters]
        self._copy_into_parameters(averaged)
        try:
            yield
        finally:
            self._copy_into_parameters(trained)

    def _copy_into_parameters(self, values: list[torch.Tensor]) -> None:
        with torch.no_grad():
            for parameter, value in zip(self.parameters, values, strict=True):
                parameter.copy_(value)

    def state_dict(self) -> dict[str, Any]:
        return {"total_steps": self.total_steps, "window": self.window, "count": self.count, "sums": self.sums}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if (state["total_steps"], state["window"]) != (self.total_steps, self.window):
            raise ValueError(
                f"the saved average is over the last {state['window']} of {state['total_steps']} steps, this one over "
                f"the last {self.window} of {self.total_steps}."
            )
        sums = state["sums"]
        if sums is not None and [s.shape for s in sums] != [p.shape for p in self.parameters]:
            raise ValueError("the saved average's tensors do not match these parameters' shapes.")
        self.count, self.sums = int(state["count"]), None if sums is None else [s.float().clone() for s in sums]
