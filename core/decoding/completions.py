"""Continuous batched generation with a local transformers model.

Why: self-generation runs thousands of short prompts of very different lengths. Static batches
idle on their slowest row; here each row stops on its own (end-of-turn, stop string or token
limit), is handed back at once, and its slot is refilled from the queue in the same step. Rows
are left-padded; a new row is prefilled on its own and spliced into the running KV cache (the
cache is left-padded to the longer of the two, and the attention mask hides the padding).
Models whose cache layers are not plain dynamic layers (e.g. sliding-window) fall back to
refilling only when the batch drains.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase
from transformers.cache_utils import DynamicLayer

from core.synthesis.pipeline import Completion, CompletionRequest
from core.decoding.chain_programs import sample_token
from core.decoding.kv_rows import keep_rows, merge_rows
from core.experts.model import cache_kwargs


@dataclass
class _Row:
    request: CompletionRequest
    prompt_length: int
    generator: torch.Generator | None
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str = ""


class LocalGenerator:
    """Answers completion requests with a local causal LM, `batch_size` rows at a time."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, *, batch_size: int = 8, model_id: str = "local") -> None:
        self.model, self.tokenizer, self.batch_size = model.eval(), tokenizer, batch_size
        self.id = f"local:{model_id}"
        self.device = next(model.parameters()).device
        eos = model.generation_config.eos_token_id if model.generation_config is not None else None
        eos_ids = set(eos if isinstance(eos, list) else [eos]) | {tokenizer.eos_token_id}
        self.eos_ids = {i for i in eos_ids if i is not None}
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def prompt_ids(self, request: CompletionRequest) -> list[int]:
        text = self.tokenizer.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True)
        text += request.response_prefix
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    @torch.no_grad()
    def run(self, next_request, deliver, should_stop) -> None:
        rows: list[_Row] = []
        cache, mask, logits = None, None, None
        while not should_stop():
            can_splice = cache is None or all(type(layer) is DynamicLayer for layer in cache.layers)
            incoming = self._pull(next_request, self.batch_size - len(rows)) if (can_splice or not rows) else []
            if incoming:
                new_rows, new_cache, new_mask, new_logits = self._prefill(incoming)
                if rows:
                    cache, mask = merge_rows(cache, mask, new_cache, new_mask)
                    logits = torch.cat([logits, new_logits])
                else:
                    cache, mask, logits = new_cache, new_mask, new_logits
                rows += new_rows
            if not rows:
                return
            tokens = [self._sample(row, logits[i]) for i, row in enumerate(rows)]
            keep = [i for i, row in enumerate(rows) if not self._advance(row, tokens[i])]
            for i, row in enumerate(rows):
                if i not in keep:
                    deliver(row.request, Completion(row.text, len(row.tokens), row.finish_reason))
            if not keep:
                rows, cache, mask = [], None, None
            elif len(keep) < len(rows):
                rows, tokens = [rows[i] for i in keep], [tokens[i] for i in keep]
                cache, mask = keep_rows(cache, mask, keep)
            if rows:
                logits = self._step(tokens, cache, mask)
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)

    def _pull(self, next_request, free: int) -> list[CompletionRequest]:
        pulled = []
        while len(pulled) < free:
            request = next_request()
            if request is None:
                break
            pulled.append(request)
        return pulled

    def _prefill(self, requests: list[CompletionRequest]):
        prompts = [self.prompt_ids(r) for r in requests]
        length = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), length), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, length - len(prompt):] = torch.tensor(prompt)
            mask[row, length - len(prompt):] = 1
        cache = DynamicCache()
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1, **cache_kwargs(self.model, cache))
        rows = [_Row(r, len(p), _seeded(r)) for r, p in zip(requests, prompts)]
        return rows, cache, mask, out.logits[:, -1].float()

    def _step(self, tokens: list[int], cache, mask: torch.Tensor) -> torch.Tensor:
        step_mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        ids = torch.tensor(tokens, device=self.device).unsqueeze(1)
        positions = step_mask.sum(-1, keepdim=True) - 1
        out = self.model(input_ids=ids, attention_mask=step_mask, position_ids=positions, use_cache=True, logits_to_keep=1, **cache_kwargs(self.model, cache))
        return out.logits[:, -1].float()

    def _sample(self, row: _Row, logits: torch.Tensor) -> int:
        request = row.request
        return sample_token(logits, temperature=request.temperature, top_p=request.top_p, generator=row.generator)

    def _advance(self, row: _Row, token: int) -> bool:
        """Append a token; True when the row is finished (its text is then final)."""
        if token in self.eos_ids:
            row.finish_reason = "stop"
            return True
        row.tokens.append(token)
        row.text = self.tokenizer.decode(row.tokens, skip_special_tokens=True)
        for stop in row.request.stop:
            if stop and stop in row.text:
                row.text, row.finish_reason = row.text[: row.text.index(stop)], "stop"
                return True
        if len(row.tokens) >= row.request.max_new_tokens:
            row.finish_reason = "length"
            return True
        return False


def _seeded(request: CompletionRequest) -> torch.Generator | None:
    if request.temperature <= 0:
        return None
    return torch.Generator().manual_seed(request.seed if request.seed is not None else 0)
