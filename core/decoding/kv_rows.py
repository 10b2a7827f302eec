"""Row surgery on a left-padded batch's KV cache: splice new rows in, keep some rows.

Why its own module: continuous batching (core.decoding.scheduler) refills a running batch as rows
finish, which takes a few operations on a transformers DynamicCache and its 2-D attention mask;
kept apart from the loop so the tensor surgery can be read (and tested) on its own.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers.cache_utils import DynamicLayer


def can_splice(cache) -> bool:
    """True when rows can be spliced into `cache`: every layer is a plain dynamic layer (a
    sliding-window layer drops old columns, so rows of different lengths would not line up)."""
    return cache is None or all(type(layer) is DynamicLayer for layer in cache.layers)


def left_padded(prompts: Sequence[Sequence[int]], stages: Sequence[int], pad_id: int = 0
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input ids, stage ids, attention mask), each (rows, longest prompt): prompts right-aligned,
    padding masked out (its token id and stage are never attended to)."""
    length = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), length), pad_id, dtype=torch.long)
    stage_ids = torch.tensor(list(stages), dtype=torch.long).unsqueeze(1).repeat(1, length)
    mask = torch.zeros((len(prompts), length), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, length - len(prompt):] = torch.tensor(list(prompt), dtype=torch.long)
        mask[row, length - len(prompt):] = 1
    return ids, stage_ids, mask


def _left_pad(cache, mask: torch.Tensor, width: int):
    if width <= 0:
        return mask
    for layer in cache.layers:
        pad = layer.keys.new_zeros(*layer.keys.shape[:2], width, layer.keys.shape[-1])
        layer.keys = torch.cat([pad, layer.keys], dim=-2)
        layer.values = torch.cat([pad.new_zeros(*layer.values.shape[:2], width, layer.values.shape[-1]), layer.values], dim=-2)
    return torch.cat([mask.new_zeros(mask.shape[0], width), mask], dim=1)


def merge_rows(cache, mask: torch.Tensor, new_cache, new_mask: torch.Tensor):
    """Concatenate two batches' caches along the batch axis, left-padding the shorter."""
    length = max(mask.shape[1], new_mask.shape[1])
    mask = _left_pad(cache, mask, length - mask.shape[1])
    new_mask = _left_pad(new_cache, new_mask, length - new_mask.shape[1])
    for layer, new_layer in zip(cache.layers, new_cache.layers):
        layer.keys = torch.cat([layer.keys, new_layer.keys])
        layer.values = torch.cat([layer.values, new_layer.values])
    return cache, torch.cat([mask, new_mask])


def keep_rows(cache, mask: torch.Tensor, keep: list[int]):
    """Keep some rows, then drop leading columns that are padding for every remaining row."""
    index = torch.tensor(keep, dtype=torch.long, device=mask.device)
    mask = mask[index]
    first = int(mask.any(0).nonzero()[0])
    for layer in cache.layers:
        layer.keys = layer.keys[index][..., first:, :]
        layer.values = layer.values[index][..., first:, :]
    return cache, mask[:, first:]
