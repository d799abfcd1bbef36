"""TEMPORARY stand-in for the lead's `trl_safe.scoring.Scorer` (same API); deleted once that lands on main."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase
from trl.data_utils import apply_chat_template, is_conversational

from trl_safe.scoring import last_token_scores


class Scorer:
    def __init__(self, model: nn.Module, tokenizer: PreTrainedTokenizerBase) -> None:
        self.model = model
        self.tokenizer = tokenizer

    @torch.no_grad()
    def score(self, prompts: list[Any], completions: list[Any]) -> torch.Tensor:
        if is_conversational({"prompt": prompts[0]}):
            texts = [
                apply_chat_template({"messages": p + c}, self.tokenizer)["text"] for p, c in zip(prompts, completions)
            ]
        else:
            texts = [p + c for p, c in zip(prompts, completions)]
        device = next(self.model.parameters()).device
        encoded = self.tokenizer(
            text=texts, padding=True, padding_side="right", return_tensors="pt", add_special_tokens=False
        ).to(device)
        return last_token_scores(self.model, encoded["input_ids"], encoded["attention_mask"])[:, 0].float()
