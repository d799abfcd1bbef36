"""Run a Python script as a real multi-process job on the CPU, for tests of anything that talks across ranks.

The script is started with `accelerate launch` and `examples/accelerate_configs/cpu_2proc.yaml` (torch.distributed
with the gloo backend), or another configuration such as DeepSpeed ZeRO-3, exactly as a user would launch it. Each
rank reports what it saw with `save_rank_result`, and `run_distributed` returns those reports in rank order, so a test
can compare the ranks with each other and with a single-process computation.

A script under tests/ can `import distributed_utils`: `run_distributed` puts this folder on PYTHONPATH. Scripts
should call `accelerator.end_training()` (or `trainer.end()`) before exiting, then
`trl_safe.testing_utils.exit_without_finalizing()`; see the config file's header.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
CPU_CONFIG = REPO_ROOT / "examples" / "accelerate_configs" / "cpu_2proc.yaml"
# Where `save_rank_result` writes; set by `run_distributed` for the launched processes.
OUTPUT_DIR_ENV = "TRL_SAFE_DISTRIBUTED_OUTPUT_DIR"
# A torch C++-extension build lock older than this is left over from a killed build (a build of DeepSpeed's shm op
# takes under 2 minutes on 2 cores); see `clear_stale_extension_locks`.
STALE_LOCK_SECONDS = 600.0


@dataclass
class DistributedRun:
    """What a multi-process run left behind: one result dict per rank (rank order) and the launcher's output."""

    results: list[dict[str, Any]]
    stdout: str
    stderr: str


def run_distributed(
    script: str | Path,
    *script_args: str,
    num_processes: int = 2,
    timeout: float = 180.0,
    env: dict[str, str] | None = None,
    config_file: str | Path = CPU_CONFIG,
    mixed_precision: str = "no",
) -> DistributedRun:
    """Launch `script` on `num_processes` CPU processes and collect each rank's `save_rank_result` payload.

    `config_file` may name another accelerate configuration, e.g. a DeepSpeed one from examples/accelerate_configs/:
    it is launched without `ACCELERATE_USE_CPU` (which would switch DeepSpeed off), and on CPUs the script must pass
    `ddp_backend="gloo"` to its training arguments (docs/scale_out.md). `mixed_precision` is accelerate's
    `--mixed_precision` ("no" on CPUs; "bf16" for the GPU test).

    Raises:
        AssertionError: the launch failed, timed out (the whole process group is killed) or a rank saved no result;
            the message carries the launcher's stdout and stderr.
    """
    with tempfile.TemporaryDirectory(prefix="trl_safe_dist_") as output_dir:
        cpu_ddp = Path(config_file).resolve() == CPU_CONFIG
        if not cpu_ddp:  # DeepSpeed builds its shm communication op through torch's extension loader
            clear_stale_extension_locks()
        process_env = {
            **{k: v for k, v in os.environ.items() if k != "ACCELERATE_USE_CPU"},
            **({"ACCELERATE_USE_CPU": "true"} if cpu_ddp else {}),  # every rank on the CPU with gloo (cpu_2proc.yaml)
            "OMP_NUM_THREADS": "1",  # CI machines have 2 cores: one thread per process
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])),
            OUTPUT_DIR_ENV: output_dir,
            **(env or {}),
        }
        command = [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--config_file",
            str(config_file),
            "--num_processes",
            str(num_processes),
            "--mixed_precision",
            mixed_precision,
            str(script),
            *script_args,
        ]
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=process_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_process_tree(process.pid)
            stdout, stderr = process.communicate()
            message = f"{Path(script).name} did not finish within {timeout} s"
            locks = extension_locks()
            if locks:  # a rank waiting for a build lock waits forever, silently
                message += f"; torch extension build locks present: {', '.join(map(str, locks))}"
            raise AssertionError(message + _outputs(stdout, stderr)) from None
        if process.returncode != 0:
            raise AssertionError(f"{Path(script).name} exited with {process.returncode}{_outputs(stdout, stderr)}")
        results = []
        for rank in range(num_processes):
            path = Path(output_dir) / f"rank{rank}.json"
            if not path.is_file():
                raise AssertionError(f"rank {rank} of {Path(script).name} saved no result{_outputs(stdout, stderr)}")
            results.append(json.loads(path.read_text()))
        return DistributedRun(results=results, stdout=stdout, stderr=stderr)


def extension_locks() -> list[Path]:
    """The build locks under torch's C++-extension folder (`TORCH_EXTENSIONS_DIR`, else torch's default root)."""
    root = os.environ.get("TORCH_EXTENSIONS_DIR")
    if root is not None:
        return sorted(Path(root).glob("*/lock"))
    from torch.utils.cpp_extension import get_default_build_root

    return sorted(Path(get_default_build_root()).glob("*/*/lock"))  # <root>/py311_cpu/<extension>/lock


def clear_stale_extension_locks(max_age_s: float = STALE_LOCK_SECONDS) -> list[Path]:
    """Remove torch extension build locks older than `max_age_s`; return what was removed.

    torch's extension loader marks a build with a bare `lock` file and makes every other process wait, without a
    timeout, until the file is gone. A build killed half-way (a test run cut short while DeepSpeed compiled its shm
    op) leaves the file behind, and every later DeepSpeed launch from the same home folder then hangs until the test's
    timeout with nothing in its output. A lock older than any build is such a leftover.
    """
    removed = []
    for lock in extension_locks():
        try:
            age = time.time() - lock.stat().st_mtime
        except FileNotFoundError:  # the build it marked just finished
            continue
        if age > max_age_s:
            lock.unlink(missing_ok=True)
            removed.append(lock)
            warnings.warn(f"removed a stale torch extension build lock ({age:.0f} s old): {lock}", stacklevel=2)
    return removed


def save_rank_result(rank: int, result: dict[str, Any]) -> None:
    """Called inside a launched script: store this rank's result (JSON-serialisable) for `run_distributed`."""
    output_dir = os.environ.get(OUTPUT_DIR_ENV)
    if output_dir is None:
        raise RuntimeError(f"{OUTPUT_DIR_ENV} is not set: launch this script through tests.distributed_utils")
    (Path(output_dir) / f"rank{rank}.json").write_text(json.dumps(result))


def _outputs(stdout: str, stderr: str) -> str:
    return f"\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"


def _kill_process_tree(pid: int) -> None:
    """Kill the launcher and every process below it, each by its pid.

    torch.distributed.run starts each rank in a session of its own, so killing the launcher's process group would
    leave the ranks running (and holding the output pipes open); the tree is collected before anything is killed.
    """
    launcher = psutil.Process(pid)
    processes = [*launcher.children(recursive=True), launcher]
    for process in processes:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(processes, timeout=30)
