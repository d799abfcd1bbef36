import contextlib
import io
import json
import logging
import math
import random
import re

import pytest
import torch
from datasets import Dataset
from peft import LoraConfig, get_peft_model
from trl import RewardConfig

from trl_safe import CostConfig, CostTrainer, DataCollatorForSafetyPreference, to_harmlessness_preferences
from trl_safe.scoring import find_score_head, last_token_scores
from trl_safe.testing_utils import make_tiny_scorer

SAFETY_PAIRS = [
    # (prompt, chosen = safer, rejected, is_chosen_safe, is_rejected_safe)
    ("Hi", "Hello there", "Go away!!", True, False),
    ("How?", "Like this", "Not telling you", True, True),
    ("Why", "Because", "Because you are dumb", False, False),
    ("Ok", "Sure, happy to help", "No", True, False),
]


def safety_pairs(conversational: bool = False) -> Dataset:
    rows = [
        dict(prompt=p, chosen=c, rejected=r, is_chosen_safe=cs, is_rejected_safe=rs)
        for p, c, r, cs, rs in SAFETY_PAIRS
    ]
    if conversational:
        for row in rows:
            row["prompt"] = [{"role": "user", "content": row["prompt"]}]
            row["chosen"] = [{"role": "assistant", "content": row["chosen"]}]
            row["rejected"] = [{"role": "assistant", "content": row["rejected"]}]
    return Dataset.from_list(rows)


def cost_config(tmp_path, **overrides) -> CostConfig:
    values = dict(
        output_dir=str(tmp_path / "cost"),
        report_to="none",
        bf16=False,
        gradient_checkpointing=False,
        save_strategy="no",
        per_device_train_batch_size=4,
        per_device_eval_batch_size=4,
        logging_steps=1,
        disable_tqdm=True,
        seed=0,
    )
    values.update(overrides)
    return CostConfig(**values)


def first_eval_batch(trainer: CostTrainer) -> dict[str, torch.Tensor]:
    """A batch exactly as `compute_loss` receives it (column removal, collator, data set order), in eval mode."""
    trainer.model.eval()
    return trainer._prepare_inputs(next(iter(trainer.get_eval_dataloader())))


def scores_by_hand(model, input_ids, attention_mask) -> torch.Tensor:
    """Per-token scores from the backbone and head called directly (no hook), read at the last attended token."""
    hidden = model.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    per_token = model.score(hidden)[..., 0]
    last = attention_mask.sum(dim=-1) - 1  # right padding
    return per_token[torch.arange(len(last)), last]


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


# --- the loss --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("regularization", "sign_loss_coefficient"), [(0.1, 1.0), (0.0, 0.5)])
def test_loss_matches_a_hand_computation(tiny_tokenizer, tmp_path, regularization, sign_loss_coefficient):
    data = safety_pairs()
    trainer = CostTrainer(
        make_tiny_scorer(tiny_tokenizer),
        cost_config(tmp_path, regularization=regularization, sign_loss_coefficient=sign_loss_coefficient),
        train_dataset=data,
        eval_dataset=data,
        processing_class=tiny_tokenizer,
    )
    batch = first_eval_batch(trainer)
    assert batch["is_chosen_safe"].tolist() == [True, True, False, True]
    assert batch["is_rejected_safe"].tolist() == [False, True, False, False]
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, batch).item()
        costs = scores_by_hand(trainer.model, batch["input_ids"], batch["attention_mask"]).tolist()

    n = len(SAFETY_PAIRS)
    ranking, sign, square = 0.0, 0.0, 0.0
    for i, (*_, chosen_safe, rejected_safe) in enumerate(SAFETY_PAIRS):
        c_chosen, c_rejected = costs[i], costs[n + i]
        s_chosen, s_rejected = (-1 if chosen_safe else 1), (-1 if rejected_safe else 1)
        ranking += -log_sigmoid(c_rejected - c_chosen) / n
        sign += -(log_sigmoid(s_chosen * c_chosen) + log_sigmoid(s_rejected * c_rejected)) / n
        square += (c_chosen**2 + c_rejected**2) / (2 * n)
    assert loss == pytest.approx(ranking + sign_loss_coefficient * sign + regularization * square, rel=1e-5)
    assert trainer._metrics["eval"]["ranking_loss"][-1] == pytest.approx(ranking, rel=1e-5)
    assert trainer._metrics["eval"]["sign_loss"][-1] == pytest.approx(sign, rel=1e-5)


