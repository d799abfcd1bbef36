# /// script
# dependencies = ["trl-safe"]
# ///
"""Train the reward model R (helpfulness) with TRL's RewardTrainer.

A launcher of `trl_safe/scripts/reward_model.py`, where the code and its documentation are; the same script is
`trl-safe reward_model ...` once trl-safe is installed. This file exists so that accelerate can launch it:

    accelerate launch [--config_file examples/accelerate_configs/...] examples/reward_model.py --help
"""

from trl_safe.cli import run_script

if __name__ == "__main__":
    run_script("reward_model")
