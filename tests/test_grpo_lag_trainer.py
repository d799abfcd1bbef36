"""GRPOLagTrainer and RLOOLagTrainer: a drop-in for TRL's trainers, the Lagrangian advantage, λ per constraint,
bad cost functions, cost models, resume, and the toy constrained task of PPO-Lag's tests."""

import json
import math

import pytest
import torch
from datasets import Dataset
from test_ppo_lag_trainer import COST_LIMIT, LENGTH, letters_tokenizer, toy_cost, toy_prompts, toy_reward
from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

from trl_safe import GRPOLagConfig, GRPOLagTrainer, LagrangeMultiplier, RLOOLagConfig, RLOOLagTrainer
from trl_safe.cli import run_script
from trl_safe.critic_free import LAGRANGE_STATES_NAME, checked_costs
from trl_safe.scoring import Scorer
from trl_safe.testing_utils import make_tiny_causal_lm, make_tiny_scorer, tiny_critic_free_config

PROMPTS = ["Hello there", "The sky is", "Tell me a story", "Why?", "abc", "Once upon", "x", "Name a color"]


def tiny_args(config_class, output_dir, **overrides):
    return tiny_critic_free_config(config_class, output_dir, **overrides)


def length_reward(completions, **kwargs):
    return [len(c) / 10 for c in completions]


def vowel_cost(completions, **kwargs):
    return [sum(ch in "aeiou" for ch in c) / 6 for c in completions]


def char_cost(completions, **kwargs):
    """Changes with every sampled character, so λ's trajectory exposes any difference in the sampling stream."""
    return [sum(map(ord, c)) % 10 / 10 for c in completions]


def assert_same_weights(model_a, model_b):
    for (name, a), (_, b) in zip(model_a.named_parameters(), model_b.named_parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


# ---------------------------------------------------------------------------------------------------------------
# Without costs: exactly TRL's trainer
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "trl_classes, lag_classes",
    [
        ((GRPOConfig, GRPOTrainer), (GRPOLagConfig, GRPOLagTrainer)),
        ((RLOOConfig, RLOOTrainer), (RLOOLagConfig, RLOOLagTrainer)),
    ],
    ids=["GRPO", "RLOO"],
)
def test_without_costs_it_trains_exactly_like_trls_trainer(tmp_path, tiny_tokenizer, trl_classes, lag_classes):
    dataset = Dataset.from_dict({"prompt": PROMPTS})
    trained = []
    for (config_class, trainer_class), name in ((trl_classes, "trl"), (lag_classes, "lag")):
        trainer = trainer_class(
            model=make_tiny_causal_lm(tiny_tokenizer),
            reward_funcs=length_reward,
            args=tiny_args(config_class, tmp_path / name),
            train_dataset=dataset,
            processing_class=tiny_tokenizer,
        )
        trainer.train()
        trained.append(trainer)
    trl_trainer, lag_trainer = trained
    assert lag_trainer.lagranges == [] and lag_trainer.reward_weights.tolist() == [1.0]
    if isinstance(lag_trainer, GRPOLagTrainer):  # "auto" is GRPO's own aggregation when there are no costs
        assert lag_trainer.multi_objective_aggregation == "sum_then_normalize"
    assert lag_trainer.state.log_history[-2]["loss"] == trl_trainer.state.log_history[-2]["loss"]
    assert any(entry["grad_norm"] > 0 for entry in trl_trainer.state.log_history if "grad_norm" in entry)
    assert_same_weights(lag_trainer.model, trl_trainer.model)


# ---------------------------------------------------------------------------------------------------------------
# Construction: limits, configs, names
# ---------------------------------------------------------------------------------------------------------------


