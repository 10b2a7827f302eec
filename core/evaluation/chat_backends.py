"""Where an LLM judge's words come from: a local transformers model or an OpenAI-compatible URL.

Why a protocol of its own: the judge only needs "these conversations in, these replies out", so
rubrics, retries and parsing are written once (core/evaluation/llm_judge.py) and tested with a
scripted backend. Both backends load or connect lazily, so building a judge is cheap, and
`check()` is the fail-fast step that runs before any generation.

Label probabilities (the judges' default mode) need more than text: a local backend scores the
allowed labels directly (`score_labels`), an HTTP backend asks for `logprobs` and hands back
each reply's top alternatives per token (`complete_with_logprobs`), or plain text when the
server does not offer them.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch

from core.decoding.completions import CompletionRequest, complete_all
from core.evaluation.label_verdicts import TokenLogprobs
from core.synthesis.http_generator import EndpointError, HttpGenerator, OpenAIChatClient

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from core.decoding.completions import LocalGenerator

Conversation = list[dict[str, str]]
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
#: Alternatives asked for per token; 20 is the most OpenAI and vLLM (default max_logprobs) allow.
TOP_LOGPROBS = 20


@runtime_checkable
class ChatBackend(Protocol):
    """Answers chat conversations, one reply per conversation, in order."""

    id: str

    def check(self) -> None:
        """Raise, with the fix in the message, if the backend cannot be used."""

    def complete(
        self, conversations: list[Conversation], *, max_new_tokens: int, temperature: float, seed: int | None,
        reply_prefix: str = "", stop: tuple[str, ...] = (),
    ) -> list[str]:
        """Replies in the order of `conversations`; temperature 0 is greedy. `reply_prefix` is
        text the reply is made to start with (not repeated in the returned text); generation of a
        reply ends at the first of `stop`. Backends that cannot start a reply raise ValueError."""


@runtime_checkable
class LabelScoringBackend(Protocol):
    """A backend that gives each allowed label's probability after a conversation and a prefix."""

    def score_labels(self, conversations: list[Conversation], labels: Sequence[str], *, prefix: str) -> list[dict[str, float]]:
        """One {label: probability} per conversation, in order; each sums to one over `labels`."""


@dataclass(frozen=True)
class LogprobReply:
    """An HTTP reply's text and, when the server returned them, its tokens with top alternatives."""

    text: str
    tokens: list[TokenLogprobs] | None


def pick_device(device: str) -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'; anything else is used as given."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def pick_dtype(dtype: str, device: str) -> torch.dtype:
    """'auto' -> bfloat16 on a GPU (half the memory, judge-quality output), float32 on CPU."""
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return _DTYPES[dtype]


class LocalChatBackend:
    """A local causal LM (folder, hub id when online, or the bundled default alias).

    Generation is core.decoding.completions.LocalGenerator (a thin adapter over the one decoding
    scheduler): the tokenizer's chat template, `batch_size` rows at a time, each row stopping on its own. Greedy at
    temperature 0; above it, row i of a call samples with seed `seed + i`, so retries that pass
    a fresh seed per attempt get fresh text.
    """

    def __init__(
        self, model: str, *, home: Path | None = None, batch_size: int = 8, device: str = "auto",
        dtype: str = "auto", say: Callable[[str], None] = print,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} is out of range: use an integer >= 1.")
        self.model_name, self.home, self.batch_size = model, home, batch_size
        self.device, self.dtype, self.say = device, dtype, say
        self.id = f"local:{model}"
        self._generator: LocalGenerator | None = None
        self._model: PreTrainedModel | None = None
        self._tokenizer: PreTrainedTokenizerBase | None = None

    def check(self) -> None:
        """Load the model now (ModelSourceError names a wrong path and what to pass instead)."""
        self._load()

    def _load(self) -> LocalGenerator:
        if self._generator is None:
            from core.decoding.completions import LocalGenerator
            from core.model_source import load_base_model

            device = pick_device(self.device)
            model, tokenizer = load_base_model(
                self.model_name, self.home, dtype=pick_dtype(self.dtype, device),
                device_map=None if device == "cpu" else device, say=self.say,
            )
            if getattr(tokenizer, "chat_template", None) is None:
                raise ValueError(
                    f"Judge model '{self.model_name}' has no chat template, so rubric prompts cannot be "
                    "formatted for it: use an instruction-tuned (chat) model."
                )
            self._model, self._tokenizer = model.eval(), tokenizer
            self._generator = LocalGenerator(model, tokenizer, batch_size=self.batch_size, model_id=self.model_name)
        return self._generator

    def score_labels(self, conversations: list[Conversation], labels: Sequence[str], *, prefix: str) -> list[dict[str, float]]:
        """Each label's exact probability as the reply's continuation after `prefix` (a verdict
        key such as 'VERDICT:'); labels are scored with a leading space, as a model writes them
        after the colon, and returned under their own names."""
        from core.decoding.label_scores import score_labels

        self._load()
        assert self._model is not None and self._tokenizer is not None
        spaced = [" " + label for label in labels]
        scores = score_labels(self._model, self._tokenizer, conversations, spaced, prefix=prefix, batch_size=self.batch_size)
        return [{label: score[" " + label] for label in labels} for score in scores]

    def complete(
        self, conversations: list[Conversation], *, max_new_tokens: int, temperature: float, seed: int | None,
        reply_prefix: str = "", stop: tuple[str, ...] = (),
    ) -> list[str]:
        requests = [
            CompletionRequest(
                messages=conversation, max_new_tokens=max_new_tokens, temperature=temperature,
                seed=None if seed is None else seed + index, response_prefix=reply_prefix, stop=list(stop),
            )
            for index, conversation in enumerate(conversations)
        ]
        return [completion.text for completion in complete_all(self._load(), requests)]