def test_loss_is_three_log_two_when_every_cost_is_zero(tiny_tokenizer, tmp_path):
    model = make_tiny_scorer(tiny_tokenizer)
    torch.nn.init.zeros_(model.score.weight)
    data = safety_pairs()
    trainer = CostTrainer(
        model, cost_config(tmp_path), train_dataset=data, eval_dataset=data, processing_class=tiny_tokenizer
    )
    with torch.no_grad():
        loss = trainer.compute_loss(model, first_eval_batch(trainer)).item()
    # log 2 from the ranking term, 2·log 2 from the sign term (two responses per pair), 0 from the penalty.
    assert loss == pytest.approx(3 * math.log(2), rel=1e-6)
    metrics = trainer._metrics["eval"]
    assert metrics["accuracy"] == [0.0] and metrics["sign_accuracy"] == [0.5]  # C = 0 reads "safe": 4 of 8 are


def test_costs_are_read_at_eos_when_pad_equals_eos(tiny_tokenizer_pad_eos, tmp_path):
    tok = tiny_tokenizer_pad_eos
    data = safety_pairs()
    trainer = CostTrainer(
        make_tiny_scorer(tok), cost_config(tmp_path), train_dataset=data, eval_dataset=data, processing_class=tok
    )
    assert trainer.processing_class.pad_token_id == trainer.processing_class.eos_token_id
    batch = first_eval_batch(trainer)
    last = batch["attention_mask"].sum(dim=-1) - 1
    rows = torch.arange(len(last))
    assert (batch["input_ids"][rows, last] == tok.eos_token_id).all()  # RewardTrainer appended the EOS
    assert (batch["input_ids"][rows, last - 1] != tok.eos_token_id).all()

    with torch.no_grad():
        _, outputs = trainer.compute_loss(trainer.model, batch, return_outputs=True)
        at_eos = scores_by_hand(trainer.model, batch["input_ids"], batch["attention_mask"])
        hf_pooled = trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 0]
    torch.testing.assert_close(outputs.logits[:, 0], at_eos)
    # transformers' pooling reads the token before EOS here; the loss and metrics must not.
    assert not torch.allclose(hf_pooled, at_eos)
    assert trainer._metrics["eval"]["mean_cost"][-1] == pytest.approx(at_eos.mean().item(), rel=1e-5)
    assert trainer._metrics["eval"]["max_cost"][-1] == pytest.approx(at_eos.max().item(), rel=1e-5)
    margin = (at_eos[4:] - at_eos[:4]).mean().item()
    assert trainer._metrics["eval"]["margin"][-1] == pytest.approx(margin, rel=1e-5, abs=1e-7)


def test_collator_carries_the_safety_labels():
    collator = DataCollatorForSafetyPreference(pad_token_id=0)
    examples = [
        {"chosen_ids": [1, 2, 3], "rejected_ids": [4], "is_chosen_safe": True, "is_rejected_safe": False},
        {"chosen_ids": [5], "rejected_ids": [6, 7], "is_chosen_safe": False, "is_rejected_safe": False},
    ]
    batch = collator(examples)
    assert batch["input_ids"].tolist() == [[1, 2, 3], [5, 0, 0], [4, 0, 0], [6, 7, 0]]
    assert batch["is_chosen_safe"].tolist() == [True, False] and batch["is_rejected_safe"].tolist() == [False, False]
    assert batch["is_chosen_safe"].dtype == torch.bool
    with pytest.raises(ValueError, match=r"lacks the safety label\(s\) \['is_rejected_safe'\]"):
        collator([{k: v for k, v in examples[0].items() if k != "is_rejected_safe"}])


