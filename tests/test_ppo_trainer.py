"""PPOTrainer on tiny models: the PPO loop inside `Trainer`, prompts, score sources, PEFT, pad == EOS, saving."""

import os
from collections import Counter
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM, LlamaForCausalLM

from trl_safe import PPOConfig, PPOTrainer
from trl_safe.ppo.models import VALUE_MODEL_DIR
from trl_safe.scoring import find_score_head, last_token_scores
from trl_safe.testing_utils import make_tiny_causal_lm, make_tiny_scorer, make_tiny_tokenizer, tiny_rl_config

REPO_ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["Hello there", "The sky is", "Tell me a story", "Why?", "abc", "Once upon", "x", "Name a color"]


def tiny_config(output_dir, **overrides) -> PPOConfig:
    return tiny_rl_config(PPOConfig, output_dir, **overrides)


def text_prompts(n: int = 8) -> Dataset:
    return Dataset.from_dict({"prompt": (PROMPTS * 4)[:n]})


def length_reward(completions, **kwargs):
    return [len(c) / 10 for c in completions]


def test_first_step_sees_ratio_one_and_logs_ppo_metrics(tmp_path, tiny_tokenizer):
    # Two micro-batches (gradient accumulation) both run before the first optimizer step, on the weights that made
    # the rollout: their ratio must be exactly 1, which checks that the rollout's and the loss's log-probs line up.
    args = tiny_config(tmp_path, gradient_accumulation_steps=2, num_ppo_epochs=2, max_steps=2)
    trainer = PPOTrainer(
        model=make_tiny_causal_lm(tiny_tokenizer),
        reward_model=make_tiny_scorer(tiny_tokenizer, seed=1),
        args=args,
        train_dataset=text_prompts(),
        processing_class=tiny_tokenizer,
    )
    trainer.train()
    first, second = trainer.state.log_history[0], trainer.state.log_history[1]

    assert first["val/ratio"] == pytest.approx(1.0, abs=1e-5)
    assert first["policy/approxkl"] == pytest.approx(0.0, abs=1e-8)
    assert first["policy/clipfrac"] == 0.0
    assert first["objective/kl"] == pytest.approx(0.0, abs=1e-5)  # the policy is still the reference
    assert first["val/num_eos_tokens"] <= 4
    for key in (
        "objective/scores",
        "objective/entropy",
        "objective/non_score_reward",
        "objective/rlhf_reward",
        "loss/policy",
        "loss/value",
        "loss/reward_value",
        "policy/entropy",
        "val/clipfrac",
        "val/ratio_var",
        "val/reward_value",
        "val/reward_return",
        "val/advantage",
        "completions/mean_length",
    ):
        assert key in first and first[key] == first[key], key  # present and not NaN
    # The second optimizer step reuses the same rollout (second PPO epoch): no rollout metrics, only loss metrics,
    # averaged over the micro-batches that ran (never over unfilled slots).
    assert "objective/scores" not in second and "loss/policy" in second
    assert second["val/ratio"] != pytest.approx(1.0, abs=1e-7)

    # Each PPO epoch is one shuffled pass over the whole rollout (4 prompts here).
    rows = Counter(tuple(ids.tolist()) for batch in trainer._micro_batches for ids in batch.input_ids)
    assert sum(rows.values()) == 2 * 4


def test_conversational_prompts_use_the_chat_template(tmp_path, tiny_tokenizer):
    seen = {}

    def reward(prompts, completions, **kwargs):
        seen["prompts"], seen["completions"] = prompts, completions
        return [float(len(c[0]["content"])) for c in completions]

    conversations = [[{"role": "user", "content": p}] for p in PROMPTS]
    trainer = PPOTrainer(
        model=make_tiny_causal_lm(tiny_tokenizer),
        reward_model=reward,
        args=tiny_config(tmp_path, max_steps=1),
        train_dataset=Dataset.from_dict({"prompt": conversations}),
        processing_class=tiny_tokenizer,
    )
    ids = trainer._tokenize_prompts(conversations[:1])[0]
    assert tiny_tokenizer.decode(ids) == "<|user|>Hello there<eos><|assistant|>"
    trainer.train()
    assert seen["prompts"][0][0]["role"] == "user"
    assert all(c[0]["role"] == "assistant" for c in seen["completions"])


