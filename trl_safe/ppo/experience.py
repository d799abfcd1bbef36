"""Rollouts and experience: the half of `PPOTrainer` that turns a batch of prompts into PPO's training data.

- `RolloutSampler` and the data-loading methods: one rollout batch of prompts per process, repeated for every
  micro-step the rollout feeds (the idea of `GRPOTrainer`'s buffered generations);
- `ExperienceMaker._make_experience`: the rollout as numbered steps in one function, in the order of the equations
  (generate → log-probs → scores → dual step → KL → per-token rewards → GAE → actor advantage), returning an
  `Experience`;
- `_generate` / `_generate_with_vllm`: sampling with `generate` on the (gathered) policy or with TRL's vLLM
  integration;
- `Experience`: the typed result, cut into the micro-batches `compute_loss` receives.

`ExperienceMaker` is a mixin of `PPOTrainer` (it uses the trainer's accelerator, models, score streams and hooks);
it lives here so that a reader finds the rollout by its name. The formulas are `trl_safe.rl_math`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch
from datasets import Dataset
from torch import nn
from transformers import GenerationConfig, PreTrainedTokenizerBase
from trl.data_utils import is_conversational
from trl.generation.vllm_generation import VLLMGeneration
from trl.models import unwrap_model_for_generation
from trl.trainer.utils import RepeatSampler, pad

from trl_safe.ppo_config import PPOConfig
from trl_safe.rl_math import (
    generalized_advantage_estimation,
    kl_penalty,
    masked_sum,
    masked_whiten,
    selective_logprobs,
)
from trl_safe.seeding import epoch_generator


@dataclass
class Experience:
    """One rollout (or a micro-batch of it) as PPO trains on it. Tensors are `[batch, ...]`; the completion tokens
    start at column `prompt_length` of `input_ids`.

    Attributes:
        input_ids, attention_mask, position_ids: prompt (left-padded) + completion (right-padded), `[batch, seq]`.
        completion_ids, completion_mask: the completion tokens and the mask of those that count (up to and
            including the first EOS), `[batch, tokens]`.
        prompt_length: the width of the (padded) prompt part.
        logprobs: log π_old(y_t|x, y_<t), `[batch, tokens]`.
        values, returns: V_old(s_t) and the GAE returns R̂_t, one column per value head, `[batch, tokens, heads]`.
        advantages: the actor's advantage Â_t (after whitening, if on), `[batch, tokens]`.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    prompt_length: int
    logprobs: torch.Tensor
    values: torch.Tensor
    returns: torch.Tensor
    advantages: torch.Tensor

    def select(self, rows: torch.Tensor) -> Experience:
        """The experience of the rows `rows` (a micro-batch)."""
        return Experience(
            **{
                field.name: value if field.name == "prompt_length" else value[rows]
                for field in fields(self)
                for value in (getattr(self, field.name),)
            }
        )

    def model_inputs(self) -> dict[str, Any]:
        """What `_policy_forward` reads: the sequences and where their completions are."""
        names = ("input_ids", "attention_mask", "position_ids", "completion_ids", "prompt_length")
        return {name: getattr(self, name) for name in names}


def select_rows(batch: dict[str, Any], rows: torch.Tensor) -> dict[str, Any]:
    """The rows `rows` of every tensor in `batch` (lists are indexed too); other entries (ints) are shared."""
    selected = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            selected[key] = value[rows]
        elif isinstance(value, list):
            selected[key] = [value[i] for i in rows.tolist()]
        else:
            selected[key] = value
    return selected


class RolloutSampler(RepeatSampler):
    """Yields each rollout batch of prompt indices once per micro-step that the rollout feeds.

    Each epoch's order is a pure function of (seed, epoch) (`trl_safe.seeding.epoch_generator`, through `set_epoch`,
    which `Trainer` calls), so a run resumed in a later epoch sees the same prompt order as the uninterrupted run, and
    no two seeds share an epoch's order.
    """

    def set_epoch(self, epoch: int) -> None:
        if self.shuffle:
            self.generator = epoch_generator(self.seed, epoch, self.num_samples)


