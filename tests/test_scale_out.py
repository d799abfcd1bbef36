import importlib.util
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DistributedType
from datasets import Dataset
from distributed_utils import clear_stale_extension_locks, extension_locks, run_distributed

import trl_safe.ppo.experience
import trl_safe.ppo.trainer
from trl_safe import LagrangeMultiplier, PPOConfig, PPOTrainer
from trl_safe.testing_utils import make_tiny_causal_lm

CONFIG_DIR = Path(__file__).resolve().parents[1] / "examples" / "accelerate_configs"
TRAIN_COST_MODEL = Path(__file__).resolve().parent / "distributed" / "train_cost_model.py"
TRAIN_PPO_LAG = Path(__file__).resolve().parent / "distributed" / "train_ppo_lag.py"


def test_exit_without_finalizing_flushes_output_and_skips_the_finalizers():
    """The launched scripts' last call: what was printed arrives, the exit code is kept, atexit handlers never run
    (interpreter finalization is where the gloo group's teardown aborts)."""
    code = (
        "import atexit, sys\n"
        "from trl_safe.testing_utils import exit_without_finalizing\n"
        "atexit.register(lambda: print('finalized'))\n"
        "sys.stdout.write('result saved')\n"
        "exit_without_finalizing(3)\n"
        "print('unreachable')\n"
    )
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert process.returncode == 3, process.stderr
    assert process.stdout == "result saved"


@pytest.mark.parametrize(
    "file_name, distributed_type, expected",
    [
        ("cpu_2proc.yaml", DistributedType.MULTI_GPU, dict(num_processes=2, mixed_precision="no")),
        ("multi_gpu.yaml", DistributedType.MULTI_GPU, dict(mixed_precision="bf16")),
        ("deepspeed_zero2.yaml", DistributedType.DEEPSPEED, dict(zero_stage=2, offload_optimizer_device="none")),
        ("deepspeed_zero3.yaml", DistributedType.DEEPSPEED, dict(zero_stage=3, zero3_save_16bit_model=True)),
        (
            "deepspeed_zero3_offload.yaml",
            DistributedType.DEEPSPEED,
            dict(zero_stage=3, offload_optimizer_device="cpu", offload_param_device="cpu"),
        ),
        ("fsdp.yaml", DistributedType.FSDP, dict(fsdp_version=2, fsdp_state_dict_type="FULL_STATE_DICT")),
    ],
)
def test_accelerate_configs_load_and_say_when_to_use_them(file_name, distributed_type, expected):
    path = CONFIG_DIR / file_name
    config = load_config_from_file(str(path))
    assert config.distributed_type == distributed_type
    settings = {**vars(config), **(config.deepspeed_config or {}), **(config.fsdp_config or {})}
    for key, value in expected.items():
        assert settings[key] == value, key
    header = path.read_text().split("compute_environment")[0]
    assert header.startswith("# ") and "accelerate launch --config_file" in header


def test_cost_trainer_trains_one_model_on_two_cpu_processes():
    """cpu_2proc.yaml + `ACCELERATE_USE_CPU` really runs DDP: 2 ranks, gloo, and both end with the same weights."""
    run = run_distributed(TRAIN_COST_MODEL, "--max_steps", "3")
    rank0, rank1 = run.results
    for result in (rank0, rank1):
        assert result["world_size"] == 2
        assert result["distributed_type"] == str(DistributedType.MULTI_CPU)
        assert result["backend"] == "gloo"
        assert len(result["losses"]) == 3 and all(math.isfinite(loss) for loss in result["losses"])
    assert (rank0["rank"], rank1["rank"]) == (0, 1)
    # Not distributed (each rank training alone on its shard of the data) would leave different weights.
    assert rank0["weights_checksum"] == rank1["weights_checksum"]


def _check_ddp_set_up(results: list[dict]) -> None:
    for rank, result in enumerate(results):
        assert (result["rank"], result["world_size"]) == (rank, 2)
        assert result["distributed_type"] == str(DistributedType.MULTI_CPU) and result["backend"] == "gloo"
        assert result["trained_model_class"] == "DistributedDataParallel"  # policy + critic, one DDP module
        for name, frozen in result["frozen_models"].items():
            # Frozen models are prepared for inference: placed on the device, not wrapped in DDP (no gradients).
            assert "DistributedDataParallel" not in frozen["class"], name
            assert frozen["local_numel"] == frozen["full_numel"] > 0, name


