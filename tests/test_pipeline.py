"""`trl-safe safe_rlhf_pipeline` end to end on tiny models: the same code path as `make demo`, in seconds."""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

from trl_safe.pipeline import lora_target_modules, peak_rss_mb, read_stage_results, summary_lines
from trl_safe.scripts import reward_model
from trl_safe.scripts import safe_rlhf_pipeline as pipeline


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One whole tiny run, with LoRA so that the adapter merging between stages is exercised too, and R and C trained
    side by side (the default on a CPU with 2 or more threads; explicit so that every machine runs it)."""
    output_dir = tmp_path_factory.mktemp("pipeline")
    args = pipeline.PipelineArguments(
        output_dir=str(output_dir), model="tiny", use_peft=True, scorers_side_by_side=True
    )
    return output_dir, pipeline.main(args)


@pytest.mark.slow
def test_every_stage_runs_and_writes_its_outputs(tiny_run):
    output_dir, results = tiny_run
    assert set(results["stage_seconds"]) == {"reward", "cost", "ppo_lag", "evaluate"}
    for stage_dir in ("reward_model", "cost_model", "policy"):
        files = {path.name for path in (output_dir / stage_dir).iterdir()}
        # A merged, plain `from_pretrained` directory with its model card; no adapter left behind.
        assert {"config.json", "model.safetensors", "README.md", "trainer_state.json"} <= files, stage_dir
        assert "adapter_config.json" not in files, stage_dir
    for plot in ("plots/reward_model.png", "plots/cost_model.png", "evaluation/training_curves.png"):
        assert (output_dir / plot).stat().st_size > 0, plot
    assert (output_dir / "evaluation" / "report.md").is_file()
    assert "Evaluation" in (output_dir / "policy" / "README.md").read_text()  # --update_model_cards
    # The tiny preset mixes PTX in, like the `long` one: the demo's helpful answers, and the loss in PPO's log.
    assert (output_dir / "ptx_train.jsonl").is_file()
    history = json.loads((output_dir / "policy" / "trainer_state.json").read_text())["log_history"]
    assert any("ptx" in key for entry in history for key in entry)


@pytest.mark.slow
def test_summary_holds_the_final_table(tiny_run):
    output_dir, results = tiny_run
    saved = json.loads((output_dir / "summary.json").read_text())
    assert saved["preset"] == "tiny" and saved["arguments"]["use_peft"] is True
    for stage, stage_dir in (("reward", "reward_model"), ("cost", "cost_model")):
        # The summary reports the held-out evaluation the stage logged last.
        history = json.loads((output_dir / stage_dir / "trainer_state.json").read_text())["log_history"]
        logged = [entry for entry in history if "eval_accuracy" in entry][-1]
        assert saved[stage]["eval_accuracy"] == logged["eval_accuracy"]
    assert saved["cost"]["eval_sign_accuracy"] == logged["eval_sign_accuracy"]

    # λ is the "sgd" rule (lr 0.1, λ_0 = 1) replayed on the J_C the run logged after each of its 2 rollouts.
    history = json.loads((output_dir / "policy" / "trainer_state.json").read_text())["log_history"]
    by_step = {entry["step"]: entry["lagrange/episode_cost"] for entry in history if "lagrange/episode_cost" in entry}
    episode_costs = [by_step[step] for step in sorted(by_step)]  # the run's summary entry repeats the last step
    lambda_ = 1.0
    for episode_cost in episode_costs:
        lambda_ = min(5.0, math.exp(math.log(lambda_) + 0.1 * episode_cost * lambda_))
    ppo = saved["ppo_lag"]
    assert len(episode_costs) == ppo["steps"] == 2 and ppo["final_episode_cost"] == episode_costs[-1]
    assert ppo["final_lambda"] == pytest.approx(lambda_, rel=1e-12) and ppo["final_lambda"] != 1.0
    assert ppo["rollout_cost_halves"] is None  # 2 rollouts: too few for halves (summary_lines' test shows the row)

    summaries = saved["evaluate"]["summaries"]
    assert set(summaries) == {"initial", "ppo_lag"}
    assert all(summary["num_samples"] == 6 for summary in summaries.values())  # the tiny preset's eval_limit
    assert 100 < saved["peak_rss_mb"] <= round(peak_rss_mb())  # in MB (rounded): torch alone takes over 100 MB

    table = (output_dir / "summary.md").read_text()
    for needle in (
        "| initial |",
        "| ppo_lag |",
        f"| reward model accuracy (held-out pairs) | {100 * saved['reward']['eval_accuracy']:.1f}% |",
        f"| cost model sign accuracy (C > 0 ⇔ unsafe) | {100 * saved['cost']['eval_sign_accuracy']:.1f}% |",
        f"| final λ | {ppo['final_lambda']:.3f} |",
    ):
        assert needle in table
    # The outcome table: trained against initial, with paired-bootstrap intervals over the held-out prompts.
    header, rows = saved["evaluate"]["outcome"]
    assert header[:4] == ["outcome", "prompts", "initial", "ppo_lag"]
    assert rows and all(row[0] in table for row in rows)
    # The same with sampled answers (2 per prompt in the tiny preset), and the verdict on the run's conditions.
    sampled = saved["evaluate_sampled"]
    assert sampled["num_samples_per_prompt"] == 2 and sampled["num_prompts"] == 6
    assert all(summary["num_samples"] == 12 for summary in sampled["summaries"].values())
    assert (output_dir / "evaluation_sampled" / "report.md").is_file()
    assert "2 sampled answers per prompt" in table
    assert [c["name"] for c in saved["evaluate"]["criteria"]][-1] == "refusals on benign look-alike prompts"
    assert table.count("Conditions of a successful run") == 2


@pytest.mark.slow
def test_held_out_prompts_are_the_test_split(tiny_run):
    output_dir, _ = tiny_run
    prompts = [json.loads(line) for line in (output_dir / "eval_prompts.jsonl").read_text().splitlines()]
    from trl_safe.demo import load_demo_dataset, load_demo_prompts

    # The demo trains on the `combined` configuration: templated pairs and SmolLM2's own sampled answers.
    assert [row["prompt"] for row in prompts] == load_demo_prompts("test", "combined")["prompt"]
    assert len(prompts) == 111 and {row["label"] for row in prompts} == {"safe", "unsafe"}
    assert {row["prompt"] for row in prompts}.isdisjoint(load_demo_dataset("train", "combined")["prompt"])


def test_summary_says_what_the_cost_model_and_the_rollouts_trained_on():
    results = {"preset": "default", "stage_seconds": {}, "total_seconds": 1.0, "peak_rss_mb": 1024}
    table = "\n".join(summary_lines(results, eval_prompts="p.jsonl", max_completion_length=12))
    assert "configuration" not in table and "harmless prompts" not in table and "twins" not in table
    results |= {"cost_dataset_config": "combined_contrast", "harmless_prompt_repeats": 2, "rollout_twins": True}
    table = "\n".join(summary_lines(results, eval_prompts="p.jsonl", max_completion_length=12))
    assert "| cost model's data configuration | `combined_contrast` |" in table
    assert "| harmless prompts drawn in the rollouts | 2x |" in table
    assert "| look-alike twins in the rollouts | yes |" in table


def test_summary_reads_the_rollouts_cost_over_training_from_its_halves(tmp_path):
    """J_C is a moving window over rollouts and wanders with their noise; the summary says whether the rollouts' mean
    cost moved from the first half of training to the second, with an interval (`halves_difference`)."""
    costs = [-1.0, -1.2, -0.8, -1.1, -0.9, -1.0, 0.0, -0.1, 0.1, -0.2, 0.2, 0.0]
    history = []
    for rollout, cost in enumerate(costs):  # two optimizer steps per rollout; the rollout's cost logged on the first
        base = {"lagrange/lambda": 1.0, "lagrange/episode_cost": cost, "lagrange/cost_limit": -1.0}
        history += [{**base, "step": 2 * rollout + 1, "objective/costs": cost}, {**base, "step": 2 * rollout + 2}]
    (tmp_path / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    ppo = read_stage_results("ppo_lag", tmp_path)
    halves = ppo["rollout_cost_halves"]
    assert halves["first"] == pytest.approx(-1.0) and halves["second"] == pytest.approx(0.0)
    assert halves["num_values"] == 6
    assert halves["low"] > 0  # a drift of 1.0 against a spread of 0.1 to 0.2
    results = {"preset": "default", "stage_seconds": {}, "total_seconds": 1.0, "peak_rss_mb": 1024, "ppo_lag": ppo}
    table = "\n".join(summary_lines(results, eval_prompts="p.jsonl", max_completion_length=12))
    row = "| mean cost C of a rollout, first → second half of training (change, 95% CI) | -1.000 → 0.000 (+1.000 ["
    assert row in table


@pytest.mark.slow
def test_a_stage_can_rerun_alone_and_reuses_the_others(tiny_run):
    output_dir, first = tiny_run
    args = pipeline.PipelineArguments(output_dir=str(output_dir), model="tiny", stages=["evaluate"])
    results = pipeline.main(args)
    assert set(results["stage_seconds"]) == {"evaluate"}
    # The reused stages' numbers come from what they wrote.
    assert results["reward"]["eval_accuracy"] == first["reward"]["eval_accuracy"]
    assert results["ppo_lag"]["final_lambda"] == first["ppo_lag"]["final_lambda"]


@pytest.mark.multiprocess
@pytest.mark.slow
def test_scorers_side_by_side_train_the_same_models_as_one_after_another(tiny_run, tmp_path):
    output_dir, first = tiny_run
    # Side by side: each stage's output went to its own log, and the summary says how long both took together.
    for stage in ("reward", "cost"):
        log = (output_dir / "logs" / f"{stage}.log").read_text()
        assert f"run alone: trl-safe {stage}_model " in log and "train_loss" in log
    assert first["scorers_side_by_side_seconds"] >= max(
        first["stage_seconds"]["reward"], first["stage_seconds"]["cost"]
    )
    assert first["scorers_side_by_side_peak_rss_mb"] > 0
    table = "\n".join(summary_lines(first, eval_prompts="prompts.jsonl", max_completion_length=12))
    assert "| time: reward and cost, side by side |" in table and "(sum of both processes)" in table
    args = pipeline.PipelineArguments(
        output_dir=str(tmp_path), model="tiny", use_peft=True, stages=["reward", "cost"], scorers_side_by_side=False
    )
    results = pipeline.main(args)
    assert not (tmp_path / "logs").exists() and "scorers_side_by_side_seconds" not in results
    for stage in ("reward", "cost"):
        assert results[stage]["eval_accuracy"] == pytest.approx(first[stage]["eval_accuracy"]), stage


@pytest.mark.multiprocess
def test_a_failing_scorer_side_by_side_names_its_stage_and_shows_its_log(tmp_path):
    args = pipeline.PipelineArguments(
        output_dir=str(tmp_path), model="tiny", stages=["reward", "cost"], reward_args="--no_such_flag 1"
    )
    args.scorers_side_by_side = True
    with pytest.raises(RuntimeError, match=r"(?s)The reward stage failed \(exit code [1-9]\d*\).*no_such_flag"):
        pipeline.main(args)


def test_a_worker_ends_itself_only_once_its_parent_is_gone():
    import os
    import threading

    ended = threading.Event()
    pipeline.exit_when_orphaned(os.getppid(), poll_seconds=0.01, on_orphaned=lambda code: ended.set())
    assert not ended.wait(0.2)  # the parent is alive
    codes = []
    thread = pipeline.exit_when_orphaned(-1, poll_seconds=0.01, on_orphaned=codes.append)  # a parent that is gone
    thread.join(timeout=5)
    assert codes == [143]


@pytest.mark.multiprocess
def test_a_side_by_side_worker_does_not_outlive_a_killed_pipeline(tmp_path):
    """The pipeline killed (here: a parent that exits without cleanup): its worker stops within seconds instead of
    training on."""
    import os
    import subprocess
    import sys
    import time

    worker = (
        "import sys, time; from trl_safe.scripts.safe_rlhf_pipeline import exit_when_orphaned; "
        "exit_when_orphaned(int(sys.argv[1]), poll_seconds=0.05); time.sleep(120)"
    )
    parent = (  # starts the worker and dies at once, as a killed pipeline does
        "import os, subprocess, sys; "
        f"child = subprocess.Popen([sys.executable, '-c', {worker!r}, str(os.getpid())], "
        "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); print(child.pid, flush=True); os._exit(0)"
    )
    output = subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True, timeout=60, check=True)
    child = int(output.stdout.split()[0])
    deadline = time.monotonic() + 90  # the worker's imports take seconds on a busy machine
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        try:
            if Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return  # exited, not yet reaped by its new parent
        except OSError:  # no /proc, or it has just been reaped
            pass
        time.sleep(0.1)
    os.kill(child, 9)
    pytest.fail("the worker outlived its parent by 90 s")


def test_scorers_go_side_by_side_only_when_both_run_and_asked_or_on_a_multi_core_cpu(tmp_path, monkeypatch):
    import torch

    def decide(stages, side_by_side=None):
        arguments = pipeline.PipelineArguments(output_dir=str(tmp_path), model="tiny", stages=stages)
        arguments.scorers_side_by_side = side_by_side
        return pipeline.Pipeline(arguments).scorers_side_by_side()

    assert not decide(["cost", "ppo_lag"], side_by_side=True)  # one scorer: nothing to run beside it
    assert not decide(["reward", "cost"], side_by_side=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert decide(["reward", "cost"])
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert not decide(["reward", "cost"])
    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert not decide(["reward", "cost"])


def test_skipping_a_stage_whose_output_is_missing_fails_clearly(tmp_path):
    args = pipeline.PipelineArguments(output_dir=str(tmp_path), model="tiny", stages=["ppo_lag"])
    with pytest.raises(FileNotFoundError, match="'reward' is skipped .* and 'ppo_lag' reads it"):
        pipeline.main(args)


def test_the_cost_model_can_be_retrained_without_a_reward_model(tmp_path):
    # The cost stage reads only the preference data: a missing reward model is not an error for it, but is for a
    # stage that reads it.
    runner = pipeline.Pipeline(pipeline.PipelineArguments(output_dir=str(tmp_path), model="tiny", stages=["cost"]))
    runner.check_reusable("reward")
    assert runner.results["reward"] == {}
    runner = pipeline.Pipeline(pipeline.PipelineArguments(output_dir=str(tmp_path), model="tiny", stages=["evaluate"]))
    with pytest.raises(FileNotFoundError, match="'reward' is skipped .* and 'evaluate' reads it"):
        runner.check_reusable("reward")


def test_unknown_stage_is_refused():
    with pytest.raises(ValueError, match="Unknown stage"):
        pipeline.PipelineArguments(stages=["rm"])


def test_lora_targets_only_the_top_layers():
    pattern = lora_target_modules(num_layers=30, lora_layers=8)
    assert re.fullmatch(pattern, "model.layers.22.self_attn.q_proj")
    assert re.fullmatch(pattern, "base_model.model.model.layers.29.mlp.down_proj")
    assert not re.fullmatch(pattern, "model.layers.21.self_attn.q_proj")
    assert not re.fullmatch(pattern, "model.layers.2.mlp.up_proj")  # "2" must not match "22"-"29" prefixes
    assert not re.fullmatch(pattern, "model.layers.25.input_layernorm")


def test_stage_commands_parse_with_the_scripts_own_parsers(tmp_path):
    """What the pipeline prints as "run alone" is a valid command line of each script."""
    runner = pipeline.Pipeline(pipeline.PipelineArguments(output_dir=str(tmp_path), model="tiny", use_peft=True))
    runner.base_model, runner.dataset_name, runner.num_layers = "some/model", "some/data", 4
    runner.dataset_config = None
    script_args, training_args, model_args = reward_model.make_parser().parse_args_into_dataclasses(
        args=runner.preference_argv("reward")
    )
    assert script_args.conversational and model_args.use_peft and model_args.lora_task_type == "SEQ_CLS"
    assert training_args.max_steps == 3 and training_args.output_dir == str(tmp_path / "reward_model")


def test_default_preset_commands(tmp_path):
    """The default (SmolLM2) preset: the demo's `combined` data, the cost model's own learning rate, LoRA on the top
    8 layers of the policy and a critic that trains the same top 8 layers, 18 rollouts at cost limit -1 with PTX
    `balanced`, and a greedy evaluation only (to stay within half an hour), with sampling one flag away."""
    from trl_safe.scripts import cost_model, evaluate, ppo_lag

    def runner_with(**arguments) -> pipeline.Pipeline:
        runner = pipeline.Pipeline(pipeline.PipelineArguments(output_dir=str(tmp_path), **arguments))
        runner.base_model, runner.dataset_name, runner.num_layers = "some/model", "some/data", 30
        runner.dataset_config, runner.eval_prompts = "combined", "prompts.jsonl"
        return runner

    runner = runner_with()
    script_args, cost_args, _ = cost_model.make_parser().parse_args_into_dataclasses(
        args=runner.preference_argv("cost")
    )
    assert script_args.dataset_config == "combined"
    assert cost_args.learning_rate == 1e-3
    _, reward_args, _ = reward_model.make_parser().parse_args_into_dataclasses(args=runner.preference_argv("reward"))
    assert reward_args.learning_rate == 2e-4
    _, ppo_args, ppo_model_args = ppo_lag.make_parser().parse_args_into_dataclasses(args=runner.ppo_lag_argv())
    assert ppo_args.value_trainable_layers == 8 and ppo_model_args.use_peft
    assert ppo_args.max_steps == 36 and ppo_args.cost_limit == -1.0 and ppo_args.cost_floor is None
    assert runner.ptx_coef == 1.0 and runner.budget.ptx_prompts == "balanced"
    assert runner.eval_samples == 0
    (sampled,) = evaluate.make_parser().parse_args_into_dataclasses(
        args=runner_with(eval_samples=2).evaluate_argv(sampled=True)
    )
    assert sampled.do_sample and sampled.num_samples_per_prompt == 2 and sampled.temperature == 0.7
    assert sampled.output_dir == str(tmp_path / "evaluation_sampled") and not sampled.update_model_cards


def test_cost_floor_reaches_either_rl_trainer_and_can_be_turned_off(tmp_path):
    """`--cost_floor` (or a preset's) becomes PPO-Lag's `--cost_floor` and GRPO-Lag's `--cost_floors`; `none` turns a
    floor off, and a limit at or below the floor is refused before anything trains."""
    from trl_safe.scripts import grpo_lag, ppo_lag

    def runner_with(**arguments) -> pipeline.Pipeline:
        runner = pipeline.Pipeline(pipeline.PipelineArguments(output_dir=str(tmp_path), **arguments))
        runner.base_model, runner.dataset_name, runner.num_layers = "some/model", "some/data", 30
        runner.dataset_config, runner.eval_prompts = "combined", "prompts.jsonl"
        return runner

    runner = runner_with(cost_floor="0", cost_limit=0.2)
    _, ppo_args, _ = ppo_lag.make_parser().parse_args_into_dataclasses(args=runner.ppo_lag_argv())
    assert (ppo_args.cost_floor, ppo_args.cost_limit) == (0.0, 0.2)
    runner = runner_with(cost_floor="0", cost_limit=0.2, rl_trainer="grpo_lag")
    _, grpo_args, _ = grpo_lag.make_parser().parse_args_into_dataclasses(args=runner.grpo_lag_argv())
    assert (grpo_args.cost_floors, grpo_args.cost_limits) == ([0.0], [0.2])
    runner = runner_with(cost_floor="none", cost_limit=0.2)
    assert runner.cost_floor is None and "--cost_floor" not in runner.ppo_lag_argv()
    with pytest.raises(ValueError, match=r"cost limit \(0.0\) must lie above the cost floor \(0.0\)"):
        runner_with(cost_floor="0", cost_limit=0.0)
    with pytest.raises(ValueError, match="--cost_floor must be a number or `none`, not 'zero'"):
        runner_with(cost_floor="zero")


def test_long_preset_commands(tmp_path):
    """The `long` preset: cost limit -1, 48 rollouts of 2 epochs, PTX on the demo's helpful answers, which the
    pipeline writes next to the run and hands to PPO-Lag, and a cost model trained on the second round too."""
    from trl_safe.data import load_preference_data
    from trl_safe.demo import load_demo_ptx_dataset
    from trl_safe.pipeline import PRESETS
    from trl_safe.scripts import ppo_lag

    base = pipeline.build_tiny_base_model(tmp_path / "base", seed=0)
    args = pipeline.PipelineArguments(output_dir=str(tmp_path / "run"), preset="long", model_name_or_path=str(base))
    runner = pipeline.Pipeline(args)
    runner.prepare_inputs()
    script_args, ppo_args, _ = ppo_lag.make_parser().parse_args_into_dataclasses(args=runner.ppo_lag_argv())
    assert ppo_args.max_steps == 96 and ppo_args.cost_limit == -1.0 and ppo_args.ptx_coef == 1.0
    assert runner.eval_samples == 2  # the hour-long preset samples as well
    assert script_args.ptx_dataset_name == str(tmp_path / "run" / "ptx_train.jsonl")
    expected = load_demo_ptx_dataset("train", PRESETS["long"].ptx_prompts)
    assert script_args.load_ptx_dataset().to_list() == expected.to_list()
    # The cost model alone trains on the demo's second round as well.
    assert "--dataset_config iterated" in " ".join(runner.preference_argv("cost"))
    assert "--dataset_config combined" in " ".join(runner.preference_argv("reward"))
    # --ptx_prompts overrides the preset's choice.
    assert PRESETS["long"].ptx_prompts != "balanced"
    args = pipeline.PipelineArguments(
        output_dir=str(tmp_path / "other"), preset="long", model_name_or_path=str(base), ptx_prompts="balanced"
    )
    runner = pipeline.Pipeline(args)
    runner.prepare_inputs()
    written = expected_balanced = load_preference_data(runner.ptx_data, split="train").to_list()
    assert written == load_demo_ptx_dataset("train", "balanced").to_list()
    # The `finished` column (on by default): SmolLM2's 78 cut answers are learnt without an end of turn
    assert sum(not row["finished"] for row in written) == 78 and runner.results["ptx_open_cut_answers"] is True
    # --ptx_open_cut_answers false: the rows as the runs before the fix learnt them, whole turns, no column
    (parsed,) = pipeline.make_parser().parse_args_into_dataclasses(args=["--ptx_open_cut_answers", "false"])
    assert parsed.ptx_open_cut_answers is False
    args.output_dir, args.ptx_open_cut_answers = str(tmp_path / "closed"), False
    runner = pipeline.Pipeline(args)
    runner.prepare_inputs()
    written = load_preference_data(runner.ptx_data, split="train").to_list()
    assert written == load_demo_ptx_dataset("train", "balanced", open_cut_answers=False).to_list()
    assert "finished" not in written[0] and runner.results["ptx_open_cut_answers"] is False
    assert [row["completion"] for row in written] == [row["completion"] for row in expected_balanced]


def test_sft_preset_commands(tmp_path):
    """The `sft` preset: 480 supervised steps on `wide_lookalikes` (the pipeline writes the rows next to the run and
    hands them to the SFT stage and to PPO-Lag's PTX), PPO-Lag from the SFT policy at cost limit -2.2, the cost model
    on the fourth round, and an evaluation that reads refusals past an apology, greedy and sampled; `--evaluate_args`
    still wins over the preset's refusal rule."""
    from trl_safe.data import load_preference_data
    from trl_safe.demo import load_demo_ptx_dataset
    from trl_safe.pipeline import PRESETS
    from trl_safe.scripts import evaluate, ppo_lag, sft

    base = pipeline.build_tiny_base_model(tmp_path / "base", seed=0)
    (parsed,) = pipeline.make_parser().parse_args_into_dataclasses(args=["--preset", "sft"])
    assert parsed.preset == "sft"
    args = pipeline.PipelineArguments(output_dir=str(tmp_path / "run"), preset="sft", model_name_or_path=str(base))
    runner = pipeline.Pipeline(args)
    runner.prepare_inputs()
    assert runner.stages == ["reward", "cost", "sft", "ppo_lag", "evaluate"] and runner.eval_samples == 2
    written = load_preference_data(runner.ptx_data, split="train").to_list()
    assert written == load_demo_ptx_dataset("train", "wide_lookalikes").to_list()
    sft_args = sft.make_parser().parse_args_into_dataclasses(args=runner.sft_argv())
    script_args, training_args = sft_args[0], sft_args[1]
    assert script_args.dataset_name == runner.ptx_data and training_args.max_steps == 480
    ppo_script, ppo_args, ppo_model = ppo_lag.make_parser().parse_args_into_dataclasses(args=runner.ppo_lag_argv())
    assert ppo_args.cost_limit == -2.2 and ppo_args.max_steps == 36 and ppo_args.ptx_coef == 1.0
    assert ppo_model.model_name_or_path == runner.stage_dir("sft") and ppo_script.ptx_dataset_name == runner.ptx_data
    assert "--dataset_config iterated_round4" in " ".join(runner.preference_argv("cost"))
    for sampled in (False, True):
        (eval_config,) = evaluate.make_parser().parse_args_into_dataclasses(args=runner.evaluate_argv(sampled))
        assert eval_config.refusal_rule == "apology_aware"
    # --evaluate_args overrides the preset's rule; the other presets leave the evaluation's default rule alone.
    runner.args.evaluate_args = "--refusal_rule default"
    (eval_config,) = evaluate.make_parser().parse_args_into_dataclasses(args=runner.evaluate_argv())
    assert eval_config.refusal_rule == "default"
    runner.args.evaluate_args, runner.budget = "", PRESETS["long"]
    assert "--refusal_rule" not in runner.evaluate_argv()
    assert [name for name, budget in PRESETS.items() if budget.refusal_rule != "default"] == [
        "sft",
        "sft_select",
        "sft_checkpoints",
    ]


def test_sft_select_preset_commands(tmp_path):
    """The `sft_select` preset: the `sft` preset's SFT stage from three seeds on the train rows less a validation
    split (written beside the run, none of its prompts in a written row), no RL stage, and an evaluation of the SFT
    policy against the start."""
    from trl_safe.data import load_preference_data
    from trl_safe.demo import load_demo_ptx_dataset
    from trl_safe.scripts import evaluate, sft
    from trl_safe.sft_selection import split_validation

    base = pipeline.build_tiny_base_model(tmp_path / "base", seed=0)
    args = pipeline.PipelineArguments(
        output_dir=str(tmp_path / "run"), preset="sft_select", model_name_or_path=str(base), seed=7
    )
    runner = pipeline.Pipeline(args)
    runner.prepare_inputs()
    assert runner.stages == ["reward", "cost", "sft", "evaluate"] and runner.sft_candidates == 3
    rows = load_demo_ptx_dataset("train", "wide_lookalikes").to_list()
    split = split_validation(rows, seed=7)
    written = load_preference_data(runner.ptx_data, split="train").to_list()
    assert written == split.train_rows and len(written) < len(rows)
    saved = json.loads((tmp_path / "run" / "sft_validation.json").read_text())
    assert saved["seed"] == 7 and saved["validation"] == split.validation
    held = {prompt for prompts in split.validation.values() for prompt in prompts}
    assert not held & {row["prompt"][0]["content"] for row in written}
    _, training_args, _ = sft.make_parser().parse_args_into_dataclasses(args=runner.sft_argv("elsewhere", 1007))
    assert (training_args.output_dir, training_args.seed, training_args.max_steps) == ("elsewhere", 1007, 480)
    (evaluation,) = evaluate.make_parser().parse_args_into_dataclasses(args=runner.evaluate_argv())
    assert evaluation.policy_names == ["initial", "sft"] and evaluation.trainer_state is None
    assert evaluation.refusal_rule == "apology_aware" and runner.eval_samples == 2


def test_rl_checkpoint_every_holds_the_validation_split_out_of_sft_ptx_and_rollouts(tmp_path):
    """`--rl_checkpoint_every 12` on the `sft` preset: the validation split is written and left out of the SFT rows
    and of the rollout prompts (which PPO-Lag then reads as listed), the RL stage saves its weights every 12 steps,
    and the evaluation reads the last step beside the kept one when `policy/last_step/` holds it."""
    from trl_safe.data import load_preference_data, load_prompt_dataset
    from trl_safe.demo import load_demo_ptx_dataset
    from trl_safe.scripts import evaluate, ppo_lag
    from trl_safe.sft_selection import split_validation

    base = pipeline.build_tiny_base_model(tmp_path / "base", seed=0)
    args = pipeline.PipelineArguments(
        output_dir=str(tmp_path / "run"), preset="sft", model_name_or_path=str(base), seed=7, rl_checkpoint_every=12
    )
    runner = pipeline.Pipeline(args)
    runner.prepare_inputs()
    split = split_validation(load_demo_ptx_dataset("train", "wide_lookalikes").to_list(), seed=7)
    assert json.loads((tmp_path / "run" / "sft_validation.json").read_text())["validation"] == split.validation
    held = {prompt for prompts in split.validation.values() for prompt in prompts}
    assert load_preference_data(runner.ptx_data, split="train").to_list() == split.train_rows
    rollouts = load_prompt_dataset(runner.rollout_prompts, conversational=True, deduplicate=False)["prompt"]
    texts = [prompt[0]["content"] for prompt in rollouts]
    train = set(load_preference_data(runner.dataset_name, name=runner.dataset_config, split="train")["prompt"])
    assert held & train and set(texts) == train - held and len(texts) == len(set(texts))
    script_args, training_args, _ = ppo_lag.make_parser().parse_args_into_dataclasses(args=runner.ppo_lag_argv())
    assert script_args.dataset_name == runner.rollout_prompts and not script_args.deduplicate_prompts
    saving = (training_args.save_strategy, training_args.save_steps, training_args.save_only_model)
    assert saving == ("steps", 12, True)
    (evaluation,) = evaluate.make_parser().parse_args_into_dataclasses(args=runner.evaluate_argv())
    assert evaluation.policy_names == ["initial", "sft", "ppo_lag"]
    (tmp_path / "run" / "policy" / "last_step").mkdir(parents=True)
    (tmp_path / "run" / "policy" / "last_step" / "config.json").write_text("{}")
    (evaluation,) = evaluate.make_parser().parse_args_into_dataclasses(args=runner.evaluate_argv())
    assert evaluation.policy_names == ["initial", "sft", "ppo_lag_last", "ppo_lag"]
    assert evaluation.policies[2] == str(tmp_path / "run" / "policy" / "last_step")


def test_sft_checkpoints_preset_commands(tmp_path):
    """The `sft_checkpoints` preset: the `sft` preset's SFT stage on the train rows less the validation split, then
    72 steps of PPO-Lag without PTX saved every 12 steps (the pilot's command, docs/demo_outcome.md);
    `--rl_checkpoint_every 0` turns the reading off and gives the whole train split back."""
    from trl_safe.data import load_preference_data
    from trl_safe.demo import load_demo_ptx_dataset
    from trl_safe.pipeline import PRESETS
    from trl_safe.scripts import ppo_lag, sft
    from trl_safe.sft_selection import split_validation

    assert PRESETS["sft_checkpoints"] == replace(PRESETS["sft"], ppo_steps=36, ptx_coef=0.0, rl_checkpoint_every=12)
    base = pipeline.build_tiny_base_model(tmp_path / "base", seed=0)
    runner = pipeline.Pipeline(
        pipeline.PipelineArguments(
            output_dir=str(tmp_path / "run"), preset="sft_checkpoints", model_name_or_path=str(base), seed=7
        )
    )
    runner.prepare_inputs()
    assert runner.stages == ["reward", "cost", "sft", "ppo_lag", "evaluate"] and runner.rl_checkpoint_every == 12
    rows = load_demo_ptx_dataset("train", "wide_lookalikes").to_list()
    assert load_preference_data(runner.ptx_data, split="train").to_list() == split_validation(rows, seed=7).train_rows
    _, training_args, _ = sft.make_parser().parse_args_into_dataclasses(args=runner.sft_argv())
    assert training_args.max_steps == 480
    _, ppo_args, _ = ppo_lag.make_parser().parse_args_into_dataclasses(args=runner.ppo_lag_argv())
    assert (ppo_args.max_steps, ppo_args.ptx_coef, ppo_args.cost_limit) == (72, 0.0, -2.2)
    assert (ppo_args.save_strategy, ppo_args.save_steps) == ("steps", 12)

    off = pipeline.Pipeline(
        pipeline.PipelineArguments(
            output_dir=str(tmp_path / "off"),
            preset="sft_checkpoints",
            model_name_or_path=str(base),
            seed=7,
            rl_checkpoint_every=0,
        )
    )
    off.prepare_inputs()
    assert off.rl_checkpoint_every is None and not (tmp_path / "off" / "sft_validation.json").exists()
    assert load_preference_data(off.ptx_data, split="train").to_list() == rows


def test_rl_checkpoint_every_errors(tmp_path):
    with pytest.raises(ValueError, match=r"--rl_checkpoint_every must be 0 \(off\) or more"):
        pipeline.PipelineArguments(rl_checkpoint_every=-1)
    with pytest.raises(ValueError, match="sft_checkpoints preset reads the RL checkpoints .* --rl_checkpoint_every 0"):
        pipeline.Pipeline(
            pipeline.PipelineArguments(output_dir=str(tmp_path), preset="sft_checkpoints", dataset_name="my/data")
        )
    with pytest.raises(ValueError, match="--rl_checkpoint_every reads the RL checkpoints .* needs the demo data"):
        pipeline.PipelineArguments(dataset_name="my/data", rl_checkpoint_every=12)
    with pytest.raises(ValueError, match="the sft_select preset has no RL stage"):
        pipeline.Pipeline(
            pipeline.PipelineArguments(output_dir=str(tmp_path), preset="sft_select", rl_checkpoint_every=12)
        )


def test_sft_candidates_errors(tmp_path):
    with pytest.raises(ValueError, match="no RL stage, and --sft_steps 0 leaves no SFT stage"):
        pipeline.Pipeline(pipeline.PipelineArguments(output_dir=str(tmp_path), preset="sft_select", sft_steps=0))
    with pytest.raises(ValueError, match="--sft_candidates must be 1 or more"):
        pipeline.PipelineArguments(sft_candidates=0)
    with pytest.raises(ValueError, match="it needs an SFT stage"):
        pipeline.Pipeline(pipeline.PipelineArguments(output_dir=str(tmp_path), sft_candidates=3))
    with pytest.raises(ValueError, match="it needs the demo data"):
        pipeline.Pipeline(
            pipeline.PipelineArguments(
                output_dir=str(tmp_path), dataset_name="my/data", sft_steps=4, sft_args="--dataset_name my/sft",
                sft_candidates=2,
            )
        )  # fmt: skip


def test_ptx_is_off_without_pipeline_data(tmp_path):
    """PTX data come from the demo: with the user's data set, or with GRPO-Lag (no PTX term), PTX is off."""
    from trl_safe.demo import demo_data_dir

    base = pipeline.build_tiny_base_model(tmp_path / "base", seed=0)
    for extra in ({"dataset_name": str(demo_data_dir())}, {"rl_trainer": "grpo_lag"}):
        args = pipeline.PipelineArguments(
            output_dir=str(tmp_path / "run"), preset="long", model_name_or_path=str(base), **extra
        )
        runner = pipeline.Pipeline(args)
        runner.prepare_inputs()
        assert runner.ptx_data is None and "--ptx_coef" not in runner.ppo_lag_argv()


def test_quick_and_another_preset_is_refused():
    with pytest.raises(ValueError, match="two presets"):
        pipeline.PipelineArguments(quick=True, preset="long")
    assert pipeline.PipelineArguments(quick=True).preset == "quick"
    assert pipeline.PipelineArguments(model="tiny", preset="long").preset == "tiny"


def test_cost_model_alone_can_train_on_another_configuration(tmp_path):
    """`--cost_dataset_config iterated`: the cost model trains on the demo's second round as well; the reward model
    and PPO-Lag keep `combined`, and the held-out prompts stay `combined`'s test split."""
    from trl_safe.demo import load_demo_prompts
    from trl_safe.scripts import cost_model, ppo_lag

    base = pipeline.build_tiny_base_model(tmp_path / "base", seed=0)
    args = pipeline.PipelineArguments(
        output_dir=str(tmp_path / "run"), model_name_or_path=str(base), cost_dataset_config="iterated"
    )
    runner = pipeline.Pipeline(args)
    runner.prepare_inputs()
    configs = {
        stage: parser.parse_args_into_dataclasses(args=argv)[0].dataset_config
        for stage, parser, argv in (
            ("cost", cost_model.make_parser(), runner.preference_argv("cost")),
            ("reward", reward_model.make_parser(), runner.preference_argv("reward")),
            ("ppo_lag", ppo_lag.make_parser(), runner.ppo_lag_argv()),
        )
    }
    assert configs == {"cost": "iterated", "reward": "combined", "ppo_lag": "combined"}
    prompts = [json.loads(line)["prompt"] for line in open(runner.eval_prompts, encoding="utf-8")]
    assert prompts == load_demo_prompts("test", "combined")["prompt"]
    assert runner.results["cost_dataset_config"] == "iterated"


def test_a_cost_configuration_holding_held_out_prompts_is_refused():
    from trl_safe.demo import demo_data_dir
    from trl_safe.pipeline import check_held_out

    folder = str(demo_data_dir())
    check_held_out(folder, "iterated", "train", "combined", "test")  # the shipped data: disjoint
    with pytest.raises(ValueError, match=r"holds 111 prompt\(s\) of the held-out 'test' split of 'combined'"):
        check_held_out(folder, "iterated", "test", "combined", "test")


def test_the_presets_cost_configuration_is_for_the_demo_data_only(tmp_path):
    """A preset's `cost_dataset_config` names a configuration of the demo data: with the user's data set the cost
    model trains on the user's configuration."""
    import dataclasses

    from trl_safe.demo import demo_data_dir
    from trl_safe.pipeline import PRESETS

    base = pipeline.build_tiny_base_model(tmp_path / "base", seed=0)
    preset = dataclasses.replace(PRESETS["default"], cost_dataset_config="iterated")
    args = pipeline.PipelineArguments(
        output_dir=str(tmp_path / "run"), model_name_or_path=str(base), dataset_name=str(demo_data_dir())
    )
    runner = pipeline.Pipeline(args)
    runner.budget = preset
    runner.prepare_inputs()
    assert runner.cost_dataset_config is None and "--dataset_config" not in runner.preference_argv("cost")


def test_eval_samples_overrides_the_preset():
    """`--eval_samples` turns the sampled evaluation on for a preset that skips it, or off; a negative count is
    refused before anything runs."""
    assert pipeline.Pipeline(pipeline.PipelineArguments()).eval_samples == 0
    assert pipeline.Pipeline(pipeline.PipelineArguments(eval_samples=3)).eval_samples == 3
    assert pipeline.Pipeline(pipeline.PipelineArguments(preset="long", eval_samples=0)).eval_samples == 0
    with pytest.raises(ValueError, match="--eval_samples must be 0"):
        pipeline.PipelineArguments(eval_samples=-1)


def test_harmless_prompt_repeats_weight_the_rollout_prompts(tmp_path):
    """`--harmless_prompt_repeats 2` lists each harmless train prompt of the demo data twice in a prompt file that
    PPO-Lag reads without de-duplicating it: the rollouts draw harmless prompts twice as often, harmful ones as before,
    and no held-out prompt is among them."""
    from trl_safe.data import load_prompt_dataset
    from trl_safe.demo import demo_data_dir, load_demo_prompts
    from trl_safe.scripts import ppo_lag

    runner = pipeline.Pipeline(pipeline.PipelineArguments(output_dir=str(tmp_path), harmless_prompt_repeats=2))
    runner.base_model, runner.dataset_name, runner.num_layers = "some/model", str(demo_data_dir()), 30
    runner.dataset_config, runner.eval_prompts = "combined", "prompts.jsonl"
    path = pipeline.write_rollout_prompts(runner.dataset_name, "combined", "train", 2, tmp_path / "rollouts.jsonl")
    runner.rollout_prompts = str(path)
    script_args, _, _ = ppo_lag.make_parser().parse_args_into_dataclasses(args=runner.ppo_lag_argv())
    assert script_args.dataset_name == str(path) and script_args.dataset_config is None
    assert not script_args.deduplicate_prompts

    rollout = load_prompt_dataset(path, conversational=True, deduplicate=False)["prompt"]
    texts = [prompt[0]["content"] for prompt in rollout]
    train = load_demo_prompts("train", "combined")
    harmless = [row["prompt"] for row in train if row["label"] == "safe"]
    harmful = [row["prompt"] for row in train if row["label"] == "unsafe"]
    assert len(texts) == 2 * len(harmless) + len(harmful)
    assert {texts.count(p) for p in harmless} == {2} and {texts.count(p) for p in harmful} == {1}
    assert not set(texts) & set(load_demo_prompts("test", "combined")["prompt"])
    # Without repeats the pipeline passes the data set itself, de-duplicated as before.
    plain = pipeline.Pipeline(pipeline.PipelineArguments(output_dir=str(tmp_path)))
    plain.base_model, plain.dataset_name, plain.num_layers = "some/model", "some/data", 30
    plain.dataset_config = "combined"
    script_args, _, _ = ppo_lag.make_parser().parse_args_into_dataclasses(args=plain.ppo_lag_argv())
    assert script_args.dataset_name == "some/data" and script_args.deduplicate_prompts


def test_harmless_prompt_repeats_need_prompt_labels(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"prompt": "p"}) + "\n")
    with pytest.raises(ValueError, match="needs a `prompt_label` column"):
        pipeline.write_rollout_prompts(str(rows), None, "train", 2, tmp_path / "out.jsonl")
    rows.write_text("".join(json.dumps({"prompt": "p", "prompt_label": label}) + "\n" for label in ("safe", "unsafe")))
    with pytest.raises(ValueError, match="row 1: prompt_label 'unsafe'"):
        pipeline.write_rollout_prompts(str(rows), None, "train", 2, tmp_path / "out.jsonl")
    with pytest.raises(ValueError, match="--harmless_prompt_repeats must be 1 or more, got 0"):
        pipeline.PipelineArguments(output_dir=str(tmp_path), harmless_prompt_repeats=0)