def test_score_functions_get_the_extra_columns_and_bad_output_is_an_error(tmp_path, tiny_tokenizer):
    calls = []

    def reward(prompts, completions, completion_ids, trainer_state, topic, **kwargs):
        calls.append({"topic": topic, "ids": completion_ids, "step": trainer_state.global_step})
        return [1.0] * len(prompts)

    dataset = Dataset.from_dict({"prompt": PROMPTS, "topic": [f"t{i}" for i in range(len(PROMPTS))]})
    trainer = PPOTrainer(
        model=make_tiny_causal_lm(tiny_tokenizer),
        reward_model=reward,
        args=tiny_config(tmp_path, max_steps=1),
        train_dataset=dataset,
        processing_class=tiny_tokenizer,
    )
    trainer.train()
    assert len(calls) == 1 and all(t.startswith("t") for t in calls[0]["topic"])
    assert all(isinstance(ids, list) and len(ids) >= 1 for ids in calls[0]["ids"])

    def broken_reward(prompts, completions, **kwargs):
        return [None] + [0.0] * (len(prompts) - 1)

    trainer = PPOTrainer(
        model=make_tiny_causal_lm(tiny_tokenizer),
        reward_model=broken_reward,
        args=tiny_config(tmp_path, max_steps=1),
        train_dataset=dataset,
        processing_class=tiny_tokenizer,
    )
    with pytest.raises(ValueError, match=r"reward function `broken_reward` returned None for completion 0"):
        trainer.train()


def test_peft_reference_is_the_policy_without_its_adapter(tmp_path, tiny_tokenizer):
    from peft import LoraConfig

    trainer = PPOTrainer(
        model=make_tiny_causal_lm(tiny_tokenizer),
        reward_model=length_reward,
        args=tiny_config(tmp_path, max_steps=2, activation_checkpointing=True),
        train_dataset=text_prompts(),
        processing_class=tiny_tokenizer,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0),
    )
    # No second copy of the policy: no reference model, and the only causal LM is the (adapted) policy.
    assert trainer.ref_model is None
    causal_lms = [m for m in trainer.model.modules() if isinstance(m, LlamaForCausalLM)]
    assert len(causal_lms) == 1
    trainable = {n for n, p in trainer.model.policy.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)

    trainer.train()
    assert trainer.state.log_history[0]["objective/kl"] == pytest.approx(0.0, abs=1e-5)  # LoRA starts as a no-op
    batch = trainer._generate(PROMPTS[:2])
    with torch.no_grad():
        policy_logprobs, _, _ = trainer._policy_forward(trainer.model, batch, compute_values=False)
        ref_logprobs = trainer._reference_logprobs(batch)
        with trainer.model.policy.disable_adapter():
            base_logprobs, _, _ = trainer._policy_forward(trainer.model, batch, compute_values=False)
    torch.testing.assert_close(ref_logprobs, base_logprobs)
    assert not torch.allclose(policy_logprobs, ref_logprobs), "the trained adapter must move the policy"