def _check_ppo_lag_run(results: list[dict]) -> None:
    """λ, weights, saving and resuming of a 2-process `train_ppo_lag.py --max_steps 4 --resume` run.

    λ must be the same on both ranks after every rollout and equal to what one `LagrangeMultiplier` computes from the
    union of both ranks' episode costs (not from either rank's own); the policy and critic weights must be
    bit-identical on the ranks; a second run resumed from the middle checkpoint must end exactly where the first did.
    """
    rank0, rank1 = results
    assert set(rank0["frozen_models"]) == {"reward", "cost", "reference"}
    assert rank0["global_step"] == rank1["global_step"] == 4
    assert len(rank0["rollouts"]) == len(rank1["rollouts"]) == 4  # num_ppo_epochs = num_mini_batches = 1
    for result in results:
        # Before any update the reference is an exact copy of the policy and the cost value column is zero.
        assert result["first_log"]["objective/kl"] == 0 and result["first_log"]["val/cost_value"] == 0

    # λ: identical on both ranks, and the dual step of one multiplier fed with both ranks' costs.
    lambdas = [[rollout["lambda_after_update"] for rollout in result["rollouts"]] for result in results]
    assert lambdas[0] == lambdas[1]
    assert rank0["lagrange_state"] == rank1["lagrange_state"]
    union, rank0_only = LagrangeMultiplier(**rank0["lagrange_kwargs"]), LagrangeMultiplier(**rank0["lagrange_kwargs"])
    expected, rank0_alone = [], []
    for rollout0, rollout1 in zip(rank0["rollouts"], rank1["rollouts"]):
        assert rollout0["step"] == rollout1["step"]
        assert rollout0["local_costs"] != rollout1["local_costs"]  # each rank scored its own completions
        expected.append(union.update(rollout0["local_costs"] + rollout1["local_costs"], step=rollout0["step"]))
        rank0_alone.append(rank0_only.update(rollout0["local_costs"], step=rollout0["step"]))
    assert lambdas[0] == expected
    assert rank0["lagrange_state"] == union.state_dict()
    assert len(set(expected)) == 4 and rank0_alone != expected  # λ moved, and only the union explains it

    # One model: the ranks hold bit-identical policy and critic weights.
    assert rank0["policy_sha256"] == rank1["policy_sha256"]
    assert rank0["critic_sha256"] == rank1["critic_sha256"]
    assert "model.safetensors" in rank0["saved_files"]  # `save_model` wrote the final policy (main process only)
    assert rank1["saved_files"] is None

    # Resume from checkpoint-2: the checkpoint holds the critic, λ and both ranks' RNG states, and the resumed run
    # replays the last two rollouts of the uninterrupted one exactly, on both ranks.
    assert {"value_model", "lagrange_multiplier.json", "rng_state_0.pth", "rng_state_1.pth"} <= set(
        rank0["checkpoint_files"]
    )
    for result in results:
        resumed = result["resumed"]
        assert resumed["global_step"] == 4
        assert resumed["rollouts"] == [rollout for rollout in result["rollouts"] if rollout["step"] >= 2]
        assert resumed["lagrange_state"] == result["lagrange_state"]
        assert (resumed["policy_sha256"], resumed["critic_sha256"]) == (
            result["policy_sha256"],
            result["critic_sha256"],
        )


def test_ppo_lag_on_two_cpu_processes_keeps_lambda_and_weights_identical_and_resumes(tmp_path):
    """Two-process PPO-Lag through `accelerate launch` (DDP, gloo), with tiny reward and cost *models*."""
    run = run_distributed(TRAIN_PPO_LAG, "--output_dir", str(tmp_path), "--max_steps", "4", "--resume")
    _check_ddp_set_up(run.results)
    _check_ppo_lag_run(run.results)


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine this launch is a valid DDP run")
@pytest.mark.parametrize(
    "script, args",
    [(TRAIN_PPO_LAG, ("--max_steps", "1")), (TRAIN_COST_MODEL, ("--max_steps", "1"))],
    ids=["PPOLagTrainer", "CostTrainer"],
)
def test_a_launch_that_would_train_each_process_alone_is_an_error(tmp_path, script, args):
    """Without ACCELERATE_USE_CPU on a machine without GPUs, accelerate starts 2 processes but sets up no distributed
    training: `transformers` only warns and each process would train its own model. Our trainers refuse to start."""
    if script == TRAIN_PPO_LAG:
        args = ("--output_dir", str(tmp_path), *args)
    with pytest.raises(AssertionError, match="accelerate set up no distributed training"):
        run_distributed(script, *args, env={"ACCELERATE_USE_CPU": "false"})


