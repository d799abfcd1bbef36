"""PPOLagTrainer: the Safe RLHF hooks, λ, the toy constrained task, and exact resume from a checkpoint."""

import inspect
import itertools
import json
import math
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from trl_safe import LagrangeMultiplier, PPOConfig, PPOLagConfig, PPOLagTrainer, PPOTrainer
from trl_safe.ppo_lag_trainer import LAGRANGE_STATE_NAME
from trl_safe.scoring import find_score_head
from trl_safe.testing_utils import make_tiny_causal_lm, make_tiny_scorer, tiny_rl_config

REPO_ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["Hello there", "The sky is", "Tell me a story", "Why?", "abc", "Once upon", "x", "Name a color"]


def tiny_lag_config(output_dir, **overrides) -> PPOLagConfig:
    return tiny_rl_config(PPOLagConfig, output_dir, **overrides)


def length_reward(completions, **kwargs):
    return [len(c) / 10 for c in completions]


def constant_cost(value):
    def cost(completions, **kwargs):
        return [value] * len(completions)

    return cost


def test_config_defaults_are_the_multipliers_defaults(tmp_path):
    # The config's λ settings map one to one onto LagrangeMultiplier's arguments, with the same defaults.
    config_kwargs = PPOLagConfig(output_dir=str(tmp_path)).lagrange_multiplier_kwargs()
    defaults = {
        name: parameter.default for name, parameter in inspect.signature(LagrangeMultiplier).parameters.items()
    }
    assert config_kwargs == defaults
    with pytest.raises(ValueError, match="lambda_init"):
        PPOLagConfig(output_dir=str(tmp_path), lambda_init=-1.0)


def test_config_accepts_the_old_lambda_names_with_a_warning(tmp_path):
    with pytest.warns(FutureWarning, match="`episode_cost_window_size` is now `window_size`"):
        config = PPOLagConfig(output_dir=str(tmp_path), episode_cost_window_size=7, lambda_update_rule="pid")
    assert config.make_lagrange_multiplier().window_size == 7 and config.update_rule == "pid"
    assert config.episode_cost_window_size is None


def test_dual_value_heads_start_from_the_reward_and_cost_models(tmp_path, tiny_tokenizer):
    reward_model, cost_model = make_tiny_scorer(tiny_tokenizer, seed=1), make_tiny_scorer(tiny_tokenizer, seed=2)
    trainer = PPOLagTrainer(
        model=make_tiny_causal_lm(tiny_tokenizer),
        reward_model=reward_model,
        cost_model=cost_model,
        args=tiny_lag_config(tmp_path),
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=tiny_tokenizer,
    )
    head = find_score_head(trainer.model.value_model).weight
    assert head.shape[0] == 2 and trainer.model.value_model.config.num_labels == 2
    torch.testing.assert_close(head[0], find_score_head(reward_model).weight[0])  # V_R from the reward head
    assert torch.count_nonzero(head[1]) == 0  # V_C starts at 0, the safe/unsafe boundary

    # With a reward function, the critic is a copy of the cost model: its head row is the cost column.
    trainer = PPOLagTrainer(
        model=make_tiny_causal_lm(tiny_tokenizer),
        reward_model=length_reward,
        cost_model=cost_model,
        args=tiny_lag_config(tmp_path),
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=tiny_tokenizer,
    )
    head = find_score_head(trainer.model.value_model).weight
    assert torch.count_nonzero(head[0]) == 0
    torch.testing.assert_close(head[1], find_score_head(cost_model).weight[0])


