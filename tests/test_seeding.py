"""`trl_safe.seeding`: per-epoch orders that a resumed run replays and that no two seeds share."""

from __future__ import annotations

import itertools

import pytest
import torch
from datasets import Dataset
from trl.trainer.utils import RepeatSampler

from trl_safe.ppo.experience import RolloutSampler
from trl_safe.ptx import PTXData
from trl_safe.seeding import epoch_generator, epoch_permutation

SIZE = 40


def test_epoch_zero_is_the_order_seeded_runs_drew_before():
    """Runs that stay in their first epoch (the default demo's 18 rollouts) keep the order they were measured with."""
    for seed in (0, 42):
        assert torch.equal(
            epoch_permutation(seed, 0, SIZE), torch.randperm(SIZE, generator=torch.Generator().manual_seed(seed))
        )


def test_later_epochs_are_what_an_uninterrupted_shuffle_draws():
    generator = torch.Generator().manual_seed(7)
    for epoch in range(5):
        assert torch.equal(epoch_permutation(7, epoch, SIZE), torch.randperm(SIZE, generator=generator))


def test_no_two_seeds_share_an_epoch_order():
    """Seeding epoch e with seed + e made seed s's epoch e + 1 seed s + 1's epoch e; here every order differs."""
    orders = {
        (seed, epoch): tuple(epoch_permutation(seed, epoch, SIZE).tolist()) for seed in range(5) for epoch in range(8)
    }
    assert len(set(orders.values())) == len(orders)
    assert orders[0, 1] != orders[1, 0]
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        epoch_generator(0, -1, SIZE)


def test_ptx_rows_of_consecutive_seeds_differ_past_the_first_epoch(tiny_tokenizer):
    texts = [f"row {i} of the PTX text." for i in range(12)]
    seed_3 = PTXData(Dataset.from_dict({"text": texts}), tiny_tokenizer, max_length=None, seed=3)
    seed_4 = PTXData(Dataset.from_dict({"text": texts}), tiny_tokenizer, max_length=None, seed=4)
    epoch = 12 // 4  # draws of 4 rows per epoch
    second_epoch_3 = [row for draw in range(epoch, 2 * epoch) for row in seed_3.rows(draw, 4)]
    first_epoch_4 = [row for draw in range(epoch) for row in seed_4.rows(draw, 4)]
    assert sorted(second_epoch_3) == list(range(12)) and second_epoch_3 != first_epoch_4
    assert second_epoch_3 == epoch_permutation(3, 1, 12).tolist()
    resumed = PTXData(Dataset.from_dict({"text": texts}), tiny_tokenizer, max_length=None, seed=3)
    assert resumed.rows(epoch + 1, 4) == seed_3.rows(epoch + 1, 4)  # a pure function of (seed, draw)


def test_rollout_sampler_resumes_the_uninterrupted_order_and_seeds_do_not_share_it():
    data = list(range(SIZE))
    uninterrupted = RepeatSampler(data, mini_repeat_count=1, batch_size=8, repeat_count=1, seed=42)
    orders = [list(uninterrupted) for _ in range(3)]
    for epoch in (2, 0, 1):  # any order of calls: each epoch is a pure function of (seed, epoch)
        resumed = RolloutSampler(data, mini_repeat_count=1, batch_size=8, repeat_count=1, seed=42)
        resumed.set_epoch(epoch)
        assert list(resumed) == orders[epoch]
    next_seed = RolloutSampler(data, mini_repeat_count=1, batch_size=8, repeat_count=1, seed=43)
    next_seed.set_epoch(0)
    assert list(next_seed) != orders[1]
    assert list(itertools.islice(iter(RolloutSampler(data, 1, 8, 1, seed=42)), 8)) == orders[0][:8]
