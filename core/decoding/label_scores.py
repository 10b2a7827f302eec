"""Constrained choice: score a fixed set of labels by their probability under a causal LM.

Why: a small model asked to write "VERDICT: safe" in free text copies the template, rambles or
stops early, so a free-text verdict is often unparsable. Guard models used as classifiers
read the probability of each allowed label instead; that always yields a verdict, and a
probability that can be thresholded and stored. The safety checker of self-generation and the
LLM judges both use this.

How: for every prompt and label the label's tokens are appended to the prompt and their
log-probabilities are summed (exact for labels of several tokens, such as "10" or "UNSAFE" in
some vocabularies); the sums are then normalised over the labels, so the probabilities of one
prompt sum to one over the labels it may take. When every label is a single token, one forward
pass over the prompts gives all scores (the next-token distribution); otherwise the prompts are
read once and each label's further tokens run on their cached keys and values.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from core.experts.model import cache_kwargs

Prompt = str | Sequence[Mapping[str, str]]


@dataclass(frozen=True)
class LabelScores:
    """Probabilities over the allowed labels for one prompt (they sum to one)."""

    probabilities: dict[str, float]

    @property
    def best(self) -> str:
        """The most probable label."""
        return max(self.probabilities, key=self.probabilities.__getitem__)

    def __getitem__(self, label: str) -> float:
        return self.probabilities[label]

    def expected_value(self) -> float:
        """Probability-weighted mean of numeric labels (G-Eval style scores such as 1-10)."""
        return sum(float(label) * p for label, p in self.probabilities.items())


def prompt_text(tokenizer: PreTrainedTokenizerBase, prompt: Prompt, *, prefix: str = "") -> str:
    """The text a label continues: chat messages through the chat template, then `prefix`."""
    if isinstance(prompt, str):
        return prompt + prefix
    text = tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)
    return text + prefix


@torch.no_grad()
def score_labels(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Prompt],
    labels: Sequence[str],
    *,
    prefix: str = "",
    batch_size: int = 8,
) -> list[LabelScores]:
    """Score `labels` after each prompt (+ `prefix`, e.g. "VERDICT:"); one LabelScores per prompt.

    Labels are tokenised as continuations of the prompt, so give them with the spacing the
    model would write (" safe" after "VERDICT:"). Duplicate or empty labels are refused.
    """
    if not labels or len(set(labels)) != len(labels) or any(not label for label in labels):
        raise ValueError(f"Labels must be distinct and non-empty, got {list(labels)!r}.")
    label_ids = [tokenizer(label, add_special_tokens=False)["input_ids"] for label in labels]
    texts = [prompt_text(tokenizer, prompt, prefix=prefix) for prompt in prompts]
    results: list[LabelScores] = []
    for start in range(0, len(texts), batch_size):
        chunk = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts[start:start + batch_size]]
        sums = _single_token_sums(model, chunk, label_ids) if all(len(ids) == 1 for ids in label_ids) \
            else _sequence_sums(model, chunk, label_ids, _pad_id(tokenizer))
        probabilities = torch.softmax(sums, dim=-1)
        results += [LabelScores(dict(zip(labels, row.tolist()))) for row in probabilities]
    return results


def _pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)


def _left_padded(rows: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, length - len(row):] = torch.tensor(row, dtype=torch.long)
        mask[i, length - len(row):] = 1
    return ids.to(device), mask.to(device)


def _forward(model: PreTrainedModel, ids: torch.Tensor, mask: torch.Tensor, keep: int) -> torch.Tensor:
    """Log-probabilities (batch, keep, vocab) of the next token at the last `keep` positions."""
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False, logits_to_keep=keep).logits
    return torch.log_softmax(logits.float(), dim=-1)


def _single_token_sums(model: PreTrainedModel, prompts: list[list[int]], label_ids: list[list[int]]) -> torch.Tensor:
    device = next(model.parameters()).device
    ids, mask = _left_padded(prompts, 0, device)
    log_probs = _forward(model, ids, mask, 1)[:, -1]
    return log_probs[:, [ids_[0] for ids_ in label_ids]].cpu()


def _sequence_sums(model: PreTrainedModel, prompts: list[list[int]], label_ids: list[list[int]], pad_id: int) -> torch.Tensor:
    """Summed log-probabilities (prompts, labels) of multi-token labels.

    The prompts are read once: their next-token distribution scores every label's first token,
    and each label's remaining tokens run on top of the prompts' KV cache, which is cut back to
    the prompts after each label. A judge prompt (rubric, question, answer) is hundreds of tokens
    and a label two or three, so this costs about one prefill instead of one per label (ten for
    a 1-10 score).
    """
    device = next(model.parameters()).device
    ids, mask = _left_padded(prompts, pad_id, device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache()
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1,
                   **cache_kwargs(model, cache)).logits
    first = torch.log_softmax(logits[:, -1].float(), dim=-1)
    rows = len(prompts)
    sums = torch.zeros((rows, len(label_ids)))
    for j, label in enumerate(label_ids):
        total = first[:, label[0]]
        if len(label) > 1:  # tokens 0..n-2 are fed; their outputs predict tokens 1..n-1
            fed = torch.tensor(label[:-1], device=device).expand(rows, -1)
            step_positions = positions[:, -1:] + 1 + torch.arange(len(label) - 1, device=device)
            grown = torch.cat([mask, torch.ones_like(fed)], dim=-1)
            logits = model(input_ids=fed, attention_mask=grown, position_ids=step_positions,
                           use_cache=True, **cache_kwargs(model, cache)).logits
            target = torch.tensor(label[1:], device=device).expand(rows, -1)
            total = total + torch.log_softmax(logits.float(), dim=-1).gather(-1, target.unsqueeze(-1)).squeeze(-1).sum(-1)
            cache.crop(-(len(label) - 1))  # negative: drop the label's tokens (the one form every transformers 5 reads alike)
        sums[:, j] = total.cpu()
    return sums
