"""The OpenAI-compatible server, started for real with uvicorn and spoken to over HTTP."""
from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from core.decoding.chain_programs import GenerationSettings, StageEvent, StageEventKind
from core.synthesis.http_generator import OpenAIChatClient
from core.serving.server import build_app, start_in_thread
from core.serving.schema import StopScanner, cut_at_stop
from core.stages import ChainShape, Stage
from core.decoding.subjects import BaseSubject, ChatSubject, MoteSubject, SubjectKind
from tests.conftest import load_tiny
from tests.test_generation import trained_looking_mote

QUESTION = "Is this safe?"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def mote_server(tiny_dir):
    subject = MoteSubject(trained_looking_mote(tiny_dir), label="mote:tiny")
    url, stop = start_in_thread(build_app(subject, model_id="tiny-mote", defaults=GenerationSettings(max_stage_tokens=8)))
    yield url, subject
    stop()


@pytest.fixture(scope="module")
def base_server(tiny_dir):
    model, tokenizer = load_tiny(tiny_dir)
    url, stop = start_in_thread(build_app(BaseSubject(model, tokenizer, label="base:tiny")))
    yield url
    stop()


def post(url: str, body: dict | bytes) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url + "/chat/completions", data, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def stream(url: str, body: dict) -> list[dict | str]:
    """POST with stream=true over a raw HTTP connection; the parsed `data:` payloads in order."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    connection.request("POST", parts.path + "/chat/completions", json.dumps({**body, "stream": True}), {"Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("content-type").startswith("text/event-stream")
    raw = response.read().decode("utf-8")
    connection.close()
    events = [block for block in raw.split("\n\n") if block]
    assert all(block.startswith("data: ") for block in events), raw
    return [block[6:] if block[6:] == "[DONE]" else json.loads(block[6:]) for block in events]


def chain_body(**extra) -> dict:
    return {"model": "tiny-mote", "messages": [{"role": "user", "content": QUESTION}], "mote_path": "analysis->guidance->answer",
            "max_stage_tokens": 5, "max_tokens": 4, **extra}


def test_models_lists_the_served_model(mote_server):
    url, _ = mote_server
    with urllib.request.urlopen(url + "/models", timeout=30) as response:
        listing = json.loads(response.read())
    assert listing["object"] == "list" and [m["id"] for m in listing["data"]] == ["tiny-mote"]
    assert listing["data"][0]["mote_kind"] == "mote"


def test_the_project_client_gets_the_answer_as_content(mote_server):
    url, subject = mote_server
    client = OpenAIChatClient(url, "tiny-mote", retries=0)
    text, tokens, finish = client.chat([{"role": "system", "content": "Be safe."}, {"role": "user", "content": QUESTION}], max_tokens=3)
    expected = subject.answer([{"role": "system", "content": "Be safe."}, {"role": "user", "content": QUESTION}],
                              GenerationSettings(max_stage_tokens=8, stage_limits={"answer": 3}))
    assert text == expected.answer and tokens == expected.completion_tokens
    assert finish == expected.finish_reason


def test_non_streaming_response_carries_the_chain_in_documented_fields(mote_server):
    url, subject = mote_server
    status, body = post(url, chain_body())
    assert status == 200 and body["object"] == "chat.completion" and body["model"] == "tiny-mote"
    expected = subject.answer(QUESTION, GenerationSettings(max_stage_tokens=5, stage_limits={"answer": 4}, path=ChainShape.FULL))
    texts = expected.stage_texts()
    message = body["choices"][0]["message"]
    assert message["role"] == "assistant" and message["content"] == texts["answer"]
    assert message["reasoning_content"] == f"[analysis]\n{texts['analysis']}\n\n[guidance]\n{texts['guidance']}"
    assert message["mote"]["shape"] == "analysis->guidance->answer"
    assert [(s["stage"], s["expert"], s["text"], s["tokens"]) for s in message["mote"]["stages"]] == [
        (s.stage.name.lower(), s.expert, s.text, s.tokens) for s in expected.stages]
    assert all(1 <= s["tokens"] <= 5 for s in message["mote"]["stages"])
    usage = body["usage"]
    assert usage["prompt_tokens"] == expected.prompt_tokens and usage["completion_tokens"] == expected.completion_tokens
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] == sum(s.tokens for s in expected.reasoning)
    assert body["choices"][0]["finish_reason"] == expected.finish_reason


def test_streaming_sends_stages_as_reasoning_then_content(mote_server):
    url, _ = mote_server
    _, whole = post(url, chain_body())
    payloads = stream(url, chain_body(stream_options={"include_usage": True}))
    assert payloads[-1] == "[DONE]"
    chunks = payloads[:-1]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "tiny-mote" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"] and c["choices"][0]["delta"]]
    assert deltas[0]["role"] == "assistant"
    assert all("mote_stage" in d and "mote_expert" in d for d in deltas)
    stage_order = [d["mote_stage"] for i, d in enumerate(deltas) if i == 0 or d["mote_stage"] != deltas[i - 1]["mote_stage"]]
    assert stage_order == ["analysis", "guidance", "answer"]
    assert all("content" not in d for d in deltas if d["mote_stage"] != "answer")
    assert all("reasoning_content" not in d for d in deltas if d["mote_stage"] == "answer")
    message = whole["choices"][0]["message"]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == message["reasoning_content"]
    assert "".join(d.get("content", "") for d in deltas) == message["content"]
    final = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(final) == 1 and final[0]["choices"][0]["finish_reason"] == whole["choices"][0]["finish_reason"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == whole["usage"]


def test_stop_strings_cut_the_answer_in_both_modes(mote_server):
    url, _ = mote_server
    _, whole = post(url, chain_body(max_tokens=8))
    answer = whole["choices"][0]["message"]["content"]
    assert len(answer) >= 4, "the tiny model's answer is too short to hold a stop string"
    stop = answer[2:4]
    _, cut = post(url, chain_body(max_tokens=8, stop=[stop]))
    assert cut["choices"][0]["message"]["content"] == answer[: answer.index(stop)]
    assert cut["choices"][0]["finish_reason"] == "stop"
    chunks = stream(url, chain_body(max_tokens=8, stop=stop))
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1] if c["choices"]]
    assert "".join(d.get("content", "") for d in deltas) == answer[: answer.index(stop)]


def test_stop_scanner_holds_back_a_possible_stop_across_chunks():
    scanner = StopScanner(["END"])
    assert scanner.feed("abcE") == "abc" and scanner.feed("N") == "" and scanner.feed("x") == "ENx"
    assert scanner.feed("yyEN") == "yy" and scanner.feed("Dzz") == "" and scanner.stopped
    assert cut_at_stop("one two", ["two", "e t"]) == ("on", True) and cut_at_stop("abc", []) == ("abc", False)


def test_a_base_model_answers_without_reasoning(base_server):
    status, body = post(base_server, {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "temperature": 0.8, "seed": 7})
    assert status == 200
    message = body["choices"][0]["message"]
    assert message["reasoning_content"] is None and message["mote"]["shape"] is None
    assert [s["expert"] for s in message["mote"]["stages"]] == ["base"] and message["content"] == message["mote"]["stages"][0]["text"]
    assert body["usage"]["completion_tokens"] <= 5 and body["model"] == "base:tiny"
    assert post(base_server, {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "temperature": 0.8, "seed": 7})[1]["choices"] == body["choices"]
    chunks = stream(base_server, {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "temperature": 0.8, "seed": 7})
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1]]
    assert "".join(d.get("content", "") for d in deltas) == message["content"]
    assert {d["mote_stage"] for d in deltas if d} == {"answer"}


def test_concurrent_requests_each_get_their_own_answer(mote_server):
    url, _ = mote_server
    questions = ["one?", "two?", "three?"]
    bodies = [chain_body(messages=[{"role": "user", "content": q}]) for q in questions]
    expected = [post(url, b)[1]["choices"][0]["message"]["mote"] for b in bodies]
    got: dict[int, dict] = {}
    threads = [threading.Thread(target=lambda i=i: got.__setitem__(i, post(url, bodies[i])[1]["choices"][0]["message"]["mote"])) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [got[i] for i in range(3)] == expected


@pytest.mark.parametrize("body, param, words", [
    (chain_body(n=2), "n", "n=2 is not supported"),
    (chain_body(messages=[]), "messages", "messages"),
    (chain_body(messages=[{"role": "system", "content": "x"}]), "messages", "no message with role 'user'"),
    (chain_body(mote_path="answer->analysis"), "mote_path", "'answer', 'analysis->answer', 'analysis->guidance->answer' or 'guidance->answer'"),
    (chain_body(temperature=-1), "temperature", "greater than or equal to 0"),
    (chain_body(max_tokens=0), "max_tokens", "greater than or equal to 1"),
    (chain_body(stop=["a", "b", "c", "d", "e"]), "stop", "at most 4"),
    (chain_body(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]), "messages", "'image_url'"),
    (b"{not json", None, "not valid JSON"),
])
def test_bad_requests_get_400_with_an_openai_error_object(mote_server, body, param, words):
    url, _ = mote_server
    status, reply = post(url, body)
    assert status == 400, reply
    assert reply["error"]["type"] == "invalid_request_error" and words in reply["error"]["message"]
    if param is not None:
        assert reply["error"]["param"] == param


def test_unknown_routes_get_an_openai_error_object(mote_server):
    url, _ = mote_server
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(url + "/completions-typo", timeout=30)
    assert caught.value.code == 404
    assert json.loads(caught.value.read())["error"]["type"] == "not_found_error"


def test_a_client_leaving_mid_stream_frees_the_model(mote_server):
    url, subject = mote_server
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    long_chain = chain_body(stream=True, max_stage_tokens=3000, max_tokens=3000)  # about a minute if run to the end
    connection.request("POST", parts.path + "/chat/completions", json.dumps(long_chain), {"Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 200 and response.fp.readline()  # the first chunk arrived: generation runs
    connection.close()
    started = time.monotonic()
    status, _ = post(url, chain_body(mote_path="answer", max_tokens=2))
    assert status == 200 and time.monotonic() - started < 20
    assert not subject._lock.locked()


def test_the_serve_verb_prints_the_url_and_serves(tiny_dir, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "launch.py", "--home", str(tmp_path), "serve", "--run", f"base:{tiny_dir}", "--port", str(port)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        while not any("/v1" in line for line in lines):
            line = process.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        assert f"base URL http://127.0.0.1:{port}/v1" in "".join(lines)
        for _ in range(100):  # the URL is printed just before uvicorn binds
            try:
                status, body = post(f"http://127.0.0.1:{port}/v1", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
                break
            except urllib.error.URLError:
                time.sleep(0.1)
        assert status == 200 and body["model"] == f"base:{tiny_dir}"
    finally:
        process.terminate()
        process.wait(30)


def test_the_serve_verb_rejects_a_bad_run_before_serving(tmp_path, capsys):
    from launch import main

    assert main(["--home", str(tmp_path), "serve", "--run", str(tmp_path / "missing")]) == 2
    assert "is neither 'base:<model>' nor an existing folder" in capsys.readouterr().err


class _BrokenSubject(ChatSubject):
    """Opens the answer stage, then fails: what a crash inside generation looks like."""

    label, kind = "broken", SubjectKind.BASE

    def _generate(self, question, settings, reply):
        yield StageEvent(StageEventKind.START, Stage.ANSWER, expert="base")
        raise RuntimeError("the model fell over")


def test_a_failure_inside_generation_is_reported_as_an_openai_error():
    url, stop = start_in_thread(build_app(_BrokenSubject()))
    try:
        status, body = post(url, {"messages": [{"role": "user", "content": "hi"}]})
        assert status == 500 and body["error"]["type"] == "server_error" and "the model fell over" in body["error"]["message"]
        payloads = stream(url, {"messages": [{"role": "user", "content": "hi"}]})
        assert payloads[-1] == "[DONE]" and "the model fell over" in payloads[-2]["error"]["message"]
    finally:
        stop()
