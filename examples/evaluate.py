# /// script
# dependencies = ["trl-safe"]
# ///
"""Evaluate policies for helpfulness, harmlessness and over-refusal.

A launcher of `trl_safe/scripts/evaluate.py`, where the code and its documentation are; the same script is
`trl-safe evaluate ...` once trl-safe is installed. This file exists so that accelerate can launch it:

    accelerate launch [--config_file examples/accelerate_configs/...] examples/evaluate.py --help
"""

from trl_safe.cli import run_script

if __name__ == "__main__":
    run_script("evaluate")