# --- configuration and data errors -----------------------------------------------------------------------------------


def test_missing_safety_columns_are_a_clear_error(tiny_tokenizer, tmp_path):
    data = safety_pairs().remove_columns(["is_rejected_safe"])
    with pytest.raises(ValueError) as error:
        CostTrainer(
            make_tiny_scorer(tiny_tokenizer),
            cost_config(tmp_path),
            train_dataset=data,
            processing_class=tiny_tokenizer,
        )
    assert "lacks the safety label column(s) ['is_rejected_safe']" in str(error.value)
    assert "found ['prompt', 'chosen', 'rejected', 'is_chosen_safe']" in str(error.value)


def test_config_errors(tiny_tokenizer, tmp_path):
    with pytest.raises(TypeError, match="needs a CostConfig"):
        CostTrainer(
            make_tiny_scorer(tiny_tokenizer),
            RewardConfig(str(tmp_path), report_to="none", bf16=False),
            train_dataset=safety_pairs(),
            processing_class=tiny_tokenizer,
        )
    with pytest.raises(ValueError, match="center_rewards_coefficient"):
        cost_config(tmp_path, center_rewards_coefficient=0.01)
    with pytest.raises(ValueError, match="regularization"):
        cost_config(tmp_path, regularization=-1.0)


# --- training --------------------------------------------------------------------------------------------------------

MARKER_WORDS = ["cat", "sun", "tree", "blue", "rock", "milk", "road", "song"]


def separable_safety_data(n: int, seed: int) -> Dataset:
    """PKU-format rows in which a response is unsafe exactly when it contains the token `#`."""
    rng = random.Random(seed)

    def response(unsafe: bool) -> str:
        words = [rng.choice(MARKER_WORDS) for _ in range(rng.randint(2, 4))]
        if unsafe:
            words.insert(rng.randrange(len(words) + 1), "#")
        return " ".join(words)

    rows = []
    for i in range(n):
        safe = [(True, False), (True, False), (True, True), (False, False)][i % 4]  # safer first
        safer = rng.randrange(2)
        labels = safe if safer == 0 else safe[::-1]
        rows.append(
            dict(
                prompt=" ".join(rng.choice(MARKER_WORDS) for _ in range(2)),
                response_0=response(not labels[0]),
                response_1=response(not labels[1]),
                is_response_0_safe=labels[0],
                is_response_1_safe=labels[1],
                better_response_id=0,
                safer_response_id=safer,
            )
        )
    return to_harmlessness_preferences(Dataset.from_list(rows))


@pytest.mark.slow
def test_training_on_separable_data_learns_the_sign(tiny_tokenizer, tmp_path):
    trainer = CostTrainer(
        make_tiny_scorer(tiny_tokenizer),
        cost_config(tmp_path, learning_rate=6e-3, num_train_epochs=3, per_device_train_batch_size=8, logging_steps=4),
        train_dataset=separable_safety_data(96, seed=0),
        eval_dataset=separable_safety_data(32, seed=1),
        processing_class=tiny_tokenizer,
    )
    before = trainer.evaluate()
    trainer.train()
    after = trainer.evaluate()

    assert after["eval_loss"] < 0.6 * before["eval_loss"]
    assert after["eval_sign_loss"] < before["eval_sign_loss"]
    assert before["eval_sign_accuracy"] <= 0.6
    assert after["eval_sign_accuracy"] >= 0.9
    assert after["eval_min_cost"] < 0 < after["eval_max_cost"]
    train_logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert train_logs[-1]["loss"] < train_logs[0]["loss"]
    expected = {"accuracy", "sign_accuracy", "mean_cost", "min_cost", "max_cost", "margin", "num_tokens"}
    expected |= {"ranking_loss", "sign_loss"}
    assert expected <= set(train_logs[0])
    assert {f"eval_{name}" for name in expected} <= set(after)


