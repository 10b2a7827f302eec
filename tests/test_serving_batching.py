"""Continuous batching in the server (issue 19, point 2): concurrent requests decode together on the
one scheduler, a client that leaves ends only its own row, and greedy replies decoded in a batch
equal the replies decoded alone.

Overlap is made certain, not timed: the test holds the subject (`decoding()`) while it submits,
so the decode thread waits for the model with every request queued, then takes them together.
"""
from __future__ import annotations

import json
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from core.decoding.chain_programs import GenerationSettings
from core.decoding.subjects import BaseSubject, BatchingSubject, MoteSubject, SubjectReply
from core.serving.batcher import GenerationStopped, ServingBatcher
from core.serving.server import build_app, start_in_thread
from core.stages import ChainShape
from tests.conftest import load_tiny
from tests.test_generation import trained_looking_mote

QUESTIONS = ["Is this safe?", "How do I bake bread for a large family dinner?", "Why?"]


@pytest.fixture(scope="module")
def mote_subject(tiny_dir) -> MoteSubject:
    return MoteSubject(trained_looking_mote(tiny_dir), label="mote:tiny")


@pytest.fixture(scope="module")
def served(mote_subject) -> Iterator[tuple[str, ServingBatcher]]:
    app = build_app(mote_subject, model_id="tiny-mote", batch_size=4)
    url, stop = start_in_thread(app)
    yield url, app.state.batcher
    stop()


def _wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url + "/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.status, json.loads(response.read())


def _chain(question: str, **extra) -> dict:
    return {"messages": [{"role": "user", "content": question}], "mote_path": "analysis->guidance->answer",
            "max_stage_tokens": 6, "max_tokens": 5, **extra}


def _in_thread(results: dict, name: str, call: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=lambda: results.__setitem__(name, call()), daemon=True)
    thread.start()
    return thread


def test_two_concurrent_requests_both_finish_in_one_batch(served, mote_subject):
    url, batcher = served
    before = batcher.stats()
    results: dict[str, tuple[int, dict]] = {}
    with mote_subject.decoding():  # the decode thread waits for the model until both are queued
        threads = [_in_thread(results, q, lambda q=q: _post(url, _chain(q))) for q in QUESTIONS[:2]]
        _wait_for(lambda: batcher.stats().waiting == 2)
    for thread in threads:
        thread.join(120)
    after = batcher.stats()
    assert after.max_rows >= 2, after  # both rows ran in one forward
    assert after.finished - before.finished == 2 and after.rows_now == 0 and after.waiting == 0
    for question in QUESTIONS[:2]:
        status, body = results[question]
        assert status == 200 and body["choices"][0]["message"]["mote"]["shape"] == "analysis->guidance->answer"