def test_one_limit_per_cost_function_is_checked_at_construction(tmp_path, tiny_tokenizer):
    def build(cost_funcs, args):
        return GRPOLagTrainer(
            model=make_tiny_causal_lm(tiny_tokenizer),
            reward_funcs=length_reward,
            cost_funcs=cost_funcs,
            args=args,
            train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
            processing_class=tiny_tokenizer,
        )

    with pytest.raises(ValueError, match=r"cost_limits has 1 limit\(s\) \[0.1\] for 2 cost function\(s\)"):
        build([vowel_cost, char_cost], tiny_args(GRPOLagConfig, tmp_path, cost_limits=[0.1]))
    with pytest.raises(ValueError, match="cost_limits .* was given, but no cost_funcs"):
        build(None, tiny_args(GRPOLagConfig, tmp_path, cost_limits=[0.1]))
    with pytest.raises(TypeError, match="cost_funcs need a GRPOLagConfig"):
        build(vowel_cost, tiny_args(GRPOConfig, tmp_path))
    with pytest.raises(ValueError, match="share a name"):
        build([vowel_cost, vowel_cost], tiny_args(GRPOLagConfig, tmp_path, cost_limits=[0.1, 0.2]))
    with pytest.raises(ValueError, match="lambda_max must be > 0"):  # λ's settings: the multiplier's own checks
        tiny_args(GRPOLagConfig, tmp_path, lambda_max=-1.0)

    # None: one limit of 0.0 per cost; each constraint gets its own multiplier; reward_weights stays the user's.
    args = tiny_args(GRPOLagConfig, tmp_path, reward_weights=[2.0], lambda_init=0.5)
    trainer = build([vowel_cost, char_cost], args)
    assert [lagrange.cost_limit for lagrange in trainer.lagranges] == [0.0, 0.0]
    assert trainer.lagranges[0] is not trainer.lagranges[1]
    assert trainer.reward_weights.tolist() == [2.0, -0.5, -0.5]
    assert args.reward_weights == [2.0]
    assert trainer.multi_objective_aggregation == "normalize_then_sum"


# ---------------------------------------------------------------------------------------------------------------
# Bad cost functions
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values, error, message",
    [
        ([0.1, float("nan")], ValueError, r"'my_cost' returned nan \(float\) for completion 1 \('second'\)"),
        ([0.1, None], ValueError, r"'my_cost' returned None \(NoneType\) for completion 1 \('second'\)"),
        ([0.1, "0.2"], ValueError, r"'my_cost' returned '0.2' \(str\) for completion 1 \('second'\)"),
        ([0.1, math.inf], ValueError, r"returned inf \(float\) for completion 1"),
        ([0.1], ValueError, "'my_cost' returned 1 costs for 2 completions"),
        ("0.1", TypeError, "'my_cost' must return a list of floats"),
        (0.1, TypeError, "'my_cost' must return a list of floats"),
    ],
)
def test_bad_cost_values_are_errors_naming_the_function_and_the_completion(values, error, message):
    with pytest.raises(error, match=message):
        checked_costs(values, "my_cost", ["first", "second"])


def test_a_bad_cost_function_stops_training_with_its_name(tmp_path, tiny_tokenizer):
    def broken_cost(completions, **kwargs):
        return [float("nan")] * len(completions)

    trainer = GRPOLagTrainer(
        model=make_tiny_causal_lm(tiny_tokenizer),
        reward_funcs=length_reward,
        cost_funcs=broken_cost,
        args=tiny_args(GRPOLagConfig, tmp_path, cost_limits=[0.1]),
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=tiny_tokenizer,
    )
    with pytest.raises(ValueError, match=r"'broken_cost' returned nan \(float\) for completion 0"):
        trainer.train()

    async def async_cost(completions, **kwargs):
        return [0.0] * len(completions)

    with pytest.raises(TypeError, match="'async_cost' is asynchronous"):
        GRPOLagTrainer(
            model=make_tiny_causal_lm(tiny_tokenizer),
            reward_funcs=length_reward,
            cost_funcs=async_cost,
            args=tiny_args(GRPOLagConfig, tmp_path),
            train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
            processing_class=tiny_tokenizer,
        )


# ---------------------------------------------------------------------------------------------------------------
# The dual step and the advantage
# ---------------------------------------------------------------------------------------------------------------


class RecordingGRPOLagTrainer(GRPOLagTrainer):
    """Keeps the gathered scores of every generation batch and the λ's after its dual step (a probe)."""

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        scores = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self.batches.append(
            {
                "step": self.state.global_step,
                "scores": scores.tolist(),
                "lambdas": [lagrange.value for lagrange in self.lagranges],
                "columns": dict(inputs=[{k: v for k, v in x.items() if k != "prompt"} for x in inputs]),
            }
        )
        return scores


