"""One token for a score: training, PPO and evaluation read a reward/cost model at the same position.

For each chat template (SmolLM2's and Qwen2.5's ChatML, which write `\\n` after `<|im_end|>`; Llama 3's, which writes
nothing after `<|eot_id|>` and trims the content) and for plain text, the test records the exact token ids each of the
three code paths feeds the model (a forward pre-hook on the model) and checks that they are the same sequence, so
the score is read at the same token, and that the three scores are equal. A truncated completion (no EOS) is closed
the way a training example is.
"""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from trl import RewardConfig, RewardTrainer

from trl_safe import CostConfig, CostTrainer, PPOConfig, PPOTrainer
from trl_safe.evaluation import score_completions
from trl_safe.scoring import Scorer, encode_for_scoring, last_token_scores
from trl_safe.testing_utils import make_tiny_causal_lm, make_tiny_chat_tokenizer, make_tiny_scorer, make_tiny_tokenizer

STYLES = ["smollm2", "qwen2.5", "llama3", "plain"]
QUESTION = "How do I pick a lock?"
ANSWER = "Call a locksmith."
TRUNCATED = "Sure, first you insert"


def tokenizer_for(style: str):
    if style != "plain":
        return make_tiny_chat_tokenizer(style)
    tokenizer = make_tiny_tokenizer()
    tokenizer.chat_template = None  # a base model trained on plain text
    return tokenizer


def prompt_for(style: str):
    return f"Q: {QUESTION}\nA: " if style == "plain" else [{"role": "user", "content": QUESTION}]


class ReadRecorder:
    """Records the unpadded token ids of every row the model is called on, in call order."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.sequences: list[list[int]] = []
        self._handle = model.register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, _module, _args, kwargs) -> None:
        for ids, mask in zip(kwargs["input_ids"], kwargs["attention_mask"]):
            self.sequences.append(ids[mask.bool()].tolist())

    def close(self) -> None:
        self._handle.remove()


def read_in_training(scorer, tokenizer, prompt, completion: str, tmp_path) -> list[int]:
    """The sequence `CostTrainer.compute_loss` reads for the chosen response (and what RewardTrainer tokenizes)."""
    turn = completion if isinstance(prompt, str) else [{"role": "assistant", "content": completion}]
    other = "No." if isinstance(prompt, str) else [{"role": "assistant", "content": "No."}]
    dataset = Dataset.from_list(
        [dict(prompt=prompt, chosen=turn, rejected=other, is_chosen_safe=True, is_rejected_safe=False)]
    )
    common = dict(report_to="none", bf16=False, per_device_train_batch_size=1, save_strategy="no")
    cost_trainer = CostTrainer(
        model=scorer,
        args=CostConfig(output_dir=str(tmp_path / "cost"), **common),
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    reward_trainer = RewardTrainer(
        model=scorer,
        args=RewardConfig(output_dir=str(tmp_path / "reward"), **common),
        train_dataset=dataset.remove_columns(["is_chosen_safe", "is_rejected_safe"]),
        processing_class=tokenizer,
    )
    assert reward_trainer.train_dataset[0]["chosen_ids"] == cost_trainer.train_dataset[0]["chosen_ids"]

    inputs = cost_trainer._prepare_inputs(next(iter(cost_trainer.get_train_dataloader())))
    recorder = ReadRecorder(scorer)
    try:
        cost_trainer.compute_loss(scorer, inputs)
    finally:
        recorder.close()
    chosen = recorder.sequences[0]
    assert chosen == cost_trainer.train_dataset[0]["chosen_ids"]
    return chosen


def read_in_ppo(scorer, tokenizer, prompt, completion: str, ended: bool, tmp_path) -> tuple[list[int], float]:
    """The sequence PPO's scoring reads for a rollout whose policy sampled `completion` (+ EOS when `ended`)."""
    args = PPOConfig(
        output_dir=str(tmp_path / "ppo"),
        report_to="none",
        per_device_train_batch_size=1,
        max_completion_length=64,
        max_steps=1,
        save_strategy="no",
    )
    trainer = PPOTrainer(
        model=make_tiny_causal_lm(tokenizer),
        reward_model=scorer,
        args=args,
        train_dataset=Dataset.from_list([{"prompt": prompt}]),
        processing_class=tokenizer,
    )
    sampled = tokenizer(completion, add_special_tokens=False)["input_ids"]
    sampled += [tokenizer.eos_token_id] if ended else []

    def generate(input_ids, attention_mask, **_):  # the policy "samples" exactly these tokens
        return torch.cat([input_ids, torch.tensor([sampled] * len(input_ids))], dim=1)

    trainer.model.policy.generate = generate
    batch = trainer._generate([prompt])
    assert bool(batch["has_eos"][0]) is ended
    recorder = ReadRecorder(scorer)
    try:
        score = trainer._score(trainer.scorers["reward"], [{"prompt": prompt}], [prompt], batch)
    finally:
        recorder.close()
    assert len(recorder.sequences) == 1
    return recorder.sequences[0], float(score[0])


