"""Plain-text completions: chat messages in, text out, many at a time on the one scheduler.

Why: self-generation runs thousands of short prompts of very different lengths, the chat
self-check and the local LLM judge a few. A completion is the simplest decoding program (feed
the prompt, sample until an end-of-turn token, a stop string or the token limit), so it runs on
core.decoding.scheduler like every chain: rows stop on their own, are handed back at once and
their slots are refilled in the same step. The base model's single answer stage
(core.decoding.subjects.BaseSubject) is the same program with streamed events.
"""
from __future__ import annotations

import dataclasses
import enum
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from core.data.repetition import repeat_onset
from core.decoding.chain_programs import StageEvent, StageEventKind
from core.decoding.sampling import Sampler
from core.decoding.scheduler import DecodeJob, DecodeProgram, Feed, causal_lm_forward, run_batched
from core.decoding.text import TextDelta, end_of_turn_ids, messages_prompt_ids
from core.stages import Stage


@dataclass
class CompletionRequest:
    """One prompt for a text generator."""

    messages: list[dict[str, str]]
    max_new_tokens: int
    stop: list[str] = field(default_factory=list)
    response_prefix: str = ""
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    """Sampling seed; None draws a fresh one (as an OpenAI-compatible endpoint does)."""
    stage: str = ""
    key: Any = None
    stop_on_repeat: int = 0
    """End the text once it repeats a run of this many words it already wrote (0: never): nothing
    after a loop's start is kept (core.data.repetition), so decoding the loop is wasted time."""


@dataclass
class Completion:
    """What the generator wrote (without the response prefix)."""

    text: str
    tokens: int = 0
    finish_reason: str = "stop"


class TextGenerator(Protocol):
    """Anything that answers completion requests, pulling them until none is left: a local
    model (LocalGenerator), an OpenAI-compatible endpoint (core.synthesis.http_generator), a
    scripted fake in tests. Completions are delivered on the calling thread."""

    id: str

    def run(
        self,
        next_request: Callable[[], CompletionRequest | None],
        deliver: Callable[[CompletionRequest, Completion], None],
        should_stop: Callable[[], bool],
    ) -> None: ...


def complete_all(generator: TextGenerator, requests: Sequence[CompletionRequest]) -> list[Completion]:
    """Every request's completion, in the order given: the pull-and-deliver protocol run to its
    end over a fixed list (the LLM judge, the chat self-check). Request keys are not used."""
    queue = deque(dataclasses.replace(request, key=index) for index, request in enumerate(requests))
    done: dict[int, Completion] = {}
    generator.run(lambda: queue.popleft() if queue else None, lambda request, completion: done.__setitem__(request.key, completion),
                  lambda: False)
    missing = [index for index in range(len(requests)) if index not in done]
    if missing:
        raise RuntimeError(f"Generator {generator.id} returned without completing requests {missing}.")
    return [done[index] for index in range(len(requests))]


class FinishReason(str, enum.Enum):
    """Why a plain-text program ended (OpenAI's values)."""

    STOP = "stop"
    """An end-of-turn token or a stop string."""
    LENGTH = "length"
    """The token limit."""
    REPEAT = "repeat"
    """The text started repeating itself (CompletionRequest.stop_on_repeat)."""


@dataclass
class PlainText:
    """A plain-text program's result, filled as it runs (usable when interrupted)."""

    tokens: list[int] = field(default_factory=list)
    """Generated ids, end-of-turn excluded."""
    text: str = ""
    """Their text, cut before the first stop string."""
    finish_reason: FinishReason | None = None


