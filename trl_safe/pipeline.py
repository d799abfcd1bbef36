"""The pieces of the whole-pipeline script (`trl-safe safe_rlhf_pipeline`) that are not the pipeline itself: the
presets, the helpers between stages (LoRA targets, held-out prompts, a tiny model; merging a saved LoRA adapter is
`trl_safe.lora_checkpoints`), reading each stage's results back from what it wrote, and the final summary table.

The script (`trl_safe/scripts/safe_rlhf_pipeline.py`) keeps only what a reader needs to follow a run: which stage
runs with which command line.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import sys
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from trl_safe.evaluation.judge import LATEST_JUDGE_VERSION
from trl_safe.evaluation.outcome import (
    compare_outcomes,
    evaluation_refusal_rule,
    judge_for_evaluation,
    outcome_criteria,
    outcome_table,
    reward_scale,
)
from trl_safe.evaluation.report import format_percent, markdown_table
from trl_safe.evaluation.stats import halves_difference
from trl_safe.interpolation import INTERPOLATION_FILE

# `sft` runs only when the run asks for supervised steps (`Budget.sft_steps`, `--sft_steps`), `ppo_lag` only when
# the preset has rollouts (`Budget.ppo_steps`); the others always.
STAGES = ("reward", "cost", "sft", "ppo_lag", "evaluate")
STAGE_DIRS = {
    "reward": "reward_model",
    "cost": "cost_model",
    "sft": "sft_policy",
    "ppo_lag": "policy",
    "evaluate": "evaluation",
}
# The earlier stages' models each stage reads: the reward and cost models train on the preference data alone, so
# either can be retrained without the other; the SFT policy is where PPO-Lag starts (when the run has that stage).
STAGE_INPUTS = {
    "reward": (),
    "cost": (),
    "sft": (),
    "ppo_lag": ("reward", "cost", "sft"),
    "evaluate": ("reward", "cost", "sft", "ppo_lag"),
}
SAMPLED_EVALUATION_DIR = "evaluation_sampled"
SFT_CANDIDATES_DIR = "sft_candidates"  # `Budget.sft_candidates`: every candidate, its validation reading, the choice
# `--rl_checkpoint_every`: under the RL policy's folder, the last step's weights when an earlier checkpoint is kept,
# and the choice (the checkpoints' validation readings are in each `checkpoint-<step>/`).
RL_LAST_STEP_DIR = "last_step"
RL_SELECTION_FILE = "selection.json"
# The demo data's configuration the pipeline trains on when no data set is given (trl_safe/resources/demo/README.md).
DEMO_DATA_CONFIG = "combined"


@dataclass
class Budget:
    """The sizes of one run. The presets below are measured to fit their time budget on a 2-core CPU.

    Fields:
        preference_max_steps: optimizer steps of the reward and of the cost model (`None`: `preference_epochs`).
        preference_epochs: epochs over the preference pairs when `preference_max_steps` is `None`.
        preference_batch_size: pairs per optimizer step.
        preference_learning_rate: learning rate of the reward model (and of the cost model, unless
            `cost_learning_rate` is set).
        cost_learning_rate: learning rate of the cost model (`None`: `preference_learning_rate`).
        max_length: longest prompt + response, in tokens, for the reward and cost models.
        ppo_steps: PPO-Lag rollouts; 0: no RL stage (the evaluation then reads the SFT policy: `sft_select`).
        ppo_batch_size: prompts per rollout.
        ppo_epochs: passes over each rollout (each pass one optimizer step of policy and critic).
        ppo_learning_rate: learning rate of the policy and the critic.
        max_completion_length: tokens generated per response, in PPO-Lag and in the evaluation.
        eval_limit: evaluate on the first held-out prompts only (`None`: all).
        eval_samples: besides the greedy evaluation, sample this many answers per held-out prompt (temperature 0.7,
            as in training) and evaluate those too (`evaluation_sampled/`); 0 skips it.
        lora_layers: LoRA adapts the top `lora_layers` transformer layers (`None`: no LoRA, full fine-tuning).
            Adapting only the top layers is what makes a CPU run affordable: back-propagation stops below them.
        cost_limit: PPO-Lag's bound on J_C = E[C]. The paper's is 0 ("safe on average"), but J_C averages over
            harmful and benign prompts: by the demo cost model it fell below 0 within a few rollouts while most
            answers to harmful prompts were still unsafe, and λ fell (docs/demo_outcome.md). The SmolLM2 presets
            use -1, below the start's J_C on its own train answers (`benchmarks/start_cost.py`).
        ptx_coef: weight of PTX, the supervised loss on written answers mixed into PPO-Lag (`trl_safe.ptx`); on the
            demo data its data are `trl_safe.demo.load_demo_ptx_dataset`. 0: no PTX.
        ptx_prompts: which demo prompts' answers PTX learns: `"safe"` (helpful answers to benign prompts only) or
            `"all"` (also the best safe answer to each harmful prompt) or `"balanced"` (`"all"`, plus SmolLM2's own
            answers to harmless prompts, so that answering and declining are about equally represented).
        cost_floor: raise every cost below it before the constraint, C̃ = max(C, cost_floor) (PPO-Lag's
            `cost_floor`, GRPO-Lag's `cost_floors`); `None`: the raw cost, as in the paper. `cost_limit` is then a
            bound on E[C̃] and must lie above the floor.
        harmless_prompt_repeats: how many times as often PPO-Lag draws each harmless train prompt (benign or
            look-alike: `prompt_label` safe) as each harmful one in its rollouts (1: every distinct prompt equally
            often). The decline the constraint teaches for harmful requests spread to harmless look-alikes; the
            reward model ranks declining those below answering them, and more of them in the rollouts was meant to
            give that ranking more weight against the spread; at 2 (seed 42) it did not lower the over-refusal
            (docs/demo_outcome.md), so the presets keep 1. Demo data only (it needs the `prompt_label` column).
        cost_dataset_config: the demo data's configuration the cost model alone trains on (`None`: the same as the
            reward model and PPO-Lag). `"iterated"` adds the second round of labelled answers, sampled from a policy
            trained on round one: the paper's recipe of collecting new preference data from the current policy,
            given to the cost model only (docs/demo_data.md).
        sft_steps: supervised steps on the PTX data before PPO-Lag (`trl-safe sft`, `UnlikelihoodSFTTrainer`), the
            paper's SFT stage: PPO-Lag then starts from the SFT policy and its KL penalty holds it there, while the
            evaluation still compares with the original starting policy. Same LoRA, batch size and learning rate as
            PPO-Lag, constant schedule. 0: no SFT stage (all presets but `sft`, `sft_select`; demo_outcome.md: what 240
            and 480 did).
        sft_candidates: how many SFT policies to train, from seeds `seed`, `seed + 1000`, ...; with more than one the
            SFT data leaves out a validation split of the demo's train prompts (`trl_safe.sft_selection`), each
            candidate is read on it, and the one declining the fewest harmless validation prompts while safe on the
            harmful ones is kept (`select_candidate`). The seed alone moved the SFT policy along the curve more than
            any data change; on the first split the validation ranking carried to the held-out prompts, and over
            three draws the chosen policies kept the benign reward but declined as many held-out look-alikes as SFT
            policies trained without a choice (docs/demo_outcome.md).
        rl_checkpoint_every: save the RL policy every N optimizer steps and keep the checkpoint (or the final policy)
            that declines the fewest harmless validation prompts among those safe enough on the harmful ones, read on
            the validation split `sft_candidates` uses (`trl_safe.sft_selection.select_checkpoint`); the last step
            is evaluated beside it when another is kept. `None`: off (every preset but `sft_checkpoints`). Where the
            RL stage gives back safety after its first steps, the kept step is one before it did
            (docs/demo_outcome.md). Demo data only.
        refusal_rule: how the evaluation counts a refusal (`SafetyEvaluationConfig.refusal_rule`, also the judge's
            step 2): `"default"`, or `"apology_aware"`, which reads past an apology for a misunderstanding before
            deciding; the SFT policies open many answers with one and then answer (docs/evaluation.md).
    """

    preference_max_steps: int | None
    preference_epochs: float
    preference_batch_size: int
    preference_learning_rate: float
    cost_learning_rate: float | None
    max_length: int
    ppo_steps: int
    ppo_batch_size: int
    ppo_epochs: int
    ppo_learning_rate: float
    max_completion_length: int
    eval_limit: int | None
    eval_samples: int
    lora_layers: int | None
    cost_limit: float
    ptx_coef: float
    ptx_prompts: str
    cost_dataset_config: str | None = None
    cost_floor: float | None = None
    harmless_prompt_repeats: int = 1
    sft_steps: int = 0
    sft_candidates: int = 1
    refusal_rule: str = "default"
    rl_checkpoint_every: int | None = None


# SmolLM2-135M, half an hour on 2 CPU cores (docs/demo_outcome.md, "The default preset"). Until December 2026 the
# default was 36 rollouts at the paper's cost limit 0 without PTX: 35m18s on a fresh clone, over the half hour, and no
# measurable safety gain (the judge's unsafe rate rose 8.8% ± 1.1 over three seeds: J_C fell below 0 early, λ fell).
# Now (one seed first, then three; measured in demo_outcome.md):
# - 18 rollouts with PTX (about 32 s each) instead of 36 without (about 29 s): 27m38s on a fresh clone;
# - cost limit -1: the start's J_C on its own train answers is -0.57 by this cost model (`benchmarks/start_cost.py`),
#   so -1 binds from the first rollout;
# - PTX `balanced`: the written declines of harmful requests and SmolLM2's own answers to harmless ones. Every
#   measured run that got safer by the judge without degenerating had those declines; they also spread to harmless
#   requests (over three seeds: judge -53.5% ± 19.0, look-alike refusals +39 ± 30 points). Since December 5, 2026
#   SmolLM2's own answers, cut at 48 tokens, are learnt without an end of turn (`--ptx_open_cut_answers`).
# - not a cost floor: with max(C, 0) and limit 0.25 (the same budget without PTX) λ reached its cap 5 and the
#   policy got no safer (cost model -2.3%, judge +7.5%, seed 42).
_DEFAULT = Budget(
    preference_max_steps=None,
    preference_epochs=1.0,
    preference_batch_size=8,
    preference_learning_rate=2e-4,
    # At 2e-4 the cost model (LoRA, one epoch) ranked SmolLM2's answers right but put most unsafe ones below 0: 30%
    # of its unsafe training answers, 12% of the held-out ones scored C > 0 (sign accuracy 74%), so J_C started
    # below the limit and λ fell. At 1e-3: 75% / 72% (sign accuracy 86% on the held-out pairs).
    cost_learning_rate=1e-3,
    max_length=192,
    ppo_steps=18,
    ppo_batch_size=8,
    ppo_epochs=2,
    # LoRA on 8 of 30 layers: at 1e-4 the policy did not move measurably in 80 optimizer steps (KL ≈ 0).
    ppo_learning_rate=5e-4,
    max_completion_length=48,
    eval_limit=None,
    # Greedy only: the sampled evaluation (2 answers per prompt, two policies) took about 6 of the evaluation's 9
    # minutes and put the half-hour run over 30 minutes. `benchmarks/demo_seeds.py` (`make demo-seeds`) and the
    # `long` preset sample; `--eval_samples 2` turns it on for one run.
    eval_samples=0,
    lora_layers=8,
    cost_limit=-1.0,
    ptx_coef=1.0,
    ptx_prompts="balanced",
)

# SmolLM2-135M, about an hour on 2 CPU cores: the paper's SFT stage before PPO-Lag (docs/demo_outcome.md, "The `sft`
# preset"); `sft_select` and `sft_checkpoints` build on it. The SFT stage carries most of the outcome here:
# - 480 supervised steps on `wide_lookalikes` before the RL stage: the written declines of every harmful train
#   prompt, SmolLM2's own answers to the harmless ones (the cut ones learnt open), the look-alike twins and the
#   look-alikes by kind with their over-cautious declines as unlikelihood rows. At 240 steps the declines were
#   less selective, past 480 they spread to harmless twins again (checked on train prompts);
# - the cost model on the fourth round of labels (`iterated_round4`: the SFT-then-RL policies' own answers);
# - the RL stage (PPO-Lag, the default's 36 optimizer steps) at cost limit -2.2, the limit the 480-step `wide` SFT
#   policies' sampled train answers met (mean C -2.2, train prompts only), so that λ is not pinned at its cap and
#   the reward advantage can pull harmless answers back (on three seeds it drew them together: look-alike
#   refusals 3, 2, 3 of 29 against the SFT policies' 6, 3, 1; λ ended at 1.05 to 1.36);
# - refusals read past an apology for a misunderstanding, which the SFT rows teach SmolLM2 to open answers with.
_SFT = replace(
    _DEFAULT,
    cost_dataset_config="iterated_round4",
    ptx_prompts="wide_lookalikes",
    sft_steps=480,
    cost_limit=-2.2,
    eval_samples=2,
    refusal_rule="apology_aware",
)


PRESETS: dict[str, Budget] = {
    "default": _DEFAULT,
    # SmolLM2-135M, about an hour on 2 CPU cores: what the first default's (36 rollouts at cost limit 0, no PTX)
    # measured failures asked for (demo_outcome.md).
    # - cost limit -1 (safe training answers average C ≈ -1.26): at 0, J_C fell below the limit while most answers to
    #   harmful prompts were still unsafe, and λ fell;
    # - 48 rollouts (96 optimizer steps): in a 144-step run both safety measures halved only from step 72 on;
    # - PTX on the demo's written answers, the best safe answer to every train prompt (harmful ones included): without
    #   PTX the safer policies drifted off-topic or degenerated and lost benign reward; with PTX on the benign
    #   prompts' answers alone, every answer collapsed into "Here's a step-by-step guide:", harmful requests included.
    # - the cost model trains on the second round too (`iterated`): this preset's first policy's answers, labelled.
    #   That policy had learnt the round-one cost model's blind spot (vague agreeing lists, C < 0): rescored by the
    #   round-two cost model its answers were no safer than the start's, and the judge agreed.
    # See docs/demo_outcome.md for what each version measured.
    "long": replace(
        _DEFAULT,
        ppo_steps=48,
        cost_limit=-1.0,
        ptx_coef=1.0,
        ptx_prompts="all",
        cost_dataset_config="iterated",
        eval_samples=2,
    ),
    "sft": _SFT,
    # SmolLM2-135M, about 1h40m on 2 CPU cores (a fresh clone, seed 42): the `sft` preset's SFT stage from three seeds
    # on the train prompts less a validation split, the one declining the fewest harmless validation prompts kept,
    # and no RL stage (docs/demo_outcome.md, "Choosing the SFT seed on held-out train prompts"):
    # - the seed alone (LoRA initialisation, order of the rows) moved the 480-step policy along the safety-against-
    #   over-refusal curve further than any change of the rows; on one split three seeds declined 14, 31 and 29 of 137
    #   harmless validation prompts, and the held-out look-alike and benign prompts 1, 7 and 7 of 48, in that order;
    # - over three draws (three splits of three seeds) the chosen policies kept the benign reward (-0.06 ± 0.06,
    #   greedy) but not fewer look-alike refusals (+10.3 ± 6.9 points): 4, 3 and 3 of the 4 conditions; this preset
    #   itself (seed 42) met 2 greedy and 4 sampled;
    # - no RL stage: the selection was measured on SFT policies, and on the `sft` preset PPO-Lag neither added judged
    #   safety nor took a seed over the look-alike bar (it drew the seeds together).
    "sft_select": replace(
        _DEFAULT,
        cost_dataset_config="iterated_round4",
        ptx_prompts="wide_lookalikes",
        sft_steps=480,
        sft_candidates=3,
        ppo_steps=0,
        eval_samples=2,
        refusal_rule="apology_aware",
    ),
    # SmolLM2-135M, about 1h20m on 2 CPU cores (estimated: 61 to 71 minutes measured greedy, seed 42's R and C copied
    # in; the sampled evaluation and R and C are added here): the `sft` preset's SFT stage on the train prompts less a
    # validation split, then PPO-Lag without PTX for 36 rollouts (72 optimizer steps), its checkpoints read on the
    # split every 12 steps and one kept (docs/demo_outcome.md, "The RL stage's checkpoints read on the validation
    # split"). On four seeds (48 to 51) the kept checkpoints met 3, 3, 3 and 4 of the four conditions against the
    # last steps' 3, 2, 2 and 3 (and the SFT policies' 2, 2, 4 and 4); pooled over the four all four, greedy:
    # - no PTX: PTX's imitation spread the written declines to harmless look-alikes faster than the RL steps undid
    #   it; without it, on six seeds the RL stage traded the SFT stage's surplus safety for fewer harmless declines
    #   and more reward, but how far was the seed's;
    # - the checkpoints: where the RL stage gave back safety after its first steps (seeds 49, 50 and 51; on 49 and 50
    #   λ, at `lambda_lr` 0.1, reached its cap only near the end), the validation reading kept an earlier step; where
    #   it moved steadily, the last (48). The reading adds about 13 minutes.
    "sft_checkpoints": replace(_SFT, ppo_steps=36, ptx_coef=0.0, rl_checkpoint_every=12),
    # SmolLM2-135M, a few minutes: every stage runs, nothing is trained long enough to mean much.
    "quick": replace(
        _DEFAULT,
        preference_max_steps=8,
        ppo_steps=3,
        ppo_epochs=1,
        max_completion_length=32,
        eval_limit=16,
        eval_samples=0,
    ),
    # Tiny random models (`--model tiny`): the plumbing of every stage in well under a minute.
    "tiny": Budget(
        preference_max_steps=3,
        preference_epochs=1.0,
        preference_batch_size=4,
        preference_learning_rate=1e-3,
        cost_learning_rate=None,
        max_length=512,
        ppo_steps=2,
        ppo_batch_size=4,
        ppo_epochs=1,
        ppo_learning_rate=1e-3,
        max_completion_length=12,
        eval_limit=6,
        eval_samples=2,
        lora_layers=None,
        cost_limit=0.0,
        ptx_coef=1.0,  # not for the outcome: so that the tests run the PTX plumbing of the `long` preset
        ptx_prompts="safe",
    ),
}


# --------------------------------------------------------------------------------------------------------------------
# Between stages
# --------------------------------------------------------------------------------------------------------------------


def split_pipeline_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """A driver script's own arguments and, after `--`, those it passes on to every pipeline run
    (`benchmarks/demo_seeds.py`, `benchmarks/outcome_vs_budget.py`)."""
    if "--" not in argv:
        return list(argv), []
    split = argv.index("--")
    return argv[:split], argv[split + 1 :]


def format_seconds(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports kB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def lora_target_modules(num_layers: int, lora_layers: int) -> str:
    """A PEFT regular expression selecting the attention and MLP projections of the top `lora_layers` layers."""
    first = max(0, num_layers - lora_layers)
    layers = "|".join(str(index) for index in range(first, num_layers))
    return rf".*\.layers\.({layers})\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"


def build_tiny_base_model(path: Path, seed: int) -> Path:
    """A tiny random Llama and its character-level tokenizer, saved like a Hub checkpoint (once)."""
    from trl_safe.testing_utils import make_tiny_causal_lm, make_tiny_tokenizer

    if not (path / "config.json").is_file():
        tokenizer = make_tiny_tokenizer()
        make_tiny_causal_lm(tokenizer, seed=seed).save_pretrained(path)
        tokenizer.save_pretrained(path)
    return path


def write_demo_ptx_data(split: str, prompts: str, path: Path, open_cut_answers: bool = True) -> Path:
    """The demo's PTX data (`trl_safe.demo.load_demo_ptx_dataset`) as a JSONL file for `--ptx_dataset_name`."""
    from trl_safe.demo import load_demo_ptx_dataset

    load_demo_ptx_dataset(split, prompts, open_cut_answers=open_cut_answers).to_json(path, lines=True)
    return path


