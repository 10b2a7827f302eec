"""The one decoding loop: many sequences at once, each driven by its own program, one forward per step.

Why one loop: decoding one sequence at a time reads every weight for a single token, so a CPU or
GPU sits mostly idle, and an evaluation or a self-generation run asks thousands of questions. A
*program* is a generator that yields `Feed`s (a token to run, with its stage) and receives the
logits that follow; anything else it yields is an event, handed to its job's `on_event`. Chain
programs (core.decoding.chain_programs), a base model's single answer stage and plain-text
completions (core.decoding.completions) are all programs, so the cache logic below exists once.

Each step feeds every row's next token with its own stage id in one batched forward (MoTE's
shared expert folded, step experts routed per token: rows are in different stages). Rows finish
on their own and are refilled from the job source in the same step; new rows are prefilled
together, left-padded, and spliced into the running KV cache (core.decoding.kv_rows). Models whose cache layers are not
plain dynamic layers (sliding-window) are refilled only when the batch drains.

A lone row is never padded (rows are prefilled unpadded alone, and keep_rows drops columns that
are padding for every row left), so a batch of one runs without mask and positions: exactly the
forward a one-sequence decoder makes. That is why the single-chain path is a batch of one too.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from transformers import DynamicCache, PreTrainedModel

from core.decoding.kv_rows import can_splice, keep_rows, left_padded, merge_rows
from core.experts.model import MoteModel, cache_kwargs
from core.stages import QUESTION_STAGE_ID, Stage

if TYPE_CHECKING:
    from core.decoding.chain_programs import StageEvent


@dataclass(frozen=True)
class Feed:
    """A token a program needs run through the model, with its stage; the scheduler sends back
    the logits (vocab,) that follow it."""

    token: int
    stage: int


#: A decoding program: yields StageEvents (to show) and Feeds (to run), receives logits after a Feed.
DecodeProgram = Generator["StageEvent | Feed", "torch.Tensor | None", None]


@dataclass
class DecodeJob:
    """One sequence to write: its prompt, and how to start its program from the prompt's logits."""

    key: Any
    prompt: list[int]
    prompt_stage: int
    """Stage id of every prompt token (the question stage for MoTE models)."""
    start: Callable[[torch.Tensor], DecodeProgram]
    on_event: Callable[[StageEvent], None] | None = None


@dataclass(frozen=True)
class DecodeStep:
    """One batched forward. Tensors are (batch, seq); mask and positions are None for a lone row
    (never padded, so the model's own defaults are exact)."""

    input_ids: torch.Tensor
    stage_ids: torch.Tensor
    attention_mask: torch.Tensor | None
    position_ids: torch.Tensor | None
    cache: DynamicCache
    shared_stage: int | None
    """The stage of every token in the step when they all share one (known without reading the
    device), else None: lets a lone MoTE chain fold its expert into the weights."""


#: forward(step) -> logits (batch, vocab) after each row's last token.
BatchForward = Callable[[DecodeStep], torch.Tensor]
#: Hands out the next job, or None when there is none right now (it may be asked again later).
JobSource = Callable[[], DecodeJob | None]


@dataclass
class _Row:
    job: DecodeJob
    program: DecodeProgram
    pending: Feed | None = None


def causal_lm_forward(model: PreTrainedModel) -> BatchForward:
    """A plain causal LM's step (stage ids ignored)."""
    def forward(step: DecodeStep) -> torch.Tensor:
        out = model(input_ids=step.input_ids, attention_mask=step.attention_mask, position_ids=step.position_ids,
                    use_cache=True, logits_to_keep=1, **cache_kwargs(model, step.cache))
        return out.logits[:, -1].float()
    return forward


def mote_forward(mote: MoteModel, *, fold: bool = False) -> BatchForward:
    """A MoteModel's step, every token routed by its stage. With `fold`, a step whose tokens all
    share one writing stage runs with that stage's experts folded into the weights (costs what
    the base model costs); worth it for a lone chain only, whose stage changes a few times.
    Otherwise (rows in different stages) the gate every stage shares stays folded and only the
    step experts are routed per token (MoteModel.forward's fold_common)."""
    def forward(step: DecodeStep) -> torch.Tensor:
        if fold and step.shared_stage not in (None, QUESTION_STAGE_ID):
            device = step.input_ids.device
            mote.router.fold(mote.layout.stage_gate(Stage(step.shared_stage)).to(device))
            return causal_lm_forward(mote.model)(step)
        out = mote.forward(step.input_ids, step.stage_ids, attention_mask=step.attention_mask,
                           position_ids=step.position_ids, cache=step.cache, logits_to_keep=1, fold_common=not fold)
        return out.logits[:, -1].float()
    return forward


