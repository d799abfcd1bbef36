"""`trl_safe.lora_checkpoints`: a saved LoRA adapter read as the plain model it stands for."""

from __future__ import annotations

import json

import pytest
import torch

from trl_safe.lora_checkpoints import load_merged_lora, merge_lora, tokenizer_source
from trl_safe.testing_utils import make_tiny_chat_tokenizer, save_tiny_lora_adapter


@pytest.fixture(scope="module")
def tokenizer():
    return make_tiny_chat_tokenizer("smollm2")


def save_adapter(tokenizer, tmp_path, with_tokenizer: bool):
    """The adapter folder of `save_tiny_lora_adapter` and the logits of the adapted model."""
    _, adapter, model = save_tiny_lora_adapter(tokenizer, tmp_path, with_tokenizer)
    with torch.no_grad():
        return adapter, model(input_ids=torch.tensor([[1, 2, 3, 4]])).logits


def test_tokenizer_source_is_the_folder_unless_an_adapter_was_saved_alone(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    assert tokenizer_source(plain) == str(plain)  # a model folder (or a Hub id): its own tokenizer
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "org/base"}))
    assert tokenizer_source(alone) == "org/base"
    (alone / "tokenizer_config.json").write_text("{}")  # saved with its tokenizer: that one
    assert tokenizer_source(alone) == str(alone)


@pytest.mark.parametrize("with_tokenizer", [True, False], ids=["adapter with tokenizer", "adapter alone"])
def test_load_merged_lora_gives_the_adapted_model_with_its_pad_token(tokenizer, tmp_path, with_tokenizer):
    from transformers import AutoModelForCausalLM

    adapter, expected = save_adapter(tokenizer, tmp_path, with_tokenizer)
    merged = load_merged_lora(adapter, AutoModelForCausalLM)
    assert not hasattr(merged, "peft_config")  # a plain transformers model
    assert merged.config.pad_token_id == tokenizer.pad_token_id
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=torch.tensor([[1, 2, 3, 4]])).logits, expected)


def test_merge_lora_replaces_the_adapter_files_by_the_merged_model(tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM

    adapter, expected = save_adapter(tokenizer, tmp_path, with_tokenizer=True)
    (adapter / "README.md").write_text("model card")  # what the stage wrote besides the adapter stays
    merge_lora(adapter, AutoModelForCausalLM)
    files = {path.name for path in adapter.iterdir()}
    assert "adapter_config.json" not in files and "adapter_model.safetensors" not in files
    assert {"config.json", "model.safetensors", "README.md", "tokenizer_config.json"} <= files
    with torch.no_grad():
        logits = AutoModelForCausalLM.from_pretrained(adapter)(input_ids=torch.tensor([[1, 2, 3, 4]])).logits
    torch.testing.assert_close(logits, expected)
