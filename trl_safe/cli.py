"""The `trl-safe` command: `trl-safe <script> [arguments]`, as `trl <script>` is TRL's.

    trl-safe reward_model --model_name_or_path ... --dataset_name PKU-Alignment/PKU-SafeRLHF --output_dir my-reward
    trl-safe cost_model ...
    trl-safe sft --model_name_or_path ... --dataset_name ptx.jsonl --output_dir my-sft
    trl-safe ppo_lag --reward_model_name_or_path my-reward --cost_model_name_or_path my-cost ...
    trl-safe grpo_lag --reward_model_name_or_path my-reward --cost_model_name_or_path my-cost --cost_limits 0.0 ...
    trl-safe interpolate --model_name_or_path ... --trained_model_name_or_path my-sft --alpha 0.7 \
        --output_dir my-sft-0.7
    trl-safe evaluate --policies my-sft my-ppo-lag --reward_model_name_or_path my-reward \
        --cost_model_name_or_path my-cost --dataset_name ...
    trl-safe safe_rlhf_pipeline --quick

Each script is a module of `trl_safe.scripts` with a `make_parser()` and a `main()`; `trl-safe <script> --help` lists
its arguments, and `--config file.yaml` reads them from a file (TRL's `TrlParser`). Multi-process runs go through
accelerate with the launchers in `examples/` (`accelerate launch examples/ppo_lag.py ...`).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

SCRIPTS = {
    "reward_model": "Train the reward model R (helpfulness) with TRL's RewardTrainer.",
    "cost_model": "Train the cost model C (harmlessness) with CostTrainer.",
    "sft": "Supervised fine-tuning (imitate rows; push down rows labelled undesirable) with UnlikelihoodSFTTrainer.",
    "ppo": "RLHF with PPO against the reward model.",
    "ppo_lag": "Safe RLHF: PPO-Lag, maximising R subject to E[C] <= cost_limit.",
    "grpo_lag": "Critic-free Safe RLHF: GRPO-Lag, maximising R subject to E[C_k] <= cost_limits[k] for each cost.",
    "interpolate": "Move a trained policy part of the way back to its start, θ_0 + α (θ − θ_0), or average several.",
    "evaluate": "Evaluate policies for helpfulness, harmlessness and over-refusal.",
    "safe_rlhf_pipeline": "The whole pipeline: reward model, cost model, PPO-Lag, evaluation.",
}


def usage() -> str:
    width = max(map(len, SCRIPTS))
    lines = ["usage: trl-safe <script> [arguments]  (trl-safe <script> --help for its arguments)", "", "scripts:"]
    return "\n".join(lines + [f"  {name:<{width}}  {summary}" for name, summary in SCRIPTS.items()])


def run_script(name: str, argv: list[str] | None = None, prog: str | None = None) -> Any:
    """Parse `argv` (default: the command line) with the script's own parser (`--config` files included) and run its
    `main`; return what `main` returns."""
    script = importlib.import_module(f"trl_safe.scripts.{name}")
    parser = script.make_parser(prog=prog)
    return script.main(*parser.parse_args_and_config(args=argv))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SCRIPTS:
        print(f"trl-safe: unknown script {name!r}.\n\n{usage()}", file=sys.stderr)
        return 2
    run_script(name, rest, prog=f"trl-safe {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
