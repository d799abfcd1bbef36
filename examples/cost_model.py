# /// script
# dependencies = ["trl-safe"]
# ///
"""Train the cost model C (harmlessness) with trl_safe.CostTrainer.

A launcher of `trl_safe/scripts/cost_model.py`, where the code and its documentation are; the same script is
`trl-safe cost_model ...` once trl-safe is installed. This file exists so that accelerate can launch it:

    accelerate launch [--config_file examples/accelerate_configs/...] examples/cost_model.py --help
"""

from trl_safe.cli import run_script

if __name__ == "__main__":
    run_script("cost_model")
