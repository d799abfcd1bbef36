"""`trl_safe.interpolation`: θ_0 + α (θ − θ_0), on state dicts, saved models and LoRA updates."""

from __future__ import annotations

import json

import pytest
import torch

from trl_safe import cli
from trl_safe.interpolation import (
    INTERPOLATION_FILE,
    average_updates,
    check_alpha,
    interpolate_pretrained,
    interpolate_state_dicts,
    scaled_lora_update,
)
from trl_safe.testing_utils import make_tiny_causal_lm, make_tiny_chat_tokenizer, save_tiny_lora_adapter


@pytest.fixture(scope="module")
def tokenizer():
    return make_tiny_chat_tokenizer("smollm2")


def test_state_dicts_interpolate_every_floating_tensor_and_keep_the_others():
    start = {"w": torch.zeros(2, 2), "h": torch.ones(3, dtype=torch.bfloat16), "step": torch.tensor([3])}
    trained = {
        "w": torch.full((2, 2), 4.0),
        "h": torch.full((3,), 3.0, dtype=torch.bfloat16),
        "step": torch.tensor([3]),
    }
    merged = interpolate_state_dicts(start, trained, 0.25)
    assert torch.equal(merged["w"], torch.ones(2, 2))
    assert merged["h"].dtype == torch.bfloat16 and torch.equal(
        merged["h"], torch.full((3,), 1.5, dtype=torch.bfloat16)
    )
    assert torch.equal(merged["step"], torch.tensor([3]))
    assert torch.equal(interpolate_state_dicts(start, trained, 0)["w"], start["w"])
    assert torch.equal(interpolate_state_dicts(start, trained, 1)["w"], trained["w"])
    assert torch.equal(interpolate_state_dicts(start, trained, 1.5)["w"], torch.full((2, 2), 6.0))  # extrapolates


@pytest.mark.parametrize(
    ("start", "match"),
    [
        ({"w": torch.zeros(2, 2)}, r"only in the trained model \['step'\]"),
        ({"w": torch.zeros(2, 3), "step": torch.tensor([3])}, r"w: shape \(2, 2\) in the trained model, \(2, 3\)"),
        ({"w": torch.zeros(2, 2), "step": torch.tensor([4])}, "step: a non-floating tensor that differs between the"),
    ],
)
def test_state_dicts_of_different_models_are_refused(start, match):
    trained = {"w": torch.ones(2, 2), "step": torch.tensor([3])}
    with pytest.raises(ValueError, match=match):
        interpolate_state_dicts(start, trained, 0.5)


def test_several_updates_are_averaged_and_the_odd_one_is_named():
    start = {"w": torch.zeros(2), "h": torch.ones(2, dtype=torch.bfloat16), "step": torch.tensor([3])}
    trained = [
        {"w": torch.tensor([3.0, 0.0]), "h": torch.full((2,), 2.0, dtype=torch.bfloat16), "step": torch.tensor([3])},
        {"w": torch.tensor([1.0, 6.0]), "h": torch.full((2,), 4.0, dtype=torch.bfloat16), "step": torch.tensor([3])},
    ]
    soup = average_updates(start, iter(trained))  # read one at a time
    assert torch.equal(soup["w"], torch.tensor([2.0, 3.0]))  # θ_0 + mean (θ_i − θ_0)
    assert soup["h"].dtype == torch.bfloat16 and torch.equal(soup["h"], torch.full((2,), 3.0, dtype=torch.bfloat16))
    assert torch.equal(soup["step"], torch.tensor([3]))
    assert torch.equal(average_updates(start, trained, alpha=0.5)["w"], torch.tensor([1.0, 1.5]))
    assert torch.equal(average_updates(start, trained[:1])["w"], interpolate_state_dicts(start, trained[0], 1)["w"])
    odd = {"w": torch.zeros(3), "h": torch.ones(2), "step": torch.tensor([3])}
    with pytest.raises(ValueError, match=r"w: shape \(3,\) in trained model 3, \(2,\) at the start"):
        average_updates(start, [*trained, odd])
    with pytest.raises(ValueError, match=r"only in seed-44 \['extra'\]"):
        average_updates(start, [{**trained[0], "extra": torch.ones(1)}], names=["seed-44"])
    with pytest.raises(ValueError, match="at least one trained state dict"):
        average_updates(start, [])


