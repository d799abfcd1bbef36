"""The reference's published recipe, one config file per script, and the settings it needs (critic lr / wd)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from datasets import Dataset
from trl import ModelConfig, RewardConfig, TrlParser

from trl_safe import CostConfig, PPOLagConfig, PPOLagTrainer, PreferenceScriptArguments
from trl_safe.data import PromptScriptArguments
from trl_safe.testing_utils import make_tiny_causal_lm, tiny_rl_config

RECIPES = Path(__file__).resolve().parents[1] / "examples" / "recipes"


def parse(config_classes, recipe: str, tmp_path):
    parser = TrlParser(config_classes)
    return parser.parse_args_and_config(
        args=["--config", str(RECIPES / recipe), "--output_dir", str(tmp_path), "--model_name_or_path", "m"]
        + ["--bf16", "False"]  # this machine has no GPU
    )


def test_ppo_lag_recipe_sets_the_reference_values(tmp_path):
    _, config, _ = parse((PromptScriptArguments, PPOLagConfig, ModelConfig), "ppo_lag_reference.yaml", tmp_path)
    expected = dict(
        learning_rate=1e-5,
        value_learning_rate=5e-6,
        weight_decay=0.01,
        value_weight_decay=0.0,
        adam_beta2=0.95,
        kl_coef=0.01,
        cliprange_value=5.0,
        cliprange_score=50.0,
        cost_limit=0.0,
        lambda_max=5.0,
        ptx_coef=16.0,
        num_train_epochs=1,
        per_device_train_batch_size=16,
        whiten_advantages=False,
        loss_aggregation="sequence_mean",
    )
    for name, value in expected.items():
        wanted = pytest.approx(value) if isinstance(value, float) else value
        assert getattr(config, name) == wanted, name
    assert getattr(config.lr_scheduler_type, "value", config.lr_scheduler_type) == "cosine"
    assert config.warmup_steps == pytest.approx(0.03)


def test_cost_and_reward_recipes_parse(tmp_path):
    _, cost, _ = parse((PreferenceScriptArguments, CostConfig, ModelConfig), "cost_model_reference.yaml", tmp_path)
    assert (cost.learning_rate, cost.num_train_epochs, cost.max_length, cost.weight_decay) == (2e-5, 2, 512, 0.1)
    assert cost.regularization == pytest.approx(0.001)
    _, reward, _ = parse(
        (PreferenceScriptArguments, RewardConfig, ModelConfig), "reward_model_reference.yaml", tmp_path
    )
    assert (reward.learning_rate, reward.num_train_epochs, reward.max_length) == (2e-5, 2, 512)


def test_ppo_lag_default_kl_matches_the_reference_run(tmp_path):
    # Before PR #173 the reference split β = 0.02 into ±0.5β per stream; since, its script uses the full ±β with
    # β = 0.01. Both put 0.01·KL on each stream, and (A_R − λ·A_C)/(1+λ) then carries exactly −0.01·KL per token.
    assert PPOLagConfig(output_dir=str(tmp_path)).kl_coef == 0.01


def cost_of(completions, **kwargs):
    return [0.0 for _ in completions]


def tiny_trainer(output_dir, tokenizer, **config) -> PPOLagTrainer:
    """A one-step PPO-Lag trainer on a tiny policy and constant scores; `config` sets the fields under test."""
    return PPOLagTrainer(
        model=make_tiny_causal_lm(tokenizer),
        reward_model=cost_of,
        cost_model=cost_of,
        args=tiny_rl_config(PPOLagConfig, output_dir, max_steps=1, **config),
        train_dataset=Dataset.from_dict({"prompt": ["a", "b"]}),
        processing_class=tokenizer,
    )


def test_critic_gets_its_own_learning_rate_and_weight_decay(tmp_path, tiny_tokenizer):
    trainer = tiny_trainer(
        tmp_path,
        tiny_tokenizer,
        learning_rate=1e-3,
        weight_decay=0.01,
        value_learning_rate=5e-4,
        value_weight_decay=0.0,
    )
    optimizer = trainer.create_optimizer()
    critic = {id(p) for p in trainer.model.value_model.parameters()}
    policy = {id(p) for p in trainer.model.policy.parameters() if p.requires_grad}
    by_part = {"critic": set(), "policy": set()}
    for group in optimizer.param_groups:
        ids = {id(p) for p in group["params"]}
        part = "critic" if ids <= critic else "policy"
        assert ids <= (critic if part == "critic" else policy), "a group mixes policy and critic parameters"
        by_part[part].add((group["lr"], group["weight_decay"]))
        if part == "policy":
            assert group["lr"] == 1e-3
    assert by_part["critic"] == {(5e-4, 0.0)}
    assert (1e-3, 0.01) in by_part["policy"]
    n_params = sum(len(group["params"]) for group in optimizer.param_groups)
    assert n_params == len(critic) + len(policy)
    trainer.train()  # and the scheduler/optimizer run with the split groups
    assert torch.isfinite(torch.stack([p.detach().sum() for p in trainer.model.parameters()])).all()


def test_critic_can_train_its_top_layers_only(tmp_path, tiny_tokenizer):
    """value_trainable_layers=1: the critic's embeddings and lower layers are frozen (not in the optimizer, unchanged
    by training), its top layer and value head are optimised; the policy is untouched by the setting."""
    trainer = tiny_trainer(tmp_path, tiny_tokenizer, learning_rate=1e-2, value_trainable_layers=1)
    critic = trainer.model.value_model
    layers = critic.model.layers
    assert len(layers) >= 2
    frozen = [critic.model.embed_tokens, *layers[:-1]]
    assert not any(p.requires_grad for module in frozen for p in module.parameters())
    assert all(p.requires_grad for p in layers[-1].parameters()) and critic.score.weight.requires_grad
    assert all(p.requires_grad for p in trainer.model.policy.parameters())
    before = {name: p.detach().clone() for name, p in critic.named_parameters()}
    optimizer_ids = {id(p) for group in trainer.create_optimizer().param_groups for p in group["params"]}
    assert not any(id(p) in optimizer_ids for module in frozen for p in module.parameters())
    assert all(id(p) in optimizer_ids for p in [*layers[-1].parameters(), critic.score.weight])
    trainer.train()
    after = dict(critic.named_parameters())
    assert all(torch.equal(before[name], after[name]) for name in before if not after[name].requires_grad)
    with pytest.raises(ValueError, match="value_trainable_layers"):
        PPOLagConfig(output_dir=str(tmp_path), value_trainable_layers=-1, report_to="none")