def test_rollout_twins_add_the_look_alikes_to_the_rollout_prompts(tmp_path):
    """`--rollout_twins` lists the 77 look-alike twins once each after the demo's train prompts: RL then draws
    harmless requests in harmful prompts' words, and none of them is a held-out prompt."""
    from trl_safe.data import load_prompt_dataset
    from trl_safe.demo import load_demo_prompts, load_demo_twins

    runner = pipeline.Pipeline(pipeline.PipelineArguments(output_dir=str(tmp_path), model="tiny", rollout_twins=True))
    runner.prepare_inputs()
    assert runner.results["rollout_twins"] is True and runner.rollout_prompts is not None
    rollout = load_prompt_dataset(runner.rollout_prompts, conversational=True, deduplicate=False)["prompt"]
    texts = [prompt[0]["content"] for prompt in rollout]
    train = load_demo_prompts("train", runner.dataset_config)["prompt"]
    twins = load_demo_twins()["prompt"]
    assert len(twins) == 77 and texts == [*dict.fromkeys(train), *twins]
    assert not set(texts) & set(load_demo_prompts("test", runner.dataset_config)["prompt"])

    with pytest.raises(ValueError, match="already prompts of"):
        pipeline.write_rollout_prompts(
            runner.dataset_name, runner.dataset_config, "train", 1, tmp_path / "x.jsonl", extra_harmless=train[:1]
        )
    with pytest.raises(ValueError, match="listed more than once"):
        pipeline.write_rollout_prompts(
            runner.dataset_name, runner.dataset_config, "train", 1, tmp_path / "x.jsonl", extra_harmless=twins[:1] * 2
        )
    with pytest.raises(ValueError, match="--rollout_twins adds the demo data's look-alike twins"):
        pipeline.PipelineArguments(output_dir=str(tmp_path), dataset_name="my/data", rollout_twins=True)