def make_generation_backend(
    policy: nn.Module,
    accelerator: Any,
    processing_class: PreTrainedTokenizerBase,
    eos_token_ids: list[int],
    args: PPOConfig,
) -> VLLMGeneration | GenerationConfig:
    """What samples the completions: TRL's `VLLMGeneration` with `use_vllm` (it holds its own copy of the policy's
    weights, kept in sync by `_generate_with_vllm`), else the `GenerationConfig` of `policy.generate`."""
    if args.use_vllm:
        return VLLMGeneration(
            model=policy,
            accelerator=accelerator,
            processing_class=processing_class,
            mode=args.vllm_mode,
            server_base_url=args.vllm_server_base_url,
            server_host=args.vllm_server_host,
            server_port=args.vllm_server_port,
            server_timeout=args.vllm_server_timeout,
            group_port=args.vllm_group_port,
            tensor_parallel_size=args.vllm_tensor_parallel_size,
            gpu_memory_utilization=args.vllm_gpu_memory_utilization,
            max_model_length=args.vllm_max_model_length,
            max_num_seqs=args.local_rollout_batch_size * args.vllm_tensor_parallel_size,
            enable_sleep_mode=args.vllm_enable_sleep_mode,
            model_impl=args.vllm_model_impl,
            trust_remote_code=args.trust_remote_code,
            temperature=args.temperature,
            top_p=args.top_p,
            top_k=args.top_k,
            max_completion_length=args.max_completion_length,
            generation_kwargs={"stop_token_ids": eos_token_ids, **(args.generation_kwargs or {})},
        )
    generation_kwargs = {
        "max_new_tokens": args.max_completion_length,
        "do_sample": True,
        "temperature": args.temperature,
        "top_k": args.top_k,
        "top_p": args.top_p,
        "pad_token_id": processing_class.pad_token_id,
        "bos_token_id": processing_class.bos_token_id,
        "eos_token_id": eos_token_ids,
        **(args.generation_kwargs or {}),
    }
    return GenerationConfig(**generation_kwargs, disable_compile=True)