@pytest.mark.slow
@pytest.mark.timeout(660)  # above the launcher's 600 s, so a hang reports the ranks' output instead of pytest's stacks
@pytest.mark.skipif(
    importlib.util.find_spec("deepspeed") is None,
    reason="DeepSpeed is not installed (`pip install trl-safe[deepspeed]`)",
)
def test_ppo_lag_under_deepspeed_zero3_on_two_cpu_processes(tmp_path):
    """PPO-Lag under ZeRO-3 (examples/accelerate_configs/deepspeed_zero3.yaml) on 2 CPU processes.

    The models are built after the training arguments, so `transformers` creates them already partitioned
    (`zero.Init`), as in a user's script: the reference copy and the critic built from the reward model must still
    start from the right weights. The frozen reference, reward and cost models must be sharded (each rank holds about
    half of their parameters), not replicated. The first launch after installing DeepSpeed compiles its
    shared-memory communication op (minutes); hence the long timeout. A build lock a killed build left behind would
    make that launch wait forever: `run_distributed` removes locks older than any build first.
    """
    run = run_distributed(
        TRAIN_PPO_LAG,
        *("--output_dir", str(tmp_path), "--max_steps", "4", "--resume", "--ddp_backend", "gloo"),
        config_file=CONFIG_DIR / "deepspeed_zero3.yaml",
        timeout=600,
    )
    for rank, result in enumerate(run.results):
        assert (result["rank"], result["world_size"], result["backend"]) == (rank, 2, "gloo")
        assert result["distributed_type"] == str(DistributedType.DEEPSPEED) and result["zero_stage"] == 3
        assert result["trained_model_class"] == "DeepSpeedEngine"
        for name, frozen in result["frozen_models"].items():
            assert frozen["class"] == "DeepSpeedEngine", name  # TRL's prepare_deepspeed: an inference engine
            assert frozen["num_partitioned"] == frozen["num_parameters"], name
            # This rank's shard: half of the parameters, plus at most one element of padding per parameter.
            assert frozen["full_numel"] // 2 <= frozen["local_numel"], name
            assert frozen["local_numel"] <= frozen["full_numel"] // 2 + frozen["num_parameters"], name
    _check_ppo_lag_run(run.results)


def test_stale_extension_build_locks_are_removed_and_fresh_ones_kept(tmp_path, monkeypatch):
    """A build killed half-way leaves torch's `lock` file, and the next DeepSpeed launch would wait on it forever."""
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    stale, fresh = tmp_path / "deepspeed_shm_comm" / "lock", tmp_path / "other_op" / "lock"
    for lock in (stale, fresh):
        lock.parent.mkdir()
        lock.touch()
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))
    with pytest.warns(UserWarning, match="stale torch extension build lock"):
        assert clear_stale_extension_locks() == [stale]
    assert not stale.exists() and fresh.exists()  # a lock younger than a build may mark a build under way
    assert extension_locks() == [fresh]


def test_ppo_on_two_cpu_processes_trains_one_policy(tmp_path):
    """Plain `PPOTrainer` under 2-process DDP: a reward model, no λ, and both ranks end with the same weights."""
    run = run_distributed(TRAIN_PPO_LAG, "--output_dir", str(tmp_path), "--trainer", "ppo", "--max_steps", "2")
    rank0, rank1 = run.results
    _check_ddp_set_up(run.results)
    assert set(rank0["frozen_models"]) == {"reward", "reference"}
    assert len(rank0["losses"]) == 2 and all(math.isfinite(loss) for loss in rank0["losses"])
    assert rank0["losses"] == rank1["losses"]  # logged losses are reduced over the ranks
    assert rank0["rollouts"][0]["local_rewards"] != rank1["rollouts"][0]["local_rewards"]
    assert (rank0["policy_sha256"], rank0["critic_sha256"]) == (rank1["policy_sha256"], rank1["critic_sha256"])


# ------------------------------------------------------------------------------------------------------------------
# vLLM rollouts (`use_vllm`): vLLM needs a GPU, so the trainer's side is tested with a stand-in for TRL's
# VLLMGeneration that returns fixed token ids and records every weight sync.
# ------------------------------------------------------------------------------------------------------------------


def vllm_config(output_dir, **overrides) -> PPOConfig:
    values = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=2,
        num_ppo_epochs=2,  # 2 optimizer steps per rollout: rollouts at global steps 0 and 2
        max_completion_length=6,
        max_steps=4,
        learning_rate=1e-2,
        report_to="none",
        save_strategy="no",
        activation_checkpointing=False,
        disable_tqdm=True,
        seed=0,
        use_vllm=True,
        vllm_mode="server",
        temperature=0.7,
        top_k=5,
    )
    values.update(overrides)
    return PPOConfig(**values)