def test_sft_stage_commands(tmp_path):
    """`--sft_steps`: an SFT stage on the PTX data with PPO-Lag's LoRA, batch size and learning rate (constant);
    PPO-Lag starts from the SFT policy, and the evaluation compares the original start, the SFT policy and the
    trained one (the outcome stays trained against the original start)."""
    from trl_safe.scripts import evaluate, ppo_lag, sft

    def runner_with(**arguments) -> pipeline.Pipeline:
        runner = pipeline.Pipeline(pipeline.PipelineArguments(output_dir=str(tmp_path), **arguments))
        runner.base_model, runner.dataset_name, runner.num_layers = "some/model", "some/data", 30
        runner.dataset_config, runner.eval_prompts, runner.ptx_data = "combined", "prompts.jsonl", "ptx.jsonl"
        return runner

    runner = runner_with(sft_steps=240)
    assert runner.stages == ["reward", "cost", "sft", "ppo_lag", "evaluate"]
    assert runner.stage_index("sft") == "3/5" and runner.stage_index("evaluate") == "5/5"
    script_args, sft_args, model_args = sft.make_parser().parse_args_into_dataclasses(args=runner.sft_argv())
    assert script_args.dataset_name == "ptx.jsonl" and model_args.model_name_or_path == "some/model"
    assert (sft_args.max_steps, sft_args.per_device_train_batch_size, sft_args.learning_rate) == (240, 8, 5e-4)
    assert sft_args.lr_scheduler_type == "constant" and sft_args.output_dir == str(tmp_path / "sft_policy")
    assert model_args.use_peft and model_args.lora_task_type == "CAUSAL_LM" and model_args.lora_alpha == 64
    _, _, ppo_model_args = ppo_lag.make_parser().parse_args_into_dataclasses(args=runner.ppo_lag_argv())
    assert ppo_model_args.model_name_or_path == str(tmp_path / "sft_policy")
    (evaluation,) = evaluate.make_parser().parse_args_into_dataclasses(args=runner.evaluate_argv())
    assert evaluation.policy_names == ["initial", "sft", "ppo_lag"]
    assert evaluation.policies == ["some/model", str(tmp_path / "sft_policy"), str(tmp_path / "policy")]
    # `--sft_average_last`: the SFT stage averages its last steps and keeps the last one's weights, read first.
    runner = runner_with(sft_steps=240, sft_average_last=60)
    _, sft_args, _ = sft.make_parser().parse_args_into_dataclasses(args=runner.sft_argv())
    assert (sft_args.average_last_steps, sft_args.save_unaveraged) == (60, True)
    (evaluation,) = evaluate.make_parser().parse_args_into_dataclasses(args=runner.evaluate_argv())
    assert evaluation.policy_names == ["initial", "sft_unaveraged", "sft", "ppo_lag"]
    assert evaluation.policies[1] == str(tmp_path / "sft_policy" / "unaveraged")
    # Extra SFT arguments win.
    runner = runner_with(sft_steps=240, sft_args="--learning_rate 1e-4")
    _, sft_args, _ = sft.make_parser().parse_args_into_dataclasses(args=runner.sft_argv())
    assert sft_args.learning_rate == 1e-4
    assert sft_args.average_last_steps is None and "--average_last_steps" not in runner.sft_argv()

    runner = runner_with()  # every preset: no SFT stage
    assert "sft" not in runner.stages and runner.stage_index("ppo_lag") == "3/4"
    _, _, ppo_model_args = ppo_lag.make_parser().parse_args_into_dataclasses(args=runner.ppo_lag_argv())
    assert ppo_model_args.model_name_or_path == "some/model"
    (evaluation,) = evaluate.make_parser().parse_args_into_dataclasses(args=runner.evaluate_argv())
    assert evaluation.policy_names == ["initial", "ppo_lag"]


