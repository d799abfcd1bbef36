"""Bad input stops with an error naming the row, field, model or file (issue 13): nothing trains on wrong numbers.

Grouped as in the issue: silent wrong results (1-8), crashes from deep inside other libraries, first contact.
Most checks fire while a trainer is being built, so these tests build trainers on tiny models and rarely train.
"""

import json
import logging
import math
import warnings

import pytest
import torch
from datasets import Dataset

from trl_safe import (
    CostConfig,
    CostTrainer,
    DataCollatorForSafetyPreference,
    GRPOLagConfig,
    LagrangeMultiplier,
    PPOConfig,
    PPOLagConfig,
    PPOLagTrainer,
    PPOTrainer,
    RewardConfig,
    RLOOLagConfig,
    load_preference_data,
    to_harmlessness_preferences,
    to_helpfulness_preferences,
    to_prompts,
)
from trl_safe.ppo_lag_trainer import LAGRANGE_STATE_NAME
from trl_safe.scoring import find_score_head
from trl_safe.testing_utils import make_tiny_causal_lm, make_tiny_scorer, make_tiny_tokenizer

PROMPTS = ["Hello there", "The sky is", "Tell me a story", "Why?"]


def ppo_config(tmp_path, config_class=PPOConfig, **overrides):
    values = dict(
        output_dir=str(tmp_path / "ppo"),
        per_device_train_batch_size=2,
        num_ppo_epochs=1,
        max_completion_length=4,
        max_steps=1,
        save_strategy="no",
        report_to="none",
        activation_checkpointing=False,
        disable_tqdm=True,
        seed=0,
    )
    values.update(overrides)
    return config_class(**values)


def cost_config(tmp_path, **overrides) -> CostConfig:
    values = dict(
        output_dir=str(tmp_path / "cost"),
        report_to="none",
        activation_checkpointing=False,
        save_strategy="no",
        per_device_train_batch_size=2,
        max_steps=1,
        disable_tqdm=True,
    )
    values.update(overrides)
    return CostConfig(**values)


def cost_rows(**changes_to_row_1) -> Dataset:
    rows = [
        dict(prompt="Hi", chosen="Hello", rejected="Go away", is_chosen_safe=True, is_rejected_safe=False),
        dict(prompt="How?", chosen="Like so", rejected="Never", is_chosen_safe=True, is_rejected_safe=True),
    ]
    rows[1].update(changes_to_row_1)
    return Dataset.from_list(rows)


def length_reward(completions, **kwargs):
    return [len(c) / 10 for c in completions]


def nan_scorer(tokenizer, seed=1):
    model = make_tiny_scorer(tokenizer, seed=seed)
    with torch.no_grad():
        find_score_head(model).weight.fill_(math.nan)
    return model


# --- 1. CostTrainer safety labels: only booleans (or 0/1) --------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "row"), [(["true", "no"], 0), (["yes", "false"], 0), ([False, None], 1), ([0.0, 1.0], 0)]
)
def test_cost_trainer_refuses_labels_that_are_not_booleans(tiny_tokenizer, tmp_path, labels, row):
    # A bool() cast would read "false" and "no" as safe, and None as unsafe.
    data = cost_rows().remove_columns("is_rejected_safe").add_column("is_rejected_safe", labels)
    model = make_tiny_scorer(tiny_tokenizer)
    with pytest.raises(ValueError, match=f"train dataset, row {row}: 'is_rejected_safe' must be a boolean"):
        CostTrainer(model, cost_config(tmp_path), train_dataset=data, processing_class=tiny_tokenizer)


def test_cost_trainer_accepts_zero_one_labels_and_the_collator_refuses_strings(tiny_tokenizer, tmp_path):
    data = cost_rows().remove_columns(["is_chosen_safe", "is_rejected_safe"])
    data = data.add_column("is_chosen_safe", [1, 1]).add_column("is_rejected_safe", [0, 1])
    trainer = CostTrainer(
        make_tiny_scorer(tiny_tokenizer), cost_config(tmp_path), train_dataset=data, processing_class=tiny_tokenizer
    )
    trainer.train()  # 0/1 are labels
    collator = DataCollatorForSafetyPreference(pad_token_id=0)
    example = {"chosen_ids": [1, 2], "rejected_ids": [3], "is_chosen_safe": "false", "is_rejected_safe": False}
    with pytest.raises(ValueError, match="Batch example 0: 'is_chosen_safe' must be a boolean"):
        collator([example])