def test_pad_equals_eos_keeps_the_eos_and_reads_the_score_there(tmp_path, tiny_tokenizer_pad_eos):
    tokenizer = tiny_tokenizer_pad_eos
    reward_model = make_tiny_scorer(tokenizer, seed=1)
    trainer = PPOTrainer(
        model=make_tiny_causal_lm(tokenizer),
        reward_model=reward_model,
        args=tiny_config(tmp_path, max_completion_length=12, max_steps=1),
        train_dataset=text_prompts(),
        processing_class=tokenizer,
    )
    # Make EOS likely so that some completions end early and are followed by padding (= EOS ids).
    with torch.no_grad():
        trainer.model.policy.lm_head.weight[tokenizer.eos_token_id] += 2.0
    batch = trainer._generate(PROMPTS * 2)
    scores = trainer._score(trainer.scorers["reward"], [{"prompt": p} for p in PROMPTS * 2], PROMPTS * 2, batch)
    lengths = batch["completion_mask"].sum(1)
    assert (lengths < batch["completion_ids"].shape[1]).any(), "some completion must end early, padded with EOS ids"

    for row in range(len(PROMPTS) * 2):
        length = int(batch["completion_mask"][row].sum())
        completion = batch["completion_ids"][row, :length].tolist()
        if batch["has_eos"][row]:
            assert completion[-1] == tokenizer.eos_token_id, "the EOS closing the response is part of it"
            assert tokenizer.eos_token_id not in completion[:-1]
        # Read where a plain-text reward model is trained: prompt + completion text + EOS (also when truncated),
        # at that EOS, although EOS is also the pad id.
        sequence = tokenizer(PROMPTS[row % len(PROMPTS)] + batch["completions"][row] + "<eos>", return_tensors="pt")
        assert sequence["input_ids"][0, -1] == tokenizer.pad_token_id
        expected = last_token_scores(reward_model, sequence["input_ids"], sequence["attention_mask"])[0, 0]
        torch.testing.assert_close(scores[row], expected, atol=1e-5, rtol=1e-5)
    trainer.train()


def test_reward_model_with_its_own_tokenizer_reads_re_tokenised_text(tmp_path, tiny_tokenizer):
    other_tokenizer = make_tiny_tokenizer()
    other_tokenizer.add_tokens(["<extra>"])  # another vocabulary: the reward model cannot read the policy's ids
    reward_model = make_tiny_scorer(other_tokenizer, seed=1)
    trainer = PPOTrainer(
        model=make_tiny_causal_lm(tiny_tokenizer),
        reward_model=reward_model,
        reward_processing_class=other_tokenizer,
        args=tiny_config(tmp_path),
        train_dataset=text_prompts(),
        processing_class=tiny_tokenizer,
    )
    assert trainer.scorers["reward"].processing_class is other_tokenizer
    # The critic must read the policy's tokens, so it is not copied from this reward model.
    assert torch.count_nonzero(find_score_head(trainer.model.value_model).weight) == 0

    prompts = PROMPTS[:4]
    batch = trainer._generate(prompts)
    scores = trainer._score(trainer.scorers["reward"], [{"prompt": p} for p in prompts], prompts, batch)
    for row, prompt in enumerate(prompts):
        text = prompt + batch["completions"][row] + "<eos>"  # closed as in training, truncated or not
        encoded = other_tokenizer(text, return_tensors="pt")
        expected = last_token_scores(reward_model, encoded["input_ids"], encoded["attention_mask"])[0, 0]
        torch.testing.assert_close(scores[row], expected, atol=1e-5, rtol=1e-5)


def test_models_and_tokenizers_given_as_paths(tmp_path, tiny_tokenizer, save_checkpoints):
    save_checkpoints(policy=make_tiny_causal_lm(tiny_tokenizer), reward=make_tiny_scorer(tiny_tokenizer, seed=1))
    trainer = PPOTrainer(
        model=str(tmp_path / "policy"),
        reward_model=str(tmp_path / "reward"),
        args=tiny_config(tmp_path / "out", max_steps=1),
        train_dataset=text_prompts(),
    )
    assert trainer.scorers["reward"].processing_class is None, "same vocabulary: the reward model can seed the critic"
    assert trainer.scorers["reward"].display_name == "reward"
    trainer.train()
    assert trainer.state.global_step == 1