def decode_steps(forward: BatchForward, next_job: JobSource, *, batch_size: int, device: torch.device | str,
                 should_stop: Callable[[], bool] = lambda: False) -> Iterator[list[Any]]:
    """Run jobs until the source has none and every row has ended, `batch_size` rows at a time.
    Yields, after each forward, the keys of the jobs that ended in it (often none). Stops between
    steps when `should_stop()`; rows in flight are then dropped."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is out of range: use an integer >= 1.")
    rows: list[_Row] = []
    cache, mask = None, None
    while not should_stop():
        while len(rows) < batch_size and (not rows or can_splice(cache)):
            jobs = _pull(next_job, batch_size - len(rows))
            if not jobs:
                break
            new_rows, new_cache, new_mask, ended = _prefill(forward, jobs, device)
            yield ended
            if not new_rows:
                continue
            if rows:
                cache, mask = merge_rows(cache, mask, new_cache, new_mask)
            else:
                cache, mask = new_cache, new_mask
            rows += new_rows
        if not rows:
            return
        step_mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        lone = len(rows) == 1
        stages = [row.pending.stage for row in rows]
        logits = _run(forward, DecodeStep(
            input_ids=torch.tensor([[row.pending.token] for row in rows], device=device),
            stage_ids=torch.tensor([[stage] for stage in stages], device=device),
            attention_mask=None if lone else step_mask,
            position_ids=None if lone else step_mask.sum(-1, keepdim=True) - 1,
            cache=cache, shared_stage=stages[0] if len(set(stages)) == 1 else None,
        ))
        mask = step_mask
        keep = [i for i, row in enumerate(rows) if not _advance(row, logits[i])]
        yield [row.job.key for i, row in enumerate(rows) if i not in keep]
        if not keep:
            rows, cache, mask = [], None, None
        elif len(keep) < len(rows):
            rows = [rows[i] for i in keep]
            cache, mask = keep_rows(cache, mask, keep)


def _run(forward: BatchForward, step: DecodeStep) -> torch.Tensor:
    """The forward without autograd. Not a `with no_grad()` around the loop: the loop is a
    generator, and grad mode (thread-local) would stay off in its caller between its yields."""
    with torch.no_grad():
        return forward(step)


def run_batched(forward: BatchForward, next_job: JobSource, *, batch_size: int, device: torch.device | str,
                should_stop: Callable[[], bool] = lambda: False) -> Iterator[Any]:
    """Run every job's program to its end; yields each job's key as it ends (in ending order)."""
    for ended in decode_steps(forward, next_job, batch_size=batch_size, device=device, should_stop=should_stop):
        yield from ended


def stream_one(forward: BatchForward, job: DecodeJob, *, device: torch.device | str) -> Iterator[StageEvent]:
    """One job as a batch of one, yielding its events as they come (they also reach job.on_event)."""
    events: deque[StageEvent] = deque()
    forward_events = job.on_event

    def on_event(event: StageEvent) -> None:
        events.append(event)
        if forward_events is not None:
            forward_events(event)

    source = iter([DecodeJob(job.key, job.prompt, job.prompt_stage, job.start, on_event)])
    steps = decode_steps(forward, lambda: next(source, None), batch_size=1, device=device)
    try:
        for _ in steps:
            while events:
                yield events.popleft()
        while events:
            yield events.popleft()
    finally:
        steps.close()


def _pull(next_job: JobSource, free: int) -> list[DecodeJob]:
    jobs: list[DecodeJob] = []
    while len(jobs) < free and (job := next_job()) is not None:
        jobs.append(job)
    return jobs


def _prefill(forward: BatchForward, jobs: list[DecodeJob], device) -> tuple[list[_Row], DynamicCache, torch.Tensor, list[Any]]:
    """Prefill the jobs' prompts together (left-padded) and run each program to its first Feed.
    Returns the rows still running, their cache and mask, and the keys of programs that ended at once."""
    for job in jobs:
        if not job.prompt:
            raise ValueError(f"Job {job.key!r} has an empty prompt: give at least one prompt token.")
    ids, stages, mask = left_padded([job.prompt for job in jobs], [job.prompt_stage for job in jobs])
    ids, stages, mask = ids.to(device), stages.to(device), mask.to(device)
    lone = len(jobs) == 1
    prompt_stages = {job.prompt_stage for job in jobs}
    cache = DynamicCache()
    logits = _run(forward, DecodeStep(ids, stages, None if lone else mask, None if lone else (mask.cumsum(-1) - 1).clamp(min=0),
                                cache, next(iter(prompt_stages)) if len(prompt_stages) == 1 else None))
    rows = [_Row(job, job.start(logits[i])) for i, job in enumerate(jobs)]
    keep = [i for i, row in enumerate(rows) if not _advance(row, None)]
    ended = [row.job.key for i, row in enumerate(rows) if i not in keep]
    if keep and len(keep) < len(rows):
        cache, mask = keep_rows(cache, mask, keep)
    return [rows[i] for i in keep], cache, mask, ended


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