def test_a_run_without_its_rl_stage_evaluates_the_sft_policy(tmp_path):
    """`--stages sft evaluate` (or with the scorers) and no RL policy yet: the evaluation compares the SFT policy with
    the start, with no training log to plot; once an RL policy exists, or the RL stage runs, it is evaluated too."""
    from trl_safe.scripts import evaluate

    def evaluation_of(**arguments):
        runner = pipeline.Pipeline(pipeline.PipelineArguments(output_dir=str(tmp_path), sft_steps=240, **arguments))
        runner.base_model, runner.dataset_name, runner.num_layers = "some/model", "some/data", 30
        runner.dataset_config, runner.eval_prompts, runner.ptx_data = "combined", "prompts.jsonl", "ptx.jsonl"
        (evaluation,) = evaluate.make_parser().parse_args_into_dataclasses(args=runner.evaluate_argv())
        return runner, evaluation

    runner, evaluation = evaluation_of(stages=["sft", "evaluate"])
    assert evaluation.policy_names == ["initial", "sft"] and evaluation.trainer_state is None
    runner.check_reusable("ppo_lag")  # no error: nothing reads the missing RL policy
    _, evaluation = evaluation_of(stages=["sft", "ppo_lag", "evaluate"])
    assert evaluation.policy_names == ["initial", "sft", "ppo_lag"]
    assert evaluation.trainer_state == str(tmp_path / "policy")
    (tmp_path / "policy").mkdir()
    (tmp_path / "policy" / "config.json").write_text("{}")
    _, evaluation = evaluation_of(stages=["evaluate"])
    assert evaluation.policy_names == ["initial", "sft", "ppo_lag"]


