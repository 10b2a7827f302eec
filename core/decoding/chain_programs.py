"""Stage-aware generation: the model writes its chain, each stage by its own expert pair.

Section 5 of the spec: after the prompt the model opens a stage with a start marker; the stage's
expert (plus the shared one) writes it until its end marker; the next start marker switches the
expert; generation stops when the answer stage closes. The KV cache is kept across switches:
earlier tokens were computed with their own expert, so nothing is recomputed. Inside a stage the
gate vector is constant, so it is folded into the weights (`ExpertRouter.fold`) and decoding
costs what the base model costs.

Markers are constrained: between stages only the start markers that make a valid chain shape can
be chosen; inside a stage, other stages' markers cannot, and an end-of-turn closes the stage.
"""
from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from core.data.dataset import chat_prefix_suffix
from core.experts.model import MoteModel, cache_kwargs
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


@dataclass
class StageEvent:
    """A streaming event: a stage opens ('start'), grows ('text') or closes ('end')."""

    kind: str
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

    @property
    def answer(self) -> str:
        return next((s.text for s in self.segments if s.stage is Stage.ANSWER), "")


def expert_label(mote: MoteModel, stage: Stage) -> str:
    """Human-readable active experts of a stage, e.g. 'answer + shared'."""
    names = mote.layout.names
    if not mote.layout.step_experts:
        return names[0]
    return stage.name.lower() + (" + shared" if mote.layout.shared_expert else "")


class Sampler:
    """Draws a chain's tokens: greedy, or seeded sampling (one generator per chain, so a chain's
    tokens do not depend on what else is decoded beside it)."""

    def __init__(self, settings: GenerationSettings) -> None:
        self.settings = settings
        self.generator = torch.Generator(device="cpu")
        if settings.seed is not None:
            self.generator.manual_seed(settings.seed)

    def sample(self, logits: torch.Tensor, allowed: list[int] | None = None, banned: list[int] | None = None) -> int:
        if allowed is not None:
            keep = torch.full_like(logits, float("-inf"))
            keep[allowed] = 0.0
            logits = logits + keep
        return sample_token(logits, temperature=self.settings.temperature, top_p=self.settings.top_p,
                            top_k=self.settings.top_k, generator=self.generator, banned=banned or ())


@dataclass(frozen=True)
class Feed:
    """A token a chain program needs run through the model, with its stage; the driver sends
    back the logits (vocab,) that follow it."""

    token: int
    stage: int


#: A chain program: yields StageEvents (to show) and Feeds (to run), receives logits after a Feed.
ChainProgram = Generator["StageEvent | Feed", "torch.Tensor | None", None]


class _Decoder:
    """One chain's KV cache: feeds tokens with their stage, folding experts per stage."""

    def __init__(self, mote: MoteModel, settings: GenerationSettings) -> None:
        self.mote, self.settings = mote, settings
        self.cache = DynamicCache()
        self.device = next(mote.model.parameters()).device

    @torch.no_grad()
    def feed(self, token_ids: list[int], stage_ids: list[int]) -> torch.Tensor:
        """Run tokens through the model; returns the logits (vocab,) after the last one."""
        ids = torch.tensor([token_ids], device=self.device)
        stages = torch.tensor([stage_ids], device=self.device)
        single_stage = len(set(stage_ids)) == 1 and stage_ids[0] != QUESTION_STAGE_ID
        if self.settings.fold_experts and single_stage:
            self.mote.router.fold(self.mote.layout.stage_gate(Stage(stage_ids[0])).to(self.device))
            out = self.mote.model(input_ids=ids, use_cache=True, logits_to_keep=1, **cache_kwargs(self.mote.model, self.cache))
        else:
            out = self.mote.forward(ids, stages, cache=self.cache, logits_to_keep=1)
        return out.logits[0, -1].float()


