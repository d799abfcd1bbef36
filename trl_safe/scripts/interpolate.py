"""Interpolate a trained policy toward its starting weights: θ_α = θ_0 + α (θ − θ_0) (`trl_safe.interpolation`).

    trl-safe interpolate --model_name_or_path HuggingFaceTB/SmolLM2-135M-Instruct \
        --trained_model_name_or_path smollm2-sft --alpha 0.7 --output_dir smollm2-sft-0.7

α = 1 is the trained policy, 0 the start, values in between shrink every change training made by the same factor
(α > 1 extrapolates). Pick α on train prompts (`benchmarks/ptx_sft_check.py --alphas`), then evaluate the result
with `trl-safe evaluate` as any policy. The output folder is a model like the trained one (config, weights,
tokenizer), with `interpolation.json` recording where it came from.

Several trained policies from the same start (the seeds of one run) are averaged: θ_0 + α · mean_i (θ_i − θ_0), a
uniform model soup (`--alpha 1` keeps the average update whole):

    trl-safe interpolate --model_name_or_path HuggingFaceTB/SmolLM2-135M-Instruct \
        --trained_model_name_or_path sft-seed42 sft-seed43 sft-seed44 --alpha 1 --output_dir sft-soup

`make_parser()` builds the command line; `main` takes the parsed arguments and returns the output folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trl import TrlParser

from trl_safe.interpolation import interpolate_pretrained
from trl_safe.scripts.utils import require


@dataclass
class InterpolateArguments:
    """The arguments of `trl-safe interpolate`.

    Parameters:
        model_name_or_path (`str`): the starting policy θ_0 (Hub name or folder).
        trained_model_name_or_path (`list[str]`): the trained policy θ (a model folder or a saved LoRA adapter), or
            several from the same start, whose updates are averaged.
        alpha (`float`): the share of the update kept (0: the start, 1: the trained policy).
        output_dir (`str`): where the interpolated model is saved.
    """

    model_name_or_path: str | None = field(default=None, metadata={"help": "The starting policy θ_0."})
    trained_model_name_or_path: list[str] | None = field(
        default=None,
        metadata={
            "help": "The trained policy θ (a model folder or a saved LoRA adapter), or several from the same start: "
            "their updates are averaged, θ_0 + α · mean_i (θ_i − θ_0)."
        },
    )
    alpha: float | None = field(
        default=None,
        metadata={"help": "Share of the (mean) update kept: θ_0 + α (θ − θ_0); 0 the start, 1 the trained."},
    )
    output_dir: str | None = field(default=None, metadata={"help": "Where the interpolated model is saved."})


def make_parser(prog: str | None = None) -> TrlParser:
    return TrlParser((InterpolateArguments,), prog=prog)


def main(args: InterpolateArguments) -> Path:
    """Interpolate, save, print where; return the output folder."""
    require(args, "model_name_or_path", "trained_model_name_or_path", "alpha", "output_dir")
    trained = args.trained_model_name_or_path
    trained = [trained] if isinstance(trained, str) else list(trained)  # a str from Python callers
    output_dir = interpolate_pretrained(args.model_name_or_path, trained, args.alpha, args.output_dir)
    update = "(θ − θ_0)" if len(trained) == 1 else f"mean of {len(trained)} (θ_i − θ_0)"
    print(f"θ_0 + {args.alpha:g} · {update} saved to {output_dir}")
    return output_dir


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