@pytest.mark.slow
def test_the_sft_stage_alone_is_evaluated_against_the_start(tiny_run, tmp_path):
    import shutil

    for scorer in ("reward_model", "cost_model"):  # the tiny run's R and C, reused as a user would
        shutil.copytree(tiny_run[0] / scorer, tmp_path / scorer)
    args = pipeline.PipelineArguments(
        output_dir=str(tmp_path), model="tiny", sft_steps=2, stages=["sft", "evaluate"], sft_interpolation=0.5
    )
    results = pipeline.main(args)
    assert set(results["stage_seconds"]) == {"sft", "evaluate"}
    assert set(results["evaluate"]["summaries"]) == {"initial", "sft"} and "ppo_lag" not in results
    assert results["evaluate"]["outcome"] is not None  # the SFT policy against the start
    assert not (tmp_path / "policy").exists()
    # `--sft_interpolation 0.5`: half the SFT update kept, in place, the trainer's log beside it
    assert results["sft"]["alpha"] == 0.5 and results["sft"]["steps"] == 2
    assert {"interpolation.json", "trainer_state.json", "model.safetensors"} <= set(
        os.listdir(tmp_path / "sft_policy")
    )
    assert not (tmp_path / "sft_policy.interpolating").exists()
    assert "SFT update kept (θ_0 + α (θ − θ_0)) | α = 0.5" in (tmp_path / "summary.md").read_text()


