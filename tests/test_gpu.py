"""What only a GPU exercises: bf16 and fp16 training, CUDA generation, scores read in bfloat16, ZeRO-3 with NCCL.

Every test here is marked `gpu` and skipped without CUDA. `benchmarks/gpu_check.py` runs them (`pytest -m gpu`) on
the project's GPU machine; `make test` on a CPU skips them. For a dry run of their bodies on a CPU (slow, and bf16
there proves little about a GPU), set `TRL_SAFE_GPU_TEST_DEVICE=cpu`.
"""

import importlib.util
import math
import os
from pathlib import Path

import pytest
import torch

# The trainers are imported inside the tests: on a machine without CUDA every test here is skipped, and collecting
# them should not cost the import of `transformers`' Trainer (`benchmarks/gpu_check.py`'s dry run collects them).

DEVICE = os.environ.get("TRL_SAFE_GPU_TEST_DEVICE", "cuda")
ON_CPU = DEVICE == "cpu"

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not ON_CPU and not torch.cuda.is_available(),
        reason="needs CUDA (TRL_SAFE_GPU_TEST_DEVICE=cpu runs a dry run of these tests on the CPU)",
    ),
]

CONFIG_DIR = Path(__file__).resolve().parents[1] / "examples" / "accelerate_configs"
TRAIN_PPO_LAG = Path(__file__).resolve().parent / "distributed" / "train_ppo_lag.py"
PROMPTS = ["Hello there", "The sky is", "Tell me a story", "Why?", "abc", "Once upon", "x", "Name a color"]


def rl_config(config_class, output_dir, **overrides):
    from trl_safe.testing_utils import tiny_rl_config

    sizes = dict(per_device_train_batch_size=4, num_ppo_epochs=2, max_completion_length=8, max_steps=4)
    return tiny_rl_config(config_class, output_dir, **{**sizes, "use_cpu": ON_CPU, **overrides})


def lag_trainer(tmp_path, tokenizer, dtype: torch.dtype, **config_overrides):
    from datasets import Dataset

    from trl_safe import PPOLagConfig, PPOLagTrainer
    from trl_safe.testing_utils import make_tiny_causal_lm, make_tiny_scorer

    return PPOLagTrainer(
        model=make_tiny_causal_lm(tokenizer).to(dtype),
        reward_model=make_tiny_scorer(tokenizer, seed=1).to(dtype),
        cost_model=make_tiny_scorer(tokenizer, seed=2).to(dtype),
        args=rl_config(PPOLagConfig, tmp_path, **config_overrides),
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=tokenizer,
    )


def assert_finite_training_logs(trainer, keys=("loss/policy", "loss/value")) -> None:
    """One log per optimizer step; every `key` logged (rollout metrics: once per rollout) and finite."""
    logs = [entry for entry in trainer.state.log_history if "loss/policy" in entry]
    assert len(logs) == trainer.args.max_steps
    for key in keys:
        values = [entry[key] for entry in logs if key in entry]
        assert values and all(math.isfinite(v) for v in values), (key, values)


def trained_parameters(trainer) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in trainer.model.named_parameters() if p.requires_grad}


def test_bf16_ppo_lag_trains_bf16_weights_on_the_gpu(tmp_path, tiny_tokenizer):
    # bf16 weights and `bf16=True`: the rollout, the losses and AdamW all run on the GPU in bfloat16; λ moves.
    trainer = lag_trainer(tmp_path, tiny_tokenizer, torch.bfloat16, bf16=True, lambda_init=1.0, lambda_lr=0.5)
    before = trained_parameters(trainer)
    trainer.train()

    assert trainer.args.bf16
    assert_finite_training_logs(trainer, keys=("loss/policy", "loss/value", "objective/costs", "lagrange/lambda"))
    after = dict(trainer.model.named_parameters())
    assert {p.device.type for p in after.values()} == {torch.device(DEVICE).type}
    assert {p.dtype for p in after.values()} == {torch.bfloat16}
    changed = [name for name, value in before.items() if not torch.equal(value, after[name].detach())]
    assert any(name.startswith("policy.") for name in changed) and any(
        name.startswith("value_model.") for name in changed
    )
    assert trainer.lagrange.value != pytest.approx(1.0)  # the dual step ran on the GPU's costs
    assert math.isfinite(trainer.lagrange.value)