# --- 2. a two-label classifier as the cost (or reward) model ------------------------------------------------------


def test_two_label_cost_model_is_refused(tiny_tokenizer, tmp_path):
    with pytest.raises(ValueError, match=r"The cost model has 2 outputs.*'safe' logit"):
        PPOLagTrainer(
            model=make_tiny_causal_lm(tiny_tokenizer),
            reward_model=length_reward,
            cost_model=make_tiny_scorer(tiny_tokenizer, num_labels=2),
            args=ppo_config(tmp_path, PPOLagConfig),
            train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
            processing_class=tiny_tokenizer,
        )


# --- 3. non-finite scores from a model stop training at once, naming the model ------------------------------------


def test_nan_reward_model_stops_ppo_naming_the_model_and_completion(tiny_tokenizer, tmp_path):
    trainer = PPOTrainer(
        model=make_tiny_causal_lm(tiny_tokenizer),
        reward_model=nan_scorer(tiny_tokenizer),
        args=ppo_config(tmp_path),
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=tiny_tokenizer,
    )
    with pytest.raises(ValueError, match=r"The reward model `.*` gave a non-finite score \(nan\) for completion 0"):
        trainer.train()


def test_nan_cost_model_stops_ppo_lag_naming_the_cost_model(tiny_tokenizer, tmp_path):
    trainer = PPOLagTrainer(
        model=make_tiny_causal_lm(tiny_tokenizer),
        reward_model=length_reward,
        cost_model=nan_scorer(tiny_tokenizer),
        args=ppo_config(tmp_path, PPOLagConfig),
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=tiny_tokenizer,
    )
    with pytest.raises(ValueError, match=r"The cost model `.*` gave a non-finite score \(nan\) for completion 0"):
        trainer.train()


# --- 4. NaN and negative settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config_class", "kwargs", "message"),
    [
        (CostConfig, dict(sign_loss_coefficient=math.nan), "sign_loss_coefficient must be a finite number"),
        (CostConfig, dict(regularization=math.nan), "regularization must be a finite number"),
        (PPOConfig, dict(vf_coef=-1.0), "vf_coef must be >= 0"),
        (PPOConfig, dict(missing_eos_penalty=math.nan), "missing_eos_penalty must be a finite number"),
        (PPOLagConfig, dict(vf_coef=math.inf), "vf_coef must be a finite number"),
        (PPOConfig, dict(top_p=0.0), "top_p must be in"),
    ],
)
def test_non_finite_or_negative_settings_are_refused(tmp_path, config_class, kwargs, message):
    with pytest.raises(ValueError, match=message):
        config_class(output_dir=str(tmp_path), report_to="none", **kwargs)


# --- 5. a hand-edited or corrupted multiplier state ----------------------------------------------------------------


def saved_state(**changes):
    multiplier = LagrangeMultiplier(lambda_max=5.0)
    multiplier.update([1.0, 2.0], step=0)
    return {**multiplier.state_dict(), **changes}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(log_lambda=math.nan), "log_lambda is nan"),
        (dict(log_lambda=math.log(5.0) + 1.0), r"log_lambda = .* is above log\(lambda_max\)"),
        (dict(log_lambda="1.0"), "log_lambda must be a number"),
        (dict(window=[1.0, math.nan]), r"window\[1\] must be a finite number"),
        (dict(pid_integral=-1.0), "pid_integral must be a finite number >= 0"),
        (dict(num_updates=-2), "num_updates must be an integer >= 0"),
    ],
)
def test_corrupted_multiplier_state_is_refused_naming_the_field_and_file(changes, message):
    with pytest.raises(ValueError, match=f"state.json: {message}"):
        LagrangeMultiplier(lambda_max=5.0).load_state_dict(saved_state(**changes), source="state.json")


