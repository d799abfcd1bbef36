"""Weight interpolation toward the starting policy: θ_α = θ_0 + α (θ − θ_0).

Why: on the demo, what a supervised (SFT/PTX) stage teaches a small policy is one update, and its declines of
harmful requests come with declines of harmless look-alikes (docs/demo_outcome.md). Moving the trained weights part
of the way back to the starting ones (α < 1) shrinks every change the update made by the same factor, without a
new training run; α = 0 is the start, α = 1 the trained policy, α > 1 extrapolates. Which α keeps enough of the
safety and drops enough of the spread is an empirical question, to be read on train prompts
(`benchmarks/ptx_sft_check.py --alphas`), never on the evaluation prompts. The same operation is known as WiSE-FT
(robust fine-tuning) and as WARP's interpolation towards the initialisation. On the demo's 480-step SFT policy it
was no lever: from α 0.55 to 1.3 the policy moved along the same curve of safety against refusals, and α = 1
declined the fewest look-alikes (docs/demo_outcome.md); the tools stay for policies where the trade differs.

For a LoRA update (`peft`) the interpolation is exact without touching the weights: the update is B·A·s, so
scaling s by α gives θ_0 + α (θ − θ_0) (`scaled_lora_update`). For saved models (the pipeline saves merged policies)
`interpolate_pretrained` reads both, interpolates every floating tensor and saves the result as a model directory.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch

INTERPOLATION_FILE = "interpolation.json"


def check_alpha(alpha: float) -> float:
    """`alpha` as a float, or a ValueError saying why it cannot be one."""
    alpha = float(alpha)
    if not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0 (0: the start, 1: the trained policy), got {alpha}.")
    return alpha


def interpolate_state_dicts(
    start: Mapping[str, torch.Tensor], trained: Mapping[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """θ_0 + α (θ − θ_0) for every floating tensor of two state dicts of the same architecture (computed in float32,
    returned in the trained tensor's dtype); every other tensor (integer buffers) must be equal in both and is kept.

    Raises a ValueError naming the first keys that one state dict lacks, or the first tensor whose shape or (for
    non-floating tensors) value differs: interpolating two different architectures would give a model that loads
    and means nothing."""
    alpha = check_alpha(alpha)
    missing, extra = sorted(set(trained) - set(start)), sorted(set(start) - set(trained))
    if missing or extra:
        raise ValueError(
            f"The two state dicts differ in their tensors: only in the trained one {missing[:3]} "
            f"({len(missing)} in all), only in the start {extra[:3]} ({len(extra)} in all)."
        )
    merged = {}
    for name, theta in trained.items():
        theta_0 = start[name]
        if theta.shape != theta_0.shape:
            raise ValueError(
                f"{name}: shape {tuple(theta.shape)} in the trained model, {tuple(theta_0.shape)} at the start."
            )
        if not theta.is_floating_point():
            if not torch.equal(theta, theta_0):
                raise ValueError(f"{name}: a non-floating tensor that differs between the two models.")
            merged[name] = theta.clone()
            continue
        start_32 = theta_0.to(torch.float32)
        merged[name] = (start_32 + alpha * (theta.to(torch.float32) - start_32)).to(theta.dtype)
    return merged


def interpolate_pretrained(start: str | Path, trained: str | Path, alpha: float, output_dir: str | Path) -> Path:
    """Save θ_0 + α (θ − θ_0) of two causal LM directories (or Hub names) to `output_dir`, with the trained model's
    config, generation config and tokenizer, and `interpolation.json` (start, trained, alpha) saying what it is.
    `trained` may be a saved LoRA adapter (`adapter_config.json`): its update is merged into its base first.
    `output_dir` may be `trained` itself (a model folder, not an adapter): its model files are then replaced."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trl_safe.checks import check_model_path

    alpha = check_alpha(alpha)
    check_model_path(str(start), "start model")
    check_model_path(str(trained), "trained model")
    output_dir = Path(output_dir)
    adapter = (Path(trained) / "adapter_config.json").is_file()
    in_place = Path(trained).is_dir() and output_dir.resolve() == Path(trained).resolve()
    if adapter and in_place:
        raise ValueError(f"{trained} is a LoRA adapter: save its interpolation to another folder.")
    if adapter:  # a saved LoRA adapter: its update merged into its base, as the pipeline merges its stages'
        from trl_safe.pipeline import load_merged_lora

        model = load_merged_lora(Path(trained), AutoModelForCausalLM, dtype="auto")
    else:
        model = AutoModelForCausalLM.from_pretrained(trained, dtype="auto")
    start_model = AutoModelForCausalLM.from_pretrained(start, dtype="auto")
    if type(model) is not type(start_model):
        raise ValueError(f"{trained} is a {type(model).__name__} and {start} a {type(start_model).__name__}.")
    merged = interpolate_state_dicts(start_model.state_dict(), model.state_dict(), alpha)
    del start_model
    model.load_state_dict(merged)
    # In place (the pipeline's SFT stage), the new files go to a sibling folder first and then replace the old ones
    # one by one, so the weights being read are never overwritten under the loaded model; other files (the
    # trainer's log) stay.
    target = output_dir.with_name(output_dir.name + ".interpolating") if in_place else output_dir
    if in_place:
        shutil.rmtree(target, ignore_errors=True)  # a crashed run's leftovers must not be moved in
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(trained).save_pretrained(target)
    record = {"start": str(start), "trained": str(trained), "alpha": alpha}
    (target / INTERPOLATION_FILE).write_text(json.dumps(record, indent=2) + "\n")
    if in_place:
        for path in target.iterdir():
            os.replace(path, output_dir / path.name)
        target.rmdir()
    return output_dir


@contextmanager
def scaled_lora_update(model: torch.nn.Module, alpha: float) -> Iterator[torch.nn.Module]:
    """Within the block, every LoRA layer of the `peft` model `model` applies α times its update (θ_0 + α (θ − θ_0)
    for the adapted weights); on leaving, the update is as it was. Raises a ValueError if `model` has no LoRA layer
    (a fully fine-tuned model needs its starting weights: `interpolate_state_dicts`). It scales peft's per-adapter
    `LoraLayer.scaling`, which every LoRA forward multiplies the update by (tests/test_interpolation.py checks that
    the result equals the merged interpolation, so a peft that changes this fails there)."""
    from peft.tuners.lora import LoraLayer

    alpha = check_alpha(alpha)
    layers = [module for module in model.modules() if isinstance(module, LoraLayer)]
    if not layers:
        raise ValueError("The model has no LoRA layer to scale; interpolate its state dict instead.")
    saved = [dict(layer.scaling) for layer in layers]
    for layer in layers:
        for adapter in layer.scaling:
            layer.scaling[adapter] *= alpha
    try:
        yield model
    finally:
        for layer, scaling in zip(layers, saved):
            layer.scaling.update(scaling)
