"""Saved LoRA adapters read as plain models: where an adapter's tokenizer is, the adapter merged into its base model,
and a stage's adapter replaced by that merged model.

Why a module of its own: the pipeline merges each LoRA stage before the next stage loads it, and
`trl-safe interpolate` reads adapters saved alone (`benchmarks/ptx_sft_check.py --save_adapter`); both need the same
merge and the same tokenizer lookup, and the interpolation module sits below the pipeline, so it must not import it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def tokenizer_source(model_dir: str | Path) -> str:
    """Where the tokenizer of `model_dir` is: the folder itself, or, for a LoRA adapter saved without one (PEFT's
    `save_pretrained` writes only the adapter; `benchmarks/ptx_sft_check.py --save_adapter` does so), its base
    model, which the adapter was trained with."""
    model_dir = Path(model_dir)
    if not (model_dir / "tokenizer_config.json").is_file() and (model_dir / "adapter_config.json").is_file():
        return json.loads((model_dir / "adapter_config.json").read_text())["base_model_name_or_path"]
    return str(model_dir)


def load_merged_lora(adapter_dir: Path, auto_class: type, **model_kwargs: Any) -> Any:
    """The LoRA adapter saved in `adapter_dir`, merged into its base model (loaded with `auto_class`), with the pad
    token of the adapter's tokenizer (its base model's where the adapter was saved without one), as it was trained."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    adapter_config = json.loads((Path(adapter_dir) / "adapter_config.json").read_text())
    base = auto_class.from_pretrained(adapter_config["base_model_name_or_path"], **model_kwargs)
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    merged.config.pad_token_id = AutoTokenizer.from_pretrained(tokenizer_source(adapter_dir)).pad_token_id
    return merged


def merge_lora(output_dir: Path, auto_class: type, **model_kwargs: Any) -> None:
    """Replace the LoRA adapter a stage saved in `output_dir` by the merged model.

    The next stages load plain `from_pretrained` directories: PPO copies the reward model into its critic, and the
    evaluation loads the policy like any checkpoint. The model card and the tokenizer stay as the stage wrote them.
    """
    merged = load_merged_lora(output_dir, auto_class, **model_kwargs)
    for name in ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"):
        (output_dir / name).unlink(missing_ok=True)
    merged.save_pretrained(output_dir)


def load_plain_model(model_dir: str | Path, auto_class: type, **model_kwargs: Any) -> Any:
    """A saved model folder as a plain model: a LoRA adapter (a trainer's checkpoint of a LoRA policy) merged into its
    base model, any other folder loaded as it is. The pipeline reads RL checkpoints and final policies alike."""
    if (Path(model_dir) / "adapter_config.json").is_file():
        return load_merged_lora(Path(model_dir), auto_class, **model_kwargs)
    return auto_class.from_pretrained(model_dir, **model_kwargs)