def test_rows_longer_than_max_length_are_counted_and_logged(tiny_tokenizer, tmp_path, caplog):
    # Text form, one token per character: prompt + response + EOS, the longer of the pair.
    lengths = [max(len(p + c), len(p + r)) + 1 for p, c, r, *_ in SAFETY_PAIRS]
    assert lengths == [14, 20, 24, 22]
    with caplog.at_level(logging.WARNING, logger="trl_safe.cost_trainer"):
        trainer = CostTrainer(
            make_tiny_scorer(tiny_tokenizer),
            cost_config(tmp_path, max_length=20, max_steps=1),
            train_dataset=safety_pairs(),
            eval_dataset=safety_pairs().select([0, 2]),
            processing_class=tiny_tokenizer,
        )
    assert len(trainer.train_dataset) == 2 and len(trainer.eval_dataset) == 1
    assert trainer.too_long_rows.indices == {"train": [2, 3], "eval": [1]}
    assert "Dropped 2 of 4 rows of the train dataset longer than max_length=20 tokens (rows [2, 3])" in caplog.text

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="trl_safe.cost_trainer"):
        streaming = CostTrainer(
            make_tiny_scorer(tiny_tokenizer),
            cost_config(tmp_path, max_length=20, max_steps=3, per_device_train_batch_size=1),
            train_dataset=safety_pairs().to_iterable_dataset(),
            processing_class=tiny_tokenizer,
        )
        assert streaming.too_long_rows.count == 0  # nothing streamed yet
        streaming.train()
    assert streaming.too_long_rows.indices == {"train": [2, 3]}  # three steps read rows 0, 1, (2, 3), 0
    assert "Dropping row 2 of the train dataset: longer than max_length=20 tokens" in caplog.text


def test_conversational_data_trains(tiny_tokenizer_pad_eos, tmp_path):
    data = safety_pairs(conversational=True)
    trainer = CostTrainer(
        make_tiny_scorer(tiny_tokenizer_pad_eos),
        cost_config(tmp_path, max_steps=5, learning_rate=1e-3),
        train_dataset=data,
        eval_dataset=data,
        processing_class=tiny_tokenizer_pad_eos,
    )
    batch = first_eval_batch(trainer)
    first = tiny_tokenizer_pad_eos.decode(batch["input_ids"][0][batch["attention_mask"][0].bool()])
    assert first == "<|user|>Hi<eos><|assistant|>Hello there<eos>"  # the chat template, ending with EOS
    before = trainer.evaluate()
    trainer.train()
    after = trainer.evaluate()
    # Five steps on the four pairs fit them better: both terms of the loss fall.
    for term in ("eval_loss", "eval_ranking_loss", "eval_sign_loss"):
        assert after[term] < before[term], term


def test_lora_trains_the_score_head(tiny_tokenizer, tmp_path, caplog):
    model = make_tiny_scorer(tiny_tokenizer)
    head_before = model.score.weight.detach().clone()
    q_before = model.model.layers[0].self_attn.q_proj.weight.detach().clone()
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])  # no task type: head not saved
    with caplog.at_level(logging.WARNING, logger="trl_safe.cost_trainer"):
        trainer = CostTrainer(
            model,
            cost_config(tmp_path, max_steps=3, learning_rate=1e-2),
            train_dataset=safety_pairs(),
            processing_class=tiny_tokenizer,
            peft_config=lora,
        )
    assert "adding ['score', 'classifier'] to `modules_to_save`" in caplog.text
    assert lora.modules_to_save is None  # the caller's configuration is left as it was
    trainable = {name for name, p in trainer.model.named_parameters() if p.requires_grad}
    assert any("score.modules_to_save" in name for name in trainable)
    trainer.train()

    head = find_score_head(trainer.model)
    assert not torch.allclose(head.modules_to_save["default"].weight, head_before)
    base_q = trainer.model.get_base_model().model.layers[0].self_attn.q_proj.base_layer.weight
    torch.testing.assert_close(base_q, q_before)  # LoRA leaves the base weights alone


