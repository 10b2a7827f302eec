"""Serve a chat subject (a MoTE run, a baseline run or a base model) as an OpenAI-compatible API.

Why: any OpenAI client, evaluation harness or chat UI can then talk to a trained model, and see
its chain, without knowing MoTE. Start it with `python launch.py serve --run RUN`; clients use
base URL http://HOST:PORT/v1.

Endpoints
    GET  /v1/models            {"object": "list", "data": [{"id": MODEL_ID, "object": "model", ...}]}
    POST /v1/chat/completions  the OpenAI chat-completions body

Request (OpenAI fields)
    messages       the last "user" message is the question; "system"/"developer" messages become
                   the system prompt; earlier turns are not replayed (a chain answers one question)
    model          echoed back; one model is served, so any value is accepted
    max_tokens / max_completion_tokens   token limit of the answer stage (the `content`)
    temperature    default 0 (greedy, reproducible) — OpenAI's default is 1
    top_p, seed    as in OpenAI; the same seed gives the same reply
    stop           up to 4 strings, applied to the answer text (content stops before the first one)
    n              must be 1
    stream, stream_options.include_usage   as in OpenAI
Request (MoTE extensions, optional)
    mote_path         "answer" | "analysis->answer" | "analysis->guidance->answer" forces the chain
                      shape; null or absent lets the model choose its own path
    max_stage_tokens  token limit of each stage before the answer (and of the answer when
                      max_tokens is absent); default: the server's (`serve --max-stage-tokens`)

Non-streaming response: a standard "chat.completion" object, and in choices[0].message
    content            the final answer only
    reasoning_content  the stages before the answer, each under its label, e.g.
                       "[analysis]\\n...\\n\\n[guidance]\\n..." (the vLLM / DeepSeek convention);
                       null when the model answered directly or is a plain base model
    mote               {"shape": "analysis->answer" | ... | null (no markers: base model, SFT),
                        "stages": [{"stage": "analysis", "expert": "analysis + shared",
                                    "text": "...", "tokens": 41}, ...]}  (texts before `stop`)
usage holds prompt_tokens, completion_tokens (every generated token, markers included),
total_tokens and completion_tokens_details.reasoning_tokens. finish_reason is "length" when the
answer hit its token limit, else "stop".

Streaming response (server-sent events): lines `data: {chat.completion.chunk}` separated by a
blank line, ending with `data: [DONE]`. The first chunk's delta has role "assistant". Every chunk
of a stage carries delta.mote_stage ("analysis", "guidance", "answer") and delta.mote_expert;
earlier stages' text arrives in delta.reasoning_content (a stage opens with its "[analysis]\\n"
label, so the concatenation equals the non-streaming reasoning_content), the answer's text in
delta.content. Then a chunk with an empty delta and the finish_reason, then (with
stream_options.include_usage) a chunk with "choices": [] and "usage". An error after the
stream began arrives as `data: {"error": {...}}` before [DONE].

Errors: HTTP 400 (bad request, including a request over a limit), 401 (missing or wrong API
key), 404, 413 (body too large), 503 (the server is stopping) or 500 with {"error": {"message":
..., "type": "invalid_request_error" | "authentication_error" | "not_found_error" |
"server_error", "param": ..., "code": null}}.

Access and limits (core/serving/access.py, core/serving/limits.py): with an API key set, every
request needs `Authorization: Bearer KEY`; a server on a non-loopback address must have one.
Prompt tokens, per-stage token limits and prompt + budget are bounded (ServeLimits; GET
/v1/models shows them as `mote_limits`).

Concurrent requests decode together (continuous batching, core/serving/batcher.py): a new
request joins the running batch at the next token, up to `serve --batch-size` rows (default 8);
more wait for a free row. A request alone gets exactly the reply it got one at a time. A client
that disconnects stops its own row at the next token, the others go on; SIGTERM (or Ctrl+C) stops
every generation at its next token, answers 503 (or an error event on a stream) and exits.
Subjects without a batched form (core.decoding.subjects.BatchingSubject) answer one request at a
time (the subject's lock).
"""
from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import anyio
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.decoding.chain_programs import GenerationSettings, StageEvent, StageEventKind
from core.serving.access import BodyTooLarge, GuardMiddleware, check_exposure
from core.serving.batcher import DEFAULT_BATCH_SIZE, GenerationStopped, ServingBatcher
from core.serving.limits import ServeLimits, check_request, describe
from core.serving.schema import (
    ChatCompletionRequest,
    RequestError,
    StopScanner,
    chunk_body,
    completion_body,
    error_body,
    reasoning_header,
    stage_name,
    usage,
)
from core.stages import Stage
from core.decoding.subjects import BatchingSubject, ChatSubject, PromptError, SubjectReply