def test_a_smaller_lambda_max_on_resume_clamps_lambda(caplog):
    multiplier = LagrangeMultiplier(lambda_init=4.0, lambda_max=5.0)
    resumed = LagrangeMultiplier(lambda_init=1.0, lambda_max=2.0)
    with caplog.at_level(logging.WARNING, logger="trl_safe.lagrange"):
        resumed.load_state_dict(multiplier.state_dict())
    assert resumed.value == pytest.approx(2.0)
    assert "exceeds lambda_max" in caplog.text


def test_truncated_multiplier_file_names_the_file(tiny_tokenizer, tmp_path):
    trainer = PPOLagTrainer(
        model=make_tiny_causal_lm(tiny_tokenizer),
        reward_model=length_reward,
        cost_model=length_reward,
        args=ppo_config(tmp_path, PPOLagConfig),
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=tiny_tokenizer,
    )
    checkpoint = tmp_path / "checkpoint-1"
    checkpoint.mkdir()
    text = json.dumps(trainer.lagrange.state_dict())
    (checkpoint / LAGRANGE_STATE_NAME).write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match=f"{LAGRANGE_STATE_NAME}: the Lagrange multiplier state is not valid JSON"):
        trainer._load_extra_state(str(checkpoint))
    (checkpoint / LAGRANGE_STATE_NAME).write_text(json.dumps(saved_state(log_lambda=10.0)))
    with pytest.raises(ValueError, match=f"{LAGRANGE_STATE_NAME}: log_lambda = 10.0 is above"):
        trainer._load_extra_state(str(checkpoint))


# --- 6. PPOTrainer given a PPOLagConfig ----------------------------------------------------------------------------


def test_ppo_trainer_refuses_a_ppo_lag_config(tiny_tokenizer, tmp_path):
    with pytest.raises(TypeError, match="PPOTrainer got a PPOLagConfig.*Use PPOLagTrainer"):
        PPOTrainer(
            model=make_tiny_causal_lm(tiny_tokenizer),
            reward_model=length_reward,
            args=ppo_config(tmp_path, PPOLagConfig, cost_limit=0.5),
            train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
            processing_class=tiny_tokenizer,
        )


# --- 7. a base model path as reward / cost model -------------------------------------------------------------------


def test_a_base_model_path_as_score_model_is_refused_unless_allowed(tiny_tokenizer, tmp_path):
    base = tmp_path / "base-model"
    make_tiny_causal_lm(tiny_tokenizer).save_pretrained(base)
    tiny_tokenizer.save_pretrained(base)

    def build(**config):
        return PPOLagTrainer(
            model=make_tiny_causal_lm(tiny_tokenizer),
            reward_model=length_reward,
            cost_model=str(base),
            args=ppo_config(tmp_path, PPOLagConfig, **config),
            train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
            processing_class=tiny_tokenizer,
        )

    with pytest.raises(ValueError, match=r"cost model .*base-model' has no trained score head.*with CostTrainer"):
        build()
    assert build(allow_untrained_score_head=True).scorers["cost"].model is not None


def save_as_bin(model, folder):
    """A checkpoint in the pickled format older `transformers` wrote (and many Hub repositories still hold)."""
    folder.mkdir()
    model.config.save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return str(folder)


def test_the_head_check_reads_pickled_checkpoints(tiny_tokenizer, tmp_path):
    from trl_safe.checks import check_score_model_trained

    base = save_as_bin(make_tiny_causal_lm(tiny_tokenizer), tmp_path / "base-bin")
    with pytest.raises(ValueError, match="reward model .*base-bin' has no trained score head"):
        check_score_model_trained(base, "reward")
    check_score_model_trained(save_as_bin(make_tiny_scorer(tiny_tokenizer), tmp_path / "scorer-bin"), "reward")


