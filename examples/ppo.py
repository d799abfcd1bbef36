# /// script
# dependencies = ["trl-safe"]
# ///
"""RLHF with PPO against a reward model.

A launcher of `trl_safe/scripts/ppo.py`, where the code and its documentation are; the same script is
`trl-safe ppo ...` once trl-safe is installed. This file exists so that accelerate can launch it:

    accelerate launch [--config_file examples/accelerate_configs/...] examples/ppo.py --help
"""

from trl_safe.cli import run_script

if __name__ == "__main__":
    run_script("ppo")
