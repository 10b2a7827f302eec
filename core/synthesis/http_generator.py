"""A client for any OpenAI-compatible chat-completions endpoint (a stronger "teacher" model).

Why the standard library: one POST per request with a JSON body is all we need, and it keeps the
dependency list short. Requests run concurrently on threads; completions are delivered back on
the calling thread, so the pipelines they drive never see two threads. The key is read from an
environment variable named in the config, never stored.
"""
from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from core.decoding.completions import Completion, CompletionRequest


class EndpointError(RuntimeError):
    """The endpoint could not be used; the message says what to check."""


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """urllib re-sends the Authorization header to wherever a redirect points; the key must only
    reach the URL it was configured (and checked) for, so a redirect is an error instead."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102 - urllib hook
        raise EndpointError(f"{req.full_url} redirected (HTTP {code}) to {newurl}: redirects are not followed, so the "
                            "API key goes only to the configured URL; configure the final URL instead.")


_OPENER = urllib.request.build_opener(_RefuseRedirects)


class OpenAIChatClient:
    """Minimal chat-completions client with bounded retries."""

    def __init__(self, base_url: str, model: str, *, api_key_env: str | None = None, timeout: float = 120.0, retries: int = 2) -> None:
        self.base_url = base_url.rstrip("/")
        self.model, self.timeout, self.retries = model, timeout, retries
        self.api_key = None
        if api_key_env:
            self.api_key = os.environ.get(api_key_env)
            if not self.api_key:
                raise EndpointError(f"The API key variable {api_key_env} is not set: export {api_key_env}=... before starting.")

    def chat(self, messages: list[dict[str, str]], *, max_tokens: int, temperature: float = 0.0, top_p: float = 1.0, stop: list[str] | None = None, seed: int | None = None) -> tuple[str, int, str]:
        """(text, completion tokens, finish reason) of one chat completion."""
        body = {"model": self.model, "messages": messages, "max_tokens": max_tokens, "temperature": temperature, "top_p": top_p}
        if stop:
            body["stop"] = stop[:4]
        if seed is not None:
            body["seed"] = seed
        data = self._post("/chat/completions", body)
        try:
            choice = data["choices"][0]
            tokens = int(data.get("usage", {}).get("completion_tokens") or 0)
            return choice["message"]["content"] or "", tokens, choice.get("finish_reason") or "stop"
        except (KeyError, IndexError, TypeError):
            raise EndpointError(f"{self.base_url} answered without choices[0].message.content: is it OpenAI-compatible?") from None

    def chat_logprobs(self, messages: list[dict[str, str]], *, max_tokens: int, top_logprobs: int = 10,
                      temperature: float = 0.0, seed: int | None = None) -> tuple[str, list[dict] | None]:
        """(text, logprobs.content) of one completion (greedy by default); content is None when the
        server does not return logprobs (callers then parse the text strictly). Used by the safety
        checker of self-generation and by HTTP judges that read label probabilities."""
        body: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": max_tokens,
                                "temperature": temperature, "logprobs": True, "top_logprobs": top_logprobs}
        if seed is not None:
            body["seed"] = seed
        data = self._post("/chat/completions", body)
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise EndpointError(f"{self.base_url} answered without choices[0].message.content: is it OpenAI-compatible?") from None
        content = (choice.get("logprobs") or {}).get("content")
        return text, content if isinstance(content, list) and content else None

    def check(self) -> None:
        """Fail fast: one tiny request, before any long run starts."""
        self.chat([{"role": "user", "content": "Say OK."}], max_tokens=2)

    def _post(self, path: str, body: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.base_url + path, json.dumps(body).encode(), headers)
        last_error: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                with _OPENER.open(request, timeout=self.timeout) as response:
                    return json.loads(response.read().decode("utf-8"))
            except urllib.error.HTTPError as error:
                if error.code in (401, 403):
                    raise EndpointError(f"{self.base_url} refused the key (HTTP {error.code}): check api_key_env.") from None
                if error.code == 404:
                    raise EndpointError(f"{self.base_url}{path} was not found (HTTP 404): the URL should end in /v1.") from None
                last_error = error
            except (urllib.error.URLError, TimeoutError, ConnectionError, json.JSONDecodeError) as error:
                last_error = error
            time.sleep(min(2.0**attempt * 0.2, 5.0))
        raise EndpointError(f"Could not reach {self.base_url} after {self.retries + 1} tries ({last_error}): check the URL and that the server runs.")


class HttpGenerator:
    """TextGenerator over an OpenAI-compatible endpoint, `concurrency` requests in flight."""

    #: A chat endpoint cannot be made to continue a given response prefix, so the pipeline gives
    #: it no answer openings (see core.synthesis.pipeline).
    continues_prefix = False

    def __init__(self, client: OpenAIChatClient, *, concurrency: int = 8) -> None:
        self.client, self.concurrency = client, concurrency
        self.id = f"openai:{client.base_url}#{client.model}"

    def _complete(self, request: CompletionRequest) -> Completion:
        text, tokens, reason = self.client.chat(
            request.messages, max_tokens=request.max_new_tokens, temperature=request.temperature,
            top_p=request.top_p, stop=request.stop, seed=request.seed,
        )
        if request.response_prefix and not text.lstrip().lower().startswith(request.response_prefix.lower()):
            text = "\n" + text  # the endpoint could not be given the prefix: keep its own lines apart
        elif request.response_prefix:
            text = text.lstrip()[len(request.response_prefix):]
        return Completion(text, tokens, reason)

    def run(self, next_request, deliver, should_stop) -> None:
        in_flight: dict[Future, CompletionRequest] = {}
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            while True:
                while len(in_flight) < self.concurrency and not should_stop():
                    request = next_request()
                    if request is None:
                        break
                    in_flight[pool.submit(self._complete, request)] = request
                if not in_flight:
                    return
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    deliver(in_flight.pop(future), future.result())