def test_the_head_check_reads_adapters_and_their_base_model(tiny_tokenizer, tmp_path):
    from peft import LoraConfig, get_peft_model

    from trl_safe.checks import check_score_model_trained

    def adapter(model, name, task_type):
        base_dir = tmp_path / f"{name}-base"
        model.save_pretrained(base_dir)
        reloaded = type(model).from_pretrained(base_dir)
        peft_model = get_peft_model(reloaded, LoraConfig(task_type=task_type, r=2, target_modules=["q_proj"]))
        peft_model.save_pretrained(tmp_path / name)
        return str(tmp_path / name)

    # A SEQ_CLS adapter saves the head it trains (modules_to_save): a trained cost model.
    check_score_model_trained(adapter(make_tiny_scorer(tiny_tokenizer), "seq-cls", "SEQ_CLS"), "cost")
    # A causal-LM adapter on a chat model: neither it nor its base has a head.
    with pytest.raises(ValueError, match="cost model .*causal' has no trained score head"):
        check_score_model_trained(adapter(make_tiny_causal_lm(tiny_tokenizer), "causal", "CAUSAL_LM"), "cost")


# --- 8. contradictory or empty pairs given straight to CostTrainer -------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(is_chosen_safe=False, is_rejected_safe=True), "row 1: contradictory labels"),
        (dict(chosen=""), "row 1: 'chosen' is empty"),
        (dict(rejected="   "), "row 1: 'rejected' is empty"),
        (dict(rejected="Like so", is_rejected_safe=False), "row 1: `chosen` and `rejected` are the same response"),
    ],
)
def test_cost_trainer_refuses_contradictory_and_empty_pairs(tiny_tokenizer, tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        CostTrainer(
            make_tiny_scorer(tiny_tokenizer),
            cost_config(tmp_path),
            train_dataset=cost_rows(**changes),
            processing_class=tiny_tokenizer,
        )


def test_cost_trainer_refuses_an_empty_dataset(tiny_tokenizer, tmp_path):
    empty = cost_rows().select([])
    with pytest.raises(ValueError, match="The train dataset is empty"):
        CostTrainer(
            make_tiny_scorer(tiny_tokenizer),
            cost_config(tmp_path),
            train_dataset=empty,
            processing_class=tiny_tokenizer,
        )


# --- crashes from deep inside: data adapters and files -------------------------------------------------------------


def pku_row(prompt="q", safe=(True, False), safer=0):
    return dict(
        prompt=prompt,
        response_0="a",
        response_1="b",
        is_response_0_safe=safe[0],
        is_response_1_safe=safe[1],
        better_response_id=0,
        safer_response_id=safer,
    )


@pytest.mark.parametrize("convert", [to_harmlessness_preferences, to_helpfulness_preferences, to_prompts])
def test_adapters_refuse_an_empty_split(convert):
    empty = Dataset.from_list([pku_row()]).select([])
    with pytest.raises(ValueError, match="split 'dataset' is empty"):
        convert(empty)


def test_every_row_dropped_is_an_error_not_an_empty_dataset():
    rows = Dataset.from_list([pku_row("a", (False, True)), pku_row("b", (False, True))])
    with pytest.raises(ValueError, match="all 2 rows have contradictory safety labels"):
        to_harmlessness_preferences(rows, on_contradiction="drop")


def test_empty_and_malformed_jsonl_files_name_the_file_and_line(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="empty.jsonl' is empty"):
        load_preference_data(empty)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(pku_row()) + "\n" + '{"prompt": "x", "response_0": \n')
    with pytest.raises(ValueError, match=r"bad.jsonl', line 2: not a valid JSON object") as error:
        load_preference_data(bad)
    assert error.value.__cause__ is None and error.value.__suppress_context__


def test_empty_responses_in_pku_rows_name_the_row():
    rows = Dataset.from_list([pku_row(), {**pku_row(), "response_1": ""}])
    with pytest.raises(ValueError, match="row 1: 'response_1' is empty"):
        to_helpfulness_preferences(rows)


# --- crashes from deep inside: prompts, tokenizer, policy, paths ---------------------------------------------------


def build_ppo(tmp_path, tokenizer, prompts=None, model=None, **config):
    dataset = Dataset.from_dict({"prompt": PROMPTS}) if prompts is None else prompts
    return PPOTrainer(
        model=model if model is not None else make_tiny_causal_lm(make_tiny_tokenizer()),
        reward_model=length_reward,
        args=ppo_config(tmp_path, **config),
        train_dataset=dataset,
        processing_class=tokenizer,
    )


