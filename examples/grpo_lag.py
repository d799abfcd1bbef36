# /// script
# dependencies = ["trl-safe"]
# ///
"""Critic-free Safe RLHF: GRPO-Lag, maximising the reward model's score subject to E[C_k] <= --cost_limits[k].

A launcher of `trl_safe/scripts/grpo_lag.py`, where the code and its documentation are; the same script is
`trl-safe grpo_lag ...` once trl-safe is installed. This file exists so that accelerate can launch it:

    accelerate launch [--config_file examples/accelerate_configs/...] examples/grpo_lag.py --help
"""

from trl_safe.cli import run_script

if __name__ == "__main__":
    run_script("grpo_lag")
