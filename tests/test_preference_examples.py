"""End-to-end runs of `trl-safe reward_model` and `trl-safe cost_model` on a tiny model, offline."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from trl import ModelConfig

from trl_safe import CostConfig, PreferenceScriptArguments, RewardConfig
from trl_safe.scoring import last_token_scores
from trl_safe.scripts import cost_model, reward_model
from trl_safe.testing_utils import make_tiny_causal_lm, make_tiny_tokenizer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture
def tiny_checkpoint(tmp_path) -> Path:
    """A tiny causal LM and its tokenizer (pad == EOS, like many chat models) saved as a local checkpoint."""
    tokenizer = make_tiny_tokenizer(pad_equals_eos=True)
    path = tmp_path / "tiny-lm"
    make_tiny_causal_lm(tokenizer).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def pku_file(tmp_path) -> Path:
    """Six PKU-SafeRLHF-format rows, the last one with contradictory labels, plus an extra column."""
    rows = [
        {
            "prompt": f"Question {i}?",
            "response_0": f"Answer {i}, politely.",
            "response_1": f"Answer {i}, rudely!",
            "is_response_0_safe": True,
            "is_response_1_safe": i % 2 == 0,
            "better_response_id": i % 2,
            "safer_response_id": 0,
            "prompt_source": "test",
        }
        for i in range(5)
    ]
    rows.append({**rows[1], "is_response_0_safe": False, "is_response_1_safe": True})
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def training_args(config_class, tmp_path, **overrides):
    values = dict(
        output_dir=str(tmp_path / "out"),
        max_steps=2,
        per_device_train_batch_size=2,
        report_to="none",
        activation_checkpointing=False,  # no bf16=False: the configs pick the precision from the hardware
        save_strategy="no",
        disable_tqdm=True,
    )
    values.update(overrides)
    return config_class(**values)


def test_reward_example_main(tiny_checkpoint, pku_file, tmp_path):
    trainer = reward_model.main(
        PreferenceScriptArguments(dataset_name=str(pku_file)),
        training_args(RewardConfig, tmp_path),
        ModelConfig(model_name_or_path=str(tiny_checkpoint)),
    )
    assert trainer.state.global_step == 2
    assert len(trainer.train_dataset) == 6  # the helpfulness view keeps the contradictory safety row

    out = tmp_path / "out"
    model = AutoModelForSequenceClassification.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.num_labels == 1
    # The example gave the tokenizer a pad token other than EOS, so RewardTrainer scored the EOS token.
    assert tokenizer.pad_token == "<unk>" and tokenizer.eos_token == "<eos>"
    batch = tokenizer(["Question 1?\nAnswer 1, politely.<eos>", "Hi<eos>"], padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, last_token_scores(model, **batch))
    assert "reward-trainer" in (out / "README.md").read_text()


def test_cost_example_main(tiny_checkpoint, pku_file, tmp_path, capsys):
    trainer = cost_model.main(
        PreferenceScriptArguments(dataset_name=str(pku_file), conversational=True),
        training_args(CostConfig, tmp_path),
        ModelConfig(model_name_or_path=str(tiny_checkpoint)),
    )
    assert trainer.state.global_step == 2
    assert len(trainer.train_dataset) == 5  # the contradictory row is dropped ...
    assert (
        "Rows left out: 1 with contradictory safety labels, 0 longer than max_length=1024." in capsys.readouterr().out
    )

    out = tmp_path / "out"
    assert AutoModelForSequenceClassification.from_pretrained(out).config.num_labels == 1
    card = (out / "README.md").read_text()
    assert "- cost-model" in card and "C > 0 means unsafe" in card
    assert "datasets:" not in card  # a local file is not a Hub data set

    with pytest.raises(ValueError, match="contradictory safety labels"):  # ... or refused, on request
        cost_model.main(
            PreferenceScriptArguments(dataset_name=str(pku_file), on_contradiction="raise"),
            training_args(CostConfig, tmp_path),
            ModelConfig(model_name_or_path=str(tiny_checkpoint)),
        )


@pytest.mark.slow
def test_cost_example_command_line_with_lora_and_evaluation(tiny_checkpoint, pku_file, tmp_path):
    out = tmp_path / "cli"
    command = [
        sys.executable,
        str(EXAMPLES / "cost_model.py"),
        f"--model_name_or_path={tiny_checkpoint}",
        f"--dataset_name={pku_file}",
        "--dataset_test_split=train",
        "--eval_strategy=steps",
        "--eval_steps=2",
        f"--output_dir={out}",
        "--max_steps=2",
        "--per_device_train_batch_size=2",
        "--use_peft",
        "--lora_r=4",
        "--lora_target_modules",  # a list (a single `=` value would be a regular expression for PEFT)
        "q_proj",
        "v_proj",
        "--regularization=0.01",
        "--activation_checkpointing=false",  # and no --bf16=false: the script must run on a CPU as it is
        "--save_strategy=no",
        "--report_to=none",
        "--disable_tqdm=true",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "using lora_task_type='SEQ_CLS'" in result.stderr
    # No warning the user did not cause: the configs' deprecated `gradient_checkpointing`, pin_memory without an
    # accelerator. (PEFT's own read of the model's `is_gradient_checkpointing` still warns: upstream, not ours.)
    assert "`gradient_checkpointing` is deprecated" not in result.stderr and "pin_memory" not in result.stderr
    assert (out / "adapter_config.json").is_file()
    assert json.loads((out / "adapter_config.json").read_text())["task_type"] == "SEQ_CLS"
    card = (out / "README.md").read_text()
    assert "| `regularization` | 0.01 |" in card and "`eval_sign_accuracy`" in card
    eval_results = json.loads((out / "eval_results.json").read_text())
    assert 0 <= eval_results["eval_sign_accuracy"] <= 1