def test_ppo_configs_default_to_bf16_autocast_on_a_bf16_gpu(tmp_path, tiny_tokenizer):
    # PPOConfig's GPU default: float32 weights, bf16 autocast. The weights stay float32 and training is finite.
    from trl_safe import PPOLagConfig

    if ON_CPU:
        pytest.skip("the bf16 default applies on a GPU only")
    args = rl_config(PPOLagConfig, tmp_path, max_steps=2)
    assert args.bf16 is torch.cuda.is_bf16_supported()
    trainer = lag_trainer(tmp_path, tiny_tokenizer, torch.float32, max_steps=2)
    trainer.train()
    assert_finite_training_logs(trainer)
    assert {p.dtype for p in trainer.model.parameters()} == {torch.float32}


def test_fp16_ppo_trains_with_loss_scaling(tmp_path, tiny_tokenizer):
    # fp16 mixed precision (GPUs without bf16): the gradient scaler must not make the losses or weights non-finite.
    if ON_CPU:
        pytest.skip("fp16 mixed precision needs a GPU")
    from datasets import Dataset

    from trl_safe import PPOConfig, PPOTrainer
    from trl_safe.testing_utils import make_tiny_causal_lm, make_tiny_scorer

    trainer = PPOTrainer(
        model=make_tiny_causal_lm(tiny_tokenizer),
        reward_model=make_tiny_scorer(tiny_tokenizer, seed=1),
        args=rl_config(PPOConfig, tmp_path, fp16=True, bf16=False, max_grad_norm=1.0),
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=tiny_tokenizer,
    )
    trainer.train()
    assert_finite_training_logs(trainer)
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_cuda_greedy_generation_equals_cpu_greedy_generation(tiny_tokenizer):
    # The same weights decode the same tokens on the GPU and the CPU (float32, greedy, cache on).
    from trl_safe.testing_utils import make_tiny_causal_lm

    model = make_tiny_causal_lm(tiny_tokenizer, hidden_size=64).eval()
    batch = tiny_tokenizer(PROMPTS[:4], return_tensors="pt", padding=True, padding_side="left")
    kwargs = dict(max_new_tokens=12, do_sample=False, pad_token_id=tiny_tokenizer.pad_token_id)
    with torch.no_grad():
        on_cpu = model.generate(**batch, **kwargs)
        on_device = model.to(DEVICE).generate(**batch.to(DEVICE), **kwargs)
    assert on_device.device.type == torch.device(DEVICE).type
    assert torch.equal(on_device.cpu(), on_cpu)