@pytest.mark.slow
def test_sft_candidates_are_trained_read_on_validation_prompts_and_one_kept(tiny_run, tmp_path):
    """`--sft_candidates 2` on tiny models: two SFT policies from seeds 42 and 1042, each read on the validation
    prompts, the rule's choice copied to `sft_policy/` and evaluated; run again, the candidates are reused."""
    import shutil

    from trl_safe.sft_selection import Candidate, select_candidate

    for scorer in ("reward_model", "cost_model"):
        shutil.copytree(tiny_run[0] / scorer, tmp_path / scorer)
    args = pipeline.PipelineArguments(
        output_dir=str(tmp_path), model="tiny", sft_steps=2, sft_candidates=2, stages=["sft", "evaluate"]
    )
    results = pipeline.main(args)
    root = tmp_path / "sft_candidates"
    selection = json.loads((root / "selection.json").read_text())
    assert [c["name"] for c in selection["candidates"]] == ["seed42", "seed1042"]
    candidates = [Candidate(**c) for c in selection["candidates"]]
    assert selection["chosen"] == select_candidate(candidates)[0].name == results["sft_selection"]["chosen"]
    for candidate in candidates:
        reading = json.loads((root / candidate.name / "validation_reading.json").read_text())
        assert Candidate.from_reading(candidate.name, reading) == candidate
    chosen = root / selection["chosen"]
    assert (tmp_path / "sft_policy" / "model.safetensors").read_bytes() == (chosen / "model.safetensors").read_bytes()
    assert set(results["evaluate"]["summaries"]) == {"initial", "sft"} and results["sft"]["steps"] == 2
    assert "SFT policy chosen among 2 seeds" in (tmp_path / "summary.md").read_text()
    stamps = {c.name: (root / c.name / "model.safetensors").stat().st_mtime_ns for c in candidates}
    results = pipeline.main(args)  # resumed: nothing trained again, the same choice
    assert {c.name: (root / c.name / "model.safetensors").stat().st_mtime_ns for c in candidates} == stamps
    assert results["sft_selection"]["chosen"] == selection["chosen"]


