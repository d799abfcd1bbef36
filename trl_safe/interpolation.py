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

Several trained policies from the same start (seeds of one run) average the same way: θ_0 + α · mean_i (θ_i − θ_0)
(`average_updates`; a uniform "model soup", Wortsman et al. 2022, as WARP averages its RL policies before moving
towards the start). Why: on the demo the seeds of one SFT configuration land at different places on the curve of
safety against refusals while their updates share about half their direction (cosine 0.46 between seeds); the
average keeps what the seeds agree on and shrinks what one seed adds. One trained policy is the interpolation above.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch

from trl_safe.lora_checkpoints import load_merged_lora, tokenizer_source

INTERPOLATION_FILE = "interpolation.json"


def check_alpha(alpha: float) -> float:
    """`alpha` as a float, or a ValueError saying why it cannot be one."""
    alpha = float(alpha)
    if not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0 (0: the start, 1: the trained policy), got {alpha}.")
    return alpha


def average_updates(
    start: Mapping[str, torch.Tensor],
    trained: Iterable[Mapping[str, torch.Tensor]],
    alpha: float = 1.0,
    names: Sequence[str] | None = None,
) -> dict[str, torch.Tensor]:
    """θ_0 + α · mean_i (θ_i − θ_0) for every floating tensor of state dicts of one architecture (computed in float32,
    returned in the first trained model's dtype); every other tensor (integer buffers) must be equal in all and is
    kept. With one trained state dict this is the interpolation θ_0 + α (θ − θ_0). `trained` is read one state dict
    at a time (a generator that loads each model keeps one in memory beside the start and the running sum).

    Raises a ValueError naming the trained model (`names`, by default "trained model 1", ...) and the first keys it
    lacks or has in excess, or the first tensor whose shape or (for non-floating tensors) value differs: averaging
    different architectures would give a model that loads and means nothing."""
    alpha = check_alpha(alpha)
    total: dict[str, torch.Tensor] = {}
    dtypes: dict[str, torch.dtype] = {}
    count = 0
    for count, state in enumerate(trained, start=1):
        name = names[count - 1] if names is not None else f"trained model {count}"
        missing, extra = sorted(set(state) - set(start)), sorted(set(start) - set(state))
        if missing or extra:
            raise ValueError(
                f"The state dicts differ in their tensors: only in {name} {missing[:3]} ({len(missing)} in all), "
                f"only in the start {extra[:3]} ({len(extra)} in all)."
            )
        for key, theta in state.items():
            theta_0 = start[key]
            if theta.shape != theta_0.shape:
                raise ValueError(f"{key}: shape {tuple(theta.shape)} in {name}, {tuple(theta_0.shape)} at the start.")
            if not theta.is_floating_point():
                if not torch.equal(theta, theta_0):
                    raise ValueError(f"{key}: a non-floating tensor that differs between {name} and the start.")
                continue
            update = theta.to(torch.float32) - theta_0.to(torch.float32)
            total[key] = total[key] + update if key in total else update
            dtypes.setdefault(key, theta.dtype)
    if count == 0:
        raise ValueError("average_updates needs at least one trained state dict.")
    merged = {}
    for key, theta_0 in start.items():
        if key not in total:
            merged[key] = theta_0.clone()
            continue
        merged[key] = (theta_0.to(torch.float32) + alpha * total[key] / count).to(dtypes[key])
    return merged


def interpolate_state_dicts(
    start: Mapping[str, torch.Tensor], trained: Mapping[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """θ_0 + α (θ − θ_0) for every floating tensor of two state dicts of the same architecture: `average_updates`
    with one trained model."""
    return average_updates(start, [trained], alpha, names=["the trained model"])


def interpolate_pretrained(
    start: str | Path, trained: str | Path | Sequence[str | Path], alpha: float, output_dir: str | Path
) -> Path:
    """Save θ_0 + α (θ − θ_0) of two causal LM directories (or Hub names) to `output_dir`, with the trained model's
    config, generation config and tokenizer, and `interpolation.json` (start, trained, alpha) saying what it is.
    `trained` may be a saved LoRA adapter (`adapter_config.json`): its update is merged into its base first (the
    tokenizer is then the base model's where the adapter was saved without one).
    `output_dir` may be `trained` itself (a model folder, not an adapter): its model files are then replaced.

    Several `trained` models (seeds of one run from the same start) give θ_0 + α · mean_i (θ_i − θ_0)
    (`average_updates`), with the first one's config and tokenizer; they are read one at a time."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trl_safe.checks import check_model_path

    alpha = check_alpha(alpha)
    paths = [trained] if isinstance(trained, (str, Path)) else list(trained)
    if not paths:
        raise ValueError("interpolate_pretrained needs at least one trained model.")
    check_model_path(str(start), "start model")
    for path in paths:
        check_model_path(str(path), "trained model")
    output_dir = Path(output_dir)
    in_place = any(Path(path).is_dir() and output_dir.resolve() == Path(path).resolve() for path in paths)
    if in_place and len(paths) > 1:
        raise ValueError(f"{output_dir} is one of the averaged models: save the average to another folder.")
    if in_place and (Path(paths[0]) / "adapter_config.json").is_file():
        raise ValueError(f"{paths[0]} is a LoRA adapter: save its interpolation to another folder.")
    start_model = AutoModelForCausalLM.from_pretrained(start, dtype="auto")
    start_class = type(start_model)
    loaded: list[torch.nn.Module] = []  # the first trained model, which receives the result

    def trained_states() -> Iterator[dict[str, torch.Tensor]]:
        for path in paths:
            if (Path(path) / "adapter_config.json").is_file():  # its update merged, as the pipeline merges its stages'
                model = load_merged_lora(Path(path), AutoModelForCausalLM, dtype="auto")
            else:
                model = AutoModelForCausalLM.from_pretrained(path, dtype="auto")
            if type(model) is not start_class:
                raise ValueError(f"{path} is a {type(model).__name__} and {start} a {start_class.__name__}.")
            if not loaded:
                loaded.append(model)
            yield model.state_dict()

    merged = average_updates(start_model.state_dict(), trained_states(), alpha, names=[str(path) for path in paths])
    del start_model
    model = loaded[0]
    model.load_state_dict(merged)
    # In place (the pipeline's SFT stage), the new files go to a sibling folder first and then replace the old ones
    # one by one, so the weights being read are never overwritten under the loaded model; other files (the
    # trainer's log) stay.
    target = output_dir.with_name(output_dir.name + ".interpolating") if in_place else output_dir
    if in_place:
        shutil.rmtree(target, ignore_errors=True)  # a crashed run's leftovers must not be moved in
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(tokenizer_source(paths[0])).save_pretrained(target)
    record = {"start": str(start), "trained": str(paths[0]) if len(paths) == 1 else [str(p) for p in paths]}
    record["alpha"] = alpha
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
