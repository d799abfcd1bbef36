"""What every contender of the PPO benchmark shares: the work to do, the phase timers, the result file.

Each contender runs in its own process (its peak resident memory is then its own) and is timed by the same
instrumentation, installed from outside the trainer so that no contender needs to cooperate:

* generation: the time spent inside `generate` (patched on `transformers`' `GenerationMixin`). The patch also
  sets `min_new_tokens = max_new_tokens`, so that every contender generates exactly `response_length` tokens per
  prompt whatever it samples (an EOS sampled early would otherwise make the timings depend on luck).
* scoring forwards: forward calls of the watched models (reference, reward, cost, critic, and the policy when a
  trainer recomputes its log-probabilities) run without gradient between the end of the generation and the
  first forward with gradient. Forward hooks sit on each model, its backbone and its head, so trainers that call
  the backbone directly (TRL 1.12 does) are timed as well as those calling the model.
* optimisation: from the first forward with gradient to the end of the update's last `optimizer.step()`
  (PyTorch's global optimizer hooks), i.e. all PPO epochs and mini-batches, with whatever the trainer does
  between them.
* other: the rest of the update's time (log-probabilities, advantages, data loading, logging, callbacks).

Every figure is taken on two clocks: wall time, and the process's CPU time (see `CLOCKS`). On a GPU
(`BenchSpec.device` "cuda") the timer waits for the device's queued work before each reading (kernels run
asynchronously: without the wait a phase's time would land in whichever later phase first waits for its results),
and the peak GPU memory is recorded beside the resident memory.

An update runs from one generation to the next (so work a trainer does after its optimizer steps is counted),
and the last one ends at `on_train_end` (or when the floor's loop ends).

This module imports only `torch` and `transformers`: it also runs in the TRL 1.12 environment.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook


@dataclasses.dataclass
class BenchSpec:
    """The work every contender does, written by `run.py` and read by each contender process.

    Fields:
        contender: name of the contender (`floor`, `trl112`, `ours`, ...).
        algo: `ppo` or `ppo_lag` (the floor does either).
        size: name of the model size (`tiny`, `smollm2`).
        model_path: causal LM checkpoint and tokenizer. The policy and the reference are loaded from it; the reward,
            cost and critic models are sequence classifiers on the same backbone with a freshly seeded head.
        prompts: the prompts as text, each exactly `prompt_length` tokens (checked by `run.py`).
        prompt_ids: the same prompts tokenized (TRL 1.12's trainer takes token ids).
        prompt_length: tokens per prompt.
        batch_size: prompts per PPO update (the rollout batch).
        response_length: tokens generated per prompt, exactly.
        num_ppo_epochs: passes over the rollout batch per update.
        num_mini_batches: mini-batches (one optimizer step each) per pass.
        temperature: sampling temperature.
        warmup_updates: updates run first and not measured.
        measured_updates: updates measured.
        seed: seed of every random generator.
        threads: `torch.set_num_threads`.
        output_dir: scratch directory of the contender.
        device: "cpu" or "cuda" (`benchmarks/gpu_check.py`); the CPU benchmark's contenders run on "cpu".
        precision: "fp32"; "bf16" (weights in bfloat16, the trainer's `bf16=True`); or "amp-bf16" (float32
            weights, bfloat16 autocast: `PPOConfig`'s default on a GPU).
        rollout_forward_batch_size: trl-safe's PPO contenders only: `PPOConfig.local_rollout_forward_batch_size`,
            the rows per no-gradient forward pass over a rollout (None: the config's default, the mini-batch).
    """

    contender: str
    algo: str
    size: str
    model_path: str
    prompts: list[str]
    prompt_ids: list[list[int]]
    prompt_length: int
    batch_size: int
    response_length: int
    num_ppo_epochs: int
    num_mini_batches: int
    temperature: float
    warmup_updates: int
    measured_updates: int
    seed: int
    threads: int
    output_dir: str
    device: str = "cpu"
    precision: str = "fp32"
    rollout_forward_batch_size: int | None = None

    @property
    def total_updates(self) -> int:
        return self.warmup_updates + self.measured_updates

    @property
    def mini_batch_size(self) -> int:
        return self.batch_size // self.num_mini_batches

    @property
    def steps_per_update(self) -> int:
        return self.num_ppo_epochs * self.num_mini_batches

    @property
    def weights_dtype(self) -> torch.dtype:
        """dtype of every model's weights: bfloat16 for "bf16", float32 otherwise (autocast does the rest)."""
        if self.precision not in PRECISIONS:
            raise ValueError(f"BenchSpec.precision must be one of {PRECISIONS}, got {self.precision!r}.")
        return torch.bfloat16 if self.precision == "bf16" else torch.float32

    @property
    def on_cuda(self) -> bool:
        return self.device.startswith("cuda")


PRECISIONS = ("fp32", "bf16", "amp-bf16")


# Seeds of the heads of the sequence classifiers, offset from the spec's seed, the same in every contender.
HEAD_SEEDS = {"reward": 1, "cost": 2, "critic": 3}


def memory_mb() -> dict[str, float]:
    """Current and peak resident memory of this process (VmRSS, VmHWM), in MiB.

    VmHWM belongs to the process image, so unlike `ru_maxrss` it does not inherit the parent's peak across `exec`.
    """
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    if not values:  # not Linux: fall back on getrusage (kilobytes on Linux, bytes on macOS)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak /= 1024 * 1024 if sys.platform == "darwin" else 1024
        values = {"VmRSS": float("nan"), "VmHWM": peak}
    figures = {"rss_mb": values["VmRSS"], "peak_rss_mb": values["VmHWM"]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        # Peaks since the process started (nothing resets them): weights, optimizer state and activations.
        figures["gpu_peak_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
        figures["gpu_peak_reserved_mb"] = torch.cuda.max_memory_reserved() / 2**20
    return figures


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup_process(spec: BenchSpec) -> None:
    torch.set_num_threads(spec.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    seed_everything(spec.seed)


def load_policy(spec: BenchSpec) -> nn.Module:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(spec.model_path, dtype=spec.weights_dtype).to(spec.device)


def load_scorer(spec: BenchSpec, role: str, num_labels: int = 1) -> nn.Module:
    """A sequence classifier on the policy's backbone with a head seeded by `role`, identical in every contender."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging

    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # the new head's "newly initialized weights" warning is expected
    try:
        torch.manual_seed(spec.seed + HEAD_SEEDS[role])
        model = AutoModelForSequenceClassification.from_pretrained(
            spec.model_path, num_labels=num_labels, dtype=spec.weights_dtype
        )
    finally:
        logging.set_verbosity(verbosity)
    if model.config.pad_token_id is None:  # sequence classifiers need one to pool a batch
        model.config.pad_token_id = load_tokenizer(spec).pad_token_id
    return model.to(spec.device)


def load_tokenizer(spec: BenchSpec):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(spec.model_path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def weights_mb(*models: nn.Module) -> float:
    """Bytes of the distinct parameters and buffers of `models`, in MiB (shared tensors counted once)."""
    seen: set[int] = set()
    total = 0
    for model in models:
        for tensor in [*model.parameters(), *model.buffers()]:
            key = tensor.untyped_storage().data_ptr()
            if key not in seen:
                seen.add(key)
                total += tensor.untyped_storage().nbytes()
    return total / 2**20


def cycled_prompts(spec: BenchSpec, rows: int) -> list[str]:
    """`rows` prompts taken in order from the spec's, cycling: every contender sees the same prompts per update."""
    return [spec.prompts[i % len(spec.prompts)] for i in range(rows)]


def trl_safe_training_args(spec: BenchSpec) -> dict[str, Any]:
    """The `TrainingArguments` both trl-safe contenders (`ours_ppo`, `ours_grpo_lag`) take from the spec.

    No gradient accumulation, clipping, checkpoints, reporting or progress bar (work the other contenders do not
    do), one log per update, the spec's sampling, device and precision ("bf16" and "amp-bf16" both mean `bf16=True`:
    the config decides between bfloat16 weights and autocast). The optimizer steps of an update are the algorithm's
    own (`steps_per_update`), so `max_steps` ends the run after `total_updates`.
    """
    return dict(
        output_dir=tempfile.mkdtemp(dir=spec.output_dir),
        per_device_train_batch_size=spec.mini_batch_size,
        gradient_accumulation_steps=1,
        max_steps=spec.total_updates * spec.steps_per_update,
        max_completion_length=spec.response_length,
        temperature=spec.temperature,
        top_k=0,
        top_p=1.0,
        learning_rate=1e-6,
        max_grad_norm=0.0,
        bf16=spec.precision != "fp32",
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        logging_steps=spec.steps_per_update,
        seed=spec.seed,
        use_cpu=not spec.on_cuda,
    )


def trl_safe_result(models: dict[str, nn.Module], setup_memory: dict[str, float]) -> dict[str, Any]:
    """What a trl-safe contender reports beside the timer's figures: versions, weights and set-up memory."""
    import trl

    import trl_safe

    return {
        "versions": {"trl": trl.__version__, "trl_safe": trl_safe.__version__},
        "weights_mb": weights_mb(*models.values()),
        "policy_weights_mb": weights_mb(models["policy"]),
        "setup_rss_mb": setup_memory["rss_mb"],
        "setup_peak_rss_mb": setup_memory["peak_rss_mb"],
    }


def _backbone_and_head(model: nn.Module) -> list[nn.Module]:
    modules = [model]
    prefix = getattr(model, "base_model_prefix", None)
    if prefix and isinstance(getattr(model, prefix, None), nn.Module):
        modules.append(getattr(model, prefix))
    for name in ("lm_head", "score", "v_head", "classifier"):
        if isinstance(getattr(model, name, None), nn.Module):
            modules.append(getattr(model, name))
    return modules


# The two clocks of every figure: wall time (what a user waits) and this process's CPU time (all its threads).
# On a quiet machine with one thread they agree; on a shared machine CPU time ignores the time spent waiting for
# a core, so ratios of CPU times stay meaningful when other processes compete for the CPU.
CLOCKS = ("wall", "cpu")
PHASES = ("total", "generation", "scoring", "optimisation", "other")


def _clock() -> np.ndarray:
    return np.array([time.perf_counter(), time.process_time()])


def _synchronized_clock() -> np.ndarray:
    """`_clock()` once the GPU has finished the work queued so far (CUDA runs kernels asynchronously)."""
    torch.cuda.synchronize()
    return _clock()


class PhaseTimer:
    """Splits each PPO update's time into generation, scoring forwards, optimisation and the rest, on both clocks.

    Usage: `watch()` every model, `install()` once, run the training; the first `generate` opens the first update
    and every later `generate` that follows an optimisation phase closes one update and opens the next; `finish()`
    closes the last one. With `synchronize=True` (models on a GPU) every reading first waits for the GPU.
    """

    def __init__(self, synchronize: bool = False) -> None:
        self._read_clock = _synchronized_clock if synchronize else _clock
        self.records: list[dict[str, Any]] = []
        self._handles: list[Any] = []
        self._owner_of: dict[int, str] = {}
        self._depth = 0
        self._owner: str | None = None
        self._call_start = _clock()
        self._gen_start = _clock()
        self._in_generate = False
        self._update_start: np.ndarray | None = None
        self._reset_update()

    # -- set-up -----------------------------------------------------------------------------------------------
    def watch(self, name: str, model: nn.Module) -> None:
        """Time the forwards of `model` (and of its backbone and head, called directly by some trainers)."""
        for module in _backbone_and_head(model):
            self._owner_of.setdefault(id(module), name)
            self._handles.append(module.register_forward_pre_hook(self._pre_forward))
            self._handles.append(module.register_forward_hook(self._post_forward))

    def install(self) -> None:
        """Patch `generate` and hook every optimizer step of the process."""
        from transformers.generation.utils import GenerationMixin

        original = GenerationMixin.generate
        timer = self

        def timed_generate(model, *args, **kwargs):
            config = kwargs.get("generation_config") or model.generation_config
            max_new_tokens = kwargs.get("max_new_tokens") or getattr(config, "max_new_tokens", None)
            if max_new_tokens:
                kwargs["min_new_tokens"] = max_new_tokens  # same number of tokens, whatever is sampled
            input_ids = kwargs.get("input_ids", args[0] if args else None)
            timer._begin_generate()
            try:
                output = original(model, *args, **kwargs)
            finally:
                timer._end_generate()
            sequences = output if isinstance(output, torch.Tensor) else output.sequences
            prompt_tokens = input_ids.shape[-1] if input_ids is not None else 0
            timer._current["tokens_generated"] += sequences.shape[0] * (sequences.shape[-1] - prompt_tokens)
            timer._current["generate_shapes"].append([list(input_ids.shape), list(sequences.shape)])
            return output

        GenerationMixin.generate = timed_generate
        self._handles.append(register_optimizer_step_post_hook(self._after_step))

    # -- hooks ------------------------------------------------------------------------------------------------
    def _reset_update(self) -> None:
        self._current: dict[str, Any] = {
            "generation": np.zeros(2),
            "scoring": defaultdict(lambda: np.zeros(2)),
            "scoring_calls": Counter(),
            "grad_forwards": Counter(),
            "optimizer_steps": 0,
            "tokens_generated": 0,
            "generate_shapes": [],
        }
        self._opt_start: np.ndarray | None = None
        self._opt_end: np.ndarray | None = None

    def _begin_generate(self) -> None:
        now = self._read_clock()
        if self._update_start is None:
            self._update_start = now
        elif self._opt_start is not None:
            self._close_update(now)
            self._update_start = now
        self._in_generate = True
        self._gen_start = now

    def _end_generate(self) -> None:
        self._in_generate = False
        self._current["generation"] += self._read_clock() - self._gen_start

    def _pre_forward(self, module: nn.Module, _inputs: Any) -> None:
        if self._in_generate or self._update_start is None:
            return
        if self._depth == 0:
            self._owner = self._owner_of[id(module)]
            self._call_start = self._read_clock()
            if torch.is_grad_enabled():
                self._current["grad_forwards"][self._owner] += 1
                if self._opt_start is None:
                    self._opt_start = self._call_start
        self._depth += 1

    def _post_forward(self, module: nn.Module, _inputs: Any, _output: Any) -> None:
        if self._in_generate or self._update_start is None:
            return
        self._depth -= 1
        if self._depth == 0 and not torch.is_grad_enabled() and self._opt_start is None:
            # No-grad forwards during the optimisation phase are part of that phase's time.
            self._current["scoring"][self._owner] += self._read_clock() - self._call_start
            self._current["scoring_calls"][self._owner] += 1

    def _after_step(self, _optimizer: torch.optim.Optimizer, _args: Any, _kwargs: Any) -> None:
        if self._update_start is None:
            return
        self._opt_end = self._read_clock()
        self._current["optimizer_steps"] += 1

    # -- records ----------------------------------------------------------------------------------------------
    def _close_update(self, now: np.ndarray) -> None:
        current = self._current
        total = now - self._update_start
        has_opt = self._opt_start is not None and self._opt_end is not None
        optimisation = self._opt_end - self._opt_start if has_opt else np.zeros(2)
        scoring_by_model = dict(current["scoring"])
        scoring = sum(scoring_by_model.values(), np.zeros(2))
        phases = {
            "total": total,
            "generation": current["generation"],
            "scoring": scoring,
            "optimisation": optimisation,
            "other": total - current["generation"] - scoring - optimisation,
        }
        record: dict[str, Any] = {}
        for index, clock in enumerate(CLOCKS):
            record[clock] = {phase: float(value[index]) for phase, value in phases.items()}
            record[clock]["scoring_by_model"] = {m: float(v[index]) for m, v in scoring_by_model.items()}
        record.update(
            scoring_calls=dict(current["scoring_calls"]),
            grad_forwards=dict(current["grad_forwards"]),
            optimizer_steps=current["optimizer_steps"],
            tokens_generated=current["tokens_generated"],
            generate_shapes=current["generate_shapes"],
            **memory_mb(),
        )
        self.records.append(record)
        self._reset_update()

    def finish(self) -> None:
        """Close the update in progress (call when training ends)."""
        if self._update_start is not None and self._opt_start is not None:
            self._close_update(self._read_clock())
        self._update_start = None

    def trainer_callback(self):
        """A `transformers.TrainerCallback` closing the last update when training ends."""
        from transformers import TrainerCallback

        timer = self

        class _FinishTiming(TrainerCallback):
            def on_train_end(self, args, state, control, **kwargs):
                timer.finish()

        return _FinishTiming()


def summarise(measured: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each phase over `measured` updates, on each clock: `{clock: {phase: s, "scoring_by_model": ...}}`."""
    if not measured:
        raise RuntimeError("No measured update to summarise.")
    summary: dict[str, Any] = {}
    for clock in CLOCKS:
        figures = {phase: statistics.median(r[clock][phase] for r in measured) for phase in PHASES}
        models = sorted({m for r in measured for m in r[clock]["scoring_by_model"]})
        figures["scoring_by_model"] = {
            m: statistics.median(r[clock]["scoring_by_model"].get(m, 0.0) for r in measured) for m in models
        }
        figures["total_all"] = [r[clock]["total"] for r in measured]
        summary[clock] = figures
    return summary


def check_work(spec: BenchSpec, records: list[dict[str, Any]]) -> list[str]:
    """Differences between the work each update did and the work the spec asks for (empty when equal)."""
    problems = []
    for i, record in enumerate(records):
        expected_tokens = spec.batch_size * spec.response_length
        if record["tokens_generated"] != expected_tokens:
            problems.append(f"update {i}: {record['tokens_generated']} tokens generated, expected {expected_tokens}")
        if record["optimizer_steps"] == 0:
            problems.append(f"update {i}: no optimizer step")
    if len(records) != spec.total_updates:
        problems.append(f"{len(records)} updates recorded, expected {spec.total_updates}")
    return problems


def run_contender(main: Callable[[BenchSpec, PhaseTimer], dict[str, Any]]) -> None:
    """Command line of a contender: `--spec SPEC.json --out RESULT.json`; `main` trains and returns extra facts."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    cli = parser.parse_args()
    spec = BenchSpec(**json.loads(cli.spec.read_text()))
    setup_process(spec)
    timer = PhaseTimer(synchronize=spec.on_cuda)
    timer.install()
    start_memory = memory_mb()
    started = time.perf_counter()
    extra = main(spec, timer)
    elapsed = time.perf_counter() - started
    import transformers

    versions = {"torch": torch.__version__, "transformers": transformers.__version__, **extra.pop("versions", {})}
    result = {
        "contender": spec.contender,
        "algo": spec.algo,
        "size": spec.size,
        "python": sys.executable,
        "versions": versions,
        "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name() if spec.on_cuda else "cpu",
        "precision": spec.precision,
        "import_rss_mb": start_memory["rss_mb"],
        "wall_s": elapsed,
        "updates": timer.records,
        "summary": summarise(timer.records[spec.warmup_updates :]),
        "work_problems": check_work(spec, timer.records),
        **memory_mb(),
        **extra,
    }
    cli.out.write_text(json.dumps(result, indent=2))