def test_a_peft_model_with_a_frozen_head_is_refused(tiny_tokenizer, tmp_path):
    frozen = get_peft_model(make_tiny_scorer(tiny_tokenizer), LoraConfig(r=4, target_modules=["q_proj"]))
    with pytest.raises(ValueError, match="cost head is frozen"):
        CostTrainer(frozen, cost_config(tmp_path), train_dataset=safety_pairs(), processing_class=tiny_tokenizer)


def test_model_card_and_its_quick_start(tiny_tokenizer_pad_eos, tmp_path):
    tok = tiny_tokenizer_pad_eos
    data = safety_pairs(conversational=True)
    args = cost_config(tmp_path, max_steps=2, eval_strategy="steps", eval_steps=2)
    trainer = CostTrainer(make_tiny_scorer(tok), args, train_dataset=data, eval_dataset=data, processing_class=tok)
    trainer.train()
    trainer.save_model(args.output_dir)
    trainer.create_model_card(model_name=args.output_dir, dataset_name="PKU-Alignment/PKU-SafeRLHF")
    card = (tmp_path / "cost" / "README.md").read_text()

    for tag in ("trl", "trl-safe", "cost-model", "safe-rlhf"):
        assert f"- {tag}\n" in card
    assert "datasets:\n- PKU-Alignment/PKU-SafeRLHF" in card
    assert "C > 0 means unsafe" in card and "@inproceedings{dai2024safe" in card
    assert "| `regularization` | 0.001 |" in card and "| `learning_rate` | 0.0001 |" in card
    sign_accuracy = trainer.state.log_history[-2]["eval_sign_accuracy"]
    assert f"| `eval_sign_accuracy` | {sign_accuracy:.4f} |" in card

    # The quick start runs as written against the saved model and prints the cost read at EOS.
    code = re.search(r"```python\n(.*?)```", card, re.DOTALL).group(1)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(code, {})
    conversation = [
        {"role": "user", "content": "How do I pick a lock?"},
        {"role": "assistant", "content": "I can't help with breaking into property, but a locksmith can."},
    ]
    inputs = tok.apply_chat_template(conversation, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        cost = last_token_scores(trainer.model, inputs["input_ids"], inputs["attention_mask"])[0, 0].item()
    assert printed.getvalue() == f"cost = {cost:.3f} -> {'unsafe' if cost > 0 else 'safe'}\n"


def test_training_on_the_pku_saferlhf_sample(shared_data, tiny_tokenizer, tmp_path):
    path = shared_data / "pku_saferlhf_test_sample.jsonl"
    raw = [json.loads(line) for line in path.read_text().splitlines()]
    max_length = 256
    # Pairs the trainer must leave out, measured independently: "prompt\n" + response + EOS, both responses.
    too_long = [
        i
        for i, r in enumerate(raw)
        if max(len(tiny_tokenizer(r["prompt"] + "\n" + r[f"response_{j}"] + "<eos>")["input_ids"]) for j in (0, 1))
        > max_length
    ]
    assert 0 < len(too_long) < len(raw)
    data = to_harmlessness_preferences(Dataset.from_json(str(path)))
    trainer = CostTrainer(
        make_tiny_scorer(tiny_tokenizer),
        cost_config(tmp_path, max_length=max_length, max_steps=3, per_device_train_batch_size=2),
        train_dataset=data,
        processing_class=tiny_tokenizer,
    )
    assert trainer.too_long_rows.indices == {"train": too_long}
    assert len(trainer.train_dataset) == len(raw) - len(too_long)
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 3 and all(math.isfinite(entry["loss"]) for entry in logs)
