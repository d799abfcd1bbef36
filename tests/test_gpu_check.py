"""benchmarks/gpu_check.py on the CPU: a dry run of the GPU check, so that the GPU machine's command cannot rot.

The GPU machine is lent now and then for minutes; a check that breaks between two loans wastes one. These tests run
the same code path with `--device cpu --tiny` (real trainer and floor processes, the pytest step, both report
files) and the bookkeeping that only a GPU would otherwise reach (out of memory, the time budget) with fake runs.
"""

import json
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

import gpu_check  # noqa: E402

TABLE_HEADER = "| trainer | precision | batch | update (s) | generation | scoring | optimisation | other |"


@pytest.mark.slow  # about half a minute on 2 cores: three processes each import torch and transformers
def test_cpu_dry_run_writes_the_json_and_the_table(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PYTHONPATH", "")  # restored after the test (the check sets it for its children)
    monkeypatch.delenv("TRL_SAFE_GPU_TEST_DEVICE", raising=False)  # the GPU tests must skip here, not run on the CPU
    out = tmp_path / "results"
    argv = ["--device", "cpu", "--tiny", "--out", str(out), "--batch-sizes", "4", "--tests", "tests/test_gpu.py"]
    code = gpu_check.main([*argv, "--default-precision-check", "none"])
    printed = capsys.readouterr().out
    assert code == 0, printed

    report = json.loads((out / "gpu_check.json").read_text())
    assert report["environment"]["device"] == "cpu"
    assert report["environment"]["packages"]["trl"]["version"]
    assert report["settings"] == {
        "prompt_length": 8,
        "response_length": 4,
        "epochs": 1,
        "mini_batch_size": 4,
        "updates": 1,
        "warmup": 1,
        "batch_sizes": [4],
        "precision": "bf16",
        "threads": 1,
        "rollout_forward_batch_size": None,
        "contenders": None,
    }
    # Step 1: the GPU tests were collected and, without CUDA, all skipped (none failed, none silently missing).
    tests = report["tests"]
    assert tests["status"] == "passed" and tests["failed"] == tests["errors"] == 0
    assert tests["skipped"] >= 5 and tests["passed"] == 0
    assert "skipped" in tests["summary_line"] and (out / "pytest.log").is_file()

    # Step 2: PPO-Lag and its floor (and GRPO-Lag where it exists), each in its own process, doing exactly the work
    # asked for: 4 completions of 4 tokens and one optimizer step per update.
    runs = {row["contender"]: row for row in report["runs"]}
    assert set(runs) == {"ours-lag", "floor-lag"} | ({"ours-grpo-lag"} if gpu_check.grpo_lag_available() else set())
    for row in runs.values():
        assert row["status"] == "ok" and row["precision"] == "bf16" and row["batch_size"] == 4
        assert row["work_problems"] == []
        assert [u["tokens_generated"] for u in row["result"]["updates"]] == [4 * 4, 4 * 4]
        assert [u["optimizer_steps"] for u in row["result"]["updates"]] == [1, 1]
        phases = row["seconds_per_update"]
        assert phases["total"] > 0
        assert phases["generation"] + phases["scoring"] + phases["optimisation"] + phases["other"] == pytest.approx(
            phases["total"]
        )
        assert row["generated_tokens_per_s"] == pytest.approx(16 / phases["generation"])
        assert row["gpu_peak_allocated_mb"] is None  # no GPU here
    ours, floor = runs["ours-lag"], runs["floor-lag"]
    assert ours["ratio_to_floor"] == pytest.approx(
        ours["seconds_per_update"]["total"] / floor["seconds_per_update"]["total"]
    )
    assert ours["result"]["versions"]["trl_safe"]
    if not gpu_check.grpo_lag_available():
        assert any("GRPO-Lag not timed" in note for note in report["notes"])

    # Step 3: the Markdown table, written and printed.
    table = (out / "gpu_check.md").read_text()
    assert TABLE_HEADER in table and TABLE_HEADER in printed
    assert "| trl-safe PPOLagTrainer | bf16 | 4 | **" in table
    assert "| floor, PPO-Lag | bf16 | 4 | **" in table
    assert "**Tests** (`pytest -m gpu`): 0 passed, 0 failed, 0 errors" in table
    assert not (out / "failures.log").exists()


def fake_result(total: float) -> dict:
    phases = {"total": total, "generation": total / 2, "scoring": total / 4, "optimisation": total / 8}
    phases["other"] = total - phases["generation"] - phases["scoring"] - phases["optimisation"]
    return {
        "summary": {"wall": {**phases, "scoring_by_model": {"reward": total / 4}}},
        "peak_rss_mb": 100.0,
        "gpu_peak_allocated_mb": 1000.0 * total,
        "gpu_peak_reserved_mb": 2000.0 * total,
        "work_problems": [],
        "wall_s": 3 * total,
    }


def test_out_of_memory_stops_the_series_and_the_budget_skips_the_rest(tmp_path, monkeypatch):
    args = gpu_check.parse_args(["--device", "cpu", "--tiny", "--out", str(tmp_path), "--batch-sizes", "2,4,8"])
    model_path, _ = gpu_check.prepare_model(args)
    notes: list[str] = []
    plans = gpu_check.make_plans(args, notes)
    # Each batch size for ours and the floor, then PPOConfig's default precision at the middle batch size.
    assert [(p.contender.name, p.precision, p.batch_size) for p in plans[:8]] == [
        ("ours-lag", "bf16", 2),
        ("floor-lag", "bf16", 2),
        ("ours-lag", "bf16", 4),
        ("floor-lag", "bf16", 4),
        ("ours-lag", "bf16", 8),
        ("floor-lag", "bf16", 8),
        ("ours-lag", "amp-bf16", 4),
        ("floor-lag", "amp-bf16", 4),
    ]

    def fake_run_one(contender, spec, python, timeout):
        if contender.name == "ours-lag" and spec.batch_size == 4 and spec.precision == "bf16":
            log = Path(spec.output_dir) / "log.txt"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
            return {"contender": contender.name, "error": "exit 1", "log": str(log)}
        return fake_result(0.1 * spec.batch_size * (2 if contender.name == "ours-lag" else 1))

    monkeypatch.setattr(gpu_check.cpu_bench, "run_one", fake_run_one)
    monkeypatch.setenv("PYTHONPATH", "")
    rows = gpu_check.run_plans(args, plans, model_path, deadline=float("inf"), notes=notes)
    status = {(r["contender"], r["precision"], r["batch_size"]): r["status"] for r in rows}
    assert status[("ours-lag", "bf16", 2)] == "ok"
    assert status[("ours-lag", "bf16", 4)] == "out of memory"
    assert status[("ours-lag", "bf16", 8)] == "skipped (batch 4 ran out of memory)"
    assert status[("floor-lag", "bf16", 8)] == "ok"  # the floor's series goes on
    assert status[("ours-lag", "amp-bf16", 4)] == "ok"  # another precision is another series
    ratios = {(r["precision"], r["batch_size"]): r.get("ratio_to_floor") for r in rows if r["contender"] == "ours-lag"}
    assert ratios == {
        ("bf16", 2): pytest.approx(2.0),
        ("bf16", 4): None,
        ("bf16", 8): None,
        ("amp-bf16", 4): pytest.approx(2.0),
    }
    assert "CUDA out of memory" in (tmp_path / "failures.log").read_text()

    # A spent budget: nothing starts, every run is listed as skipped.
    skipped = gpu_check.run_plans(args, plans[:2], model_path, deadline=0.0, notes=[])
    assert [r["status"] for r in skipped] == ["skipped (time budget spent)"] * 2

    report = {
        "command": "python benchmarks/gpu_check.py ...",
        "date": "2026-12-02T00:00:00",
        "seconds": 1.0,
        "environment": gpu_check.environment("cpu"),
        "model": {"name": "tiny", "weights": "random"},
        "settings": {"prompt_length": 8, "response_length": 4, "epochs": 1, "mini_batch_size": 2, "updates": 1}
        | {"warmup": 1},
        "tests": {"status": "not run (--tests none)"},
        "runs": rows,
        "notes": notes,
    }
    table = gpu_check.markdown(report)
    assert "| trl-safe PPOLagTrainer | bf16 | 4 | out of memory |" in table
    assert (
        "| trl-safe PPOLagTrainer | bf16 | 2 | **0.400** | 0.200 | 0.100 | 0.050 | 0.050 | 40 | 2.00 | 400 | 800 "
        "| 100 |" in table
    )


def test_a_run_the_budget_cuts_short_is_skipped_and_the_options_select_the_runs(tmp_path, monkeypatch):
    argv = ["--device", "cpu", "--tiny", "--out", str(tmp_path), "--batch-sizes", "2,4"]
    args = gpu_check.parse_args([*argv, "--contenders", "ours-lag", "--rollout-forward-batch-size", "rollout"])
    notes: list[str] = []
    plans = gpu_check.make_plans(args, notes)
    assert [(p.contender.name, p.precision, p.batch_size) for p in plans] == [
        ("ours-lag", "bf16", 2),
        ("ours-lag", "bf16", 4),
        ("ours-lag", "amp-bf16", 4),
    ]
    assert any("in one forward pass (`local_rollout_forward_batch_size`" in note for note in notes)
    model_path, _ = gpu_check.prepare_model(args)
    specs = []

    def fake_run_one(contender, spec, python, timeout):
        specs.append(spec)
        if spec.batch_size == 4 and spec.precision == "bf16":
            return {"contender": contender.name, "error": "exit timeout", "log": ""}
        return fake_result(0.1)

    monkeypatch.setattr(gpu_check.cpu_bench, "run_one", fake_run_one)
    monkeypatch.setenv("PYTHONPATH", "")
    rows = gpu_check.run_plans(args, plans, model_path, deadline=float("inf"), notes=notes)
    assert [spec.rollout_forward_batch_size for spec in specs] == [2, 4, 4]  # 'rollout': the whole rollout
    assert rows[1]["status"].startswith("skipped (time budget spent:")
    assert rows[2]["status"] == "ok"  # another precision is another series
    assert not (tmp_path / "failures.log").exists()
    with pytest.raises(SystemExit):
        gpu_check.parse_args([*argv, "--contenders", "ours-lag,nobody"])
    with pytest.raises(SystemExit):
        gpu_check.parse_args([*argv, "--rollout-forward-batch-size", "half"])
    with pytest.raises(SystemExit):
        gpu_check.parse_args([*argv, "--rollout-forward-batch-size", "0"])