def build_recording(tmp_path, tokenizer, **overrides) -> RecordingGRPOLagTrainer:
    def topic_cost(completions, topic, **kwargs):
        # An extra dataset column reaches cost functions as it reaches reward functions.
        return [(len(c) + len(t)) % 7 / 7 for c, t in zip(completions, topic, strict=True)]

    trainer = RecordingGRPOLagTrainer(
        model=make_tiny_causal_lm(tokenizer, seed=3),
        reward_funcs=length_reward,
        cost_funcs=[topic_cost, char_cost],
        args=tiny_args(
            GRPOLagConfig,
            tmp_path,
            cost_limits=[0.1, 0.3],
            lambda_lr=0.5,
            window_size=8,
            **overrides,
        ),
        train_dataset=Dataset.from_dict({"prompt": PROMPTS, "topic": [str(i) * i for i in range(len(PROMPTS))]}),
        processing_class=tokenizer,
    )
    trainer.batches = []
    return trainer


def test_every_lambda_takes_its_dual_step_on_its_own_costs_once_per_generation_batch(tmp_path, tiny_tokenizer):
    trainer = build_recording(tmp_path, tiny_tokenizer, max_steps=4, gradient_accumulation_steps=2)
    trainer.train()
    # 4 optimizer steps x 2 micro-batches of 4 completions, one generation batch per optimizer step (TRL's default
    # steps_per_generation = gradient_accumulation_steps).
    assert [batch["step"] for batch in trainer.batches] == [0, 1, 2, 3]
    assert all(len(batch["scores"]) == 8 for batch in trainer.batches)
    expected = [LagrangeMultiplier(cost_limit=limit, **trainer.args.lagrange_settings()) for limit in (0.1, 0.3)]
    for batch in trainer.batches:
        lambdas = [
            m.update([row[k + 1] for row in batch["scores"]], step=batch["step"]) for k, m in enumerate(expected)
        ]
        assert batch["lambdas"] == lambdas
    assert len({batch["lambdas"][0] for batch in trainer.batches}) == 4  # λ_1 moved at every batch
    assert [m.state_dict() for m in trainer.lagranges] == [m.state_dict() for m in expected]

    # Logs per constraint: λ_k, its limit, J_C,k and the violation.
    log = trainer.state.log_history[-2]
    for k, name in enumerate(("topic_cost", "char_cost")):
        assert log[f"lagrange/{name}/lambda"] == expected[k].value
        assert log[f"lagrange/{name}/cost_limit"] == expected[k].cost_limit
        assert log[f"lagrange/{name}/episode_cost"] == pytest.approx(expected[k].episode_cost)
        assert log[f"lagrange/{name}/cost_violation"] == pytest.approx(
            expected[k].episode_cost - expected[k].cost_limit
        )


def test_cost_floors_raise_each_cost_before_the_dual_step_and_the_advantage(tmp_path, tiny_tokenizer):
    """C̃_k = max(C_k, floor_k) is the column TRL aggregates and logs, and what λ_k's dual step averages."""
    trainer = build_recording(tmp_path, tiny_tokenizer, max_steps=4, cost_floors=[0.0, 0.25])
    assert [cost.floor for cost in (trainer.reward_funcs[c] for c in trainer.cost_columns)] == [0.0, 0.25]
    trainer.train()
    floored = [row[2] for batch in trainer.batches for row in batch["scores"]]
    assert min(floored) == 0.25 and floored.count(0.25) > 0  # char_cost 0.0, 0.1, 0.2 raised to the floor
    expected = [LagrangeMultiplier(cost_limit=limit, **trainer.args.lagrange_settings()) for limit in (0.1, 0.3)]
    for batch in trainer.batches:
        lambdas = [
            m.update([row[k + 1] for row in batch["scores"]], step=batch["step"]) for k, m in enumerate(expected)
        ]
        assert batch["lambdas"] == lambdas
    assert trainer.state.log_history[-2]["lagrange/char_cost/episode_cost"] >= 0.25


