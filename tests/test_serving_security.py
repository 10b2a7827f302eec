"""The OpenAI-compatible server under hostile or careless clients (issue 19, point 2): API key,
limits that answer 400 naming the limit, input errors that are never a 500, a disconnected
client's generation stopping, and SIGTERM ending a busy server within seconds."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.decoding.chain_programs import GenerationSettings
from core.decoding.subjects import BaseSubject, ChatSubject
from core.serving.access import ServeAccessError, check_exposure, resolve_api_key
from core.serving.limits import ServeLimits
from core.serving.server import build_app, start_in_thread
from tests.conftest import load_tiny

KEY = "test-key-0123456789"
ROOT = Path(__file__).resolve().parent.parent
LIMITS = ServeLimits(max_prompt_tokens=64, max_completion_tokens=5000, max_total_tokens=6000, max_body_bytes=64 * 1024)


class CountingSubject(ChatSubject):
    """The tiny base model, counting the events its generations yield (one per token, roughly)."""

    def __init__(self, inner: BaseSubject) -> None:
        super().__init__()
        self.inner, self.label, self.kind, self.tokenizer = inner, "base:tiny", inner.kind, inner.tokenizer
        self.events = 0

    def _generate(self, question, settings, reply):
        for event in self.inner._generate(question, settings, reply):
            self.events += 1
            yield event


@pytest.fixture(scope="module")
def server(tiny_dir) -> Iterator[tuple[str, CountingSubject]]:
    model, tokenizer = load_tiny(tiny_dir)
    subject = CountingSubject(BaseSubject(model, tokenizer, label="base:tiny"))
    url, stop = start_in_thread(build_app(subject, limits=LIMITS, api_key=KEY, defaults=GenerationSettings(max_stage_tokens=4)))
    yield url, subject
    stop()


def call(url: str, body: dict | bytes | None = None, *, key: str | None = KEY, path: str = "/chat/completions") -> tuple[int, dict]:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    request = urllib.request.Request(url + path, data, headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def ask(text: str = "hi", **extra) -> dict:
    return {"messages": [{"role": "user", "content": text}], "max_tokens": 2, **extra}


# ---- the key ----------------------------------------------------------------------------------
@pytest.mark.parametrize("key", [None, "wrong-key-0123456789"])
def test_without_the_key_every_route_answers_401(server, key):
    url, _ = server
    for path, body in (("/chat/completions", ask()), ("/models", None)):
        status, reply = call(url, body, key=key, path=path)
        assert status == 401 and reply["error"]["type"] == "authentication_error", reply


def test_with_the_key_the_server_answers(server):
    url, _ = server
    assert call(url, ask())[0] == 200
    status, models = call(url, path="/models")
    assert status == 200 and models["data"][0]["mote_limits"]["max_prompt_tokens"] == 64


def test_the_key_comes_from_flag_file_or_environment(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n", encoding="utf-8")
    assert resolve_api_key(api_key_file=key_file, environ={}) == KEY
    assert resolve_api_key(environ={"MOTE_API_KEY": KEY}) == KEY
    assert resolve_api_key(environ={}) is None
    with pytest.raises(ServeAccessError, match="shorter than 8"):
        resolve_api_key("short", environ={})
    with pytest.raises(ServeAccessError, match="cannot read it"):
        resolve_api_key(api_key_file=tmp_path / "missing", environ={})


def test_a_server_beyond_loopback_needs_a_key(tmp_path, capsys, monkeypatch):
    from launch import main

    monkeypatch.delenv("MOTE_API_KEY", raising=False)
    check_exposure("127.0.0.1", None)
    check_exposure("::1", None)
    check_exposure("0.0.0.0", KEY)
    # refused before the (missing) model is even looked at
    assert main(["--home", str(tmp_path), "serve", "--run", str(tmp_path / "missing"), "--host", "0.0.0.0"]) == 2
    assert "needs an API key" in capsys.readouterr().err


# ---- limits and input errors: 400 (413 for the body), never 500 ---------------------------------
@pytest.mark.parametrize("body, status, param, words", [
    (ask("word " * 200), 400, "messages", "max_prompt_tokens limit of 64"),
    (ask(max_tokens=5001), 400, "max_tokens", "max_completion_tokens limit of 5000"),
    (ask(max_stage_tokens=5001), 400, "max_stage_tokens", "max_completion_tokens limit of 5000"),
    (ask(seed=10**30), 400, "seed", "less than or equal to 9223372036854775807"),
    (ask(seed=-10**30), 400, "seed", "greater than or equal to"),
    (ask("\ud800 lone surrogate"), 400, "messages", "unpaired surrogate"),
    (ask(stop=["\udfff"]), 400, "stop", "unpaired surrogate"),
])
def test_limits_and_bad_input_get_400_naming_the_problem(server, body, status, param, words):
    url, _ = server
    got, reply = call(url, json.dumps(body).encode())
    assert got == status, reply
    assert reply["error"]["type"] == "invalid_request_error" and words in reply["error"]["message"], reply
    assert reply["error"]["param"] == param


def test_the_total_limit_counts_prompt_and_every_stage_budget(tiny_dir):
    from core.decoding.subjects import MoteSubject
    from tests.test_generation import trained_looking_mote

    subject = MoteSubject(trained_looking_mote(tiny_dir), label="mote:tiny")
    url, stop = start_in_thread(build_app(subject, limits=ServeLimits(max_prompt_tokens=50, max_total_tokens=100)))
    try:  # three stages of 40 (+ markers) are over 100, the answer alone is not
        status, reply = call(url, ask(max_tokens=40, max_stage_tokens=40), key=None)
        assert status == 400 and "max_total_tokens limit of 100" in reply["error"]["message"], reply
        assert call(url, ask(max_tokens=2, max_stage_tokens=40, mote_path="answer"), key=None)[0] == 200
    finally:
        stop()


def test_an_oversized_body_gets_413_before_it_is_read(server):
    url, _ = server
    status, reply = call(url, ask("x" * 70_000))
    assert status == 413 and "limit of 65536 bytes" in reply["error"]["message"]


# ---- a client that leaves stops its generation --------------------------------------------------
def _start_request(url: str, body: dict) -> socket.socket:
    parts = urllib.parse.urlsplit(url)
    data = json.dumps(body).encode()
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    sock.sendall(f"POST {parts.path}/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 f"Authorization: Bearer {KEY}\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
    return sock


def _wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("streamed", [False, True])
def test_a_disconnected_client_stops_its_generation(server, streamed):
    url, subject = server
    before = subject.events
    sock = _start_request(url, ask(max_tokens=4000, stream=streamed))  # minutes of greedy decoding if left alone
    _wait_for(lambda: subject.events > before + 3)
    sock.close()
    _wait_for(lambda: not subject._lock.locked(), timeout=15)
    settled = subject.events
    time.sleep(1.0)
    assert subject.events == settled, "generation went on after the client left"
    assert call(url, ask())[0] == 200


# ---- SIGTERM ends a busy server -----------------------------------------------------------------
def test_sigterm_on_a_busy_server_exits_within_10_seconds(tiny_dir, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    command = [sys.executable, "launch.py", "--home", str(tmp_path), "serve", "--run", f"base:{tiny_dir}",
               "--port", str(port), "--max-completion-tokens", "8000"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "MOTE_API_KEY": KEY})
    try:
        _wait_for(lambda: _ready(url) or process.poll() is not None, timeout=180)
        assert process.poll() is None, process.stdout.read()
        answers: list[int] = []
        busy = threading.Thread(target=lambda: answers.append(_status_or_closed(url, ask(max_tokens=8000))), daemon=True)
        busy.start()
        time.sleep(2.0)  # the long generation is running (and a second client waits for the model)
        waiting = _start_request(url, ask(max_tokens=8000, stream=True))
        time.sleep(0.5)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(10)
        assert time.monotonic() - started < 10
        busy.join(10)
        assert answers in ([503], [0]), (answers, process.stdout.read()[-3000:])  # told the server stopped, or cut off
        waiting.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)


def _ready(url: str) -> bool:
    try:
        return call(url, path="/models")[0] == 200
    except (urllib.error.URLError, ConnectionError):
        return False


def _status_or_closed(url: str, body: dict) -> int:
    try:
        return call(url, body)[0]
    except (urllib.error.URLError, ConnectionError, json.JSONDecodeError):
        return 0
