"""Stage-aware generation: the model writes its chain, each stage by its own expert pair.

Section 5 of the spec: after the prompt the model opens a stage with a start marker; the stage's
expert (plus the shared one) writes it until its end marker; the next start marker switches the
expert; generation stops when the answer stage closes. The KV cache is kept across switches:
earlier tokens were computed with their own expert, so nothing is recomputed. Inside a stage the
gate vector is constant, so it is folded into the weights (`ExpertRouter.fold`) and decoding
costs what the base model costs.

Markers are constrained: between stages only the start markers that make a valid chain shape can
be chosen; inside a stage, other stages' markers cannot, and an end-of-turn closes the stage.

A chain is a *program* (`chain_program`): it yields Feeds and StageEvents and is driven by the one
scheduler (core.decoding.scheduler), alone (`stream_chain`, a batch of one with folding) or with
many others (core.decoding.subjects.BatchingSubject.answer_many, experts routed per token).
"""
from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from core.decoding.sampling import Sampler
from core.decoding.scheduler import DecodeJob, DecodeProgram, Feed, mote_forward, stream_one
from core.decoding.text import TextDelta, question_prompt_ids
from core.experts.model import MoteModel
from core.stages import (
    QUESTION_STAGE_ID,
    ChainShape,
    Stage,
    StageSegment,
    allowed_next_stages,
)


@dataclass
class GenerationSettings:
    """Decoding settings for one chain."""

    max_stage_tokens: int = 256
    """Token limit of each stage; a stage that reaches it is closed with its end marker."""
    min_stage_tokens: int = 1
    """A stage cannot close (end marker or end-of-turn) before writing this many tokens."""
    stage_limits: dict[str, int] = field(default_factory=dict)
    """Per-stage overrides of max_stage_tokens, e.g. {'analysis': 96}."""
    temperature: float = 0.0
    """0 is greedy decoding."""
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    """Sampling seed; None draws a fresh one for each reply (core.decoding.sampling)."""
    path: ChainShape | None = None
    """Forced chain shape (markers inserted); None lets the model choose its own path."""
    fold_experts: bool = True
    """Fold the active expert pair into the weights at each stage switch (fast decoding)."""
    keep_fold_buffers: bool = True
    """Keep the folded weights allocated after the chain, so the next chain's switches reuse
    them (allocating a copy of every wrapped weight costs about three folds). Costs one extra copy
    of the wrapped weights while the model serves chats; False frees it after each chain."""
    system_prompt: str | None = None

    def limit(self, stage: Stage) -> int:
        return int(self.stage_limits.get(stage.name.lower(), self.max_stage_tokens))

    def sampler(self) -> Sampler:
        """A fresh sampler for one reply (its own generator; `seed` None draws a fresh seed)."""
        return Sampler(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, seed=self.seed)


class StageEventKind(str, enum.Enum):
    """What a StageEvent says; a str enum, so stored and serialised values stay 'start'/'text'/'end'."""

    START = "start"
    """A stage opens."""
    TEXT = "text"
    """A stage grows by `text`."""
    END = "end"
    """A stage closes; `text` is its whole text."""


@dataclass
class StageEvent:
    """A streaming event: a stage opens (START), grows (TEXT) or closes (END)."""

    kind: StageEventKind
    stage: Stage
    text: str = ""
    expert: str = ""


@dataclass
class ChainOutput:
    """A finished generation: stage texts, and the tokens with their stage ids."""

    segments: list[StageSegment]
    token_ids: list[int]
    stage_ids: list[int]
    prompt_length: int
    step_logits: list[torch.Tensor] | None = None
    """Logits of every generated step, when set to a list before generation (tests)."""
    seed: int | None = None
    """The sampling seed the chain was written with (pass it back to reproduce the chain)."""

    @property
    def answer(self) -> str:
        return next((s.text for s in self.segments if s.stage is Stage.ANSWER), "")


def expert_label(mote: MoteModel, stage: Stage) -> str:
    """Human-readable active experts of a stage, e.g. 'answer + shared'."""
    names = mote.layout.names
    if not mote.layout.step_experts:
        return names[0]
    return stage.name.lower() + (" + shared" if mote.layout.shared_expert else "")


def chain_prompt(mote: MoteModel, question: str, settings: GenerationSettings) -> list[int]:
    """The prompt's token ids: the chat template up to the assistant turn."""
    return question_prompt_ids(mote.tokenizer, question, settings.system_prompt)


def chain_job(mote: MoteModel, question: str, settings: GenerationSettings, output: ChainOutput, *,
              key: object = None, on_event: Callable[[StageEvent], None] | None = None) -> DecodeJob:
    """One chain as a scheduler job; `output` receives the prompt now, the chain as it is written."""
    prompt = chain_prompt(mote, question, settings)
    output.token_ids[:], output.stage_ids[:], output.prompt_length = list(prompt), [QUESTION_STAGE_ID] * len(prompt), len(prompt)
    sampler = settings.sampler()
    output.seed = sampler.seed

    def start(logits: torch.Tensor) -> DecodeProgram:
        return chain_program(mote, settings, sampler, logits, output)
    return DecodeJob(key, prompt, QUESTION_STAGE_ID, start, on_event)


