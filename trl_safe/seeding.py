"""Per-epoch shuffles that a resumed run replays exactly and that no two seeds share.

The rollout prompts (`trl_safe.ppo.experience.RolloutSampler`) and the PTX rows (`trl_safe.ptx.PTXData`) are
shuffled once per epoch, and both must give a resumed run the order the uninterrupted one saw, so epoch e's order
has to be a pure function of (seed, e). Until December 7, 2026 both seeded epoch e with `seed + e`: then seed s's
epoch e + 1 is seed s + 1's epoch e, and runs "of three seeds" (42, 43, 44) trained, from their second epoch on, on
the same orders shifted by one epoch. 480 supervised steps of `benchmarks/ptx_sft_check.py` pass eight epochs of
PTX rows, so its seeds shared seven of them. Here epoch e's order is the (e + 1)-th permutation that one generator
seeded with `seed` draws, as an uninterrupted shuffle (PyTorch's and TRL's samplers) draws them, replayed to be a
pure function of (seed, e). Epoch 0 is the same order as before; later epochs differ from the orders drawn before
that date.
"""

from __future__ import annotations

import torch


def epoch_generator(seed: int, epoch: int, size: int) -> torch.Generator:
    """A generator whose next `torch.randperm(size, generator=...)` is epoch `epoch`'s order for `seed`.

    Replays the `epoch` earlier permutations of a generator seeded once with `seed` (a few hundred rows each: cheap).
    """
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}.")
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epoch):
        torch.randperm(size, generator=generator)
    return generator


def epoch_permutation(seed: int, epoch: int, size: int) -> torch.Tensor:
    """Epoch `epoch`'s order of `size` items for `seed` (see the module docstring)."""
    return torch.randperm(size, generator=epoch_generator(seed, epoch, size))