def plain_text_program(tokenizer: PreTrainedTokenizerBase, sampler: Sampler, logits: torch.Tensor, result: PlainText, *,
                       end_ids: Sequence[int], max_tokens: int, min_tokens: int = 0, stop: Sequence[str] = (),
                       stage: Stage = Stage.ANSWER, expert: str = "", stop_on_repeat: int = 0) -> DecodeProgram:
    """One stage of plain text after a prompt (`logits` follow it): sample until an end-of-turn
    token (banned before `min_tokens`), a stop string, `max_tokens`, or (with `stop_on_repeat`)
    the first repeated run of that many words. Streams START / TEXT / END events; the token that
    ends the text is never fed (nothing reads its logits)."""
    yield StageEvent(StageEventKind.START, stage, expert=expert)
    delta_of = TextDelta()
    if max_tokens <= 0:
        result.finish_reason = FinishReason.LENGTH
    while result.finish_reason is None:
        token = sampler.sample(logits, banned=end_ids if len(result.tokens) < min_tokens else ())
        if token in end_ids:
            result.finish_reason = FinishReason.STOP
            break
        result.tokens.append(token)
        result.text, result.finish_reason = _cut(tokenizer.decode(result.tokens, skip_special_tokens=True), stop)
        if result.finish_reason is None and stop_on_repeat and repeat_onset(result.text, stop_on_repeat) is not None:
            result.finish_reason = FinishReason.REPEAT
        if result.finish_reason is None and len(result.tokens) >= max_tokens:
            result.finish_reason = FinishReason.LENGTH
        delta = delta_of(result.text)
        if delta:
            yield StageEvent(StageEventKind.TEXT, stage, delta, expert)
        if result.finish_reason is None:
            logits = yield Feed(token, int(stage))
    yield StageEvent(StageEventKind.END, stage, result.text, expert)


def _cut(text: str, stop: Sequence[str]) -> tuple[str, FinishReason | None]:
    """The text before the first listed stop string it holds (list order), and STOP if one was found."""
    for marker in stop:
        if marker and marker in text:
            return text[: text.index(marker)], FinishReason.STOP
    return text, None


class LocalGenerator:
    """Answers completion requests with a local causal LM, `batch_size` rows at a time: a thin
    adapter from the synthesis pipeline's TextGenerator protocol to core.decoding.scheduler."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, *, batch_size: int = 8, model_id: str = "local") -> None:
        self.model, self.tokenizer, self.batch_size = model.eval(), tokenizer, batch_size
        self.id = f"local:{model_id}"
        self.device = next(model.parameters()).device
        self.end_ids = end_of_turn_ids(model, tokenizer)
        self._forward = causal_lm_forward(self.model)

    def prompt_ids(self, request: CompletionRequest) -> list[int]:
        return messages_prompt_ids(self.tokenizer, request.messages, request.response_prefix)

    def run(self, next_request: Callable[[], CompletionRequest | None],
            deliver: Callable[[CompletionRequest, Completion], None], should_stop: Callable[[], bool]) -> None:
        """Pull requests until none is left (asking again after each delivery, which may queue
        follow-ups) and deliver each completion as soon as its row ends."""
        def next_job() -> DecodeJob | None:
            request = next_request()
            if request is None:
                return None
            result = PlainText()
            return self._job(request, result, key=(request, result))

        for request, result in run_batched(self._forward, next_job, batch_size=self.batch_size, device=self.device,
                                           should_stop=should_stop):
            deliver(request, _completion(result))

    def _job(self, request: CompletionRequest, result: PlainText, *, key: Any) -> DecodeJob:
        sampler = Sampler(temperature=request.temperature, top_p=request.top_p, seed=request.seed)

        def start(logits: torch.Tensor) -> DecodeProgram:
            return plain_text_program(self.tokenizer, sampler, logits, result, end_ids=self.end_ids,
                                      max_tokens=request.max_new_tokens, stop=request.stop,
                                      stop_on_repeat=request.stop_on_repeat)
        return DecodeJob(key, self.prompt_ids(request), int(Stage.ANSWER), start)


def _completion(result: PlainText) -> Completion:
    reason = result.finish_reason or FinishReason.STOP
    return Completion(result.text, len(result.tokens), reason.value)
