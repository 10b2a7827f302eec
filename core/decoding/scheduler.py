"""Many chains at once: the same chain programs as one-at-a-time decoding, one forward per step.

Why: decoding one sequence at a time reads every weight for a single token, so a CPU or GPU
sits mostly idle, and an evaluation asks hundreds of questions. Each row here runs its own
chain program (core.decoding.chain_programs.chain_program for MoTE runs and baselines, the base subject's
program for plain models): the same stage logic and the same sampler, with its own seeded
generator, so a row's tokens do not depend on its neighbours. Each step feeds every row's next
token with its own stage id in one batched forward (MoTE experts routed per token, not folded:
rows are in different stages). Rows are left-padded, finish on their own and are refilled from
the queue, as in core.decoding.completions; a new row is prefilled alone and spliced into the
running KV cache. Models whose cache layers are not plain dynamic layers (sliding-window) are
refilled only when the batch drains.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from core.decoding.chain_programs import ChainProgram, Feed, StageEvent
from core.decoding.kv_rows import keep_rows, merge_rows

#: forward(input_ids, stage_ids, attention_mask, position_ids, cache) -> logits (batch, vocab) after the last token.
BatchForward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, DynamicCache], torch.Tensor]


@dataclass
class ChainJob:
    """One chain to write: its prompt, and how to start its program from the prompt's logits."""

    key: Any
    prompt: list[int]
    prompt_stage: int
    """Stage id of every prompt token (the question stage)."""
    start: Callable[[torch.Tensor], ChainProgram]
    on_event: Callable[[StageEvent], None] | None = None


@dataclass
class _Row:
    job: ChainJob
    program: ChainProgram
    pending: Feed | None = None


def run_batched(forward: BatchForward, jobs: Iterable[ChainJob], *, batch_size: int, device: torch.device | str,
                should_stop: Callable[[], bool] = lambda: False) -> Iterator[Any]:
    """Run every job's program to its end, `batch_size` rows at a time; yields each job's key
    as it finishes (in finishing order). Stops between steps when `should_stop()`."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is out of range: use an integer >= 1.")
    queue = iter(jobs)
    rows: list[_Row] = []
    cache, mask = None, None
    exhausted = False
    with torch.no_grad():
        while not should_stop():
            can_splice = cache is None or all(type(layer) is DynamicLayer for layer in cache.layers)
            while not exhausted and len(rows) < batch_size and (can_splice or not rows):
                job = next(queue, None)
                if job is None:
                    exhausted = True
                    break
                row, row_cache, row_mask = _prefill(forward, job, device)
                if row is None:  # a program that ended at once (nothing to write)
                    yield job.key
                    continue
                if rows:
                    cache, mask = merge_rows(cache, mask, row_cache, row_mask)
                else:
                    cache, mask = row_cache, row_mask
                rows.append(row)
            if not rows:
                return
            step_mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            ids = torch.tensor([[row.pending.token] for row in rows], device=device)
            stages = torch.tensor([[row.pending.stage] for row in rows], device=device)
            positions = step_mask.sum(-1, keepdim=True) - 1
            logits = forward(ids, stages, step_mask, positions, cache)
            mask = step_mask
            keep = [i for i, row in enumerate(rows) if not _advance(row, logits[i])]
            for i, row in enumerate(rows):
                if i not in keep:
                    yield row.job.key
            if not keep:
                rows, cache, mask = [], None, None
            elif len(keep) < len(rows):
                rows = [rows[i] for i in keep]
                cache, mask = keep_rows(cache, mask, keep)


def _prefill(forward: BatchForward, job: ChainJob, device) -> tuple[_Row | None, DynamicCache, torch.Tensor]:
    ids = torch.tensor([job.prompt], device=device)
    stages = torch.full_like(ids, job.prompt_stage)
    mask = torch.ones_like(ids)
    positions = torch.arange(ids.shape[1], device=device).unsqueeze(0)
    cache = DynamicCache()
    logits = forward(ids, stages, mask, positions, cache)
    row = _Row(job, job.start(logits[0]))
    return (None if _advance(row, None) else row), cache, mask


def _advance(row: _Row, logits: torch.Tensor | None) -> bool:
    """Send the logits after the row's last feed; run its program to its next feed. True when it ended."""
    reply = logits
    while True:
        try:
            item = row.program.send(reply)
        except StopIteration:
            return True
        if isinstance(item, Feed):
            row.pending = item
            return False
        if row.job.on_event is not None:
            row.job.on_event(item)
        reply = None