def write_rollout_prompts(
    dataset_name: str,
    dataset_config: str | None,
    split: str,
    harmless_repeats: int,
    path: Path,
    extra_harmless: Sequence[str] = (),
    exclude: Collection[str] = (),
) -> Path:
    """The distinct prompts of a PKU-format split with each harmless one (`prompt_label` safe) listed
    `harmless_repeats` times, as a JSONL prompt file for PPO-Lag with `--deduplicate_prompts false`
    (`Budget.harmless_prompt_repeats`). Prints how many of each there are, and the harmful share of the rollouts.

    `extra_harmless` are harmless prompts from outside the split, listed once each after it: the demo's look-alike
    twins (`--rollout_twins`), so that declining a harmless request in a harmful one's words costs reward and cost
    in the RL stage itself, not only in PTX. One that is also a prompt of the split is an error (it would be drawn
    under two labels), and so is one listed twice (it would be drawn twice as often, unasked).

    `exclude` are prompts held out of training (the validation split that `--sft_candidates` and
    `--rl_checkpoint_every` choose on): they are left out of the split and of the extras, and their number printed."""
    from datasets import Dataset

    from trl_safe.data import load_preference_data

    if harmless_repeats < 1:
        raise ValueError(f"harmless_prompt_repeats must be 1 or more, got {harmless_repeats}.")
    rows = load_preference_data(dataset_name, name=dataset_config, split=split)
    if "prompt_label" not in rows.column_names:
        raise ValueError(
            f"Weighting the harmless prompts needs a `prompt_label` column (safe/unsafe) in {dataset_name}; it has "
            f"{rows.column_names}."
        )
    labels: dict[str, str] = {}
    for index, row in enumerate(rows):
        label = labels.setdefault(row["prompt"], row["prompt_label"])
        if label not in ("safe", "unsafe") or label != row["prompt_label"]:
            raise ValueError(
                f"{dataset_name} split {split!r} row {index}: prompt_label {row['prompt_label']!r} (the prompt's "
                f"labels must be 'safe' or 'unsafe', and agree across its rows)."
            )
    excluded = {prompt for prompt in labels if prompt in exclude}
    excluded_extra = {prompt for prompt in extra_harmless if prompt in exclude}
    labels = {prompt: label for prompt, label in labels.items() if prompt not in excluded}
    prompts = [
        {"prompt": prompt}
        for prompt, label in labels.items()
        for _ in range(harmless_repeats if label == "safe" else 1)
    ]
    overlap = [prompt for prompt in extra_harmless if prompt in labels]
    if overlap:
        raise ValueError(
            f"{len(overlap)} extra harmless prompt(s) are already prompts of {dataset_name} split {split!r}, e.g. "
            f"{overlap[0]!r}."
        )
    repeated = [prompt for prompt, count in Counter(extra_harmless).items() if count > 1]
    if repeated:
        raise ValueError(f"{len(repeated)} extra harmless prompt(s) are listed more than once, e.g. {repeated[0]!r}.")
    extra = [prompt for prompt in extra_harmless if prompt not in excluded_extra]
    prompts += [{"prompt": prompt} for prompt in extra]
    if not prompts:
        raise ValueError(f"No rollout prompts are left in {dataset_name} split {split!r} once held-out ones are out.")
    harmful = sum(label == "unsafe" for label in labels.values())
    print(
        f"Rollout prompts: {harmful} harmful, {len(labels) - harmful} harmless each listed {harmless_repeats} times"
        + (f", {len(extra)} harmless look-alike twins" if extra else "")
        + f": {harmful / len(prompts):.0%} of draws harmful."
        + (
            f" Left out, held out for validation: {len(excluded)} prompt(s) of the split"
            + (f" and {len(excluded_extra)} look-alike twin(s)" if extra_harmless else "")
            + "."
            if exclude
            else ""
        )
    )
    Dataset.from_list(prompts).to_json(path, lines=True)
    return path


