# /// script
# dependencies = ["trl-safe"]
# ///
"""Supervised fine-tuning (the SFT stage) with trl_safe.UnlikelihoodSFTTrainer.

A launcher of `trl_safe/scripts/sft.py`, where the code and its documentation are; the same script is
`trl-safe sft ...` once trl-safe is installed. This file exists so that accelerate can launch it:

    accelerate launch [--config_file examples/accelerate_configs/...] examples/sft.py --help
"""

from trl_safe.cli import run_script

if __name__ == "__main__":
    run_script("sft")
