# /// script
# dependencies = ["trl-safe"]
# ///
"""Safe RLHF: PPO-Lag, maximising the reward model's score subject to E[C] <= --cost_limit.

A launcher of `trl_safe/scripts/ppo_lag.py`, where the code and its documentation are; the same script is
`trl-safe ppo_lag ...` once trl-safe is installed. This file exists so that accelerate can launch it:

    accelerate launch [--config_file examples/accelerate_configs/...] examples/ppo_lag.py --help
"""

from trl_safe.cli import run_script

if __name__ == "__main__":
    run_script("ppo_lag")