def write_held_out_prompts(dataset_name: str, dataset_config: str | None, split: str, path: Path) -> Path:
    """The distinct prompts of a PKU-format split (with category and safe/unsafe label when the data has them), as a
    JSONL prompt file for the evaluation."""
    from datasets import Dataset

    from trl_safe.data import load_preference_data

    rows = load_preference_data(dataset_name, name=dataset_config, split=split)
    fields = {"category": "category", "prompt_label": "label"}
    present = {source: target for source, target in fields.items() if source in rows.column_names}
    seen: dict[str, dict[str, Any]] = {}
    for row in rows:
        seen.setdefault(row["prompt"], {target: row[source] for source, target in present.items()})
    Dataset.from_list([{"prompt": prompt, **extra} for prompt, extra in seen.items()]).to_json(path, lines=True)
    return path


def check_held_out(
    dataset_name: str, train_config: str | None, train_split: str, test_config: str | None, test_split: str
) -> None:
    """Raise if the train split of `train_config` holds a prompt of the held-out split of `test_config`: a cost model
    trained on another configuration than the rest must not see the prompts the evaluation holds out."""
    from trl_safe.data import load_preference_data

    held_out = set(load_preference_data(dataset_name, name=test_config, split=test_split)["prompt"])
    train = load_preference_data(dataset_name, name=train_config, split=train_split)["prompt"]
    leaked = sorted({prompt for prompt in train if prompt in held_out})
    if leaked:
        raise ValueError(
            f"The {train_split!r} split of configuration {train_config!r} holds {len(leaked)} prompt(s) of the "
            f"held-out {test_split!r} split of {test_config!r}, e.g. {leaked[0]!r}: the cost model would learn them."
        )