def test_cost_floors_are_checked_against_the_limits(tmp_path, tiny_tokenizer):
    with pytest.raises(ValueError, match=r"cost_limits\[1\] \(0.3\) must lie above cost_floors\[1\] \(0.3\)"):
        tiny_args(GRPOLagConfig, tmp_path, cost_limits=[0.1, 0.3], cost_floors=[0.0, 0.3])
    with pytest.raises(ValueError, match=r"cost_limits\[0\] \(0.0\) must lie above cost_floors\[0\] \(0.0\)"):
        tiny_args(RLOOLagConfig, tmp_path, cost_floors=[0.0])  # no limits: 0.0 each
    with pytest.raises(ValueError, match=r"cost_floors has 1 floor\(s\) \[-1.0\] for 2 cost function\(s\)"):
        build_recording(tmp_path, tiny_tokenizer, cost_floors=[-1.0])
    with pytest.raises(ValueError, match="cost_floors .* was given, but no cost_funcs"):
        GRPOLagTrainer(
            model=make_tiny_causal_lm(tiny_tokenizer),
            reward_funcs=length_reward,
            args=tiny_args(GRPOLagConfig, tmp_path, cost_floors=[-1.0]),
            train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
            processing_class=tiny_tokenizer,
        )


def group_z(values: torch.Tensor, group_size: int) -> torch.Tensor:
    grouped = values.view(-1, group_size)
    return ((grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + 1e-4)).view(-1)


def test_advantage_normalises_each_objective_then_combines_with_the_new_lambdas(tmp_path, tiny_tokenizer):
    trainer = build_recording(tmp_path, tiny_tokenizer, per_device_train_batch_size=8)
    trainer.model.train()
    rows = [{"prompt": p, "topic": t} for p, t in zip(PROMPTS[:2], ["a", "bb"])]
    output = trainer._generate_and_score_completions([row for row in rows for _ in range(4)])

    batch = trainer.batches[-1]
    scores = torch.tensor(batch["scores"])
    assert batch["columns"]["inputs"][4]["topic"] == "bb"
    lambda_1, lambda_2 = batch["lambdas"]
    assert (lambda_1, lambda_2) != (1.0, 1.0)  # the λ's after this batch's dual step, not the initial ones
    combined = group_z(scores[:, 0], 4) - lambda_1 * group_z(scores[:, 1], 4) - lambda_2 * group_z(scores[:, 2], 4)
    expected = (combined - combined.mean()) / (combined.std() + 1e-4)
    torch.testing.assert_close(output["advantages"], expected, rtol=1e-5, atol=1e-5)


