"""Request and response bodies of the OpenAI-compatible server (see core/serving/server.py for the format).

Why apart from the app: the wire format (what a client sends, what each JSON object holds) is the
documented contract; keeping it in pydantic models and small pure builders lets it be read and
tested without starting a server.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.decoding.chain_programs import GenerationSettings
from core.stages import ChainShape, Stage
from core.decoding.subjects import StageText, SubjectReply

#: Upper bound of any token limit a request may ask for (a typo must not tie up the model for hours).
MAX_REQUEST_TOKENS = 32768
#: Seeds are 64-bit signed integers, as in vLLM (a larger one cannot seed a torch generator).
SEED_RANGE = (-(2**63), 2**63 - 1)


class RequestError(ValueError):
    """A request the server cannot honour; answered with HTTP 400 and an OpenAI error object."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class TextPart(BaseModel):
    """One part of a list-form message content; only text parts are understood."""

    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        if any(part.type != "text" for part in self.content):
            kinds = sorted({part.type for part in self.content} - {"text"})
            raise RequestError(f"Message content parts of type {kinds} are not supported: send text only.", param="messages")
        return "".join(part.text or "" for part in self.content)


class ChatCompletionRequest(BaseModel):
    """The OpenAI chat-completions body, plus MoTE's `mote_path` and `max_stage_tokens`.

    Fields OpenAI defines that do not apply here (logprobs, tools, ...) are accepted and ignored.
    """

    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1, le=MAX_REQUEST_TOKENS)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_REQUEST_TOKENS)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    seed: int | None = Field(None, ge=SEED_RANGE[0], le=SEED_RANGE[1])
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    stop: str | list[str] | None = None
    n: int = 1
    mote_path: ChainShape | None = None
    """Forced chain shape; null (the default) lets the model choose its own path."""
    max_stage_tokens: int | None = Field(None, ge=1, le=MAX_REQUEST_TOKENS)
    """Token limit of each stage before the answer (and of the answer when max_tokens is absent)."""

    @field_validator("n")
    @classmethod
    def _one_choice(cls, value: int) -> int:
        if value != 1:
            raise ValueError(f"n={value} is not supported: this server returns exactly one choice, send n=1 or leave it out")
        return value

    @field_validator("stop")
    @classmethod
    def _few_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError(f"stop holds {len(value)} strings: send at most 4")
        for text in [value] if isinstance(value, str) else value or []:
            _check_encodable(text)
        return value

    @field_validator("messages")
    @classmethod
    def _encodable_messages(cls, value: list[ChatMessage]) -> list[ChatMessage]:
        for message in value:
            for text in [message.content] if isinstance(message.content, str) else [p.text for p in message.content or []]:
                _check_encodable(text or "")
        return value

    def stop_strings(self) -> list[str]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return [s for s in stops if s]

    def chat_messages(self) -> list[dict[str, str]]:
        return [{"role": m.role, "content": m.text()} for m in self.messages]

    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))

    def settings(self, defaults: GenerationSettings | None = None) -> GenerationSettings:
        """Decoding settings: the server's defaults (temperature 0: greedy, unlike OpenAI's 1),
        overridden by what the request sets."""
        settings = dataclasses.replace(defaults or GenerationSettings(), path=self.mote_path)
        if self.seed is not None:
            settings.seed = self.seed
        settings.stage_limits = dict(settings.stage_limits)
        if self.temperature is not None:
            settings.temperature = self.temperature
        if self.top_p is not None:
            settings.top_p = self.top_p
        if self.max_stage_tokens is not None:
            settings.max_stage_tokens = self.max_stage_tokens
        answer_limit = self.max_completion_tokens or self.max_tokens
        if answer_limit is not None:
            settings.stage_limits[Stage.ANSWER.name.lower()] = answer_limit
        return settings


def _check_encodable(text: str) -> None:
    """JSON may carry lone UTF-16 surrogates (\\ud800) that no tokenizer or reply can encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"the text holds an unpaired surrogate at position {error.start} ({text[error.start]!a}), "
                         "which is not valid Unicode: send UTF-8 text") from None


class StopScanner:
    """Cuts streamed text at the first stop string, holding back a tail that may begin one."""

    def __init__(self, stops: list[str]) -> None:
        self.stops, self.pending, self.stopped = [s for s in stops if s], "", False

    def feed(self, text: str) -> str:
        """The part of `text` that is safe to send now."""
        if self.stopped:
            return ""
        self.pending += text
        hits = [self.pending.find(s) for s in self.stops if s in self.pending]
        if hits:
            self.stopped = True
            out, self.pending = self.pending[: min(hits)], ""
            return out
        hold = max((k for s in self.stops for k in range(1, len(s)) if self.pending.endswith(s[:k])), default=0)
        out, self.pending = self.pending[: len(self.pending) - hold], self.pending[len(self.pending) - hold:]
        return out

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """(text up to the first stop string, whether one was found)."""
    scanner = StopScanner(stops)
    out = scanner.feed(text)
    return (out, True) if scanner.stopped else (out + scanner.flush(), False)


def stage_name(stage: Stage) -> str:
    return stage.name.lower()


def reasoning_header(stage: Stage, first: bool) -> str:
    """The label that opens a stage inside reasoning_content, e.g. '[analysis]\\n'."""
    return ("" if first else "\n\n") + f"[{stage_name(stage)}]\n"


def reasoning_content(stages: list[StageText]) -> str | None:
    """The stages before the answer, each under its label; None when the answer came alone."""
    if not stages:
        return None
    return "".join(reasoning_header(s.stage, i == 0) + s.text for i, s in enumerate(stages))


def mote_extension(reply: SubjectReply) -> dict[str, Any]:
    return {
        "shape": reply.shape.value if reply.shape is not None else None,
        "stages": [{"stage": stage_name(s.stage), "expert": s.expert, "text": s.text, "tokens": s.tokens} for s in reply.stages],
    }


def usage(reply: SubjectReply) -> dict[str, Any]:
    reasoning = sum(s.tokens for s in reply.reasoning)
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def completion_body(reply: SubjectReply, *, request_id: str, created: int, model_id: str, stops: list[str]) -> dict[str, Any]:
    """A chat.completion object: the answer as content, the chain in reasoning_content and mote."""
    content, stopped = cut_at_stop(reply.answer, stops)
    message = {"role": "assistant", "content": content, "reasoning_content": reasoning_content(reply.reasoning), "mote": mote_extension(reply)}
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": created,
        "model": model_id,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop" if stopped else reply.finish_reason, "logprobs": None}],
        "usage": usage(reply),
    }


def chunk_body(delta: dict[str, Any], *, request_id: str, created: int, model_id: str, finish_reason: str | None = None) -> dict[str, Any]:
    """A chat.completion.chunk object with one choice."""
    return {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model_id,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }


def error_body(message: str, *, kind: str = "invalid_request_error", param: str | None = None) -> dict[str, Any]:
    """The OpenAI error object: {"error": {"message", "type", "param", "code"}}."""
    return {"error": {"message": message, "type": kind, "param": param, "code": None}}