@pytest.mark.slow
def test_sft_average_last_evaluates_the_average_beside_the_last_steps_weights(tiny_run, tmp_path):
    """`--sft_average_last 2` with LoRA: the SFT policy is the mean of its last two steps, the last step's weights are
    merged into `sft_policy/unaveraged/`, and the evaluation reads both on the same prompts."""
    import shutil

    from safetensors.torch import load_file

    for scorer in ("reward_model", "cost_model"):
        shutil.copytree(tiny_run[0] / scorer, tmp_path / scorer)
    args = pipeline.PipelineArguments(
        output_dir=str(tmp_path), model="tiny", use_peft=True, sft_steps=3, sft_average_last=2,
        stages=["sft", "evaluate"],
    )  # fmt: skip
    results = pipeline.main(args)
    sft_dir = tmp_path / "sft_policy"
    for folder in (sft_dir, sft_dir / "unaveraged"):
        files = {path.name for path in folder.iterdir()}
        assert {"config.json", "model.safetensors"} <= files and "adapter_config.json" not in files
    averaged, last = (load_file(folder / "model.safetensors") for folder in (sft_dir, sft_dir / "unaveraged"))
    assert averaged.keys() == last.keys() and any(not torch.equal(averaged[k], last[k]) for k in averaged)
    assert list(results["evaluate"]["summaries"]) == ["initial", "sft_unaveraged", "sft"]
    assert "mean over optimizer steps 2-3" in (sft_dir / "README.md").read_text()
    assert (results["sft"]["tail_average_first_step"], results["sft"]["tail_average_steps"]) == (2, 2)
    assert "| SFT weights averaged over steps (tail averaging) | 2-3 |" in (tmp_path / "summary.md").read_text()

    shutil.rmtree(sft_dir / "unaveraged")  # the evaluation alone, on an SFT stage trained without it
    with pytest.raises(FileNotFoundError, match="holds none"):
        pipeline.main(pipeline.PipelineArguments(**{**vars(args), "stages": ["evaluate"]}))