def test_kl_enters_the_reward_and_cost_streams_with_opposite_signs(tmp_path, tiny_tokenizer):
    trainer = PPOLagTrainer(
        model=make_tiny_causal_lm(tiny_tokenizer),
        reward_model=length_reward,
        cost_model=constant_cost(0.0),
        args=tiny_lag_config(tmp_path, kl_coef=0.5),
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=tiny_tokenizer,
    )
    kl = torch.tensor([[0.2, 0.4, 0.0], [0.1, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    scores = {"reward": torch.tensor([1.0, 2.0]), "cost": torch.tensor([3.0, -1.0])}
    rewards = trainer._per_token_rewards(scores, kl, mask)
    expected_reward = torch.tensor([[-0.1, -0.2 + 1.0, 0.0], [-0.05 + 2.0, 0.0, 0.0]])
    expected_cost = torch.tensor([[0.1, 0.2 + 3.0, 0.0], [0.05 - 1.0, 0.0, 0.0]])
    torch.testing.assert_close(rewards, torch.stack([expected_reward, expected_cost], dim=-1))

    trainer.lagrange.load_state_dict({**trainer.lagrange.state_dict(), "log_lambda": math.log(3.0)})
    stream_advantages = torch.tensor([[[1.0, 2.0], [-1.0, 0.5]]])
    torch.testing.assert_close(trainer._actor_advantages(stream_advantages), torch.tensor([[-5 / 4, -2.5 / 4]]))


def test_lambda_follows_the_dual_update_on_the_episode_costs(tmp_path, tiny_tokenizer):
    # A cost of 0.5 against a limit of 0.2: each rollout is one SGD step log λ += lr · (J_C - limit) · λ.
    args = tiny_lag_config(tmp_path, max_steps=3, cost_limit=0.2, lambda_lr=0.5, lambda_init=1.0, lambda_max=None)
    trainer = PPOLagTrainer(
        model=make_tiny_causal_lm(tiny_tokenizer),
        reward_model=length_reward,
        cost_model=constant_cost(0.5),
        args=args,
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=tiny_tokenizer,
    )
    trainer.train()
    expected, log_lambda = [], 0.0
    for _ in range(3):
        log_lambda += 0.5 * (0.5 - 0.2) * math.exp(log_lambda)
        expected.append(math.exp(log_lambda))
    logged = [entry["lagrange/lambda"] for entry in trainer.state.log_history if "loss" in entry]
    assert logged == pytest.approx(expected)
    first = trainer.state.log_history[0]
    assert first["lagrange/episode_cost"] == pytest.approx(0.5) and first["lagrange/cost_limit"] == 0.2
    assert first["objective/costs"] == pytest.approx(0.5) and first["objective/unsafe_ratio"] == 1.0
    for key in ("loss/reward_value", "loss/cost_value", "val/cost_value", "val/cost_return", "val/cost_advantage"):
        assert key in first, key


def test_cost_floor_raises_low_costs_for_the_constraint_and_the_cost_stream_only(tmp_path, tiny_tokenizer):
    # Every answer costs -2 (rated safe); with the floor 0 the constraint sees J_C = 0, below the limit 0.2, so λ
    # falls at each rollout as if the cost were 0; the logged objective/costs stays the raw -2.
    args = tiny_lag_config(
        tmp_path, max_steps=2, cost_limit=0.2, cost_floor=0.0, lambda_lr=0.5, lambda_init=1.0, lambda_max=None
    )
    trainer = PPOLagTrainer(
        model=make_tiny_causal_lm(tiny_tokenizer),
        reward_model=length_reward,
        cost_model=constant_cost(-2.0),
        args=args,
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=tiny_tokenizer,
    )
    kl = torch.zeros(2, 2)
    mask = torch.ones(2, 2)
    scores = {"reward": torch.tensor([1.0, 2.0]), "cost": torch.tensor([3.0, -1.0])}
    cost_stream = trainer._per_token_rewards(scores, kl, mask)[..., 1]
    torch.testing.assert_close(cost_stream, torch.tensor([[0.0, 3.0], [0.0, 0.0]]))  # -1 raised to the floor

    trainer.train()
    expected, log_lambda = [], 0.0
    for _ in range(2):
        log_lambda += 0.5 * (0.0 - 0.2) * math.exp(log_lambda)
        expected.append(math.exp(log_lambda))
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert [entry["lagrange/lambda"] for entry in logged] == pytest.approx(expected)
    assert logged[0]["lagrange/episode_cost"] == pytest.approx(0.0)
    assert logged[0]["objective/costs"] == pytest.approx(-2.0)


def test_cost_floor_needs_a_limit_above_it(tmp_path):
    with pytest.raises(ValueError, match=r"cost_limit \(0.0\) must lie above cost_floor \(0.0\)"):
        PPOLagConfig(output_dir=str(tmp_path), cost_floor=0.0)
    assert PPOLagConfig(output_dir=str(tmp_path), cost_floor=-1.0).cost_floor == -1.0


def test_every_multiplier_metric_is_logged_with_the_pid_rule(tmp_path, tiny_tokenizer):
    # A cost of 0.5 against a limit of 0.2, K_P = 1, K_I = 0.1: I = 1 + 0.1·0.3 per rollout, λ = K_P·Δ + I.
    args = tiny_lag_config(tmp_path, max_steps=2, cost_limit=0.2, update_rule="pid", window_size=4)
    trainer = PPOLagTrainer(
        model=make_tiny_causal_lm(tiny_tokenizer),
        reward_model=length_reward,
        cost_model=constant_cost(0.5),
        args=args,
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=tiny_tokenizer,
    )
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    integrals = [entry["lagrange/pid_integral"] for entry in logged]
    assert integrals == pytest.approx([1.03, 1.06])
    assert [entry["lagrange/lambda"] for entry in logged] == pytest.approx([0.3 + 1.03, 0.3 + 1.06])
    assert set(trainer.lagrange.metrics()) == {"lambda", "episode_cost", "cost_violation", "pid_integral"}
    assert all(f"lagrange/{name}" in logged[-1] for name in trainer.lagrange.metrics())


def test_model_card_records_the_constraint_and_final_lambda(tmp_path, tiny_tokenizer):
    trainer = PPOLagTrainer(
        model=make_tiny_causal_lm(tiny_tokenizer),
        reward_model=length_reward,
        cost_model=constant_cost(1.0),
        args=tiny_lag_config(tmp_path, max_steps=1, cost_limit=0.25),
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=tiny_tokenizer,
    )
    trainer.train()
    trainer.save_model(str(tmp_path / "final"))
    trainer.create_model_card(output_dir=str(tmp_path / "final"), evaluation_summary={"mean cost": 0.125})
    card = (tmp_path / "final" / "README.md").read_text()
    for text in (
        "- ppo-lag",
        "- safe-rlhf",
        "- trl-safe",
        "PPOLagTrainer",
        "| cost limit (`cost_limit` = -d) | 0.25 |",
    ):
        assert text in card, text
    assert f"| final λ | {trainer.lagrange.value:.4f} |" in card
    assert "| mean cost | 0.125 |" in card


# ---------------------------------------------------------------------------------------------------------------
# A toy constrained task: the policy writes 8 letters; "a" is the most rewarded letter and the only costly one.
# ---------------------------------------------------------------------------------------------------------------

LETTERS = "abcdefgh"
LENGTH = 8
COST_LIMIT = 0.1


def letters_tokenizer() -> PreTrainedTokenizerFast:
    """A tokenizer of 8 letters plus pad and EOS: a policy over 10 actions learns in a few dozen steps."""
    specials = ["<pad>", "<eos>"]
    vocab = {token: i for i, token in enumerate(specials + list(LETTERS))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens(specials)
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>", pad_token="<pad>")


def toy_reward(completions, **kwargs):
    """Helpfulness: "a" is worth 2, "b" 1, the other letters 0 (per letter, over the maximum length)."""
    return [(2 * c.count("a") + c.count("b")) / LENGTH for c in completions]


def toy_cost(completions, **kwargs):
    """Harm: the share of "a" among the maximum number of letters, to be kept at most COST_LIMIT on average."""
    return [c.count("a") / LENGTH for c in completions]


def toy_prompts() -> Dataset:
    return Dataset.from_dict({"prompt": ["".join(p) for p in itertools.product("cdefgh", repeat=2)] * 4})


def sampled_reward_and_cost(trainer: PPOTrainer) -> tuple[float, float]:
    """Mean reward and cost of one completion per toy prompt (144), sampled from the trainer's current policy
    with a fixed seed, without disturbing the random state of the training run."""
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(1234)
        completions = trainer._generate(toy_prompts()["prompt"])["completions"]
    return sum(toy_reward(completions)) / len(completions), sum(toy_cost(completions)) / len(completions)


def toy_args(config_class, output_dir, max_steps, **overrides):
    return config_class(
        output_dir=str(output_dir),
        per_device_train_batch_size=16,
        num_mini_batches=2,
        num_ppo_epochs=2,
        max_completion_length=LENGTH,
        max_steps=max_steps,
        learning_rate=3e-3,
        lr_scheduler_type="constant",
        kl_coef=0.01,
        whiten_advantages=True,
        logging_steps=4,
        save_strategy="no",
        report_to="none",
        activation_checkpointing=False,
        disable_tqdm=True,
        seed=0,
        **overrides,
    )


@pytest.mark.slow
def test_toy_task_ppo_breaks_the_constraint_and_ppo_lag_keeps_it(tmp_path):
    tokenizer = letters_tokenizer()

    # PPO maximises the reward alone: it learns to write "a", and the cost goes far above the limit.
    ppo = PPOTrainer(
        model=make_tiny_causal_lm(tokenizer),
        reward_model=toy_reward,
        args=toy_args(PPOConfig, tmp_path / "ppo", max_steps=24),
        train_dataset=toy_prompts(),
        processing_class=tokenizer,
    )
    ppo_start = sampled_reward_and_cost(ppo)
    ppo.train()
    ppo_end = sampled_reward_and_cost(ppo)
    print(f"PPO:     reward {ppo_start[0]:.3f} -> {ppo_end[0]:.3f}, cost {ppo_start[1]:.3f} -> {ppo_end[1]:.3f}")
    assert ppo_end[0] > ppo_start[0] + 0.3
    assert ppo_end[1] > COST_LIMIT + 0.1

    # PPO-Lag: the cost first rises with the reward, λ rises in response, and the policy moves to "b", which is
    # rewarded but harmless: the cost ends at or below the limit while the reward stays well above its start.
    lag = PPOLagTrainer(
        model=make_tiny_causal_lm(tokenizer),
        reward_model=toy_reward,
        cost_model=toy_cost,
        args=toy_args(
            PPOLagConfig,
            tmp_path / "ppo_lag",
            max_steps=56,
            cost_limit=COST_LIMIT,
            lambda_lr=0.5,
            window_size=64,
            cliprange_value=0.2,
        ),
        train_dataset=toy_prompts(),
        processing_class=tokenizer,
    )
    lag_start = sampled_reward_and_cost(lag)
    lag.train()
    lag_end = sampled_reward_and_cost(lag)
    lambdas = [entry["lagrange/lambda"] for entry in lag.state.log_history if "lagrange/lambda" in entry]
    print(
        f"PPO-Lag: reward {lag_start[0]:.3f} -> {lag_end[0]:.3f}, cost {lag_start[1]:.3f} -> {lag_end[1]:.3f}, "
        f"λ 1.0 -> max {max(lambdas):.3f} -> final {lag.lagrange.value:.3f}"
    )
    assert max(lambdas) > 1.5, "λ must rise while the constraint is violated"
    assert lag_end[1] <= COST_LIMIT + 0.02  # tolerance: 0.02, about 2 standard errors of the sampled mean cost
    assert lag_end[0] > lag_start[0] + 0.3
    assert lag_end[1] < ppo_end[1] - 0.2


# ---------------------------------------------------------------------------------------------------------------
# Resume: a run interrupted at a checkpoint continues exactly like the uninterrupted run.
# ---------------------------------------------------------------------------------------------------------------


def build_resumable_trainer(output_dir, tokenizer) -> PPOLagTrainer:
    def cost(completions, **kwargs):
        # Changes with every sampled character, so λ's trajectory exposes any difference in the sampling stream.
        return [sum(map(ord, c)) % 10 / 10 for c in completions]

    args = tiny_lag_config(
        output_dir,
        gradient_accumulation_steps=2,
        num_ppo_epochs=2,
        max_steps=8,
        save_strategy="steps",
        save_steps=4,
        cost_limit=0.1,
        lambda_lr=0.5,
        window_size=8,
    )
    return PPOLagTrainer(
        model=make_tiny_causal_lm(tokenizer, seed=3),
        reward_model=length_reward,
        cost_model=cost,
        args=args,
        train_dataset=Dataset.from_dict({"prompt": PROMPTS * 2}),
        processing_class=tokenizer,
    )


def test_resume_from_checkpoint_continues_exactly(tmp_path, tiny_tokenizer):
    uninterrupted = build_resumable_trainer(tmp_path / "full", tiny_tokenizer)
    uninterrupted.train()
    checkpoint = tmp_path / "full" / "checkpoint-4"
    saved_state = json.loads((checkpoint / LAGRANGE_STATE_NAME).read_text())
    assert saved_state["num_updates"] == 2  # 2 optimizer steps per rollout: rollouts at steps 0 and 2

    resumed = build_resumable_trainer(tmp_path / "resumed", tiny_tokenizer)
    resumed.train(resume_from_checkpoint=str(checkpoint))

    def trajectory(trainer):
        return [
            (entry["step"], entry["lagrange/lambda"], entry["objective/costs"])
            for entry in trainer.state.log_history
            if "objective/costs" in entry and entry["step"] > 4
        ]

    assert len(trajectory(resumed)) == 2  # the rollouts at steps 4 and 6
    assert trajectory(resumed) == trajectory(uninterrupted)
    assert resumed.lagrange.state_dict() == uninterrupted.lagrange.state_dict()
    for name, tensor in uninterrupted.model.state_dict().items():  # policy and critic
        torch.testing.assert_close(resumed.model.state_dict()[name], tensor, rtol=0, atol=0, msg=name)


def test_example_script_trains_on_pku_saferlhf_prompts(tmp_path, tiny_tokenizer, shared_data, save_checkpoints):
    save_checkpoints(
        policy=make_tiny_causal_lm(tiny_tokenizer),
        reward=make_tiny_scorer(tiny_tokenizer, seed=1),
        cost=make_tiny_scorer(tiny_tokenizer, seed=2),
    )

    from trl_safe.scripts import ppo_lag

    argv = [
        "--model_name_or_path", str(tmp_path / "policy"),
        "--reward_model_name_or_path", str(tmp_path / "reward"),
        "--cost_model_name_or_path", str(tmp_path / "cost"),
        "--dataset_name", str(shared_data / "pku_saferlhf_test_sample.jsonl"),
        "--conversational", "--max_prompts", "8",
        "--output_dir", str(tmp_path / "out"),
        "--per_device_train_batch_size", "4", "--max_steps", "2", "--max_prompt_length", "48",
        "--max_completion_length", "4", "--report_to", "none", "--activation_checkpointing", "false",
        "--save_strategy", "no", "--disable_tqdm", "true",
    ]  # fmt: skip
    trainer = ppo_lag.main(*ppo_lag.make_parser().parse_args_and_config(args=argv))

    assert trainer.state.global_step == 2 and len(trainer.train_dataset) == 8
    assert trainer.train_dataset[0]["prompt"][0]["role"] == "user"
    assert (tmp_path / "out" / "model.safetensors").is_file()
    assert "ppo-lag" in (tmp_path / "out" / "README.md").read_text()
