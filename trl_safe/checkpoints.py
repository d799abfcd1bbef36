"""Where a `transformers.Trainer` writes the checkpoint of its current step, for trainers that add files to it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from transformers import Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR


def current_checkpoint_dir(trainer: Trainer, trial: Any = None) -> str:
    """`<output_dir>/checkpoint-<global_step>`, the folder `Trainer._save_checkpoint` writes at this step: the
    place for state the Trainer does not save itself (λ, a running weight average)."""
    return os.path.join(trainer._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{trainer.state.global_step}")


def checkpoint_steps(output_dir: str | os.PathLike) -> list[int]:
    """The steps of the `checkpoint-<step>` folders a Trainer saved in `output_dir`, in order."""
    folders = Path(output_dir).glob(f"{PREFIX_CHECKPOINT_DIR}-*")
    return sorted(int(path.name.rsplit("-", 1)[1]) for path in folders if path.is_dir() and path.name[11:].isdigit())