def test_sft_steps_errors(tmp_path):
    with pytest.raises(ValueError, match="--sft_steps must be 0"):
        pipeline.PipelineArguments(sft_steps=-1)
    with pytest.raises(ValueError, match="alpha must be a finite number >= 0"):
        pipeline.PipelineArguments(sft_interpolation=-0.5)
    with pytest.raises(ValueError, match="it needs an SFT stage"):
        pipeline.Pipeline(pipeline.PipelineArguments(output_dir=str(tmp_path), sft_steps=0, sft_interpolation=0.5))
    with pytest.raises(ValueError, match="SFT data for the demo data only"):
        pipeline.Pipeline(pipeline.PipelineArguments(output_dir=str(tmp_path), dataset_name="my/data", sft_steps=4))
    args = pipeline.PipelineArguments(
        output_dir=str(tmp_path), dataset_name="my/data", sft_steps=4, sft_args="--dataset_name my/sft"
    )
    assert "sft" in pipeline.Pipeline(args).stages
    with pytest.raises(ValueError, match="--sft_average_last must be 1 or more"):
        pipeline.PipelineArguments(sft_average_last=0)
    with pytest.raises(ValueError, match="use one at a time"):
        pipeline.PipelineArguments(sft_average_last=2, sft_interpolation=0.5)
    with pytest.raises(ValueError, match=r"averages more steps than the SFT stage takes \(4; --sft_steps\)"):
        pipeline.Pipeline(pipeline.PipelineArguments(output_dir=str(tmp_path), sft_steps=4, sft_average_last=5))


@pytest.mark.slow
def test_the_sft_stage_runs_and_ppo_lag_starts_from_it_and_a_checkpoint_is_kept(tiny_run, tmp_path, monkeypatch):
    """A tiny run with an SFT stage and `--rl_checkpoint_every 1`: the merged SFT policy, PPO-Lag's reference built
    from it, the SFT steps in the summary; both RL steps (the checkpoint, a LoRA adapter, and the final policy) read
    on the validation prompts, the kept one (step 1, the rule forced to the first) merged into `policy/`, the last
    step moved to `policy/last_step/`, and four policies in the evaluation."""
    import shutil

    from transformers import AutoModelForCausalLM

    from trl_safe.data import load_prompt_dataset
    from trl_safe.lora_checkpoints import load_plain_model
    from trl_safe.scripts import safe_rlhf_pipeline
    from trl_safe.sft_selection import Candidate

    for scorer in ("reward_model", "cost_model"):  # the tiny run's R and C, reused as a user would
        shutil.copytree(tiny_run[0] / scorer, tmp_path / scorer)
    monkeypatch.setattr(safe_rlhf_pipeline, "select_checkpoint", lambda candidates: (candidates[0], "the first"))
    args = pipeline.PipelineArguments(
        output_dir=str(tmp_path), model="tiny", use_peft=True, sft_steps=2, rl_checkpoint_every=1,
        stages=["sft", "ppo_lag", "evaluate"],
    )  # fmt: skip
    results = pipeline.main(args)
    assert set(results["stage_seconds"]) == {"sft", "ppo_lag", "evaluate"}
    files = {path.name for path in (tmp_path / "sft_policy").iterdir()}
    assert {"config.json", "model.safetensors", "README.md", "trainer_state.json"} <= files
    assert "adapter_config.json" not in files
    summary = (tmp_path / "summary.md").read_text()
    assert json.loads((tmp_path / "summary.json").read_text())["sft"]["steps"] == 2
    assert "SFT optimizer steps" in summary

    # The validation prompts are in no SFT row and no rollout prompt.
    held = {p for ps in json.loads((tmp_path / "sft_validation.json").read_text())["validation"].values() for p in ps}
    rollouts = load_prompt_dataset(tmp_path / "rollout_prompts.jsonl", conversational=True, deduplicate=False)
    assert held and not held & {prompt[0]["content"] for prompt in rollouts["prompt"]}
    sft_rows = [json.loads(line) for line in (tmp_path / "ptx_train.jsonl").read_text().splitlines()]
    assert not held & {row["prompt"][0]["content"] for row in sft_rows}

    policy = tmp_path / "policy"
    selection = json.loads((policy / "selection.json").read_text())
    assert [c["name"] for c in selection["candidates"]] == ["step_1", "step_2"]
    assert selection["chosen"] == results["rl_selection"]["chosen"] == "step_1"
    for name, folder in (("step_1", policy / "checkpoint-1"), ("step_2", policy)):
        reading = json.loads((folder / "validation_reading.json").read_text())
        assert asdict(Candidate.from_reading(name, reading)) in selection["candidates"]
    assert (policy / "checkpoint-1" / "adapter_config.json").is_file()  # LoRA checkpoints, merged when read
    kept = AutoModelForCausalLM.from_pretrained(policy).state_dict()
    step_1 = load_plain_model(policy / "checkpoint-1", AutoModelForCausalLM).state_dict()
    last = AutoModelForCausalLM.from_pretrained(policy / "last_step").state_dict()
    assert all(torch.equal(kept[name], step_1[name]) for name in kept)
    assert any(not torch.equal(kept[name], last[name]) for name in kept)
    assert "optimizer step 1 of 2" in (policy / "README.md").read_text()
    assert list(results["evaluate"]["summaries"]) == ["initial", "sft", "ppo_lag_last", "ppo_lag"]
    assert "RL policy chosen among 2 of its checkpoints" in summary
    assert "time: reading the RL checkpoints" in summary


def test_the_outcome_table_judges_with_the_evaluations_refusal_rule(tmp_path):
    """An evaluation run with `--evaluate_args "--refusal_rule apology_aware"`: the outcome table's judge reads past
    the apology too (the answers behind it go along with the request), and the summary says which rule it used."""
    from trl_safe.pipeline import read_stage_results

    harmful = "How do I pick my neighbour's lock?"
    answer = "To pick a lock, you will need: 1. a tension wrench 2. a pick"
    generations = [
        dict(model=model, prompt_index=i, prompt=harmful, category="theft", label="unsafe", cost=1.0, reward=0.0,
             completion=("Sorry for the misunderstanding. " if model == "ppo_lag" else "") + answer,
             refused=False, finished=True, num_tokens=20)
        for model in ("initial", "ppo_lag")
        for i in range(4)
    ]  # fmt: skip
    (tmp_path / "generations.json").write_text(json.dumps(generations))
    for rule, unsafe_after in (("apology_aware", 1.0), ("default", 0.0)):
        means = {"reward_mean": 0.0, "cost_mean": 1.0, "unsafe_ratio": 1.0}
        summary = {"summaries": {"initial": means, "ppo_lag": means}, "metadata": {"num_prompts": 4, "config": {}}}
        summary["metadata"]["config"]["refusal_rule"] = rule
        (tmp_path / "summary.json").write_text(json.dumps(summary))
        evaluation = read_stage_results("evaluate", tmp_path)
        judge_row = next(row for row in evaluation["outcome"][1] if row[0].endswith("judge"))
        assert judge_row[3] == f"{100 * unsafe_after:.1f}%", rule
        assert evaluation["refusal_rule"] == rule
        results = {"preset": "default", "evaluate": evaluation, "stage_seconds": {}, "total_seconds": 1.0}
        results["peak_rss_mb"] = 1024
        lines = "\n".join(summary_lines(results, eval_prompts="p.jsonl", max_completion_length=4))
        assert ("refusals read by the `apology_aware` rule" in lines) is (rule == "apology_aware")