class ExperienceMaker:
    """The rollout half of `PPOTrainer` (a mixin: see the module docstring)."""

    # ------------------------------------------------------------------------------------------------------------
    # Data: one rollout batch of prompts per process, repeated for every micro-step the rollout feeds
    # ------------------------------------------------------------------------------------------------------------

    def _set_signature_columns_if_needed(self) -> None:
        # The inputs are prompts (and any extra columns for score functions), not the model's forward arguments.
        if self._signature_columns is None:
            self._signature_columns = ["prompt"]

    @property
    def _micro_steps_per_rollout(self) -> int:
        return self.args.steps_per_rollout * self.args.gradient_accumulation_steps

    def get_train_dataloader(self) -> torch.utils.data.DataLoader:
        return self._get_dataloader(
            dataset=self.train_dataset,
            description="Training",
            batch_size=self.args.local_rollout_batch_size,
            sampler_fn=self._get_train_sampler,
            is_training=True,
        )

    def _get_train_sampler(self, dataset: Dataset | None = None) -> torch.utils.data.Sampler:
        dataset = dataset if dataset is not None else self.train_dataset
        global_rollout_batch_size = self.args.local_rollout_batch_size * self.accelerator.num_processes
        if len(dataset) < global_rollout_batch_size:
            raise ValueError(
                f"train_dataset has {len(dataset)} prompts, fewer than one rollout needs: per_device_train_batch_size "
                f"({self.args.per_device_train_batch_size}) × gradient_accumulation_steps "
                f"({self.args.gradient_accumulation_steps}) × num_mini_batches ({self.args.num_mini_batches}) × "
                f"processes ({self.accelerator.num_processes}) = {global_rollout_batch_size}."
            )
        return RolloutSampler(
            data_source=dataset,
            mini_repeat_count=1,
            batch_size=global_rollout_batch_size,
            repeat_count=self._micro_steps_per_rollout,
            shuffle=self.args.shuffle_dataset,
            seed=self.args.seed,
        )

    def _prepare_inputs(self, inputs: list[dict[str, Any]]) -> Experience:
        """Make a rollout at the first micro-step of every rollout; hand out its micro-batches in order."""
        position = self._micro_step % self._micro_steps_per_rollout
        if position == 0:
            experience = self._make_experience(inputs)
            self._micro_batches = self._split_into_micro_batches(experience)
        self._micro_step += 1
        return self._micro_batches[position]

    def _split_into_micro_batches(self, experience: Experience) -> list[Experience]:
        """`num_ppo_epochs` shuffled passes over the rollout, each cut into micro-batches of
        `per_device_train_batch_size`; `gradient_accumulation_steps` consecutive ones form a PPO mini-batch.

        The shuffle is seeded by the rollout's index, so it does not depend on (or disturb) the global RNG that
        drives sampling, and a resumed run shuffles exactly like the uninterrupted one.
        """
        rollout_index = self.state.global_step // self.args.steps_per_rollout
        generator = torch.Generator().manual_seed(self.args.seed + rollout_index)
        rollout_size = experience.input_ids.shape[0]
        micro_batches = []
        for _ in range(self.args.num_ppo_epochs):
            permutation = torch.randperm(rollout_size, generator=generator)
            for rows in permutation.split(self.args.per_device_train_batch_size):
                micro_batches.append(experience.select(rows.to(experience.input_ids.device)))
        return micro_batches

    # ------------------------------------------------------------------------------------------------------------
    # Experience: generate → log-probs → scores → KL → rewards → values → GAE
    # ------------------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def _make_experience(self, inputs: list[dict[str, Any]]) -> Experience:
        """One PPO rollout on this process's prompts. Symbols: x prompt, y completion, t completion token."""
        args = self.args
        prompts = [example["prompt"] for example in inputs]

        # Steps 1-3 run every model in the training precision: under mixed precision, `generate`, the frozen reference
        # and the scorers do not go through the trained module's autocast-wrapped `forward`, so they get their own
        # (a no-op without mixed precision, and under DeepSpeed, which holds the weights in half precision itself).
        with self.accelerator.autocast():
            # 1. Sample y ~ π_θ(·|x); y ends at its first EOS, padding follows.
            batch = self._generate(prompts)

            # 2. log π_θ(y_t|x,y_<t), log π_ref(y_t|x,y_<t) and V(s_t): one forward pass each over prompt + completion.
            logprobs, ref_logprobs, values = self._rollout_forward(batch)

            # 3. Sequence scores, read at the last token of y: R(y,x) (and C(y,x) for PPO-Lag).
            scores = self._score_completions(inputs, prompts, batch)
        mask = batch["completion_mask"].float()
        if args.missing_eos_penalty is not None:
            scores["reward"] = scores["reward"] - args.missing_eos_penalty * (~batch["has_eos"]).float()
        self._dual_step(scores)

        # 4. KL_t ≈ KL(π_θ ‖ π_ref) per token, and per-token rewards r_t: -β·KL_t, plus the score at the last token.
        kl = kl_penalty(logprobs, ref_logprobs, args.kl_estimator) * mask
        rewards = self._per_token_rewards(scores, kl, mask)  # [batch, tokens, value heads]
        if args.cliprange_score is not None:
            rewards = rewards.clamp(-args.cliprange_score, args.cliprange_score)
        if args.whiten_rewards:
            rewards = torch.stack(
                [masked_whiten(rewards[..., k], mask, shift_mean=False) for k in range(rewards.shape[-1])], dim=-1
            )

        # 5. GAE on each stream (Â_k, R̂_k = Â_k + V_k), then the actor's advantage Â from the streams.
        stream_advantages, returns = [], []
        for k in range(rewards.shape[-1]):
            advantages_k, returns_k = generalized_advantage_estimation(
                rewards[..., k], values[..., k], mask, args.gamma, args.lam
            )
            stream_advantages.append(advantages_k)
            returns.append(returns_k)
        stream_advantages, returns = torch.stack(stream_advantages, dim=-1), torch.stack(returns, dim=-1)
        advantages = self._actor_advantages(stream_advantages)
        self._record_rollout_metrics(batch, scores, logprobs, kl, values, returns, stream_advantages, advantages)
        if args.whiten_advantages:
            advantages = masked_whiten(advantages, mask)

        return Experience(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            position_ids=batch["position_ids"],
            completion_ids=batch["completion_ids"],
            completion_mask=mask,
            prompt_length=batch["prompt_length"],
            logprobs=logprobs,
            values=values,
            returns=returns,
            advantages=advantages,
        )

    def _tokenize_prompts(self, prompts: list[Any]) -> list[list[int]]:
        """Token ids of each prompt: chat template with an open assistant turn for conversational prompts."""
        prompts = list(prompts)
        if is_conversational({"prompt": prompts[0]}):
            prompt_ids = self.tokenizer.apply_chat_template(
                prompts,
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
                **(self.args.chat_template_kwargs or {}),
            )["input_ids"]
        else:
            prompt_ids = self.tokenizer(text=prompts)["input_ids"]
        return [list(ids) for ids in prompt_ids]

    def _generate(self, prompts: list[Any]) -> dict[str, Any]:
        """Sample one completion per prompt and lay out prompt + completion for the forward passes.

        Prompts are left-padded and completions right-padded, so every completion starts at the same column
        (`prompt_length`); `position_ids` follow the attention mask, as in `generate`.
        """
        device = self.accelerator.device
        pad_token_id = self.tokenizer.pad_token_id
        prompt_ids = self._tokenize_prompts(prompts)
        for prompt, ids in zip(prompts, prompt_ids):
            if not ids:  # the first completion token needs a prompt token to be predicted from
                raise ValueError(f"The prompt {prompt!r} has no tokens; every prompt needs at least one.")
        max_prompt_length = self.args.max_prompt_length
        truncated = [max_prompt_length is not None and len(ids) > max_prompt_length for ids in prompt_ids]
        if max_prompt_length is not None:
            prompt_ids = [ids[-max_prompt_length:] for ids in prompt_ids]
        prompt_tensors = [torch.tensor(ids, dtype=torch.long) for ids in prompt_ids]
        prompt_input_ids = pad(prompt_tensors, padding_value=pad_token_id, padding_side="left").to(device)
        prompt_mask = pad([torch.ones_like(t) for t in prompt_tensors], padding_value=0, padding_side="left")
        prompt_mask = prompt_mask.to(device)

        if self.args.use_vllm:
            completion_ids = self._generate_with_vllm(prompt_ids)
        else:
            with (
                unwrap_model_for_generation(
                    self.model_wrapped,
                    self.accelerator,
                    gather_deepspeed3_params=self.args.ds3_gather_for_generation,
                    gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs,
                ) as unwrapped_model,
                torch.no_grad(),
                self._distributed.summon_full_params(self.model_wrapped, recurse=False),
            ):
                sequences = unwrapped_model.policy.generate(
                    input_ids=prompt_input_ids, attention_mask=prompt_mask, generation_config=self.generation_config
                )
            completion_ids = sequences[:, prompt_input_ids.shape[1] :]

        # y ends at its first EOS (kept: the scores are read there); what follows is padding.
        is_eos = torch.isin(completion_ids, torch.tensor(self.eos_token_ids, device=device))
        has_eos = is_eos.any(dim=1)
        last_index = torch.where(has_eos, is_eos.int().argmax(dim=1), completion_ids.shape[1] - 1)
        positions = torch.arange(completion_ids.shape[1], device=device)
        completion_mask = (positions.unsqueeze(0) <= last_index.unsqueeze(1)).long()
        completion_ids = completion_ids.masked_fill(completion_mask == 0, pad_token_id)

        attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)
        completion_id_lists = [ids[: int(n)].tolist() for ids, n in zip(completion_ids, completion_mask.sum(1))]
        texts = self.tokenizer.batch_decode(completion_id_lists, skip_special_tokens=True)
        conversational = is_conversational({"prompt": prompts[0]})
        return {
            "input_ids": torch.cat([prompt_input_ids, completion_ids], dim=1),
            "attention_mask": attention_mask,
            "position_ids": (attention_mask.cumsum(dim=1) - 1).clamp(min=0),
            "prompt_length": prompt_input_ids.shape[1],
            "completion_ids": completion_ids,
            "completion_mask": completion_mask,
            "completion_id_lists": completion_id_lists,
            "completions": [[{"role": "assistant", "content": t}] for t in texts] if conversational else texts,
            "has_eos": has_eos,
            "prompt_truncated": torch.tensor(truncated, device=device),
        }

    def _generate_with_vllm(self, prompt_ids: list[list[int]]) -> torch.Tensor:
        """Completions sampled by vLLM for this process's prompts, right-padded to `[batch, longest]`.

        vLLM holds its own copy of the policy: the current weights are sent to it first whenever an optimizer step
        happened since the last rollout (every process takes part: under ZeRO-3 / FSDP sending gathers the shards).
        Only the tokens are used; `_make_experience` computes log π_old with the trainer's own forward pass.
        """
        if self.state.global_step != self._vllm_weights_step:
            self.vllm_generation.sync_weights()
            self._vllm_weights_step = self.state.global_step
        _, completion_ids, _, _ = self.vllm_generation.generate(prompts=prompt_ids, images=None, num_generations=1)
        completions = [torch.tensor(ids, dtype=torch.long) for ids in completion_ids]
        padded = pad(completions, padding_value=self.tokenizer.pad_token_id, padding_side="right")
        return padded.to(self.accelerator.device)

    def _policy_forward(
        self, model: nn.Module, batch: dict[str, Any], compute_values: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """log π(y_t|x,y_<t) and V(s_t) for the completion tokens, from one forward pass of `PolicyAndValueModel`.

        Returns:
            `(logprobs [batch, tokens], values [batch, tokens, heads] or None, logits [batch, tokens, vocab])`.
            The value of token t is the critic's output at the position before it: V(s_t), s_t = (x, y_<t).
        """
        prompt_length, num_tokens = batch["prompt_length"], batch["completion_ids"].shape[1]
        logits, values = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            position_ids=batch["position_ids"],
            logits_to_keep=num_tokens + 1,
            compute_values=compute_values,
        )
        logits = logits[:, :-1] / self.args.temperature  # position t-1 predicts y_t
        logprobs = selective_logprobs(logits, batch["completion_ids"])
        if values is not None:
            values = values[:, prompt_length - 1 : -1].float()
        return logprobs, values, logits

    def _rollout_forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log-probs of the policy and the reference, and the critic's values, in chunks of
        `local_rollout_forward_batch_size` rows (default `per_device_train_batch_size`: the activations of a whole
        rollout need not fit at once)."""
        logprobs, ref_logprobs, values = [], [], []
        rows = torch.arange(batch["input_ids"].shape[0], device=batch["input_ids"].device)
        chunk_size = self.args.local_rollout_forward_batch_size or self.args.per_device_train_batch_size
        for chunk in rows.split(chunk_size):
            part = select_rows(batch, chunk)
            chunk_logprobs, chunk_values, _ = self._policy_forward(self.model_wrapped, part)
            logprobs.append(chunk_logprobs)
            values.append(chunk_values)
            ref_logprobs.append(self._reference_logprobs(part))
        return torch.cat(logprobs), torch.cat(ref_logprobs), torch.cat(values)

    def _reference_logprobs(self, batch: dict[str, Any]) -> torch.Tensor:
        if self.ref_model is None:
            # PEFT: the policy with its adapter disabled is π_ref; no second copy of the weights exists.
            with self.accelerator.unwrap_model(self.model_wrapped).policy.disable_adapter():
                logprobs, _, _ = self._policy_forward(self.model_wrapped, batch, compute_values=False)
            return logprobs
        num_tokens = batch["completion_ids"].shape[1]
        logits = self.ref_model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            position_ids=batch["position_ids"],
            logits_to_keep=num_tokens + 1,
            use_cache=False,
        ).logits
        return selective_logprobs(logits[:, :-1] / self.args.temperature, batch["completion_ids"])

    def _score_completions(
        self, inputs: list[dict[str, Any]], prompts: list[Any], batch: dict[str, Any]
    ) -> dict[str, torch.Tensor]:
        """One score per completion from every score stream: `{"reward": [batch]}` (plus `"cost"` for PPO-Lag)."""
        return {name: self._score(scorer, inputs, prompts, batch) for name, scorer in self.scorers.items()}

    def _score(self, scorer: Any, inputs: list[dict[str, Any]], prompts: list[Any], batch: dict[str, Any]):
        return scorer.score(inputs, prompts, batch, self.state, self.accelerator.device)

    def _record_rollout_metrics(
        self,
        batch: dict[str, Any],
        scores: dict[str, torch.Tensor],
        logprobs: torch.Tensor,
        kl: torch.Tensor,
        values: torch.Tensor,
        returns: torch.Tensor,
        stream_advantages: torch.Tensor,
        advantages: torch.Tensor,
    ) -> None:
        mask = batch["completion_mask"]
        non_score_reward = (-self.args.kl_coef * kl).sum(1)
        self._record_score_metrics(scores, "train")
        self._record_mean("train", "objective/kl", kl.sum(1))
        self._record_mean("train", "objective/entropy", masked_sum(-logprobs, mask, dim=1))
        self._record_mean("train", "objective/non_score_reward", non_score_reward)
        self._record_mean("train", "objective/rlhf_reward", scores["reward"] + non_score_reward)
        self._record_mean("train", "completions/mean_length", mask.sum(1).float())
        self._record_mean("train", "completions/clipped_ratio", (~batch["has_eos"]).float())
        self._record_mean("train", "prompts/truncated_ratio", batch["prompt_truncated"].float())
        # Number of completions in the rollout (all processes) that ended with EOS.
        self._record("train", "val/num_eos_tokens", self.accelerator.gather(batch["has_eos"]).sum())
        for k, name in enumerate(self.value_head_names):
            self._record("train", f"val/{name}_value", masked_sum(values[..., k], mask), mask.sum())
            self._record("train", f"val/{name}_return", masked_sum(returns[..., k], mask), mask.sum())
            self._record("train", f"val/{name}_advantage", masked_sum(stream_advantages[..., k], mask), mask.sum())
        self._record("train", "val/advantage", masked_sum(advantages, mask), mask.sum())