# --------------------------------------------------------------------------------------------------------------------
# Results and summary
# --------------------------------------------------------------------------------------------------------------------


def read_stage_results(stage: str, path: Path) -> dict[str, Any]:
    """A finished stage's headline numbers, read from what it wrote in `path` (so that a reused stage reports them
    too); `{}` if it wrote nothing yet."""
    if stage == "evaluate":
        if not (path / "summary.json").is_file():
            return {}
        report = json.loads((path / "summary.json").read_text())
        models = list(report["summaries"])
        outcome, criteria = None, None
        if len(models) >= 2 and (path / "generations.json").is_file():
            generations = json.loads((path / "generations.json").read_text())
            judge = judge_for_evaluation(report["metadata"])
            rows = compare_outcomes(generations, models[0], models[-1], judge=judge)
            if rows:
                outcome = outcome_table(rows, models[0], models[-1])
                spread = reward_scale(generations, models[0])
                criteria = [dataclasses.asdict(criterion) for criterion in outcome_criteria(rows, spread)]
        return {
            "outcome": outcome,
            "criteria": criteria,
            "refusal_rule": evaluation_refusal_rule(report["metadata"]),
            "path": str(path),
            "num_prompts": report["metadata"].get("num_prompts"),
            "num_samples_per_prompt": report["metadata"].get("num_samples_per_prompt", 1),
            "summaries": {
                name: {key: value for key, value in summary.items() if not isinstance(value, dict)}
                for name, summary in report["summaries"].items()
            },
            "per_label": {name: summary.get("per_label") for name, summary in report["summaries"].items()},
        }
    state_file = path / "trainer_state.json"
    if not state_file.is_file():
        return {}
    history = json.loads(state_file.read_text())["log_history"]
    if stage == "sft":
        losses = [entry for entry in history if "loss" in entry]
        last = losses[-1] if losses else {}
        interpolation = path / INTERPOLATION_FILE
        return {
            "path": str(path),
            "steps": history[-1]["step"] if history else 0,
            **{key: last[key] for key in ("loss", "loss/nll", "loss/unlikelihood") if key in last},
            "alpha": json.loads(interpolation.read_text())["alpha"] if interpolation.is_file() else 1.0,
            **{
                key.replace("/", "_"): entry[key]  # `--sft_average_last`: where the mean of the weights starts
                for entry in history
                for key in ("tail_average/first_step", "tail_average/steps")
                if key in entry
            },
        }
    if stage == "ppo_lag":
        # PPO-Lag logs `lagrange/lambda`, GRPO-Lag `lagrange/<cost name>/lambda` (one cost model here).
        key = next(key for entry in history for key in entry if key.startswith("lagrange/") and key.endswith("lambda"))
        prefix = key.removesuffix("lambda")
        last = [entry for entry in history if key in entry][-1]
        # PPO-Lag logs each rollout's mean cost once (`objective/costs`); J_C is a moving window over several
        # rollouts and wanders with their noise, so whether C moved over training is read from the rollouts' halves.
        rollout_costs = [entry["objective/costs"] for entry in history if "objective/costs" in entry]
        return {
            "path": str(path),
            "final_lambda": last[key],
            "final_episode_cost": last[f"{prefix}episode_cost"],
            "cost_limit": last[f"{prefix}cost_limit"],
            "steps": last["step"],
            "rollout_cost_halves": (
                dataclasses.asdict(halves_difference(rollout_costs, name="rollout costs"))
                if len(rollout_costs) >= 4
                else None
            ),
        }
    evals = [entry for entry in history if any(key.startswith("eval_") for key in entry)]
    return {
        "path": str(path),
        **{key: v for key, v in (evals[-1] if evals else {}).items() if key.startswith("eval_")},
    }


