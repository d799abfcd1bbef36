"""`trl_safe.weight_averaging.TailAverage`: the parameters averaged over the last steps of a run."""

from __future__ import annotations

import pytest
import torch

from trl_safe.weight_averaging import TailAverage


def _train(model: torch.nn.Module, tail: TailAverage, steps: range, seen: list[torch.Tensor]) -> None:
    """SGD steps on a fixed regression; after each, the tail average and `seen` get the weights."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    generator = torch.Generator().manual_seed(0)
    inputs, targets = torch.randn(16, 3, generator=generator), torch.randn(16, 2, generator=generator)
    for step in steps:
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(inputs), targets).backward()
        optimizer.step()
        tail.update(step)
        seen.append(model.weight.detach().clone())


def test_the_average_is_the_mean_of_the_window_steps_weights_and_swapping_it_in_restores_the_trained_ones():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    tail = TailAverage(model.parameters(), total_steps=6, window=3)
    seen: list[torch.Tensor] = []
    _train(model, tail, range(1, 7), seen)
    assert tail.count == 3
    expected = torch.stack(seen[3:]).mean(dim=0)  # steps 4, 5 and 6
    assert torch.allclose(tail.average()[0], expected, atol=1e-6)
    assert not torch.allclose(expected, seen[-1])  # the average is not the final weights
    trained = model.weight.detach().clone()
    with tail.swapped_in():
        assert torch.allclose(model.weight, expected, atol=1e-6)
    assert torch.equal(model.weight, trained)
    with pytest.raises(KeyError), tail.swapped_in():  # restored even when the reading fails
        raise KeyError("reading failed")
    assert torch.equal(model.weight, trained)


def test_a_window_of_one_step_is_the_final_weights_and_the_dtype_is_kept():
    model = torch.nn.Linear(3, 2).to(torch.bfloat16)
    tail = TailAverage(model.parameters(), total_steps=2, window=1)
    tail.update(1)  # before the window: ignored
    with pytest.raises(RuntimeError, match="steps 2 to 2"):
        tail.average()
    with torch.no_grad():
        model.weight.add_(1)
    tail.update(2)
    assert tail.average()[0].dtype == torch.bfloat16
    assert torch.equal(tail.average()[0], model.weight)


def test_a_resumed_run_reaches_the_uninterrupted_average():
    torch.manual_seed(1)
    model = torch.nn.Linear(3, 2)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    whole = TailAverage(model.parameters(), total_steps=8, window=5)
    _train(model, whole, range(1, 9), [])

    model.load_state_dict(start)
    first = TailAverage(model.parameters(), total_steps=8, window=5)
    _train(model, first, range(1, 6), [])  # stops mid-window (steps 4 and 5 added)
    state = first.state_dict()
    # a fresh process: the same model resumed, a new TailAverage loaded from the saved state; steps 6 to 8 replayed
    # with a fresh optimizer, as SGD without momentum keeps no state, so the weights follow the same steps
    resumed = TailAverage(model.parameters(), total_steps=8, window=5)
    resumed.load_state_dict(state)
    assert resumed.count == 2
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    generator = torch.Generator().manual_seed(0)
    inputs, targets = torch.randn(16, 3, generator=generator), torch.randn(16, 2, generator=generator)
    for step in range(6, 9):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(inputs), targets).backward()
        optimizer.step()
        resumed.update(step)
    for a, b in zip(resumed.average(), whole.average(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_bad_windows_steps_and_states_are_refused_with_the_reason():
    model = torch.nn.Linear(3, 2)
    with pytest.raises(ValueError, match="window must be within"):
        TailAverage(model.parameters(), total_steps=4, window=5)
    with pytest.raises(ValueError, match="window must be within"):
        TailAverage(model.parameters(), total_steps=4, window=0)
    with pytest.raises(ValueError, match="at least one parameter"):
        TailAverage([], total_steps=4, window=1)
    tail = TailAverage(model.parameters(), total_steps=4, window=2)
    with pytest.raises(ValueError, match="past the run's 4 steps"):
        tail.update(5)
    with pytest.raises(ValueError, match="last 3 of 4 steps, this one over the last 2 of 4"):
        tail.load_state_dict(TailAverage(model.parameters(), total_steps=4, window=3).state_dict())
    other = TailAverage(torch.nn.Linear(4, 2).parameters(), total_steps=4, window=2)
    other.update(4)
    with pytest.raises(ValueError, match="shapes"):
        tail.load_state_dict(other.state_dict())