def test_critic_starts_from_the_reward_model_or_the_policy(tmp_path, tiny_tokenizer):
    policy, reward_model = make_tiny_causal_lm(tiny_tokenizer), make_tiny_scorer(tiny_tokenizer, seed=1)
    trainer = PPOTrainer(
        model=policy,
        reward_model=reward_model,
        args=tiny_config(tmp_path),
        train_dataset=text_prompts(),
        processing_class=tiny_tokenizer,
    )
    critic = trainer.model.value_model
    assert critic is not reward_model
    torch.testing.assert_close(find_score_head(critic).weight, find_score_head(reward_model).weight)
    assert not any(p.requires_grad for p in reward_model.parameters())

    trainer = PPOTrainer(
        model=make_tiny_causal_lm(tiny_tokenizer),
        reward_model=length_reward,
        args=tiny_config(tmp_path),
        train_dataset=text_prompts(),
        processing_class=tiny_tokenizer,
    )
    critic, policy = trainer.model.value_model, trainer.model.policy
    assert torch.count_nonzero(find_score_head(critic).weight) == 0
    torch.testing.assert_close(critic.model.layers[0].mlp.up_proj.weight, policy.model.layers[0].mlp.up_proj.weight)


def test_save_model_writes_the_policy_tokenizer_and_card(tmp_path, tiny_tokenizer):
    args = tiny_config(tmp_path / "run", max_steps=2, save_strategy="steps", save_steps=1)
    trainer = PPOTrainer(
        model=make_tiny_causal_lm(tiny_tokenizer),
        reward_model=make_tiny_scorer(tiny_tokenizer, seed=1),
        args=args,
        train_dataset=text_prompts(),
        processing_class=tiny_tokenizer,
    )
    trainer.train()
    checkpoint = tmp_path / "run" / "checkpoint-1"
    assert (checkpoint / VALUE_MODEL_DIR / "model.safetensors").is_file(), "checkpoints keep the critic"
    assert (checkpoint / "model.safetensors").is_file() and (checkpoint / "optimizer.pt").is_file()

    output = tmp_path / "final"
    trainer.save_model(str(output))
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= set(os.listdir(output))
    assert not (output / VALUE_MODEL_DIR).exists(), "the final model is the policy alone"
    reloaded = AutoModelForCausalLM.from_pretrained(output)
    for name, tensor in reloaded.state_dict().items():
        torch.testing.assert_close(tensor, trainer.model.policy.state_dict()[name])
    card = (output / "README.md").read_text()
    assert "trl-safe" in card and "- ppo" in card and "PPOTrainer" in card and "kl_coef" in card

    trainer.args.save_value_model = True
    trainer.save_model(str(tmp_path / "with_critic"))
    saved = load_file(str(tmp_path / "with_critic" / VALUE_MODEL_DIR / "model.safetensors"))
    torch.testing.assert_close(saved["score.weight"], find_score_head(trainer.model.value_model).weight)
    assert AutoConfig.from_pretrained(tmp_path / "with_critic" / VALUE_MODEL_DIR).num_labels == 1


def test_score_sources_must_match_the_value_heads(tmp_path, tiny_tokenizer):
    """The hook contract: one score source per critic value head, in the heads' order."""

    class TwoHeads(PPOTrainer):
        value_head_names = ("reward", "cost")

    kwargs = dict(
        model=make_tiny_causal_lm(tiny_tokenizer),
        args=tiny_config(tmp_path),
        train_dataset=text_prompts(),
        processing_class=tiny_tokenizer,
    )
    with pytest.raises(ValueError, match=r"value heads \['reward', 'cost'\] .* got \['reward'\]"):
        TwoHeads(reward_model=length_reward, **kwargs)
    with pytest.raises(ValueError, match=r"got \['cost', 'reward'\]"):
        TwoHeads(score_sources={"cost": length_reward, "reward": length_reward}, **kwargs)
    with pytest.raises(ValueError, match="not both"):
        PPOTrainer(reward_model=length_reward, score_sources={"reward": length_reward}, **kwargs)
    trainer = TwoHeads(score_sources={"reward": length_reward, "cost": length_reward}, **kwargs)
    assert list(trainer.scorers) == ["reward", "cost"]
    assert trainer.model.value_model.config.num_labels == 2