def test_bf16_scores_are_read_at_the_same_token_as_fp32(tiny_tokenizer):
    # Reward/cost scores read at the last token in bfloat16 on the GPU agree with float32 on the CPU to bf16 precision.
    from trl_safe.scoring import last_token_scores
    from trl_safe.testing_utils import make_tiny_scorer

    model = make_tiny_scorer(tiny_tokenizer, seed=3).eval()
    batch = tiny_tokenizer(PROMPTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        reference = last_token_scores(model, batch["input_ids"], batch["attention_mask"])
        device_batch = batch.to(DEVICE)
        scores = last_token_scores(
            model.to(DEVICE, torch.bfloat16), device_batch["input_ids"], device_batch["attention_mask"]
        )
    assert scores.dtype == torch.bfloat16
    torch.testing.assert_close(scores.float().cpu(), reference, atol=5e-2, rtol=5e-2)


def test_bf16_cost_model_trains_on_the_gpu(tmp_path, tiny_tokenizer):
    # The cost model's loss (pairwise + sign terms) in bfloat16 on the GPU: finite, decreasing over a few steps.
    from datasets import Dataset

    from trl_safe import CostConfig, CostTrainer
    from trl_safe.testing_utils import make_tiny_scorer

    rows = [
        dict(
            prompt=p, chosen=p + " sure, here is how", rejected=p + " no", is_chosen_safe=True, is_rejected_safe=False
        )
        for p in PROMPTS
    ]
    trainer = CostTrainer(
        model=make_tiny_scorer(tiny_tokenizer).to(torch.bfloat16),
        args=CostConfig(
            output_dir=str(tmp_path / "cost"),
            report_to="none",
            bf16=True,
            gradient_checkpointing=False,
            save_strategy="no",
            per_device_train_batch_size=8,
            learning_rate=1e-2,
            max_steps=6,
            logging_steps=1,
            disable_tqdm=True,
            seed=0,
            use_cpu=ON_CPU,
        ),
        train_dataset=Dataset.from_list(rows),
        processing_class=tiny_tokenizer,
    )
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 6 and all(math.isfinite(loss) for loss in losses)
    assert losses[-1] < losses[0]
    assert next(trainer.model.parameters()).device.type == torch.device(DEVICE).type


@pytest.mark.skipif(
    importlib.util.find_spec("deepspeed") is None,
    reason="DeepSpeed is not installed (`pip install trl-safe[deepspeed]`; `make gpu-wheels` bundles it)",
)
def test_bf16_ppo_lag_under_deepspeed_zero3_on_one_gpu(tmp_path):
    """PPO-Lag launched with examples/accelerate_configs/deepspeed_zero3.yaml on one GPU, in bf16, with NCCL.

    The CPU suite runs ZeRO-3 on two gloo processes in float32 (test_scale_out.py); this is the same script on the
    GPU: the trained module and the frozen reference, reward and cost models are ZeRO-3 engines, the policy's shard
    is bfloat16 on the GPU, λ is one `LagrangeMultiplier` fed with the episode costs, and a run resumed from the
    middle checkpoint replays the rollouts after it. On the CPU (`TRL_SAFE_GPU_TEST_DEVICE=cpu`) the dry run uses
    gloo and float32.
    """
    from distributed_utils import run_distributed

    from trl_safe import LagrangeMultiplier

    script_args = ["--output_dir", str(tmp_path), "--max_steps", "4", "--resume"]
    script_args += ["--ddp_backend", "gloo"] if ON_CPU else ["--bf16"]
    run = run_distributed(
        TRAIN_PPO_LAG,
        *script_args,
        num_processes=1,
        config_file=CONFIG_DIR / "deepspeed_zero3.yaml",
        mixed_precision="no" if ON_CPU else "bf16",
        timeout=150,
    )
    (result,) = run.results
    assert (result["world_size"], result["backend"]) == (1, "gloo" if ON_CPU else "nccl")
    assert result["distributed_type"] == "DistributedType.DEEPSPEED" and result["zero_stage"] == 3
    assert result["trained_model_class"] == "DeepSpeedEngine"
    assert result["policy_dtype"] == ("torch.float32" if ON_CPU else "torch.bfloat16")
    assert result["policy_device"].startswith(DEVICE)
    assert result["mixed_precision"] == ("no" if ON_CPU else "bf16")
    assert set(result["frozen_models"]) == {"reward", "cost", "reference"}
    for name, frozen in result["frozen_models"].items():
        assert frozen["class"] == "DeepSpeedEngine", name
        assert frozen["num_partitioned"] == frozen["num_parameters"], name  # ZeRO-3 parameters, not plain tensors
    assert len(result["losses"]) == 4 and all(math.isfinite(loss) for loss in result["losses"])
    assert result["first_log"]["objective/kl"] == 0  # the reference starts as an exact copy of the policy

    lambdas = [rollout["lambda_after_update"] for rollout in result["rollouts"]]
    multiplier = LagrangeMultiplier(**result["lagrange_kwargs"])
    expected = [multiplier.update(r["local_costs"], step=r["step"]) for r in result["rollouts"]]
    assert lambdas == pytest.approx(expected, rel=1e-6) and len(set(lambdas)) == 4
    assert "model.safetensors" in result["saved_files"]

    resumed = result["resumed"]
    assert resumed["global_step"] == 4
    assert {"value_model", "lagrange_multiplier.json"} <= set(result["checkpoint_files"])
    # The first rollout after the checkpoint starts from the saved weights and RNG: the same completions and costs.
    assert resumed["rollouts"][0] == next(r for r in result["rollouts"] if r["step"] == resumed["rollouts"][0]["step"])