log = logging.getLogger(__name__)
DONE = "data: [DONE]\n\n"


STOPPING_MESSAGE = "The server is shutting down; the generation was stopped. Retry against a running server."


def build_app(subject: ChatSubject, *, model_id: str | None = None, defaults: GenerationSettings | None = None,
              limits: ServeLimits | None = None, api_key: str | None = None,
              stopping: threading.Event | None = None, batch_size: int = DEFAULT_BATCH_SIZE) -> FastAPI:
    """The FastAPI app serving `subject` under `model_id` (default: the subject's label).

    `defaults` are the decoding settings a request starts from (e.g. the server's max_stage_tokens);
    `limits` bound each request; `api_key` (if set) is required on every request; setting
    `stopping` (also at app.state.stopping) ends every generation at its next token. Up to
    `batch_size` requests decode together (app.state.batcher; None for a subject without a
    batched form, whose requests run one at a time); close the batcher when the app is done.
    """
    model_id = model_id or subject.label
    limits = limits or ServeLimits()
    stopping = stopping or threading.Event()
    batcher = ServingBatcher(subject, batch_size=batch_size, stopping=stopping) if isinstance(subject, BatchingSubject) else None
    open_reply: Callable[..., Iterator[StageEvent]] = batcher.open if batcher is not None else subject.stream
    app = FastAPI(title="MoTE Studio OpenAI-compatible server", description=__doc__)
    app.state.stopping, app.state.batcher = stopping, batcher
    app.add_middleware(GuardMiddleware, api_key=api_key, max_body_bytes=limits.max_body_bytes)
    started = int(time.time())
    _add_error_handlers(app)

    @app.get("/v1/models")
    def list_models() -> dict[str, Any]:
        card = {"id": model_id, "object": "model", "created": started, "owned_by": "mote-studio",
                "mote_kind": subject.kind.value, "mote_limits": describe(limits)}
        return {"object": "list", "data": [card]}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> dict[str, Any] | JSONResponse | StreamingResponse:
        ids = {"request_id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model_id": model_id}
        reply = SubjectReply()
        messages, settings = body.chat_messages(), body.settings(defaults)

        def open_checked() -> Iterator[StageEvent]:
            """Prompt errors, then limits, raise here (tokenizing: off the event loop); nothing runs yet."""
            events = open_reply(messages, settings, reply=reply)
            try:
                check_request(limits, subject, messages, settings)
            except BaseException:
                events.close()
                raise
            return events

        events = await anyio.to_thread.run_sync(open_checked)
        if body.stream:
            chunks = _sse_lines(events, reply, body, ids, stopping.is_set)
            return StreamingResponse(_in_threads(chunks), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        if not await _drain(events, request, stopping):
            return JSONResponse(error_body(STOPPING_MESSAGE, kind="server_error"), status_code=503)
        return completion_body(reply, stops=body.stop_strings(), **ids)

    return app


async def _drain(events: Iterator[StageEvent], request: Request, stopping: threading.Event) -> bool:
    """Run a non-streamed generation token by token on worker threads; False when it was cut
    short because the client left or the server is stopping (a sync loop would run on regardless)."""
    try:
        while True:
            if stopping.is_set() or await request.is_disconnected():
                return False
            if await anyio.to_thread.run_sync(next, events, None) is None:
                return True
    except GenerationStopped:
        return False
    finally:
        try:
            events.close()  # frees the row (batched) or the subject's lock at once
        except ValueError:
            # Shutdown cancelled this request while a worker thread was inside next(): the
            # generator cannot be closed from here; it stops at its next token (`stopping`) and is
            # collected with the request.
            pass


def _add_error_handlers(app: FastAPI) -> None:
    """Every error leaves as an OpenAI error object, validation errors as HTTP 400 (not 422)."""

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, error: RequestValidationError) -> JSONResponse:
        message, param = _describe_invalid(error.errors())
        return JSONResponse(error_body(message, param=param), status_code=400)

    @app.exception_handler(RequestError)
    async def bad_request(request: Request, error: RequestError) -> JSONResponse:
        return JSONResponse(error_body(str(error), param=error.param), status_code=400)

    @app.exception_handler(PromptError)
    async def bad_prompt(request: Request, error: PromptError) -> JSONResponse:
        return JSONResponse(error_body(str(error), param="messages"), status_code=400)

    @app.exception_handler(BodyTooLarge)
    async def body_too_large(request: Request, error: BodyTooLarge) -> JSONResponse:
        return JSONResponse(error_body(str(error)), status_code=413)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if error.status_code == 404 else "invalid_request_error"
        return JSONResponse(error_body(f"{request.method} {request.url.path}: {error.detail}", kind=kind), status_code=error.status_code)

    @app.exception_handler(Exception)
    async def server_error(request: Request, error: Exception) -> JSONResponse:
        log.exception("chat completion failed")
        return JSONResponse(error_body(f"{type(error).__name__}: {error}", kind="server_error"), status_code=500)


