"""`UnlikelihoodSFTTrainer` and `trl-safe sft`: the SFT stage on PTX-format data, with rows to avoid."""

from __future__ import annotations

import json
import math

import pytest
import torch
from datasets import Dataset, IterableDataset
from transformers import TrainerCallback

from trl_safe import PPOConfig, UnlikelihoodSFTConfig, UnlikelihoodSFTTrainer
from trl_safe.ptx import PTXData, ptx_objective
from trl_safe.scripts import sft
from trl_safe.testing_utils import make_tiny_causal_lm

ROWS = [
    {"prompt": "How do I bake bread? ", "completion": "Mix flour, water and yeast.", "label": True},
    {"prompt": "How do I kill a process? ", "completion": "I can't help with that.", "label": False},
    {"prompt": "How do I pick a lock? ", "completion": "I can't help with that.", "label": True},
    {"prompt": "What is rain? ", "completion": "Water falling from clouds.", "label": True},
]


def config(tmp_path, **overrides) -> UnlikelihoodSFTConfig:
    defaults = {
        "output_dir": str(tmp_path),
        "max_steps": 2,
        "per_device_train_batch_size": 4,
        "learning_rate": 1e-2,
        "logging_steps": 1,
        "report_to": "none",
        "save_strategy": "no",
        "use_cpu": True,
        "activation_checkpointing": False,
    }
    return UnlikelihoodSFTConfig(**{**defaults, **overrides})


def test_the_loss_is_ptx_objective_on_the_collated_rows(tmp_path, tiny_tokenizer):
    """One loss for the SFT stage and for PPO's PTX term: the trainer's `compute_loss` is `ptx_objective` on the
    rows its collator pads, with `unlikelihood_coef` as the weight."""
    model = make_tiny_causal_lm(tiny_tokenizer)
    args = config(tmp_path, unlikelihood_coef=0.5)
    trainer = UnlikelihoodSFTTrainer(model, args, Dataset.from_list(ROWS), processing_class=tiny_tokenizer)
    batch = trainer._collate([{"row": index} for index in range(4)])
    assert batch["desirable"].tolist() == [True, False, True, True]
    with torch.no_grad():
        loss = trainer.compute_loss(model, batch)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        expected, nll, unlikely = ptx_objective(logits, batch["labels"], batch["desirable"], 0.5)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert expected.item() == pytest.approx(nll.item() + 0.5 * unlikely.item(), rel=1e-6)


def test_the_seed_decides_the_lora_initialisation_whatever_ran_before(tmp_path, tiny_tokenizer):
    """`args.seed` seeds the adapter: the same seed gives the same LoRA weights after other random draws in the
    process (the pipeline's earlier stages), another seed other weights."""
    from peft import LoraConfig

    def lora_weights(seed: int, draws: int) -> list[torch.Tensor]:
        torch.rand(draws)  # whatever ran before in the process
        trainer = UnlikelihoodSFTTrainer(
            make_tiny_causal_lm(tiny_tokenizer), config(tmp_path, seed=seed), Dataset.from_list(ROWS),
            processing_class=tiny_tokenizer, peft_config=LoraConfig(r=4, target_modules=["q_proj"]),
        )  # fmt: skip
        return [p.detach().clone() for name, p in trainer.model.named_parameters() if "lora_A" in name]

    first, after_other_work, other_seed = lora_weights(7, 1), lora_weights(7, 1000), lora_weights(8, 1)
    assert first and all(torch.equal(a, b) for a, b in zip(first, after_other_work))
    assert not all(torch.equal(a, b) for a, b in zip(first, other_seed))


