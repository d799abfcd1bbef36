"""`examples/safe_rlhf_pipeline.py` end to end on tiny models: the same code path as `make demo`, in seconds."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

PIPELINE_FILE = Path(__file__).resolve().parents[1] / "examples" / "safe_rlhf_pipeline.py"


@pytest.fixture(scope="module")
def pipeline():
    spec = importlib.util.spec_from_file_location("safe_rlhf_pipeline_under_test", PIPELINE_FILE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def tiny_run(pipeline, tmp_path_factory):
    """One whole tiny run, with LoRA so that the adapter merging between stages is exercised too."""
    output_dir = tmp_path_factory.mktemp("pipeline")
    args = pipeline.PipelineArguments(output_dir=str(output_dir), model="tiny", use_peft=True)
    return output_dir, pipeline.main(args)


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


def test_summary_holds_the_final_table(tiny_run):
    output_dir, results = tiny_run
    saved = json.loads((output_dir / "summary.json").read_text())
    assert saved["preset"] == "tiny" and saved["arguments"]["use_peft"] is True
    for stage in ("reward", "cost"):
        assert 0.0 <= saved[stage]["eval_accuracy"] <= 1.0
    assert 0.0 <= saved["cost"]["eval_sign_accuracy"] <= 1.0
    assert saved["ppo_lag"]["steps"] == 2 and saved["ppo_lag"]["final_lambda"] > 0
    summaries = saved["evaluate"]["summaries"]
    assert set(summaries) == {"initial", "ppo_lag"}
    assert all(summary["num_samples"] == 6 for summary in summaries.values())
    assert saved["peak_rss_mb"] > 0

    table = (output_dir / "summary.md").read_text()
    for needle in ("| initial |", "| ppo_lag |", "reward model accuracy", "cost model sign accuracy", "final λ"):
        assert needle in table


def test_held_out_prompts_are_the_test_split(tiny_run):
    output_dir, _ = tiny_run
    prompts = [json.loads(line) for line in (output_dir / "eval_prompts.jsonl").read_text().splitlines()]
    assert len(prompts) == 40
    assert {row["label"] for row in prompts} == {"safe", "unsafe"}
    from trl_safe.demo import load_demo_dataset

    assert {row["prompt"] for row in prompts}.isdisjoint(load_demo_dataset("train")["prompt"])


def test_a_stage_can_rerun_alone_and_reuses_the_others(pipeline, tiny_run):
    output_dir, first = tiny_run
    args = pipeline.PipelineArguments(output_dir=str(output_dir), model="tiny", stages=["evaluate"])
    results = pipeline.main(args)
    assert set(results["stage_seconds"]) == {"evaluate"}
    # The reused stages' numbers come from what they wrote.
    assert results["reward"]["eval_accuracy"] == first["reward"]["eval_accuracy"]
    assert results["ppo_lag"]["final_lambda"] == first["ppo_lag"]["final_lambda"]


def test_skipping_a_stage_whose_output_is_missing_fails_clearly(pipeline, tmp_path):
    args = pipeline.PipelineArguments(output_dir=str(tmp_path), model="tiny", stages=["ppo_lag"])
    with pytest.raises(FileNotFoundError, match="'reward' is skipped"):
        pipeline.main(args)


def test_unknown_stage_is_refused(pipeline):
    with pytest.raises(ValueError, match="Unknown stage"):
        pipeline.PipelineArguments(stages=["rm"])


def test_lora_targets_only_the_top_layers(pipeline):
    pattern = pipeline.lora_target_modules(num_layers=30, lora_layers=8)
    assert re.fullmatch(pattern, "model.layers.22.self_attn.q_proj")
    assert re.fullmatch(pattern, "base_model.model.model.layers.29.mlp.down_proj")
    assert not re.fullmatch(pattern, "model.layers.21.self_attn.q_proj")
    assert not re.fullmatch(pattern, "model.layers.2.mlp.up_proj")  # "2" must not match "22"-"29" prefixes
    assert not re.fullmatch(pattern, "model.layers.25.input_layernorm")


def test_stage_commands_parse_with_the_scripts_own_parsers(pipeline, tmp_path):
    """What the pipeline prints as "run alone" is a valid command line of each example script."""
    from trl import ModelConfig

    from trl_safe import PreferenceScriptArguments, RewardConfig  # what examples/reward_model.py parses with

    runner = pipeline.Pipeline(pipeline.PipelineArguments(output_dir=str(tmp_path), model="tiny", use_peft=True))
    runner.base_model, runner.dataset_name, runner.num_layers = "some/model", "some/data", 4
    script_args, training_args, model_args = pipeline.parse_stage_args(
        (PreferenceScriptArguments, RewardConfig, ModelConfig), runner.preference_argv("reward")
    )
    assert script_args.conversational and model_args.use_peft and model_args.lora_task_type == "SEQ_CLS"
    assert training_args.max_steps == 3 and training_args.output_dir == str(tmp_path / "reward_model")
