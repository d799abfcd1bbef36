"""GRPO-Lag on two CPU processes (DDP, gloo) through `accelerate launch`: every λ_k and the weights identical on both
ranks, λ_k computed from the costs of both ranks, and resume continuing the exact λ trajectory."""

from pathlib import Path

from accelerate.utils import DistributedType
from distributed_utils import run_distributed

from trl_safe import LagrangeMultiplier

TRAIN_GRPO_LAG = Path(__file__).resolve().parent / "distributed" / "train_grpo_lag.py"


def test_grpo_lag_on_two_cpu_processes_keeps_every_lambda_and_the_weights_identical_and_resumes(tmp_path):
    rank0, rank1 = run_distributed(TRAIN_GRPO_LAG, "--output_dir", str(tmp_path), "--max_steps", "4").results
    for rank, result in enumerate((rank0, rank1)):
        assert (result["rank"], result["world_size"]) == (rank, 2)
        assert result["distributed_type"] == str(DistributedType.MULTI_CPU)
        assert result["global_step"] == 4 and len(result["batches"]) == 4
    assert rank0["cost_names"] == ["cost_0", "char_cost"]  # an in-memory model has no name

    # Every λ_k: the same on both ranks after every batch, and the dual step of one multiplier per constraint fed with
    # the costs of both ranks (not either rank's own).
    multipliers = [
        LagrangeMultiplier(cost_limit=limit, **rank0["lagrange_settings"]) for limit in rank0["cost_limits"]
    ]
    rank0_alone = [
        LagrangeMultiplier(cost_limit=limit, **rank0["lagrange_settings"]) for limit in rank0["cost_limits"]
    ]
    differs = False
    for batch0, batch1 in zip(rank0["batches"], rank1["batches"]):
        assert batch0["step"] == batch1["step"]
        assert batch0["lambdas"] == batch1["lambdas"]
        assert batch0["gathered_costs"] == batch1["gathered_costs"]
        for k, multiplier in enumerate(multipliers):
            assert batch0["local_costs"][k] != batch1["local_costs"][k]  # each rank scored its own completions
            assert batch0["gathered_costs"][k] == batch0["local_costs"][k] + batch1["local_costs"][k]
            assert batch0["lambdas"][k] == multiplier.update(batch0["gathered_costs"][k], step=batch0["step"])
            differs |= rank0_alone[k].update(batch0["local_costs"][k], step=batch0["step"]) != batch0["lambdas"][k]
    assert differs  # only the union of both ranks' costs explains the λ's
    assert rank0["lagrange_states"] == rank1["lagrange_states"] == [m.state_dict() for m in multipliers]
    assert len({batch["lambdas"][0] for batch in rank0["batches"]}) == 4  # λ_1 moved at every batch

    # One model on both ranks.
    assert rank0["policy_sha256"] == rank1["policy_sha256"]

    # Resume from checkpoint-2 on both ranks: the last two batches replayed exactly, the same λ's and weights.
    for result in (rank0, rank1):
        resumed = result["resumed"]
        assert resumed["global_step"] == 4
        assert resumed["batches"] == [batch for batch in result["batches"] if batch["step"] >= 2]
        assert resumed["lagrange_states"] == result["lagrange_states"]
        assert resumed["policy_sha256"] == result["policy_sha256"]