def _describe_invalid(errors: Sequence[dict[str, Any]]) -> tuple[str, str | None]:
    """(message naming each bad field, the first bad top-level field) of pydantic's errors."""
    if any(e.get("type") == "json_invalid" for e in errors):
        return "The request body is not valid JSON: send a JSON object (Content-Type: application/json).", None
    problems = [f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in errors]
    first = errors[0]["loc"] if errors else ()
    return "Invalid request: " + "; ".join(problems), (str(first[1]) if len(first) > 1 else None)


class _DeltaWriter:
    """Turns StageEvents into chunk deltas (reasoning_content / content, tagged with the stage)."""

    def __init__(self, stops: list[str]) -> None:
        self.scanner = StopScanner(stops)
        self.role_sent = self.reasoned = False
        self.sent = ""

    def deltas(self, event: StageEvent) -> Iterator[dict[str, Any]]:
        answer = event.stage is Stage.ANSWER
        if event.kind is StageEventKind.START:
            self.sent = ""
            if answer:
                yield self._tag({"content": ""}, event)
            else:
                yield self._tag({"reasoning_content": reasoning_header(event.stage, not self.reasoned)}, event)
                self.reasoned = True
            return
        # An end event carries the stage's whole text: send what streaming held back, if anything.
        text = event.text if event.kind is StageEventKind.TEXT else (event.text[len(self.sent):] if event.text.startswith(self.sent) else "")
        self.sent += text
        if answer:
            text = self.scanner.feed(text) + (self.scanner.flush() if event.kind is StageEventKind.END else "")
        if text:
            yield self._tag({"content" if answer else "reasoning_content": text}, event)

    def _tag(self, delta: dict[str, Any], event: StageEvent) -> dict[str, Any]:
        if not self.role_sent:
            delta, self.role_sent = {"role": "assistant", **delta}, True
        return {**delta, "mote_stage": stage_name(event.stage), "mote_expert": event.expert}


