"""Hardware-aware defaults shared by every trl-safe configuration (and the reward model's).

TRL's configs default to bf16 whatever the machine: on a CPU-only machine `TrainingArguments` then stops with "Your
setup doesn't support bf16/gpu" until the user adds `bf16=False`. They also set the deprecated
`gradient_checkpointing=True` (a `FutureWarning` on every config) and leave `dataloader_pin_memory` on where no
accelerator exists (a `pin_memory` warning from PyTorch on every data loader). `HardwareDefaultsMixin` fixes all
three before `TrainingArguments.__post_init__` runs; anything the user sets explicitly is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers.utils import is_torch_bf16_gpu_available


def _accelerator_available() -> bool:
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None and hasattr(accelerator, "is_available"):
        return bool(accelerator.is_available())
    return torch.cuda.is_available()


@dataclass
class HardwareDefaultsMixin:
    """Put first among the bases of a `TrainingArguments` subclass: `class FooConfig(HardwareDefaultsMixin, Base)`.

    - `bf16=None` (the default) becomes `True` only where the GPU runs bf16 natively (and `fp16`, `use_cpu` are off);
    - `activation_checkpointing` defaults to on (TRL's default) under its current name, so no deprecation warning;
    - `dataloader_pin_memory` is switched off when there is no accelerator to pin memory for.
    """

    gradient_checkpointing: bool | None = field(
        default=None,
        metadata={"help": "Deprecated alias of `activation_checkpointing` (which defaults to on); prefer the latter."},
    )

    def __post_init__(self) -> None:
        if self.bf16 is None:
            self.bf16 = not self.fp16 and not self.use_cpu and is_torch_bf16_gpu_available()
        if self.gradient_checkpointing is None and self.activation_checkpointing is None:
            self.activation_checkpointing = True
        if self.use_cpu or not _accelerator_available():
            self.dataloader_pin_memory = False
        super().__post_init__()
