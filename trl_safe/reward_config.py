"""`RewardConfig`: TRL's `RewardConfig` with trl-safe's hardware-aware defaults.

TRL's `RewardTrainer` trains the reward model as it is; only its configuration's defaults change here: bf16 where the
GPU supports it (TRL's own default stops on a CPU), activation checkpointing under its current name and no
`pin_memory` warning without an accelerator (see `trl_safe.config_defaults`).
"""

from __future__ import annotations

from dataclasses import dataclass

from trl import RewardConfig as TRLRewardConfig

from trl_safe.config_defaults import HardwareDefaultsMixin


@dataclass
class RewardConfig(HardwareDefaultsMixin, TRLRewardConfig):
    """TRL's [`~trl.RewardConfig`] for the reward model R, with `bf16` picked from the hardware (runs as written on a
    CPU). Every field is TRL's."""