def drive(program: ChainProgram, feed) -> Iterator[StageEvent]:
    """Run a chain program one token at a time: `feed(token, stage)` returns the next logits."""
    reply = None
    while True:
        try:
            item = program.send(reply)
        except StopIteration:
            return
        if isinstance(item, Feed):
            reply = feed(item.token, item.stage)
        else:
            reply = None
            yield item


def sample_token(logits: torch.Tensor, *, temperature: float, top_p: float = 1.0, top_k: int = 0,
                 generator: torch.Generator | None = None, banned: Sequence[int] = ()) -> int:
    """Greedy (temperature 0) or temperature / top-k / top-p sampling of one token from (vocab,) logits.
    The one sampler of the project: chains, chat subjects and batched generation all use it."""
    logits = logits.clone()
    if banned:
        logits[list(banned)] = float("-inf")
    if temperature <= 0:
        return int(logits.argmax())
    logits = logits / temperature
    if top_k > 0:
        cutoff = torch.topk(logits, min(top_k, logits.numel())).values[-1]
        logits[logits < cutoff] = float("-inf")
    probs = torch.softmax(logits, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        probs[order[sorted_probs.cumsum(0) - sorted_probs > top_p]] = 0.0
        probs = probs / probs.sum()
    return int(torch.multinomial(probs.cpu(), 1, generator=generator))


def _text_delta(tokenizer, ids: list[int], emitted: str) -> tuple[str, str]:
    text = tokenizer.decode(ids, skip_special_tokens=True)
    if text.endswith("\ufffd"):  # an unfinished multi-byte character: wait for its rest
        return "", emitted
    return text[len(emitted):], text


def chain_prompt(mote: MoteModel, question: str, settings: GenerationSettings) -> list[int]:
    """The prompt's token ids: the chat template up to the assistant turn."""
    prefix, _ = chat_prefix_suffix(mote.tokenizer, question, settings.system_prompt)
    return mote.tokenizer(prefix, add_special_tokens=False)["input_ids"]


def stream_chain(
    mote: MoteModel, question: str, settings: GenerationSettings | None = None, *, output: ChainOutput | None = None
) -> Iterator[StageEvent]:
    """Generate a chain for `question`, yielding StageEvents as tokens arrive.

    Pass `output` to receive the tokens, stage ids and (for tests) the logits of every step.
    """
    settings = settings or GenerationSettings()
    mote.model.eval()
    prompt = chain_prompt(mote, question, settings)
    output = output if output is not None else ChainOutput([], [], [], len(prompt))
    output.token_ids[:], output.stage_ids[:], output.prompt_length = list(prompt), [QUESTION_STAGE_ID] * len(prompt), len(prompt)
    decoder = _Decoder(mote, settings)
    try:
        logits = decoder.feed(prompt, output.stage_ids)
        program = chain_program(mote, settings, Sampler(settings), logits, output)
        yield from drive(program, lambda token, stage: decoder.feed([token], [stage]))
    finally:
        mote.router.unfold(release=not settings.keep_fold_buffers)


def chain_program(mote: MoteModel, settings: GenerationSettings, sampler: Sampler, logits: torch.Tensor,
                  output: ChainOutput) -> ChainProgram:
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


def _write_stage(mote, sampler, stage, logits, settings, output) -> ChainProgram:
    """Open `stage`, write it until its end marker or limit, close it; returns the last logits."""
    tokenizer, label = mote.tokenizer, expert_label(mote, stage)
    yield StageEvent("start", stage, expert=label)
    body: list[int] = []
    emitted = ""
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
        delta, emitted = _text_delta(tokenizer, body, emitted)
        if delta:
            yield StageEvent("text", stage, delta, label)
    if mote.uses_markers:
        logits = yield from _append(output, end_id, stage)
    text = tokenizer.decode(body, skip_special_tokens=True)
    output.segments.append(StageSegment(stage, text))
    yield StageEvent("end", stage, text, label)
    return logits


def _record(output: ChainOutput, logits: torch.Tensor) -> None:
    if output.step_logits is not None:
        output.step_logits.append(logits)


def _append(output: ChainOutput, token: int, stage: Stage) -> ChainProgram:
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