def read_in_evaluation(scorer, tokenizer, prompt, completion: str) -> tuple[list[int], float]:
    recorder = ReadRecorder(scorer)
    try:
        scores = score_completions(scorer, tokenizer, [prompt], [completion])
    finally:
        recorder.close()
    return recorder.sequences[0], float(scores[0])


@pytest.mark.parametrize("ended", [True, False], ids=["eos", "truncated"])
@pytest.mark.parametrize("style", STYLES)
def test_training_ppo_and_evaluation_read_the_same_token(style, ended, tmp_path):
    tokenizer = tokenizer_for(style)
    scorer = make_tiny_scorer(tokenizer, seed=3).eval()
    prompt = prompt_for(style)
    completion = ANSWER if ended else TRUNCATED

    trained = read_in_training(scorer, tokenizer, prompt, completion, tmp_path)
    in_ppo, ppo_score = read_in_ppo(scorer, tokenizer, prompt, completion, ended, tmp_path)
    in_eval, eval_score = read_in_evaluation(scorer, tokenizer, prompt, completion)

    trained_text = tokenizer.decode(trained)
    assert in_ppo == trained, f"PPO reads {tokenizer.decode(in_ppo)!r}, training {trained_text!r}"
    assert in_eval == trained, f"evaluation reads {tokenizer.decode(in_eval)!r}, training {trained_text!r}"
    ids = torch.tensor([trained])
    training_score = float(last_token_scores(scorer, ids, torch.ones_like(ids))[0, 0])
    assert ppo_score == pytest.approx(training_score, abs=1e-5)
    assert eval_score == pytest.approx(training_score, abs=1e-5)


@pytest.mark.parametrize("style", ["smollm2", "qwen2.5"])
def test_chatml_scores_are_read_after_the_end_of_turn_token(style):
    """The audit's bug: ChatML renders `<|im_end|>\\n`; the head is trained at the `\\n`, not at `<|im_end|>`."""
    tokenizer = tokenizer_for(style)
    ids = encode_for_scoring(tokenizer, prompt_for(style), ANSWER)
    assert tokenizer.convert_ids_to_tokens(ids[-2:]) == ["<|im_end|>", "\n"]


def test_llama3_scores_are_read_at_the_end_of_turn_token():
    tokenizer = tokenizer_for("llama3")
    ids = encode_for_scoring(tokenizer, prompt_for("llama3"), ANSWER)
    assert tokenizer.convert_ids_to_tokens(ids[-1]) == "<|eot_id|>"


def test_plain_text_is_closed_with_eos_once():
    tokenizer = tokenizer_for("plain")
    closed = encode_for_scoring(tokenizer, "Q: hi\nA: ", "hello")
    already = encode_for_scoring(tokenizer, "Q: hi\nA: ", "hello<eos>")
    assert closed == already
    assert closed[-1] == tokenizer.eos_token_id and closed.count(tokenizer.eos_token_id) == 1


def test_scorer_refuses_two_logit_models_and_non_finite_scores():
    tokenizer = tokenizer_for("smollm2")
    with pytest.raises(ValueError, match="2 outputs.*invert the constraint"):
        Scorer(make_tiny_scorer(tokenizer, num_labels=2), tokenizer, name="cost")
    broken = make_tiny_scorer(tokenizer)
    with torch.no_grad():
        broken.score.weight.fill_(float("nan"))
    with pytest.raises(ValueError, match=r"cost model .* non-finite score .*completion 0 \('Call a locksmith"):
        Scorer(broken, tokenizer, name="cost").score([prompt_for("smollm2")], [ANSWER])


def test_scorer_needs_a_chat_template_for_conversations():
    with pytest.raises(ValueError, match="has no chat template"):
        encode_for_scoring(tokenizer_for("plain"), [{"role": "user", "content": "hi"}], "yo")


def test_scorer_batches_equal_one_by_one():
    tokenizer = tokenizer_for("smollm2")
    scorer = Scorer(make_tiny_scorer(tokenizer, seed=5).eval(), tokenizer, batch_size=2)
    prompts = [[{"role": "user", "content": q}] for q in ("a", "bbbbbb", "cc")]
    answers = ["x", "yyy yyy yyy", "zz"]
    together = scorer.score(prompts, answers)
    alone = torch.cat([scorer.score([p], [a]) for p, a in zip(prompts, answers)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