def _sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def _sse_lines(events: Iterator[StageEvent], reply: SubjectReply, body: ChatCompletionRequest, ids: dict[str, Any],
               stopping: Callable[[], bool] = lambda: False) -> Iterator[str]:
    """The SSE lines of one streamed completion; generation stops at a stop string, or when `stopping()`."""
    writer = _DeltaWriter(body.stop_strings())
    try:
        for event in events:
            if stopping():
                yield _sse(error_body(STOPPING_MESSAGE, kind="server_error"))
                yield DONE
                return
            for delta in writer.deltas(event):
                yield _sse(chunk_body(delta, **ids))
            if writer.scanner.stopped:
                break
    except GenerationStopped:
        yield _sse(error_body(STOPPING_MESSAGE, kind="server_error"))
        yield DONE
        return
    except Exception as error:  # the 200 status is sent already: report in the stream
        log.exception("streamed chat completion failed")
        yield _sse(error_body(f"{type(error).__name__}: {error}", kind="server_error"))
        yield DONE
        return
    finally:
        events.close()  # ends generation early (stop string, client gone): frees its row or the subject
    finish = "stop" if writer.scanner.stopped else reply.finish_reason
    yield _sse(chunk_body({}, finish_reason=finish, **ids))
    if body.include_usage():
        yield _sse({**chunk_body({}, **ids), "choices": [], "usage": usage(reply)})
    yield DONE


async def _in_threads(lines: Iterator[str]) -> AsyncIterator[str]:
    """Run the blocking generator step by step on worker threads, closing it however we leave."""
    try:
        while True:
            line = await anyio.to_thread.run_sync(next, lines, None)
            if line is None:
                return
            yield line
    finally:
        lines.close()


def base_url(host: str, port: int) -> str:
    """The base URL to give OpenAI clients, e.g. http://127.0.0.1:8000/v1."""
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/v1"


def _bound_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise RuntimeError(f"Cannot listen on {host}:{port} ({error.strerror}): pick another --port, or stop what uses it.") from None
    return sock


def check_port(host: str, port: int) -> None:
    """Fail before a model is loaded when the address cannot be served."""
    _bound_socket(host, port).close()


def start_in_thread(app: FastAPI, host: str = "127.0.0.1", port: int = 0, *, timeout: float = 30.0) -> tuple[str, Callable[[], None]]:
    """Run `app` with uvicorn on a background thread: (base URL ending in /v1, stop function).

    port 0 picks a free port. For tests and embedding (the UI, a judge run against a served model).
    """
    sock = _bound_socket(host, port)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"mote-serve-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"The server on {host}:{port} did not start within {timeout:.0f} s; see the log above.")
        time.sleep(0.02)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
        if getattr(app.state, "batcher", None) is not None:
            app.state.batcher.close()

    return base_url(host, port), stop


#: Seconds SIGTERM waits for in-flight requests (each stops at its next token) before cancelling them.
SHUTDOWN_GRACE_S = 3


class _StoppingServer(uvicorn.Server):
    """uvicorn's server, which also tells every generation to stop when a signal asks it to exit
    (uvicorn alone waits for in-flight requests, and a long generation never ends by itself)."""

    def __init__(self, config: uvicorn.Config, stopping: threading.Event) -> None:
        super().__init__(config)
        self.stopping = stopping

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.stopping.set()
        super().handle_exit(sig, frame)


def serve_openai_api(
    subject: ChatSubject, host: str = "127.0.0.1", port: int = 8000, *,
    model_id: str | None = None, defaults: GenerationSettings | None = None, log_level: str = "info",
    limits: ServeLimits | None = None, api_key: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
) -> None:
    """Serve `subject` until Ctrl+C or SIGTERM; blocks. Refuses a non-loopback host without `api_key`.
    Up to `batch_size` concurrent requests decode together."""
    check_exposure(host, api_key)
    stopping = threading.Event()
    app = build_app(subject, model_id=model_id, defaults=defaults, limits=limits, api_key=api_key, stopping=stopping,
                    batch_size=batch_size)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=SHUTDOWN_GRACE_S)
    try:
        _StoppingServer(config, stopping).run()
    finally:
        if app.state.batcher is not None:
            app.state.batcher.close()
