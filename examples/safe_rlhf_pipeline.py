# /// script
# dependencies = ["trl-safe[demo]"]
# ///
"""The whole Safe RLHF pipeline in one command (reward model, cost model, PPO-Lag, evaluation).

A launcher of `trl_safe/scripts/safe_rlhf_pipeline.py`, where the code and its documentation are; the same script is
`trl-safe safe_rlhf_pipeline ...` once trl-safe is installed. This file exists so that accelerate can launch it:

    accelerate launch [--config_file examples/accelerate_configs/...] examples/safe_rlhf_pipeline.py --help
"""

from trl_safe.cli import run_script

if __name__ == "__main__":
    run_script("safe_rlhf_pipeline")