def test_evaluate_reports_the_mean_score(tmp_path, tiny_tokenizer):
    scored = []

    def recording_reward(completions, **kwargs):  # a score that differs between completions of the same length
        scores = [sum(map(ord, completion)) / 1000 for completion in completions]
        scored.extend(scores)
        return scores

    trainer = PPOTrainer(
        model=make_tiny_causal_lm(tiny_tokenizer),
        reward_model=recording_reward,
        args=tiny_config(tmp_path, per_device_eval_batch_size=4),
        train_dataset=text_prompts(),
        eval_dataset=text_prompts(4),
        processing_class=tiny_tokenizer,
    )
    metrics = trainer.evaluate()
    # The mean of the scores of the 4 evaluation completions, not a number that merely looks plausible.
    assert len(scored) == 4 and len(set(scored)) > 1
    assert metrics["eval_objective/scores"] == pytest.approx(sum(scored) / 4)
    assert "eval_completions/mean_length" in metrics


def test_bad_inputs_are_clear_errors(tmp_path, tiny_tokenizer):
    with pytest.raises(ValueError, match="kl_estimator"):
        tiny_config(tmp_path, kl_estimator="k2")
    policy = make_tiny_causal_lm(tiny_tokenizer)
    with pytest.raises(ValueError, match="`prompt` column"):
        PPOTrainer(
            model=policy,
            reward_model=length_reward,
            args=tiny_config(tmp_path),
            train_dataset=Dataset.from_dict({"text": ["a"]}),
            processing_class=tiny_tokenizer,
        )
    with pytest.raises(TypeError, match="reward source"):
        PPOTrainer(
            model=policy,
            reward_model=3,
            args=tiny_config(tmp_path),
            train_dataset=text_prompts(),
            processing_class=tiny_tokenizer,
        )
    trainer = PPOTrainer(
        model=policy,
        reward_model=length_reward,
        args=tiny_config(tmp_path, per_device_train_batch_size=16),
        train_dataset=text_prompts(),
        processing_class=tiny_tokenizer,
    )
    with pytest.raises(ValueError, match="fewer than one rollout needs"):
        trainer.train()


def test_example_script_trains_on_pku_saferlhf_prompts(tmp_path, tiny_tokenizer, shared_data, save_checkpoints):
    save_checkpoints(policy=make_tiny_causal_lm(tiny_tokenizer), reward=make_tiny_scorer(tiny_tokenizer))
    from trl_safe.scripts import ppo

    argv = [
        "--model_name_or_path", str(tmp_path / "policy"),
        "--reward_model_name_or_path", str(tmp_path / "reward"),
        "--dataset_name", str(shared_data / "pku_saferlhf_test_sample.jsonl"), "--max_prompts", "4",
        "--output_dir", str(tmp_path / "out"), "--per_device_train_batch_size", "4", "--max_steps", "1",
        "--max_prompt_length", "48", "--max_completion_length", "4", "--report_to", "none",
        "--activation_checkpointing", "false", "--save_strategy", "no", "--disable_tqdm", "true",
    ]  # fmt: skip
    trainer = ppo.main(*ppo.make_parser().parse_args_and_config(args=argv))
    assert trainer.state.global_step == 1 and isinstance(trainer.train_dataset[0]["prompt"], str)
    assert (tmp_path / "out" / "model.safetensors").is_file()


def test_no_gradient_norm_pass_when_clipping_is_off(tmp_path, tiny_tokenizer, monkeypatch):
    # Trainer would compute a norm over every gradient each step only to log it; with clipping off we skip it.
    from trl_safe import PPOConfig, PPOTrainer
    from trl_safe.testing_utils import make_tiny_causal_lm

    calls = []
    original = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda *a, **k: calls.append(1) or original(*a, **k))
    args = PPOConfig(
        output_dir=str(tmp_path),
        report_to="none",
        max_steps=1,
        per_device_train_batch_size=2,
        max_completion_length=4,
        num_ppo_epochs=1,
        max_grad_norm=0.0,
        logging_steps=1,
        bf16=False,
        gradient_checkpointing=False,
        save_strategy="no",
        use_cpu=True,
    )
    trainer = PPOTrainer(
        model=make_tiny_causal_lm(tiny_tokenizer),
        reward_model=lambda prompts, completions, **kwargs: [float(len(c)) for c in completions],
        args=args,
        processing_class=tiny_tokenizer,
        train_dataset=Dataset.from_dict({"prompt": ["Hi", "Yo", "Hey", "Ok"]}),
    )
    trainer.train()
    assert calls == []
    assert "grad_norm" not in trainer.state.log_history[0]