def _send_raw(url: str, body: dict) -> socket.socket:
    """POST `body` over a bare socket, so the test can hang up whenever it likes."""
    parts = urllib.parse.urlsplit(url)
    data = json.dumps(body).encode()
    sock = socket.create_connection((parts.hostname, parts.port), timeout=60)
    sock.sendall(f"POST {parts.path}/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    return sock


@pytest.mark.parametrize("streamed", [True, False])
def test_a_disconnected_client_stops_its_row_while_another_request_finishes(served, mote_subject, streamed):
    url, batcher = served
    before = batcher.stats()
    results: dict[str, tuple[int, dict]] = {}
    with mote_subject.decoding():
        # about 9000 tokens if left alone: minutes on the tiny model
        leaving = _send_raw(url, _chain(QUESTIONS[0], stream=streamed, max_stage_tokens=3000, max_tokens=3000))
        _wait_for(lambda: batcher.stats().waiting == 1)
        short = _in_thread(results, "short", lambda: _post(url, _chain(QUESTIONS[1], max_stage_tokens=40, max_tokens=40)))
        _wait_for(lambda: batcher.stats().waiting == 2)
    if streamed:
        assert leaving.recv(4096).startswith(b"HTTP/1.1 200")  # its first chunk: the long row runs
    else:
        _wait_for(lambda: batcher.stats().forwards > before.forwards + 3)
    leaving.close()
    short.join(120)
    assert results["short"][0] == 200
    _wait_for(lambda: batcher.stats().rows_now == 0, timeout=20)  # the long row ended, minutes early
    after = batcher.stats()
    assert after.cancelled - before.cancelled == 1 and after.finished - before.finished == 1, after
    assert after.max_rows >= 2


def _answers_through(batcher: ServingBatcher, subject: BatchingSubject, prompts: list[str],
                     settings: GenerationSettings) -> list[SubjectReply]:
    """Every prompt submitted at once (queued while the test holds the model), read on threads."""
    replies = [SubjectReply() for _ in prompts]
    streams = [batcher.open(prompt, settings, reply=reply) for prompt, reply in zip(prompts, replies)]
    readers: dict[str, object] = {}
    with subject.decoding():
        threads = [_in_thread(readers, str(i), lambda s=s: list(s)) for i, s in enumerate(streams)]
        _wait_for(lambda: batcher.stats().waiting == len(prompts))
    for thread in threads:
        thread.join(120)
    assert len(readers) == len(prompts)
    return replies


def _tokens_and_texts(reply: SubjectReply) -> list[tuple[str, str, int]]:
    return [(s.stage.name, s.text, s.tokens) for s in reply.stages]


@pytest.mark.parametrize("kind", ["mote", "base"])
def test_greedy_batched_replies_equal_the_lone_replies(tiny_dir, mote_subject, kind):
    if kind == "mote":
        subject: BatchingSubject = mote_subject
        settings = GenerationSettings(max_stage_tokens=12, path=ChainShape.FULL)
    else:
        model, tokenizer = load_tiny(tiny_dir)
        subject = BaseSubject(model, tokenizer, label="base:tiny")
        settings = GenerationSettings(max_stage_tokens=24)
    batcher = ServingBatcher(subject, batch_size=4)
    try:
        lone = [subject.answer(question, settings) for question in QUESTIONS]  # the one-at-a-time path
        together = _answers_through(batcher, subject, QUESTIONS, settings)
        assert batcher.stats().max_rows == len(QUESTIONS)
        assert [_tokens_and_texts(r) for r in together] == [_tokens_and_texts(r) for r in lone]
        assert [(r.prompt_tokens, r.completion_tokens, r.shape) for r in together] == \
               [(r.prompt_tokens, r.completion_tokens, r.shape) for r in lone]
        alone = _answers_through(batcher, subject, QUESTIONS[:1], settings)[0]  # a batch of one
        assert _tokens_and_texts(alone) == _tokens_and_texts(lone[0])
    finally:
        batcher.close()


def test_batch_size_one_decodes_one_request_at_a_time(mote_subject):
    batcher = ServingBatcher(mote_subject, batch_size=1)
    try:
        replies = _answers_through(batcher, mote_subject, QUESTIONS[:2], GenerationSettings(max_stage_tokens=4))
        assert batcher.stats().max_rows == 1 and all(reply.answer is not None and reply.stages for reply in replies)
    finally:
        batcher.close()


def test_stopping_ends_every_row_and_readers_are_told(mote_subject):
    stopping = threading.Event()
    batcher = ServingBatcher(mote_subject, batch_size=4, stopping=stopping)
    try:
        streams = [batcher.open(q, GenerationSettings(max_stage_tokens=3000), reply=SubjectReply()) for q in QUESTIONS[:2]]
        next(streams[0])  # the first row is decoding ...
        next(streams[1])  # ... and the second joined the running batch
        _wait_for(lambda: batcher.stats().max_rows == 2)
        stopping.set()
        for stream in streams:
            with pytest.raises(GenerationStopped):
                for _ in stream:
                    pass
        _wait_for(lambda: batcher.stats().rows_now == 0, timeout=10)
        assert batcher.stats().stopped == 2
        with pytest.raises(GenerationStopped):  # refused at once while stopping
            next(batcher.open(QUESTIONS[0], reply=SubjectReply()))
    finally:
        batcher.close()


def test_the_serve_verb_rejects_a_batch_size_below_one(tmp_path, capsys):
    from launch import main

    assert main(["--home", str(tmp_path), "serve", "--run", "base:x", "--batch-size", "0"]) == 2
    assert "--batch-size 0 is out of range" in capsys.readouterr().err
