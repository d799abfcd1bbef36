"""The floor: the model calls of one PPO (or PPO-Lag) update, made directly, with no trainer around them.

Per update: one `generate` of `response_length` tokens for the rollout batch (its logits kept, so the old
log-probabilities cost no extra forward, as in TRL 1.12); one forward without gradient of the reference, the reward
model, the cost model (PPO-Lag only) and the critic (one value head for PPO, two for PPO-Lag); then
`num_ppo_epochs` x `num_mini_batches` steps of: policy and critic forwards with gradient, a clipped-PPO loss,
backward, `AdamW.step` (fused, the `transformers` default) and `zero_grad`. No advantage estimation beyond the
minimum, no logging, no data pipeline: a trainer doing the same calls cannot be faster than this. With the
"amp-bf16" precision every call, generation included, runs under bfloat16 autocast (what a trainer could do).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    BenchSpec,
    PhaseTimer,
    load_policy,
    load_scorer,
    load_tokenizer,
    memory_mb,
    run_contender,
    weights_mb,
)


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float) -> torch.Tensor:
    return torch.log_softmax(logits / temperature, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def per_token_values(critic: torch.nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """Critic backbone + head at every position (`[B, T, heads]`)."""
    backbone = getattr(critic, critic.base_model_prefix)
    return critic.score(backbone(input_ids=input_ids, use_cache=False).last_hidden_state)


def main(spec: BenchSpec, timer: PhaseTimer) -> dict[str, Any]:
    lag = spec.algo == "ppo_lag"
    tokenizer = load_tokenizer(spec)
    policy = load_policy(spec)
    reference = load_policy(spec).eval().requires_grad_(False)
    reward = load_scorer(spec, "reward").eval().requires_grad_(False)
    cost = load_scorer(spec, "cost").eval().requires_grad_(False) if lag else None
    critic = load_scorer(spec, "critic", num_labels=2 if lag else 1)
    models = {"policy": policy, "reference": reference, "reward": reward, "critic": critic}
    if cost is not None:
        models["cost"] = cost
    for name, model in models.items():
        timer.watch(name, model)
    optimizer = torch.optim.AdamW([*policy.parameters(), *critic.parameters()], lr=1e-6, fused=True)
    prompts = torch.tensor(spec.prompt_ids, device=spec.device)
    prompt_length = prompts.shape[1]
    setup_memory = memory_mb()
    autocast = (
        torch.autocast(device_type=prompts.device.type, dtype=torch.bfloat16)
        if spec.precision == "amp-bf16"
        else contextlib.nullcontext()
    )

    with autocast:
        for update in range(spec.total_updates):
            batch = prompts[
                (update * spec.batch_size + torch.arange(spec.batch_size, device=spec.device)) % len(prompts)
            ]
            # Rollout: generation, then the scoring forwards.
            with torch.no_grad():
                output = policy.generate(
                    input_ids=batch,
                    attention_mask=torch.ones_like(batch),
                    do_sample=True,
                    temperature=spec.temperature,
                    top_k=0,
                    top_p=1.0,
                    max_new_tokens=spec.response_length,
                    return_dict_in_generate=True,
                    output_logits=True,
                    pad_token_id=tokenizer.pad_token_id,
                )
                sequences = output.sequences
                responses = sequences[:, prompt_length:]
                old_logprobs = token_logprobs(torch.stack(output.logits, dim=1), responses, spec.temperature)
                ref_logits = reference(input_ids=sequences, use_cache=False).logits[:, prompt_length - 1 : -1]
                ref_logprobs = token_logprobs(ref_logits, responses, spec.temperature)
                scores = reward(input_ids=sequences, use_cache=False).logits[:, 0]
                if cost is not None:
                    scores = scores - cost(input_ids=sequences, use_cache=False).logits[:, 0]
                old_values = per_token_values(critic, sequences)[:, prompt_length - 1 : -1, 0]
                returns = (scores.unsqueeze(1) - 0.05 * (old_logprobs - ref_logprobs)).cumsum(1).flip(1)
                advantages = returns - old_values

            # Optimisation: PPO epochs over mini-batches.
            for _epoch in range(spec.num_ppo_epochs):
                order = torch.randperm(spec.batch_size, device=prompts.device)
                for start in range(0, spec.batch_size, spec.mini_batch_size):
                    rows = order[start : start + spec.mini_batch_size]
                    logits = policy(input_ids=sequences[rows], use_cache=False).logits[:, prompt_length - 1 : -1]
                    ratio = torch.exp(token_logprobs(logits, responses[rows], spec.temperature) - old_logprobs[rows])
                    policy_loss = -torch.min(ratio * advantages[rows], ratio.clamp(0.8, 1.2) * advantages[rows]).mean()
                    values = per_token_values(critic, sequences[rows])[:, prompt_length - 1 : -1, 0]
                    value_loss = 0.5 * (values - returns[rows]).square().mean()
                    (policy_loss + 0.1 * value_loss).backward()
                    optimizer.step()
                    optimizer.zero_grad()

    timer.finish()
    return {
        "weights_mb": weights_mb(*models.values()),
        "policy_weights_mb": weights_mb(policy),
        "setup_rss_mb": setup_memory["rss_mb"],
        "setup_peak_rss_mb": setup_memory["peak_rss_mb"],
    }


if __name__ == "__main__":
    run_contender(main)