def _evaluation_lines(evaluation: dict[str, Any], decoding: str) -> list[str]:
    """One evaluation's tables: both policies' means, then trained against initial with intervals and the verdict."""
    per_label = evaluation["per_label"]
    has_labels = all(per_label.values())
    header = ["policy", "reward R (mean)", "cost C (mean)", "unsafe ratio (C > 0)"]
    header += ["unsafe ratio, harmful prompts", "refusals, safe prompts"] if has_labels else []
    rows = []
    for name, summary in evaluation["summaries"].items():
        row = [name, f"{summary['reward_mean']:.3f}", f"{summary['cost_mean']:.3f}"]
        row.append(format_percent(summary["unsafe_ratio"]))
        if has_labels:
            by_label = per_label[name]
            row.append(format_percent(by_label.get("unsafe", {}).get("unsafe_ratio")))
            row.append(format_percent(by_label.get("safe", {}).get("refusal_rate")))
        rows.append(row)
    lines = [f"{evaluation['num_prompts']} held-out prompts, {decoding}:", "", *markdown_table(header, rows), ""]
    if evaluation.get("outcome"):
        outcome_header, outcome_rows = evaluation["outcome"]
        lines += [
            "Trained against initial, per prompt, with a paired bootstrap over prompts (the judge is "
            f"`trl_safe.evaluation.judge.ComplianceJudge` version {LATEST_JUDGE_VERSION}: rules, no model, nothing "
            "shared with the cost model"
            + (
                f"; refusals read by the `{evaluation['refusal_rule']}` rule):"
                if evaluation.get("refusal_rule", "default") != "default"
                else "):"
            ),
            "",
            *markdown_table(outcome_header, outcome_rows),
            "",
        ]
    if evaluation.get("criteria"):
        criteria = evaluation["criteria"]
        lines += [
            f"Conditions of a successful run (point estimates): {sum(c['passed'] for c in criteria)} of "
            f"{len(criteria)} met.",
            "",
            *markdown_table(
                ["condition", "required", "measured", "met"],
                [[c["name"], c["threshold"], c["estimate"], "yes" if c["passed"] else "no"] for c in criteria],
            ),
            "",
        ]
    return lines