def stream_chain(
    mote: MoteModel, question: str, settings: GenerationSettings | None = None, *, output: ChainOutput | None = None
) -> Iterator[StageEvent]:
    """Generate a chain for `question`, yielding StageEvents as tokens arrive.

    A batch of one on the one scheduler (core.decoding.scheduler.stream_one), with the active
    stage's experts folded into the weights (`fold_experts`): a lone row runs the same forward a
    dedicated one-chain decoder would, so this costs nothing over one. Pass `output` to receive
    the tokens, stage ids and (for tests) the logits of every step.
    """
    settings = settings or GenerationSettings()
    mote.model.eval()
    output = output if output is not None else ChainOutput([], [], [], 0)
    job = chain_job(mote, question, settings, output)
    device = next(mote.model.parameters()).device
    try:
        yield from stream_one(mote_forward(mote, fold=settings.fold_experts), job, device=device)
    finally:
        mote.router.unfold(release=not settings.keep_fold_buffers)


def chain_program(mote: MoteModel, settings: GenerationSettings, sampler: Sampler, logits: torch.Tensor,
                  output: ChainOutput) -> DecodeProgram:
    """The stage logic of one chain after its prompt (`logits` follow the prompt), independent of
    how tokens reach the model: one chain at a time (stream_chain) or many (core.decoding.scheduler)."""
    stages = _planned_stages(mote, settings)
    done: list[Stage] = []
    while True:
        if stages is not None:
            if len(done) == len(stages):
                return
            stage = stages[len(done)]
        else:  # the model's own path: pick each next start marker among the valid ones
            options = allowed_next_stages(done)
            if not options:
                return
            chosen = sampler.sample(logits, allowed=[mote.start_id(s) for s in options])
            stage = next(s for s in options if mote.start_id(s) == chosen)
        done.append(stage)
        logits = yield from _write_stage(mote, sampler, stage, logits, settings, output)
        if stage is Stage.ANSWER:
            return


def _planned_stages(mote: MoteModel, settings: GenerationSettings) -> tuple[Stage, ...] | None:
    if not mote.uses_markers:
        return (Stage.ANSWER,)
    return settings.path.stages if settings.path is not None else None


def _write_stage(mote: MoteModel, sampler: Sampler, stage: Stage, logits: torch.Tensor, settings: GenerationSettings,
                 output: ChainOutput) -> DecodeProgram:
    """Open `stage`, write it until its end marker or limit, close it; returns the last logits."""
    tokenizer, label = mote.tokenizer, expert_label(mote, stage)
    yield StageEvent(StageEventKind.START, stage, expert=label)
    body: list[int] = []
    delta_of = TextDelta()
    if mote.uses_markers:
        _record(output, logits)
        logits = yield from _append(output, mote.start_id(stage), stage)
    end_id = mote.end_id(stage) if mote.uses_markers else tokenizer.eos_token_id
    # Inside a stage only text may follow: other stages' markers and template specials are banned.
    specials = set(mote.marker_ids.values()) | set(tokenizer.all_special_ids)
    banned = sorted(specials - {end_id, tokenizer.eos_token_id})
    while True:
        _record(output, logits)
        closers = [end_id, tokenizer.eos_token_id] if len(body) < settings.min_stage_tokens else []
        token = end_id if len(body) >= settings.limit(stage) else sampler.sample(logits, banned=banned + closers)
        if token == tokenizer.eos_token_id and mote.uses_markers:
            token = end_id  # an end-of-turn inside a stage closes the stage
        if token == end_id:
            break
        body.append(token)
        logits = yield from _append(output, token, stage)
        delta = delta_of(tokenizer.decode(body, skip_special_tokens=True))
        if delta:
            yield StageEvent(StageEventKind.TEXT, stage, delta, label)
    if mote.uses_markers:
        logits = yield from _append(output, end_id, stage)
    text = tokenizer.decode(body, skip_special_tokens=True)
    output.segments.append(StageSegment(stage, text))
    yield StageEvent(StageEventKind.END, stage, text, label)
    return logits


def _record(output: ChainOutput, logits: torch.Tensor) -> None:
    if output.step_logits is not None:
        output.step_logits.append(logits)


def _append(output: ChainOutput, token: int, stage: Stage) -> DecodeProgram:
    output.token_ids.append(token)
    output.stage_ids.append(int(stage))
    logits = yield Feed(token, int(stage))
    return logits


def generate_chain(
    mote: MoteModel, question: str, settings: GenerationSettings | None = None, *, record_logits: bool = False
) -> ChainOutput:
    """Generate a whole chain (non-streaming)."""
    output = ChainOutput([], [], [], 0, [] if record_logits else None)
    for _ in stream_chain(mote, question, settings, output=output):
        pass
    return output
