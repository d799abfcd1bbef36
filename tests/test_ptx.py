"""PTX, the pre-training mix: its loss, its data forms, and that ptx_coef=0 changes nothing."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from datasets import Dataset

from trl_safe import PPOConfig, PPOTrainer
from trl_safe.ptx import IGNORE_INDEX, PTXData, ptx_loss, ptx_objective, unlikelihood_loss
from trl_safe.testing_utils import make_tiny_causal_lm, tiny_rl_config

PROMPTS = ["Hello there", "The sky is", "Tell me a story", "Why?"]
SFT_TEXT = ["The cat sat on the mat.", "Water boils at 100 C.", "Paris is in France.", "Two plus two is four."]


def reward_length(completions, **kwargs):
    return [len(c) / 10 for c in completions]


def config(tmp_path, **overrides) -> PPOConfig:
    return tiny_rl_config(PPOConfig, tmp_path, **overrides)


def test_ptx_loss_is_the_mean_negative_log_likelihood_of_the_labelled_tokens():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    labels = torch.tensor([[3, 1, IGNORE_INDEX, 4, 2], [IGNORE_INDEX, IGNORE_INDEX, 6, 0, IGNORE_INDEX]])
    terms = []
    for row in range(2):
        for t in range(1, 5):  # position t-1 predicts token t
            if labels[row, t] != IGNORE_INDEX:
                terms.append(-torch.log_softmax(logits[row, t - 1], -1)[labels[row, t]].item())
    assert ptx_loss(logits, labels).item() == pytest.approx(sum(terms) / len(terms), rel=1e-6)


def test_ptx_loss_equals_the_causal_lm_loss(tiny_tokenizer):
    model = make_tiny_causal_lm(tiny_tokenizer)
    data = PTXData(Dataset.from_dict({"text": SFT_TEXT}), tiny_tokenizer, max_length=None, seed=0)
    batch = data.batch(0, 4, torch.device("cpu"))
    output = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
    # transformers' loss masks nothing but -100 labels: pad positions carry -100 in our batch too.
    assert ptx_loss(output.logits, batch["labels"]).item() == pytest.approx(output.loss.item(), rel=1e-5)


def test_prompt_completion_rows_learn_the_completion_only(tiny_tokenizer):
    rows = Dataset.from_list([{"prompt": "Q: hi\nA: ", "completion": "hello"}])
    input_ids, labels = PTXData(rows, tiny_tokenizer, max_length=None, seed=0).examples[0]
    n_prompt = len(tiny_tokenizer("Q: hi\nA: ")["input_ids"])
    assert labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert tiny_tokenizer.decode(labels[n_prompt:]) == "hello<eos>"
    conversational = Dataset.from_list(
        [{"prompt": [{"role": "user", "content": "hi"}], "completion": [{"role": "assistant", "content": "yo"}]}]
    )
    _, labels = PTXData(conversational, tiny_tokenizer, max_length=None, seed=0).examples[0]
    assert tiny_tokenizer.decode([t for t in labels if t != IGNORE_INDEX]) == "yo<eos>"


def test_unfinished_completions_are_learnt_without_an_end_of_turn(tiny_tokenizer):
    """A completion cut short (`finished` False) is rendered as the policy left it: the same tokens as the whole
    completion, without the closing EOS, so PTX does not teach stopping where the cut fell."""
    prompt = [{"role": "user", "content": "hi"}]
    rows = [
        {"prompt": prompt, "completion": [{"role": "assistant", "content": "yo there"}], "finished": True},
        {"prompt": prompt, "completion": [{"role": "assistant", "content": "yo there"}], "finished": False},
    ]
    whole, cut = PTXData(Dataset.from_list(rows), tiny_tokenizer, max_length=None, seed=0).examples
    plain = {"prompt": "Q: hi\nA: ", "completion": "hello", "finished": False}
    (text,) = PTXData(Dataset.from_list([plain]), tiny_tokenizer, max_length=None, seed=0).examples
    assert tiny_tokenizer.decode([t for t in whole[1] if t != IGNORE_INDEX]) == "yo there<eos>"
    assert tiny_tokenizer.decode([t for t in cut[1] if t != IGNORE_INDEX]) == "yo there"
    assert cut[0] == whole[0][: len(cut[0])] and len(cut[0]) < len(whole[0])  # a prefix: only the end is gone
    assert tiny_tokenizer.decode([t for t in text[1] if t != IGNORE_INDEX]) == "hello"
    with pytest.raises(ValueError, match="row 0: `finished` must be True or False, got 'no'"):
        PTXData(Dataset.from_list([{**plain, "finished": "no"}]), tiny_tokenizer, max_length=None, seed=0)
    with pytest.raises(ValueError, match="`finished` column.*form is `text`"):
        PTXData(Dataset.from_list([{"text": "a", "finished": False}]), tiny_tokenizer, max_length=None, seed=0)


def test_bad_ptx_data_is_refused_with_the_row(tiny_tokenizer):
    with pytest.raises(ValueError, match="needs a `text` column"):
        PTXData(Dataset.from_dict({"answer": ["x"]}), tiny_tokenizer, max_length=None, seed=0)
    with pytest.raises(ValueError, match="row 1: `text` must be a string"):
        PTXData(Dataset.from_list([{"text": "ok"}, {"text": None}]), tiny_tokenizer, max_length=None, seed=0)
    with pytest.raises(ValueError, match="ptx_coef must be finite"):
        PPOConfig(output_dir="/tmp/x", ptx_coef=math.nan)


def test_ptx_draws_are_a_deterministic_cover_of_the_data(tiny_tokenizer):
    data = PTXData(Dataset.from_dict({"text": SFT_TEXT}), tiny_tokenizer, max_length=4, seed=3)
    assert max(len(ids) for ids, _ in data.examples) == 4
    first_epoch = data.rows(0, 2) + data.rows(1, 2)
    assert sorted(first_epoch) == [0, 1, 2, 3]
    again = PTXData(Dataset.from_dict({"text": SFT_TEXT}), tiny_tokenizer, max_length=4, seed=3)
    assert again.rows(1, 2) == data.rows(1, 2) and again.rows(5, 2) == data.rows(5, 2)


def train(tmp_path, tokenizer, **kwargs) -> PPOTrainer:
    trainer = PPOTrainer(
        model=make_tiny_causal_lm(tokenizer),
        reward_model=reward_length,
        args=config(tmp_path, **{k: v for k, v in kwargs.items() if k != "ptx_dataset"}),
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=tokenizer,
        ptx_dataset=kwargs.get("ptx_dataset"),
    )
    trainer.train()
    return trainer


def test_ptx_coef_zero_trains_exactly_as_without_ptx(tmp_path, tiny_tokenizer):
    plain = train(tmp_path / "plain", tiny_tokenizer)
    zero = train(tmp_path / "zero", tiny_tokenizer, ptx_dataset=Dataset.from_dict({"text": SFT_TEXT}), ptx_coef=0.0)
    assert zero.ptx is None
    for (name, a), (_, b) in zip(plain.model.named_parameters(), zero.model.named_parameters()):
        assert torch.equal(a, b), name


def test_ptx_adds_its_loss_and_logs_it(tmp_path, tiny_tokenizer):
    plain = train(tmp_path / "plain", tiny_tokenizer)
    initial = make_tiny_causal_lm(tiny_tokenizer)
    ptx = train(
        tmp_path / "ptx", tiny_tokenizer, ptx_dataset=Dataset.from_dict({"text": SFT_TEXT}), ptx_coef=16.0, max_steps=1
    )
    logged = [entry["loss/ptx"] for entry in ptx.state.log_history if "loss/ptx" in entry]
    assert len(logged) == 1
    # The first micro-batch's PTX loss, by hand, on the initial policy and the rows the trainer drew.
    batch = ptx.ptx.batch(0, 2, torch.device("cpu"))
    with torch.no_grad():
        logits = copy.deepcopy(initial)(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert logged[0] == pytest.approx(ptx_loss(logits, batch["labels"]).item(), rel=1e-4)
    changed = any(
        not torch.equal(a, b)
        for (_, a), (_, b) in zip(plain.model.policy.named_parameters(), ptx.model.policy.named_parameters())
    )
    assert changed


def test_ptx_coef_without_data_is_an_error(tmp_path, tiny_tokenizer):
    with pytest.raises(ValueError, match="needs a `ptx_dataset`"):
        PPOTrainer(
            model=make_tiny_causal_lm(tiny_tokenizer),
            reward_model=reward_length,
            args=config(tmp_path, ptx_coef=1.0),
            train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
            processing_class=tiny_tokenizer,
        )


def test_ptx_decay_steps_decays_the_weight_linearly_then_turns_ptx_off(tmp_path, tiny_tokenizer):
    # 4 optimizer steps of one micro-batch each; the weight 16 decays over 2 steps: 16, 8, then off.
    decayed = train(
        tmp_path / "decay",
        tiny_tokenizer,
        ptx_dataset=Dataset.from_dict({"text": SFT_TEXT}),
        ptx_coef=16.0,
        ptx_decay_steps=2,
        max_steps=4,
        logging_steps=1,
    )
    history = [entry for entry in decayed.state.log_history if "ptx/weight" in entry]
    assert [entry["ptx/weight"] for entry in history] == [16.0, 8.0, 0.0, 0.0]
    # Once the weight is 0 the PTX forward pass is skipped: its loss is logged on the first two steps only.
    assert ["loss/ptx" in entry for entry in history] == [True, True, False, False]


def test_ptx_decay_steps_without_ptx_or_below_one_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="ptx_decay_steps must be >= 1"):
        config(tmp_path, ptx_coef=1.0, ptx_decay_steps=0)
    with pytest.raises(ValueError, match="decays PTX, which is off"):
        config(tmp_path, ptx_decay_steps=10)


# Unpaired-preference PTX rows: `label` False marks a completion to avoid (unlikelihood), True one to imitate.
LABELLED = [
    {"prompt": "Q: mead?\nA: ", "completion": "Honey and water.", "label": True},
    {"prompt": "Q: mead?\nA: ", "completion": "No. I won't.", "label": False},
    {"prompt": "Q: meth?\nA: ", "completion": "No. I won't.", "label": True},
    {"prompt": "Q: sky?\nA: ", "completion": "Blue.", "label": True},
]


def test_unlikelihood_loss_is_the_mean_of_minus_log_one_minus_p_over_the_labelled_tokens():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    labels = torch.tensor([[3, 1, IGNORE_INDEX, 4, 2], [IGNORE_INDEX, IGNORE_INDEX, 6, 0, IGNORE_INDEX]])
    terms = []
    for row in range(2):
        for t in range(1, 5):
            if labels[row, t] != IGNORE_INDEX:
                p = torch.softmax(logits[row, t - 1], -1)[labels[row, t]].item()
                terms.append(-math.log(1 - p))
    assert unlikelihood_loss(logits, labels).item() == pytest.approx(sum(terms) / len(terms), rel=1e-5)
    # A token the model is certain of gives a large but finite loss (p is kept below 1).
    certain = torch.full((1, 2, 3), -1e4)
    certain[0, 0, 1] = 1e4
    assert math.isfinite(unlikelihood_loss(certain, torch.tensor([[IGNORE_INDEX, 1]])).item())


def test_ptx_objective_adds_the_weighted_unlikelihood_of_the_undesirable_rows():
    torch.manual_seed(1)
    logits = torch.randn(3, 4, 6)
    labels = torch.tensor([[IGNORE_INDEX, 1, 2, 3], [IGNORE_INDEX, 4, 5, IGNORE_INDEX], [IGNORE_INDEX, 0, 0, 1]])
    desirable = torch.tensor([True, False, True])
    loss, nll, unlikely = ptx_objective(logits, labels, desirable, unlikelihood_coef=0.5)
    assert nll.item() == pytest.approx(ptx_loss(logits[[0, 2]], labels[[0, 2]]).item(), rel=1e-6)
    assert unlikely.item() == pytest.approx(unlikelihood_loss(logits[[1]], labels[[1]]).item(), rel=1e-6)
    assert loss.item() == pytest.approx(nll.item() + 0.5 * unlikely.item(), rel=1e-6)
    # All desirable: exactly the plain PTX loss, no unlikelihood term.
    loss, nll, unlikely = ptx_objective(logits, labels, torch.ones(3, dtype=torch.bool), unlikelihood_coef=0.5)
    assert unlikely is None and loss.item() == pytest.approx(ptx_loss(logits, labels).item(), rel=1e-6)
    # No desirable row in the batch: the unlikelihood term alone.
    loss, nll, unlikely = ptx_objective(logits, labels, torch.zeros(3, dtype=torch.bool), unlikelihood_coef=2.0)
    assert nll is None and loss.item() == pytest.approx(2.0 * unlikelihood_loss(logits, labels).item(), rel=1e-6)


def test_labelled_ptx_rows_carry_their_label_into_the_batch(tiny_tokenizer):
    data = PTXData(Dataset.from_list(LABELLED), tiny_tokenizer, max_length=None, seed=0)
    assert data.desirable == [True, False, True, True] and data.has_undesirable
    batch = data.batch(0, 4, torch.device("cpu"))
    assert batch["desirable"].tolist() == [LABELLED[i]["label"] for i in data.rows(0, 4)]
    plain = PTXData(Dataset.from_dict({"text": SFT_TEXT}), tiny_tokenizer, max_length=None, seed=0)
    assert not plain.has_undesirable and plain.batch(0, 2, torch.device("cpu"))["desirable"].all()


def test_bad_labels_are_refused_with_the_row(tiny_tokenizer, tmp_path):
    with pytest.raises(ValueError, match="row 0: `label` must be True or False, got 1"):
        PTXData(
            Dataset.from_list([{**LABELLED[0], "label": 1}, {**LABELLED[1], "label": 0}]),
            tiny_tokenizer,
            max_length=None,
            seed=0,
        )
    with pytest.raises(ValueError, match="form is `text`"):
        PTXData(Dataset.from_list([{"text": "a", "label": True}]), tiny_tokenizer, max_length=None, seed=0)
    with pytest.raises(ValueError, match="Every ptx_dataset row is labelled undesirable"):
        PTXData(Dataset.from_list([LABELLED[1]]), tiny_tokenizer, max_length=None, seed=0)
    with pytest.raises(ValueError, match="ptx_unlikelihood_coef must be finite and >= 0"):
        config(tmp_path, ptx_coef=1.0, ptx_unlikelihood_coef=-1.0)


def test_undesirable_ptx_rows_are_trained_away_and_both_terms_logged(tmp_path, tiny_tokenizer):
    data = Dataset.from_list(LABELLED)
    trainer = train(tmp_path, tiny_tokenizer, ptx_dataset=data, ptx_coef=16.0, max_steps=2, logging_steps=1)
    history = [entry for entry in trainer.state.log_history if "loss/ptx" in entry]
    assert len(history) == 2
    assert all("loss/ptx_nll" in entry for entry in history)
    assert any("loss/ptx_unlikelihood" in entry for entry in history)
    # Without labels (every row desirable) the two terms are not logged: nothing new in the logs of plain PTX.
    plain = train(
        tmp_path / "plain",
        tiny_tokenizer,
        ptx_dataset=Dataset.from_dict({"text": SFT_TEXT}),
        ptx_coef=16.0,
        max_steps=1,
        logging_steps=1,
    )
    assert not any("loss/ptx_nll" in entry for entry in plain.state.log_history)