def test_rloo_lag_advantage_is_the_leave_one_out_advantage_of_the_lagrangian(tmp_path, tiny_tokenizer):
    trainer = RLOOLagTrainer(
        model=make_tiny_causal_lm(tiny_tokenizer, seed=3),
        reward_funcs=length_reward,
        cost_funcs=char_cost,
        args=tiny_args(RLOOLagConfig, tmp_path, cost_limits=[0.1], lambda_lr=0.5, normalize_advantages=False),
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=tiny_tokenizer,
    )
    recorded = {}
    calculate = trainer._calculate_rewards

    def recording(*args):
        recorded["scores"] = calculate(*args)
        return recorded["scores"]

    trainer._calculate_rewards = recording
    trainer.model.train()
    output = trainer._generate_and_score_completions([{"prompt": p} for p in PROMPTS[:2] for _ in range(4)])
    lagrangian = (recorded["scores"][:, 0] - trainer.lagranges[0].value * recorded["scores"][:, 1]).view(-1, 4)
    baseline = (lagrangian.sum(1, keepdim=True) - lagrangian) / 3
    assert trainer.lagranges[0].num_updates == 1 and trainer.lagranges[0].value != 1.0
    torch.testing.assert_close(output["advantages"], (lagrangian - baseline).view(-1), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# Cost models
# ---------------------------------------------------------------------------------------------------------------


def test_a_cost_model_is_read_where_it_was_trained_with_conversational_prompts(tmp_path, tiny_tokenizer):
    cost_model = make_tiny_scorer(tiny_tokenizer, seed=2)
    trainer = RecordingGRPOLagTrainer(
        model=make_tiny_causal_lm(tiny_tokenizer),
        reward_funcs=length_reward,
        cost_funcs=cost_model,
        cost_processing_classes=tiny_tokenizer,
        args=tiny_args(GRPOLagConfig, tmp_path, max_steps=1, log_completions=True),
        train_dataset=Dataset.from_dict({"prompt": [[{"role": "user", "content": p}] for p in PROMPTS]}),
        processing_class=tiny_tokenizer,
    )
    trainer.batches = []
    trainer.train()
    costs = [row[1] for row in trainer.batches[0]["scores"]]
    prompts, completions = trainer._logs["prompt"], trainer._logs["completion"]
    assert isinstance(completions[0], list) and completions[0][0]["role"] == "assistant"
    expected = Scorer(cost_model, tiny_tokenizer).score(list(prompts), list(completions))
    torch.testing.assert_close(torch.tensor(costs), expected)
    assert len(set(costs)) > 1 and trainer.lagranges[0].num_updates == 1


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints and the model card
# ---------------------------------------------------------------------------------------------------------------


def test_resume_from_checkpoint_continues_every_lambda_exactly(tmp_path, tiny_tokenizer):
    def build(output_dir):
        return build_recording(output_dir, tiny_tokenizer, max_steps=6, save_strategy="steps", save_steps=3)

    uninterrupted = build(tmp_path / "full")
    uninterrupted.train()
    checkpoint = tmp_path / "full" / "checkpoint-3"
    saved = json.loads((checkpoint / LAGRANGE_STATES_NAME).read_text())
    assert sorted(saved) == ["char_cost", "topic_cost"] and saved["char_cost"]["num_updates"] == 3

    resumed = build(tmp_path / "resumed")
    resumed.train(resume_from_checkpoint=str(checkpoint))
    assert [batch["step"] for batch in resumed.batches] == [3, 4, 5]
    assert resumed.batches == uninterrupted.batches[3:]  # the same completions, costs and λ's
    assert [m.state_dict() for m in resumed.lagranges] == [m.state_dict() for m in uninterrupted.lagranges]
    assert_same_weights(resumed.model, uninterrupted.model)

    card = (tmp_path / "full" / "README.md").read_text()
    for text in ("trl-safe", "grpo-lag", "safe-rlhf", "GRPO-Lag", "dai2024safe", "shao2024deepseekmath"):
        assert text in card, text


# ---------------------------------------------------------------------------------------------------------------
# The toy constrained task of PPO-Lag's tests: "a" is the most rewarded letter and the only costly one
# ---------------------------------------------------------------------------------------------------------------


def sampled_means(trainer, functions) -> list[float]:
    """Mean of each function over one completion per toy prompt (144), sampled from the current policy with a fixed
    seed, without disturbing the random state of the training run."""
    tokenizer = trainer.processing_class
    encoded = tokenizer(list(toy_prompts()["prompt"]), return_tensors="pt")
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(1234)
        sequences = trainer.model.generate(
            **encoded, do_sample=True, max_new_tokens=LENGTH, top_k=0, top_p=1.0, pad_token_id=tokenizer.pad_token_id
        )
    completions = tokenizer.batch_decode(sequences[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
    return [sum(function(completions)) / len(completions) for function in functions]


def toy_args(config_class, output_dir, max_steps, **overrides):
    return tiny_args(
        config_class,
        output_dir,
        per_device_train_batch_size=16,
        num_generations=8,
        max_completion_length=LENGTH,
        max_steps=max_steps,
        learning_rate=3e-3,
        lr_scheduler_type="constant",
        logging_steps=4,
        **overrides,
    )


# λ starts at 0 with the PID rule, so the run shows the whole loop: the cost rises with the reward, λ rises, the
# policy moves away from "a".
TOY_LAGRANGE = dict(lambda_init=0.0, update_rule="pid", pid_kp=1.0, pid_ki=0.5, window_size=64)


@pytest.mark.slow
def test_toy_task_grpo_breaks_the_constraint_and_grpo_lag_keeps_it(tmp_path):
    tokenizer = letters_tokenizer()
    grpo = GRPOTrainer(
        model=make_tiny_causal_lm(tokenizer),
        reward_funcs=toy_reward,
        args=toy_args(GRPOConfig, tmp_path / "grpo", max_steps=40),
        train_dataset=toy_prompts(),
        processing_class=tokenizer,
    )
    grpo_start = sampled_means(grpo, (toy_reward, toy_cost))
    grpo.train()
    grpo_end = sampled_means(grpo, (toy_reward, toy_cost))
    print(f"GRPO:     reward {grpo_start[0]:.3f} -> {grpo_end[0]:.3f}, cost {grpo_start[1]:.3f} -> {grpo_end[1]:.3f}")
    assert grpo_end[0] > grpo_start[0] + 0.5
    assert grpo_end[1] > COST_LIMIT + 0.3

    lag = GRPOLagTrainer(
        model=make_tiny_causal_lm(tokenizer),
        reward_funcs=toy_reward,
        cost_funcs=toy_cost,
        args=toy_args(GRPOLagConfig, tmp_path / "grpo_lag", max_steps=48, cost_limits=[COST_LIMIT], **TOY_LAGRANGE),
        train_dataset=toy_prompts(),
        processing_class=tokenizer,
    )
    lag_start = sampled_means(lag, (toy_reward, toy_cost))
    lag.train()
    lag_end = sampled_means(lag, (toy_reward, toy_cost))
    history = [entry for entry in lag.state.log_history if "rewards/toy_cost/mean" in entry]
    lambdas = [entry["lagrange/toy_cost/lambda"] for entry in history]
    print(
        f"GRPO-Lag: reward {lag_start[0]:.3f} -> {lag_end[0]:.3f}, cost {lag_start[1]:.3f} -> {lag_end[1]:.3f}, "
        f"batch cost max {max(entry['rewards/toy_cost/mean'] for entry in history):.3f}, "
        f"λ 0 -> max {max(lambdas):.3f} -> final {lag.lagranges[0].value:.3f}"
    )
    assert max(entry["rewards/toy_cost/mean"] for entry in history) > COST_LIMIT + 0.1  # violated on the way
    assert max(lambdas) > 1.0, "λ must rise while the constraint is violated"
    assert lag_end[1] <= COST_LIMIT + 0.02  # tolerance: about 2 standard errors of the sampled mean cost
    assert lag_end[0] > lag_start[0] + 0.4


def reward_a_b_c(completions, **kwargs):
    """Helpfulness: "a" is worth 2, "b" 1.5, "c" 1 (per letter, over the maximum length)."""
    return [(2 * c.count("a") + 1.5 * c.count("b") + c.count("c")) / LENGTH for c in completions]


def share_of_b(completions, **kwargs):
    return [c.count("b") / LENGTH for c in completions]


@pytest.mark.slow
def test_toy_task_with_two_costs_meets_both_limits(tmp_path):
    """Two constraints, each with its own λ: "a" and "b" are both costly (limit 0.1 each); "c" is rewarded and free."""
    tokenizer = letters_tokenizer()
    lag = GRPOLagTrainer(
        model=make_tiny_causal_lm(tokenizer),
        reward_funcs=reward_a_b_c,
        cost_funcs=[toy_cost, share_of_b],
        args=toy_args(GRPOLagConfig, tmp_path, max_steps=48, cost_limits=[COST_LIMIT, COST_LIMIT], **TOY_LAGRANGE),
        train_dataset=toy_prompts(),
        processing_class=tokenizer,
    )
    start = sampled_means(lag, (reward_a_b_c, toy_cost, share_of_b))
    lag.train()
    end = sampled_means(lag, (reward_a_b_c, toy_cost, share_of_b))
    history = [entry for entry in lag.state.log_history if "rewards/share_of_b/mean" in entry]
    print(f"GRPO-Lag, 2 costs: reward, cost a, cost b {start} -> {end}; λ's {[m.value for m in lag.lagranges]}")
    for name in ("toy_cost", "share_of_b"):
        assert max(entry[f"rewards/{name}/mean"] for entry in history) > COST_LIMIT + 0.05, name
        assert max(entry[f"lagrange/{name}/lambda"] for entry in history) > 0.5, name
    assert end[1] <= COST_LIMIT + 0.02 and end[2] <= COST_LIMIT + 0.02
    assert end[0] > start[0] + 0.3


def test_example_script_trains_on_pku_saferlhf_prompts(tmp_path, tiny_tokenizer, shared_data):
    make_tiny_causal_lm(tiny_tokenizer).save_pretrained(tmp_path / "policy")
    tiny_tokenizer.save_pretrained(tmp_path / "policy")
    for name, seed in (("reward", 1), ("cost_a", 2), ("cost_b", 3)):
        make_tiny_scorer(tiny_tokenizer, seed=seed).save_pretrained(tmp_path / name)
        tiny_tokenizer.save_pretrained(tmp_path / name)

    argv = [
        "--model_name_or_path", str(tmp_path / "policy"),
        "--reward_model_name_or_path", str(tmp_path / "reward"),
        "--cost_model_name_or_path", str(tmp_path / "cost_a"), str(tmp_path / "cost_b"),
        "--cost_limits", "0.0", "-0.5",
        "--dataset_name", str(shared_data / "pku_saferlhf_test_sample.jsonl"),
        "--conversational", "--max_prompts", "8",
        "--output_dir", str(tmp_path / "out"),
        "--per_device_train_batch_size", "4", "--num_generations", "4", "--max_steps", "2",
        "--max_completion_length", "4", "--report_to", "none", "--bf16", "false", "--use_cpu", "true",
        "--save_strategy", "no", "--disable_tqdm", "true",
    ]  # fmt: skip
    trainer = run_script("grpo_lag", argv)  # `trl-safe grpo_lag` and examples/grpo_lag.py

    assert trainer.state.global_step == 2 and len(trainer.train_dataset) == 8
    assert trainer.train_dataset[0]["prompt"][0]["role"] == "user"
    assert trainer.cost_func_names == ["cost_a", "cost_b"]
    assert [m.cost_limit for m in trainer.lagranges] == [0.0, -0.5]
    assert all(m.num_updates == 2 for m in trainer.lagranges)
    assert (tmp_path / "out" / "model.safetensors").is_file()
    assert "grpo-lag" in (tmp_path / "out" / "README.md").read_text()


@pytest.mark.slow  # trains the tiny reward and cost models first
def test_demo_pipeline_can_train_the_policy_with_grpo_lag(tmp_path):
    from trl_safe.scripts import safe_rlhf_pipeline as pipeline

    # `--rl_checkpoint_every 1`: GRPO-Lag's checkpoints (TRL's own format) are read and chosen among as PPO-Lag's.
    args = pipeline.PipelineArguments(
        output_dir=str(tmp_path), model="tiny", stages=["reward", "cost", "ppo_lag"], rl_trainer="grpo_lag",
        rl_checkpoint_every=1,
    )  # fmt: skip
    results = pipeline.main(args)
    assert results["ppo_lag"]["steps"] == 2 and results["ppo_lag"]["final_lambda"] > 0
    assert results["ppo_lag"]["cost_limit"] == 0.0
    assert (tmp_path / "policy" / "model.safetensors").is_file()
    assert "grpo-lag" in (tmp_path / "policy" / "README.md").read_text()
    selection = results["rl_selection"]
    assert [candidate["name"] for candidate in selection["candidates"]] == ["step_1", "step_2"]
    assert (tmp_path / "policy" / "checkpoint-1" / "validation_reading.json").is_file()
    assert (tmp_path / "policy" / "last_step").is_dir() is (selection["chosen"] == "step_1")


def test_rloo_lag_resumes_its_lambda_exactly(tmp_path, tiny_tokenizer):
    def build(output_dir):
        return RLOOLagTrainer(
            model=make_tiny_causal_lm(tiny_tokenizer, seed=3),
            reward_funcs=length_reward,
            cost_funcs=char_cost,
            args=tiny_args(RLOOLagConfig, output_dir, max_steps=4, save_strategy="steps", save_steps=2, lambda_lr=0.5),
            train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
            processing_class=tiny_tokenizer,
        )

    uninterrupted = build(tmp_path / "full")
    uninterrupted.train()
    saved = json.loads((tmp_path / "full" / "checkpoint-2" / LAGRANGE_STATES_NAME).read_text())
    assert saved["char_cost"]["num_updates"] == 2
    assert "rloo-lag" in (tmp_path / "full" / "README.md").read_text()

    resumed = build(tmp_path / "resumed")
    resumed.train(resume_from_checkpoint=str(tmp_path / "full" / "checkpoint-2"))
    assert resumed.lagranges[0].state_dict() == uninterrupted.lagranges[0].state_dict()
    assert resumed.lagranges[0].num_updates == 4
    assert resumed.reward_weights.tolist() == pytest.approx([1.0, -uninterrupted.lagranges[0].value])
    assert_same_weights(resumed.model, uninterrupted.model)

    # Resumed from the final checkpoint, `Trainer` still draws one batch: λ must not take a fifth dual step.
    finished = build(tmp_path / "finished")
    finished.train(resume_from_checkpoint=str(tmp_path / "full" / "checkpoint-4"))
    assert finished.lagranges[0].state_dict() == uninterrupted.lagranges[0].state_dict()