def _trainer_for_rollouts(tmp_path, tokenizer, **overrides) -> PPOTrainer:
    return PPOTrainer(
        model=make_tiny_causal_lm(tokenizer),
        reward_model=make_tiny_scorer(tokenizer, seed=1),
        args=tiny_config(tmp_path, gradient_accumulation_steps=2, num_mini_batches=2, **overrides),
        train_dataset=text_prompts(),
        processing_class=tokenizer,
    )


def test_rollout_forward_passes_take_local_rollout_forward_batch_size_rows(tmp_path, tiny_tokenizer, monkeypatch):
    # A rollout of 8 rows (2 per micro-batch x 2 accumulation steps x 2 mini-batches) is read in passes of
    # `per_device_train_batch_size` rows by default, in one pass with local_rollout_forward_batch_size=8; the
    # log-probs and values are the same either way.
    with pytest.raises(ValueError, match="local_rollout_forward_batch_size must be >= 1 or None, got 0"):
        tiny_config(tmp_path, local_rollout_forward_batch_size=0)
    by_default = _trainer_for_rollouts(tmp_path / "default", tiny_tokenizer)
    one_pass = _trainer_for_rollouts(tmp_path / "one_pass", tiny_tokenizer, local_rollout_forward_batch_size=8)
    assert by_default.args.local_rollout_forward_batch_size is None
    batch = by_default._generate([(PROMPTS * 2)[i] for i in range(8)])
    results = {}
    for name, trainer in {"default": by_default, "one_pass": one_pass}.items():
        rows_per_pass = []
        original = trainer._policy_forward

        def counting(model, part, *args, _original=original, _rows=rows_per_pass, **kwargs):
            _rows.append(part["input_ids"].shape[0])
            return _original(model, part, *args, **kwargs)

        monkeypatch.setattr(trainer, "_policy_forward", counting)
        results[name] = trainer._rollout_forward(batch)
        results[name + "_rows"] = rows_per_pass
    assert results["default_rows"] == [2, 2, 2, 2] and results["one_pass_rows"] == [8]
    for chunked, whole in zip(results["default"], results["one_pass"]):
        torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-5)


def test_the_rollout_runs_in_the_training_precision(tmp_path, tiny_tokenizer):
    # Under mixed precision (`bf16=True` with float32 weights: PPOConfig's default on a bf16 GPU), generation, the
    # frozen reference and the reward model run under the same autocast as the trained module's forward, not in
    # float32. On the CPU, accelerate's autocast is torch's CPU autocast, so the wiring is checked here.
    seen: dict[str, list[bool]] = {"policy": [], "reference": [], "reward": []}
    trainer = PPOTrainer(
        model=make_tiny_causal_lm(tiny_tokenizer),
        reward_model=make_tiny_scorer(tiny_tokenizer, seed=1),
        args=tiny_config(tmp_path, bf16=True, use_cpu=True, max_steps=1),
        train_dataset=text_prompts(),
        processing_class=tiny_tokenizer,
    )
    assert trainer.accelerator.mixed_precision == "bf16"
    models = {
        "policy": trainer.accelerator.unwrap_model(trainer.model).policy,
        "reference": trainer.ref_model,
        "reward": trainer.scorers["reward"].model,
    }
    for name, model in models.items():
        model.register_forward_hook(lambda *_, _name=name: seen[_name].append(torch.is_autocast_enabled("cpu")))
    trainer.train()
    assert all(seen.values()) and all(all(flags) for flags in seen.values()), seen
    assert trainer.state.log_history[0]["objective/kl"] == pytest.approx(0.0, abs=1e-3)
    # Evaluation samples and scores in the same precision.
    seen = {name: [] for name in seen}
    trainer.evaluate(eval_dataset=text_prompts(4))
    assert seen["policy"] and seen["reward"] and all(seen["policy"] + seen["reward"]), seen
