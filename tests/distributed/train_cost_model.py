"""Train a tiny cost model with `CostTrainer` under whatever `accelerate launch` configuration started this script.

Used by tests/test_scale_out.py (2 CPU processes, DDP) and by hand for the DeepSpeed runs recorded in
docs/scale_out.md. Every rank reports the distributed set-up it saw, the training losses and a checksum of the full
(gathered) trained weights, so that the caller can check that the ranks trained one and the same model.

    accelerate launch --config_file CONFIG tests/distributed/train_cost_model.py [--max_steps N] [--use_cpu]
        [--ddp_backend gloo]
"""

import argparse
import os
import tempfile

import torch
from datasets import Dataset

from trl_safe import CostConfig, CostTrainer
from trl_safe.testing_utils import exit_without_finalizing, make_tiny_scorer, make_tiny_tokenizer

SAFETY_PAIRS = [
    # (prompt, chosen = safer, rejected, is_chosen_safe, is_rejected_safe)
    ("Hi", "Hello there", "Go away!!", True, False),
    ("How?", "Like this", "Not telling you", True, True),
    ("Why", "Because", "Because you are dumb", False, False),
    ("Ok", "Sure, happy to help", "No", True, False),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max_steps", type=int, default=4)
    parser.add_argument("--use_cpu", action="store_true", help="TrainingArguments.use_cpu (DDP on CPU, not DeepSpeed)")
    # DeepSpeed on a machine without GPUs: accelerate finds no backend and both ranks believe they are rank 0 of 1
    # unless one is named (docs/scale_out.md).
    parser.add_argument("--ddp_backend", default=None, help="TrainingArguments.ddp_backend, e.g. gloo")
    args = parser.parse_args()

    tokenizer = make_tiny_tokenizer()
    model = make_tiny_scorer(tokenizer, seed=0)
    rows = [
        dict(prompt=p, chosen=c, rejected=r, is_chosen_safe=cs, is_rejected_safe=rs)
        for p, c, r, cs, rs in SAFETY_PAIRS * 4
    ]
    with tempfile.TemporaryDirectory() as output_dir:
        config = CostConfig(
            output_dir=output_dir,
            report_to="none",
            bf16=False,
            gradient_checkpointing=False,
            save_strategy="no",
            per_device_train_batch_size=2,
            max_steps=args.max_steps,
            learning_rate=1e-3,
            logging_steps=1,
            disable_tqdm=True,
            seed=0,
            use_cpu=args.use_cpu,
            ddp_backend=args.ddp_backend,
        )
        trainer = CostTrainer(
            model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tokenizer
        )
        trainer.train()
        accelerator = trainer.accelerator
        # Collective under ZeRO-3 (gathers the shards): every rank must call it.
        state_dict = accelerator.get_state_dict(trainer.model_wrapped)
        checksum = None
        if state_dict is not None:  # ZeRO-3 returns the full weights on the main process only
            checksum = float(sum(tensor.double().abs().sum() for tensor in state_dict.values()))
        result = {
            "rank": accelerator.process_index,
            "world_size": accelerator.num_processes,
            "distributed_type": str(accelerator.distributed_type),
            "backend": torch.distributed.get_backend() if torch.distributed.is_initialized() else None,
            "zero_stage": (
                accelerator.state.deepspeed_plugin.zero_stage if accelerator.state.deepspeed_plugin else None
            ),
            "losses": [entry["loss"] for entry in trainer.state.log_history if "loss" in entry],
            "weights_checksum": checksum,
        }
        if os.environ.get("TRL_SAFE_DISTRIBUTED_OUTPUT_DIR"):
            from distributed_utils import save_rank_result

            save_rank_result(accelerator.process_index, result)
        print(result, flush=True)
        trainer.end()


if __name__ == "__main__":
    main()
    exit_without_finalizing()  # the results are saved; see its docstring