def test_training_pushes_the_undesirable_completion_down_and_logs_both_terms(tmp_path, tiny_tokenizer):
    """The same run with and without the unlikelihood term: with it, the undesirable completion ends less likely."""
    data = PTXData(Dataset.from_list(ROWS), tiny_tokenizer, max_length=None, seed=0)
    undesirable = data.collate([1])

    def train(unlikelihood_coef: float) -> tuple[float, list[dict]]:
        model = make_tiny_causal_lm(tiny_tokenizer)
        args = config(tmp_path / str(unlikelihood_coef), max_steps=8, unlikelihood_coef=unlikelihood_coef)
        trainer = UnlikelihoodSFTTrainer(model, args, Dataset.from_list(ROWS), processing_class=tiny_tokenizer)
        trainer.train()
        with torch.no_grad():
            logits = model(input_ids=undesirable["input_ids"]).logits[:, :-1]
        labels = undesirable["labels"][:, 1:]
        token_logprobs = torch.log_softmax(logits, -1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return float((token_logprobs * (labels != -100)).sum()), trainer.state.log_history

    with_term, history = train(1.0)
    without_term, _ = train(0.0)
    assert with_term < without_term
    logged = [entry for entry in history if "loss" in entry]
    assert len(logged) == 8
    assert all(math.isfinite(entry["loss/nll"]) and entry["loss/unlikelihood"] > 0 for entry in logged)


@pytest.mark.parametrize("accumulation", [1, 2])
def test_data_without_labels_is_plain_sft(tmp_path, tiny_tokenizer, accumulation):
    """Without `label` the loss is the cross-entropy alone; with gradient accumulation the logged loss is still the
    mean over micro-batches (a sum would be twice `loss/nll` here)."""
    model = make_tiny_causal_lm(tiny_tokenizer)
    rows = Dataset.from_dict({"text": ["The cat sat on the mat.", "Paris is in France."] * 2})
    args = config(tmp_path, per_device_train_batch_size=2, gradient_accumulation_steps=accumulation)
    trainer = UnlikelihoodSFTTrainer(model, args, rows, processing_class=tiny_tokenizer)
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert logged and all("loss/unlikelihood" not in entry for entry in logged)
    assert all(entry["loss"] == pytest.approx(entry["loss/nll"], rel=1e-4) for entry in logged)


def test_bad_input_is_refused_clearly(tmp_path, tiny_tokenizer):
    model = make_tiny_causal_lm(tiny_tokenizer)
    with pytest.raises(ValueError, match="needs a `train_dataset`"):
        UnlikelihoodSFTTrainer(model, config(tmp_path), None, processing_class=tiny_tokenizer)
    streamed = IterableDataset.from_generator(lambda: iter(ROWS))
    with pytest.raises(TypeError, match="without streaming"):
        UnlikelihoodSFTTrainer(model, config(tmp_path), streamed, processing_class=tiny_tokenizer)
    with pytest.raises(TypeError, match="needs a UnlikelihoodSFTConfig, got PPOConfig"):
        UnlikelihoodSFTTrainer(
            model, PPOConfig(str(tmp_path)), Dataset.from_list(ROWS), processing_class=tiny_tokenizer
        )
    bad = [*ROWS[:2], {"prompt": "Hi ", "completion": "Hello.", "label": None}]
    with pytest.raises(ValueError, match="row 2: `label` must be True or False"):
        UnlikelihoodSFTTrainer(model, config(tmp_path), Dataset.from_list(bad), processing_class=tiny_tokenizer)
    only_undesirable = [{**row, "label": False} for row in ROWS]
    with pytest.raises(ValueError, match="Every ptx_dataset row is labelled undesirable"):
        UnlikelihoodSFTTrainer(
            model, config(tmp_path), Dataset.from_list(only_undesirable), processing_class=tiny_tokenizer
        )


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"unlikelihood_coef": -1.0}, "`unlikelihood_coef` must be >= 0"),
        ({"unlikelihood_coef": float("nan")}, "unlikelihood_coef must be a finite number"),
        ({"max_length": 1}, "`max_length` must be >= 2 or None"),
        ({"average_last_steps": 0}, "`average_last_steps` must be >= 1"),
        ({"average_last_steps": 3}, r"`average_last_steps` \(3\) is more than the run's `max_steps` \(2\)"),
        ({"save_unaveraged": True}, "`save_unaveraged` saves the weights that `average_last_steps` replaces"),
        (
            {
                "average_last_steps": 1,
                "load_best_model_at_end": True,
                "eval_strategy": "steps",
                "save_strategy": "steps",
            },
            "choose one",
        ),
    ],
)
def test_config_errors(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        config(tmp_path, **overrides)


def _script_inputs(tmp_path, tiny_tokenizer) -> list[str]:
    """A saved tiny model and the ROWS as JSON lines: the script's model, data and output arguments."""
    model_dir = tmp_path / "model"
    make_tiny_causal_lm(tiny_tokenizer).save_pretrained(model_dir)
    tiny_tokenizer.save_pretrained(model_dir)
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return ["--model_name_or_path", str(model_dir), "--dataset_name", str(data), "--output_dir", str(tmp_path / "out")]


def test_the_script_trains_saves_a_lora_adapter_and_writes_the_model_card(tmp_path, tiny_tokenizer):
    argv = [
        *_script_inputs(tmp_path, tiny_tokenizer),
        "--max_steps", "2", "--per_device_train_batch_size", "2", "--learning_rate", "1e-3",
        "--lr_scheduler_type", "constant", "--report_to", "none", "--save_strategy", "no",
        "--activation_checkpointing", "false", "--use_peft", "--lora_r", "4", "--lora_alpha", "8",
        "--lora_task_type", "CAUSAL_LM", "--lora_target_modules", "q_proj", "v_proj",
    ]  # fmt: skip
    trainer = sft.main(*sft.make_parser().parse_args_into_dataclasses(args=argv))
    assert trainer.state.global_step == 2
    out = tmp_path / "out"
    assert (out / "adapter_config.json").is_file() and (out / "tokenizer.json").is_file()
    card = (out / "README.md").read_text()
    assert "UnlikelihoodSFTTrainer" in card and "1 of them labelled undesirable" in card
    assert "unlikelihood" in card and "using a PEFT adapter" in card
    with pytest.raises(ValueError, match="--dataset_name is required"):
        sft.main(*sft.make_parser().parse_args_into_dataclasses(args=["--output_dir", str(out)]))


# ------------------------------------------------------------------------------------------------------------------
# Tail averaging (`average_last_steps`): the run ends with the mean of its last steps' weights.
# ------------------------------------------------------------------------------------------------------------------


class _RecordWeights(TrainerCallback):
    """The model's parameters after every optimizer step, by step."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model, self.after_step = model, {}

    def on_step_end(self, args, state, control, **kwargs):
        self.after_step[state.global_step] = [p.detach().clone() for p in self.model.parameters()]


def _averaging_trainer(tmp_path, tiny_tokenizer, **overrides) -> tuple[UnlikelihoodSFTTrainer, _RecordWeights]:
    torch.manual_seed(0)
    model = make_tiny_causal_lm(tiny_tokenizer)
    record = _RecordWeights(model)
    args = config(tmp_path, **{"max_steps": 4, "per_device_train_batch_size": 2, "seed": 0, **overrides})
    trainer = UnlikelihoodSFTTrainer(
        model, args, Dataset.from_list(ROWS), processing_class=tiny_tokenizer, callbacks=[record]
    )
    return trainer, record


def test_average_last_steps_ends_with_the_mean_of_the_last_steps_and_can_save_the_last_steps_weights(
    tmp_path, tiny_tokenizer
):
    trainer, record = _averaging_trainer(tmp_path, tiny_tokenizer, average_last_steps=3, save_unaveraged=True)
    trainer.train()
    expected = [torch.stack(step).mean(0) for step in zip(*(record.after_step[s] for s in (2, 3, 4)), strict=True)]
    for parameter, mean in zip(trainer.model.parameters(), expected, strict=True):
        torch.testing.assert_close(parameter.detach(), mean, rtol=1e-6, atol=1e-7)
    assert any(not torch.equal(a, b) for a, b in zip(record.after_step[4], expected, strict=True))
    unaveraged = type(trainer.model).from_pretrained(tmp_path / "unaveraged")
    for parameter, last in zip(unaveraged.parameters(), record.after_step[4], strict=True):
        torch.testing.assert_close(parameter.detach(), last, rtol=0, atol=0)
    trainer.create_model_card()
    assert "mean over optimizer steps 2-4" in (tmp_path / "README.md").read_text()
    last_log = trainer.state.log_history[-1]
    assert (last_log["tail_average/first_step"], last_log["tail_average/steps"], last_log["step"]) == (2, 3, 4)


def test_a_resumed_run_ends_with_the_uninterrupted_average(tmp_path, tiny_tokenizer):
    """Checkpoints carry the running sum: resuming from a checkpoint inside the window gives the same model."""
    steps = {"average_last_steps": 3, "save_strategy": "steps", "save_steps": 2}
    whole, _ = _averaging_trainer(tmp_path / "whole", tiny_tokenizer, **steps)
    whole.train()
    checkpoint = tmp_path / "whole" / "checkpoint-2"
    assert (checkpoint / "tail_average.pt").is_file()
    resumed, _ = _averaging_trainer(tmp_path / "resumed", tiny_tokenizer, **steps)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    for a, b in zip(whole.model.parameters(), resumed.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)

    (checkpoint / "tail_average.pt").unlink()  # a checkpoint inside the window without the sum cannot be resumed
    again, _ = _averaging_trainer(tmp_path / "again", tiny_tokenizer, **steps)
    with pytest.raises(ValueError, match="inside the window of `average_last_steps`.*holds no tail_average.pt"):
        again.train(resume_from_checkpoint=str(checkpoint))


def test_a_run_stopped_before_the_window_keeps_its_last_weights_and_says_so(tmp_path, tiny_tokenizer):
    class StopAfterOneStep(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            control.should_training_stop = True

    trainer, record = _averaging_trainer(tmp_path, tiny_tokenizer, average_last_steps=2)
    trainer.add_callback(StopAfterOneStep())
    with pytest.warns(UserWarning, match="before the 2-step window of `average_last_steps` began"):
        trainer.train()
    for parameter, last in zip(trainer.model.parameters(), record.after_step[1], strict=True):
        assert torch.equal(parameter.detach(), last)


def test_the_script_averages_a_lora_adapter(tmp_path, tiny_tokenizer):
    argv = [
        *_script_inputs(tmp_path, tiny_tokenizer),
        "--max_steps", "3", "--per_device_train_batch_size", "2", "--learning_rate", "1e-2",
        "--report_to", "none", "--save_strategy", "no", "--activation_checkpointing", "false",
        "--use_peft", "--lora_r", "4", "--lora_alpha", "8", "--lora_task_type", "CAUSAL_LM",
        "--average_last_steps", "2", "--save_unaveraged", "true",
    ]  # fmt: skip
    trainer = sft.main(*sft.make_parser().parse_args_into_dataclasses(args=argv))
    out = tmp_path / "out"
    assert (out / "adapter_config.json").is_file() and (out / "unaveraged" / "adapter_config.json").is_file()
    assert "mean over optimizer steps 2-3" in (out / "README.md").read_text()
    averaged = trainer._tail_average.parameters  # the adapter's weights only: the base model is frozen
    assert averaged and all("lora_" in name for name, p in trainer.model.named_parameters() if p.requires_grad)
    assert len(averaged) == sum(p.requires_grad for p in trainer.model.parameters())


def test_sharded_parameters_are_refused_for_tail_averaging(tmp_path, tiny_tokenizer):
    """Under FSDP or ZeRO-3 a process holds a shard of each parameter: its mean would not be the model's."""
    trainer, _ = _averaging_trainer(tmp_path, tiny_tokenizer, average_last_steps=2)
    trainer._check_tail_averaging_is_supported()  # on one CPU process: supported
    trainer.is_fsdp_enabled = True
    with pytest.raises(NotImplementedError, match="does not support sharded parameters"):
        trainer._check_tail_averaging_is_supported()