def test_saved_models_average_through_the_command_line(tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM

    models = [make_tiny_causal_lm(tokenizer, seed=seed) for seed in range(4)]
    paths = [tmp_path / name for name in ("start", "a", "b", "c")]
    for model, path in zip(models, paths):
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
    output = cli.run_script(
        "interpolate",
        ["--model_name_or_path", str(paths[0]), "--trained_model_name_or_path", *map(str, paths[1:]),
         "--alpha", "1", "--output_dir", str(tmp_path / "soup")],
    )  # fmt: skip
    expected = average_updates(models[0].state_dict(), [model.state_dict() for model in models[1:]])
    for name, tensor in AutoModelForCausalLM.from_pretrained(output).state_dict().items():
        torch.testing.assert_close(tensor, expected[name], msg=name)
    assert json.loads((output / INTERPOLATION_FILE).read_text())["trained"] == list(map(str, paths[1:]))
    with pytest.raises(ValueError, match="one of the averaged models"):
        interpolate_pretrained(paths[0], paths[1:], 1.0, paths[2])


@pytest.mark.parametrize("alpha", [-0.1, float("nan"), float("inf")])
def test_alpha_must_be_finite_and_not_negative(alpha):
    with pytest.raises(ValueError, match="alpha must be a finite number >= 0"):
        check_alpha(alpha)


def test_saved_models_interpolate_to_a_loadable_model_that_says_what_it_is(tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM

    start, trained = make_tiny_causal_lm(tokenizer, seed=0), make_tiny_causal_lm(tokenizer, seed=1)
    for model, name in ((start, "start"), (trained, "trained")):
        model.save_pretrained(tmp_path / name)
        tokenizer.save_pretrained(tmp_path / name)
    output = cli.run_script(
        "interpolate",
        ["--model_name_or_path", str(tmp_path / "start"), "--trained_model_name_or_path", str(tmp_path / "trained"),
         "--alpha", "0.3", "--output_dir", str(tmp_path / "mid")],
    )  # fmt: skip
    mid = AutoModelForCausalLM.from_pretrained(output)
    expected = interpolate_state_dicts(start.state_dict(), trained.state_dict(), 0.3)
    for name, tensor in mid.state_dict().items():
        torch.testing.assert_close(tensor, expected[name], msg=name)
    assert json.loads((output / INTERPOLATION_FILE).read_text())["alpha"] == 0.3
    assert (output / "tokenizer.json").is_file()
    with pytest.raises(FileNotFoundError, match="start model path"):
        interpolate_pretrained(tmp_path / "no_such" / "model", tmp_path / "trained", 0.5, tmp_path / "x")


@pytest.mark.parametrize("with_tokenizer", [True, False], ids=["adapter with tokenizer", "adapter alone"])
def test_a_saved_lora_adapter_is_merged_before_interpolating(tokenizer, tmp_path, with_tokenizer):
    # PEFT's save_pretrained writes the adapter alone (as ptx_sft_check --save_adapter does): the result then gets
    # the tokenizer of the adapter's base model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, _, peft_model = save_tiny_lora_adapter(tokenizer, tmp_path, with_tokenizer)
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad(), scaled_lora_update(peft_model, 0.5):
        expected = peft_model(input_ids=ids).logits
    output = interpolate_pretrained(tmp_path / "start", tmp_path / "adapter", 0.5, tmp_path / "mid")
    with torch.no_grad():
        torch.testing.assert_close(AutoModelForCausalLM.from_pretrained(output)(input_ids=ids).logits, expected)
    assert AutoTokenizer.from_pretrained(output).get_vocab() == tokenizer.get_vocab()


def test_scaled_lora_update_is_the_interpolation_and_is_undone_on_leaving(tokenizer):
    from peft import LoraConfig, get_peft_model

    base = make_tiny_causal_lm(tokenizer, seed=0)
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        start_logits = base(input_ids=ids).logits
    model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    with torch.no_grad():
        trained_logits = model(input_ids=ids).logits
        assert not torch.allclose(trained_logits, start_logits)
        with scaled_lora_update(model, 0.0):
            torch.testing.assert_close(model(input_ids=ids).logits, start_logits)
        with scaled_lora_update(model, 0.4):
            scaled = model(input_ids=ids).logits
        torch.testing.assert_close(model(input_ids=ids).logits, trained_logits)  # undone
    # the scaled logits are those of the merged weights θ_0 + 0.4 (θ − θ_0)
    full = model.merge_and_unload()
    start_state = make_tiny_causal_lm(tokenizer, seed=0).state_dict()
    full.load_state_dict(interpolate_state_dicts(start_state, full.state_dict(), 0.4))
    with torch.no_grad():
        torch.testing.assert_close(full(input_ids=ids).logits, scaled)
    with pytest.raises(ValueError, match="no LoRA layer"):
        with scaled_lora_update(make_tiny_causal_lm(tokenizer, seed=0), 0.5):
            pass


def test_in_place_replaces_the_model_files_and_keeps_the_others(tokenizer, tmp_path):
    """The pipeline's SFT stage interpolates its own output folder: the weights change, the trainer's log stays."""
    from transformers import AutoModelForCausalLM

    start, trained = make_tiny_causal_lm(tokenizer, seed=0), make_tiny_causal_lm(tokenizer, seed=1)
    for model, name in ((start, "start"), (trained, "sft")):
        model.save_pretrained(tmp_path / name)
        tokenizer.save_pretrained(tmp_path / name)
    (tmp_path / "sft" / "trainer_state.json").write_text("{}")
    interpolate_pretrained(tmp_path / "start", tmp_path / "sft", 0.5, tmp_path / "sft")
    expected = interpolate_state_dicts(start.state_dict(), trained.state_dict(), 0.5)
    for name, tensor in AutoModelForCausalLM.from_pretrained(tmp_path / "sft").state_dict().items():
        torch.testing.assert_close(tensor, expected[name], msg=name)
    assert (tmp_path / "sft" / "trainer_state.json").read_text() == "{}"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["sft", "start"]