@pytest.mark.parametrize(
    ("prompts", "message"),
    [
        (
            Dataset.from_list([{"prompt": [{"role": "user", "content": "hi"}]}, {"prompt": []}]),
            "row 1: 'prompt' is an empty list",
        ),
        (Dataset.from_dict({"prompt": ["hi", None]}), "row 1: 'prompt' must be a string"),
        (Dataset.from_dict({"prompt": [3, 4]}), "row 0: 'prompt' must be a string"),
        (Dataset.from_dict({"prompt": ["hi", " "]}), "row 1: 'prompt' is empty"),
    ],
)
def test_bad_prompts_are_refused_before_any_rollout(tmp_path, tiny_tokenizer, prompts, message):
    with pytest.raises(ValueError, match=f"train_dataset, {message}"):
        build_ppo(tmp_path, tiny_tokenizer, prompts)


def test_conversational_prompts_without_a_chat_template_are_refused(tmp_path):
    tokenizer = make_tiny_tokenizer()
    tokenizer.chat_template = None
    prompts = Dataset.from_dict({"prompt": [[{"role": "user", "content": p}] for p in PROMPTS]})
    with pytest.raises(ValueError, match="conversational prompts, but the tokenizer has no chat template"):
        build_ppo(tmp_path, tokenizer, prompts)


def test_tokenizer_without_pad_or_eos_is_refused(tmp_path):
    tokenizer = make_tiny_tokenizer()
    tokenizer.pad_token = None
    tokenizer.eos_token = None
    with pytest.raises(ValueError, match="neither a pad token nor an EOS token"):
        build_ppo(tmp_path, tokenizer)


def test_sequence_classifier_as_policy_is_refused(tmp_path, tiny_tokenizer):
    with pytest.raises(TypeError, match="must be a causal language model.*LlamaForSequenceClassification"):
        build_ppo(tmp_path, tiny_tokenizer, model=make_tiny_scorer(tiny_tokenizer))


def test_mistyped_local_model_path_says_no_such_directory(tmp_path, tiny_tokenizer):
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(FileNotFoundError, match="no-such-model' does not exist"):
        build_ppo(tmp_path, tiny_tokenizer, model=missing)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        CostTrainer("./no/such/cost-base", cost_config(tmp_path), train_dataset=cost_rows())


# --- first contact: warnings that say what is skipped or cut; GRPO's argument name --------------------------------


def test_long_prompts_and_leftover_prompts_are_announced(tmp_path, tiny_tokenizer, caplog):
    prompts = Dataset.from_dict({"prompt": ["short", "x" * 40, "y" * 50, "ok"] + ["z"]})
    with caplog.at_level(logging.WARNING, logger="trl_safe.checks"):
        build_ppo(tmp_path, tiny_tokenizer, prompts, max_prompt_length=20)
    assert "2 of 5 prompts of train_dataset are longer than max_prompt_length=20 tokens" in caplog.text
    assert "1 prompts are skipped every epoch" in caplog.text


def test_reward_funcs_is_accepted_like_grpo(tmp_path, tiny_tokenizer):
    trainer = PPOTrainer(
        model=make_tiny_causal_lm(tiny_tokenizer),
        reward_funcs=[length_reward],
        args=ppo_config(tmp_path),
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=tiny_tokenizer,
    )
    assert trainer.scorers["reward"].function is length_reward
    with pytest.raises(TypeError, match="takes one reward source.*Combine them in one function"):
        PPOTrainer(model=make_tiny_causal_lm(tiny_tokenizer), reward_funcs=[length_reward, length_reward])


# --- first contact: configs that run on a CPU, without warnings the user did not cause -----------------------------


@pytest.mark.parametrize(
    "config_class", [CostConfig, RewardConfig, PPOConfig, PPOLagConfig, GRPOLagConfig, RLOOLagConfig]
)
def test_configs_pick_precision_from_the_hardware_and_warn_about_nothing(tmp_path, config_class):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a FutureWarning about gradient_checkpointing would fail here
        config = config_class(output_dir=str(tmp_path))
    if not torch.cuda.is_available():
        assert config.bf16 is False and config.dataloader_pin_memory is False
    assert config.activation_checkpointing is True  # TRL's default, under its current name
    assert config_class(output_dir=str(tmp_path), activation_checkpointing=False).activation_checkpointing is False
