"""How much one request may ask of the server: body bytes, prompt tokens, completion tokens.

Why limits: one model serves every client, so a 1 MB prompt or max_tokens 32768 at temperature 2
would hold it for minutes (and gigabytes) while others wait. Each limit is checked before any
generation starts and a request over one gets HTTP 400 naming the limit and the server flag that
sets it, as vLLM and text-generation-inference do.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.decoding.chain_programs import GenerationSettings
from core.decoding.subjects import ChatSubject
from core.serving.schema import RequestError
from core.stages import CHAIN_STAGES, Stage


@dataclass(frozen=True)
class ServeLimits:
    """Per-request limits of the OpenAI-compatible server."""

    max_prompt_tokens: int = 4096
    """Tokens of the question and system prompt (`serve --max-prompt-tokens`)."""
    max_completion_tokens: int = 4096
    """max_tokens / max_completion_tokens / max_stage_tokens of any one stage (`serve --max-completion-tokens`)."""
    max_total_tokens: int = 16384
    """Prompt plus every stage's token budget (`serve --max-total-tokens`)."""
    max_body_bytes: int = 1 << 20
    """Size of the request body (answered with 413 before it is parsed)."""

    def __post_init__(self) -> None:
        for name in ("max_prompt_tokens", "max_completion_tokens", "max_total_tokens", "max_body_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} is out of range: use a positive integer.")
        if self.max_total_tokens < self.max_prompt_tokens:
            raise ValueError(f"max_total_tokens={self.max_total_tokens} is below max_prompt_tokens="
                             f"{self.max_prompt_tokens}: raise --max-total-tokens or lower --max-prompt-tokens.")


def count_prompt_tokens(subject: ChatSubject, messages: Sequence[dict[str, str]]) -> int:
    """Tokens of the message texts with the subject's tokenizer (the chat template adds a few more).
    A subject without a tokenizer counts UTF-8 bytes, an upper bound for byte-level tokenizers."""
    text = "\n".join(m["content"] for m in messages if m["role"] in ("system", "developer", "user"))
    tokenizer = getattr(subject, "tokenizer", None) or getattr(getattr(subject, "mote", None), "tokenizer", None)
    if tokenizer is None:
        return len(text.encode("utf-8"))
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def completion_budget(subject: ChatSubject, settings: GenerationSettings) -> int:
    """The most tokens the reply may generate (the subject knows: a chain's stages, a prompting
    pipeline's turns)."""
    return subject.completion_budget(settings)


def check_request(limits: ServeLimits, subject: ChatSubject, messages: Sequence[dict[str, str]],
                  settings: GenerationSettings) -> int:
    """The prompt's token count; RequestError (HTTP 400) naming the limit a request exceeds."""
    for stage in CHAIN_STAGES:
        limit = settings.limit(stage)
        if limit > limits.max_completion_tokens:
            param = "max_tokens" if stage is Stage.ANSWER and Stage.ANSWER.name.lower() in settings.stage_limits else "max_stage_tokens"
            raise RequestError(
                f"{param}={limit} is over this server's max_completion_tokens limit of {limits.max_completion_tokens} "
                f"tokens per stage: ask for at most {limits.max_completion_tokens} (the operator sets it with "
                "serve --max-completion-tokens).", param=param)
    prompt = count_prompt_tokens(subject, messages)
    if prompt > limits.max_prompt_tokens:
        raise RequestError(
            f"The prompt holds {prompt} tokens, over this server's max_prompt_tokens limit of "
            f"{limits.max_prompt_tokens}: shorten the messages (the operator sets it with serve --max-prompt-tokens).",
            param="messages")
    total = prompt + completion_budget(subject, settings)
    if total > limits.max_total_tokens:
        raise RequestError(
            f"The prompt ({prompt} tokens) plus the reply's token budget ({total - prompt}) is {total}, over this "
            f"server's max_total_tokens limit of {limits.max_total_tokens}: lower max_tokens / max_stage_tokens or "
            "shorten the prompt (the operator sets it with serve --max-total-tokens).", param="max_tokens")
    return prompt


def describe(limits: ServeLimits) -> dict[str, Any]:
    """The limits as /v1/models shows them, so a client can size its requests."""
    return {"max_prompt_tokens": limits.max_prompt_tokens, "max_completion_tokens": limits.max_completion_tokens,
            "max_total_tokens": limits.max_total_tokens}