class FakeVLLMGeneration:
    """Stands in for `trl.generation.vllm_generation.VLLMGeneration`: same constructor and methods, no vLLM."""

    def __init__(self, model, accelerator, processing_class, **kwargs):
        self.model, self.kwargs = model, kwargs
        tokenizer = processing_class
        # One completion that ends with EOS and one that reaches max_completion_length (6 tokens) without it.
        self.completions = [tokenizer("ok")["input_ids"] + [tokenizer.eos_token_id], tokenizer("abcdef")["input_ids"]]
        self.synced_weights: list[torch.Tensor] = []  # the policy's weights at every sync
        self.generated_prompts: list[list[list[int]]] = []

    def sync_weights(self):
        self.synced_weights.append(torch.cat([p.detach().flatten() for p in self.model.parameters()]).clone())

    def generate(self, prompts, images, num_generations):
        assert images is None and num_generations == 1
        self.generated_prompts.append(prompts)
        completion_ids = [self.completions[i % 2] for i in range(len(prompts))]
        return prompts, completion_ids, None, None


def test_use_vllm_without_vllm_is_a_clear_import_error(tmp_path, tiny_tokenizer, monkeypatch):
    monkeypatch.setattr(trl_safe.ppo.trainer, "is_vllm_available", lambda: False)  # as on a machine without vLLM
    with pytest.raises(ImportError, match="pip install vllm"):
        PPOTrainer(
            model=make_tiny_causal_lm(tiny_tokenizer),
            reward_model=lambda completions, **kwargs: [0.0] * len(completions),
            args=vllm_config(tmp_path),
            train_dataset=Dataset.from_dict({"prompt": ["a", "b"]}),
            processing_class=tiny_tokenizer,
        )


def test_vllm_tokens_become_the_rollout_and_weights_are_synced_after_each_update(
    tmp_path, tiny_tokenizer, monkeypatch
):
    monkeypatch.setattr(trl_safe.ppo.trainer, "is_vllm_available", lambda: True)
    monkeypatch.setattr(trl_safe.ppo.experience, "VLLMGeneration", FakeVLLMGeneration)
    trainer = PPOTrainer(
        model=make_tiny_causal_lm(tiny_tokenizer),
        reward_model=lambda completions, **kwargs: [len(c) / 10 for c in completions],
        args=vllm_config(tmp_path),
        train_dataset=Dataset.from_dict({"prompt": ["Hello", "The sky is", "Why?", "x"]}),
        eval_dataset=Dataset.from_dict({"prompt": ["Hi", "Yo"]}),
        processing_class=tiny_tokenizer,
    )
    vllm = trainer.vllm_generation
    assert vllm.model is trainer.model.policy  # the policy alone is sent to vLLM, not the critic
    assert vllm.kwargs["mode"] == "server" and vllm.kwargs["max_completion_length"] == 6
    assert (vllm.kwargs["temperature"], vllm.kwargs["top_k"]) == (0.7, 5)
    assert vllm.kwargs["generation_kwargs"]["stop_token_ids"] == trainer.eos_token_ids

    # vLLM's token ids become the rollout's completions: EOS kept and counted, the rest right-padded and masked.
    batch = trainer._generate(["Hi", "Yo"])
    assert vllm.generated_prompts[-1] == [tiny_tokenizer("Hi")["input_ids"], tiny_tokenizer("Yo")["input_ids"]]
    pad_id = tiny_tokenizer.pad_token_id
    expected = torch.tensor([vllm.completions[0] + [pad_id] * 3, vllm.completions[1]])
    assert torch.equal(batch["completion_ids"], expected)
    assert batch["completion_mask"].tolist() == [[1, 1, 1, 0, 0, 0], [1] * 6]
    assert batch["has_eos"].tolist() == [True, False]
    assert batch["completions"] == ["ok", "abcdef"]
    assert len(vllm.synced_weights) == 1  # step 0: the initial weights are sent once
    trainer._generate(["Hi"])
    assert len(vllm.synced_weights) == 1  # same step, same weights: nothing to send

    # Training: a rollout at steps 0 and 2, each preceded by a sync only if the policy changed since the last one.
    trainer.train()
    assert len(vllm.synced_weights) == 2  # step 0 was synced above; step 2 follows two updates
    assert not torch.equal(vllm.synced_weights[0], vllm.synced_weights[1])
    trainer.evaluate()  # generation for evaluation goes through vLLM too, with the weights after step 4
    assert len(vllm.synced_weights) == 3
    current = torch.cat([p.detach().flatten() for p in trainer.model.policy.parameters()])
    assert torch.equal(vllm.synced_weights[-1], current)