def _selection_lines(selection: dict[str, Any], title: str) -> list[str]:
    """A `selection.json` (SFT seeds or RL checkpoints) as summary lines: the title, the table and the reason."""
    from trl_safe.sft_selection import Candidate, selection_table

    candidates = [Candidate(**candidate) for candidate in selection["candidates"]]
    chosen = next(candidate for candidate in candidates if candidate.name == selection["chosen"])
    return [
        title.format(n=len(candidates)),
        "",
        *selection_table(candidates, chosen),
        "",
        f"Chosen: {selection['why']}.",
        "",
    ]


def summary_lines(results: dict[str, Any], *, eval_prompts: str, max_completion_length: int) -> list[str]:
    """The final tables of a pipeline run: the two policies on held-out prompts (greedy, then sampled when the
    preset samples), then the models and the run."""
    lines = [f"# Safe RLHF pipeline ({results['preset']} run)", "", f"Held-out prompts: `{eval_prompts}`.", ""]
    if results.get("evaluate"):
        decoding = f"greedy decoding, {max_completion_length} new tokens at most"
        lines += _evaluation_lines(results["evaluate"], decoding)
    if results.get("evaluate"):
        lines += [
            "Reward against cost of every greedy answer, start and trained policy (the paper's Fig. 4), and λ and J_C "
            "over training against the cost limit:",
            "",
            "![reward vs cost](evaluation/reward_vs_cost.png) ![training](evaluation/training_curves.png)",
            "",
        ]
    if results.get("evaluate_sampled"):
        sampled = results["evaluate_sampled"]
        decoding = (
            f"{sampled['num_samples_per_prompt']} sampled answers per prompt (temperature 0.7), "
            f"{max_completion_length} new tokens at most"
        )
        lines += _evaluation_lines(sampled, decoding)
    if results.get("sft_selection"):
        lines += _selection_lines(
            results["sft_selection"],
            "SFT policy chosen among {n} seeds on train prompts held out from the SFT data (declines read past an "
            f"apology; `{SFT_CANDIDATES_DIR}/selection.json`):",
        )
    if results.get("rl_selection"):
        lines += _selection_lines(
            results["rl_selection"],
            "RL policy chosen among {n} of its checkpoints on train prompts held out from the SFT data, PTX and the "
            f"rollouts (declines read past an apology; `{STAGE_DIRS['ppo_lag']}/{RL_SELECTION_FILE}`; the last "
            f"step, when not chosen, is evaluated as `ppo_lag_last`):",
        )
    rows = []
    if results.get("reward"):
        rows.append(("reward model accuracy (held-out pairs)", format_percent(results["reward"]["eval_accuracy"])))
    if results.get("cost"):
        cost = results["cost"]
        rows.append(("cost model accuracy (held-out pairs)", format_percent(cost["eval_accuracy"])))
        rows.append(("cost model sign accuracy (C > 0 ⇔ unsafe)", format_percent(cost["eval_sign_accuracy"])))
    if results.get("sft"):
        sft = results["sft"]
        last = ", ".join(f"{key} {sft[key]:.3f}" for key in ("loss/nll", "loss/unlikelihood") if key in sft)
        rows.append(("SFT optimizer steps (last logged: " + (last or "-") + ")", str(sft["steps"])))
        if sft.get("alpha", 1.0) != 1:
            rows.append(("SFT update kept (θ_0 + α (θ − θ_0))", f"α = {sft['alpha']:g}"))
        if "tail_average_steps" in sft:
            first, count = sft["tail_average_first_step"], sft["tail_average_steps"]
            rows.append(("SFT weights averaged over steps (tail averaging)", f"{first}-{first + count - 1}"))
    if results.get("ppo_lag"):
        ppo = results["ppo_lag"]
        rows.append(("final λ", f"{ppo['final_lambda']:.3f}"))
        rows.append(
            ("final J_C (recent episodes) / cost limit", f"{ppo['final_episode_cost']:.3f} / {ppo['cost_limit']}")
        )
        rows.append(("PPO-Lag optimizer steps", str(ppo["steps"])))
        if ppo.get("rollout_cost_halves"):
            halves = ppo["rollout_cost_halves"]
            rows.append(
                (
                    "mean cost C of a rollout, first → second half of training (change, 95% CI)",
                    f"{halves['first']:.3f} → {halves['second']:.3f} ({halves['difference']:+.3f} "
                    f"[{halves['low']:+.3f}, {halves['high']:+.3f}], {halves['num_values']} rollouts a half)",
                )
            )
    # What the run trained on, when the flags changed it: the cost model's data and the harmless prompts' weight.
    if results.get("cost_dataset_config"):
        rows.append(("cost model's data configuration", f"`{results['cost_dataset_config']}`"))
    if results.get("harmless_prompt_repeats", 1) != 1:
        rows.append(("harmless prompts drawn in the rollouts", f"{results['harmless_prompt_repeats']}x"))
    if results.get("rollout_twins"):
        rows.append(("look-alike twins in the rollouts", "yes"))
    for stage, seconds in results["stage_seconds"].items():
        rows.append((f"time: {stage}", format_seconds(seconds)))
    if results.get("rl_selection_seconds"):
        reading = format_seconds(results["rl_selection_seconds"])
        rows.append(("time: reading the RL checkpoints (within ppo_lag)", reading))
    if results.get("scorers_side_by_side_seconds"):
        rows.append(("time: reward and cost, side by side", format_seconds(results["scorers_side_by_side_seconds"])))
    rows.append(("time: total", format_seconds(results["total_seconds"])))
    rows.append(("peak memory (RSS)", f"{results['peak_rss_mb'] / 1024:.2f} GB"))
    if results.get("scorers_side_by_side_peak_rss_mb"):
        peak = results["scorers_side_by_side_peak_rss_mb"] / 1024
        rows.append(("peak memory, reward and cost side by side (sum of both processes)", f"{peak:.2f} GB"))
    return lines + ["| | |", "| --- | --- |", *(f"| {name} | {value} |" for name, value in rows)]
