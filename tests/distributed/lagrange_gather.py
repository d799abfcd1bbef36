"""Each rank sees different episode costs, gathers them, and updates its own LagrangeMultiplier.

Launched by tests/test_lagrange.py through `distributed_utils.run_distributed`. Every rank reports its local costs,
the gathered costs and its λ after every step; the test checks that λ is identical on all ranks and equal to a
single-process multiplier fed with all ranks' costs.
"""

import torch
from accelerate import Accelerator
from distributed_utils import save_rank_result

from trl_safe import LagrangeMultiplier
from trl_safe.testing_utils import exit_without_finalizing

NUM_STEPS = 6
EPISODES_PER_RANK = 3


def local_episode_costs(rank: int, step: int) -> torch.Tensor:
    """Deterministic, rank-dependent costs: rank 0 is mostly safe (negative), rank 1 mostly unsafe (positive)."""
    generator = torch.Generator().manual_seed(1000 * rank + step)
    offset = -1.0 if rank == 0 else 2.0
    return offset + torch.randn(EPISODES_PER_RANK, generator=generator, dtype=torch.float64)


def main() -> None:
    accelerator = Accelerator()
    # A window smaller than one step's gathered costs times two, so that old costs leave it during the run.
    multipliers = {
        "sgd": LagrangeMultiplier(cost_limit=0.25, lambda_init=1.0, lambda_lr=0.2, lambda_max=5.0, window_size=8),
        "pid": LagrangeMultiplier(cost_limit=0.25, lambda_init=0.5, window_size=8, update_rule="pid", pid_kd=0.5),
    }
    result = {"local_costs": [], "gathered_costs": [], "lambdas": {name: [] for name in multipliers}}
    for step in range(NUM_STEPS):
        local = local_episode_costs(accelerator.process_index, step)
        gathered = accelerator.gather(local)
        result["local_costs"].append(local.tolist())
        result["gathered_costs"].append(gathered.tolist())
        for name, multiplier in multipliers.items():
            result["lambdas"][name].append(multiplier.update(gathered, step=step))
    result["world_size"] = accelerator.num_processes
    save_rank_result(accelerator.process_index, result)
    accelerator.end_training()


if __name__ == "__main__":
    main()
    exit_without_finalizing()  # the results are saved; see its docstring