class HttpChatBackend:
    """Any OpenAI-compatible chat-completions endpoint, `concurrency` requests in flight.

    The API key is read from the environment variable `api_key_env` when the client is first
    needed (check() or the first call), never stored in configs.
    """

    def __init__(
        self, url: str, model_name: str, *, api_key_env: str | None = None, concurrency: int = 8,
        timeout: float = 120.0, retries: int = 2,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency={concurrency!r} is out of range: use an integer >= 1.")
        self.url, self.model_name, self.api_key_env = url, model_name, api_key_env
        self.concurrency, self.timeout, self.retries = concurrency, timeout, retries
        self.id = f"{url.rstrip('/')}#{model_name}"
        self._client: OpenAIChatClient | None = None
        self.logprobs_offered: bool | None = None
        """None until the first logprob request; False once the server refused or ignored them."""

    def _get_client(self) -> OpenAIChatClient:
        if self._client is None:  # raises EndpointError when the key variable is named but unset
            self._client = OpenAIChatClient(
                self.url, self.model_name, api_key_env=self.api_key_env, timeout=self.timeout, retries=self.retries
            )
        return self._client

    def check(self) -> None:
        """The key variable is set (if named) and one tiny request succeeds, else EndpointError."""
        try:
            self._get_client().check()
        except EndpointError:
            raise
        except Exception as error:  # e.g. a malformed URL that urllib rejects before connecting
            raise EndpointError(f"Could not use the judge endpoint {self.url} ({error}): check the URL, e.g. http://127.0.0.1:8000/v1.") from error

    def complete(
        self, conversations: list[Conversation], *, max_new_tokens: int, temperature: float, seed: int | None,
        reply_prefix: str = "", stop: tuple[str, ...] = (),
    ) -> list[str]:
        if reply_prefix or stop:
            raise ValueError(f"The endpoint {self.url} cannot be made to start its reply with given text: "
                             "verdict_first works with local judges only; turn it off for http judges.")
        requests = [CompletionRequest(messages=conversation, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
                    for conversation in conversations]
        generator = HttpGenerator(self._get_client(), concurrency=self.concurrency)
        return [completion.text for completion in complete_all(generator, requests)]

    def complete_with_logprobs(
        self, conversations: list[Conversation], *, max_new_tokens: int, temperature: float, seed: int | None,
    ) -> list[LogprobReply]:
        """Replies with per-token top logprobs where the server offers them; text only otherwise.

        A server that rejects the logprobs fields (an HTTP error) is asked again without them, and
        remembered, so later calls do not pay for a failing request."""
        client = self._get_client()

        def one(conversation: Conversation) -> LogprobReply:
            if self.logprobs_offered is not False:
                try:
                    return self._logprob_reply(client, conversation, max_new_tokens, temperature, seed)
                except EndpointError:
                    self.logprobs_offered = False
            text, _tokens, _reason = client.chat(conversation, max_tokens=max_new_tokens, temperature=temperature, seed=seed)
            return LogprobReply(text, None)

        with ThreadPoolExecutor(max_workers=min(self.concurrency, max(1, len(conversations)))) as pool:
            return list(pool.map(one, conversations))

    def _logprob_reply(self, client: OpenAIChatClient, conversation: Conversation, max_new_tokens: int,
                       temperature: float, seed: int | None) -> LogprobReply:
        text, content = client.chat_logprobs(conversation, max_tokens=max_new_tokens, top_logprobs=TOP_LOGPROBS,
                                             temperature=temperature, seed=seed)
        tokens = parse_logprobs({"content": content})
        if tokens is None:
            self.logprobs_offered = False
        return LogprobReply(text, tokens)


def parse_logprobs(logprobs: Any) -> list[TokenLogprobs] | None:
    """The OpenAI `choices[0].logprobs` object -> tokens with their top alternatives; None when absent."""
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not content:
        return None
    tokens = []
    for entry in content:
        top = {str(alt["token"]): float(alt["logprob"]) for alt in entry.get("top_logprobs") or []}
        top.setdefault(str(entry["token"]), float(entry["logprob"]))
        tokens.append(TokenLogprobs(str(entry["token"]), top))
    return tokens
