"""A prompting subject (prompt:PIPELINE:SUBJECT) served over HTTP: `launch.py serve` loads it, the
server answers it one request at a time (it has no batched form), and the pipeline's earlier turns
arrive as reasoning_content / mote.stages while the last turn is the content."""
from __future__ import annotations

import pytest

from core.decoding.chain_programs import GenerationSettings
from core.decoding.subject_ref import PromptingPipeline
from core.decoding.subjects import BaseSubject
from core.serving.server import build_app, start_in_thread
from core.synthesis.prompting_subject import PromptingSubject
from tests.conftest import load_tiny
from tests.test_serving import QUESTION, post, stream

SERVER_DEFAULTS = GenerationSettings(max_stage_tokens=5)


@pytest.fixture(scope="module")
def tiny_base(tiny_dir) -> BaseSubject:
    model, tokenizer = load_tiny(tiny_dir)
    return BaseSubject(model, tokenizer, label="base:tiny")


@pytest.fixture(scope="module")
def aligncot_server(tiny_base):
    subject = PromptingSubject.around(tiny_base, PromptingPipeline.ALIGNCOT)
    app = build_app(subject, defaults=SERVER_DEFAULTS)
    assert app.state.batcher is None  # not a BatchingSubject: requests run one at a time on the subject
    url, stop = start_in_thread(app)
    yield url, subject
    stop()


def body(**extra) -> dict:
    return {"messages": [{"role": "user", "content": QUESTION}], "max_stage_tokens": 4, "max_tokens": 3, **extra}


def test_an_aligncot_prompting_subject_answers_with_its_turns_as_reasoning(aligncot_server):
    url, subject = aligncot_server
    status, reply = post(url, body())
    assert status == 200 and reply["model"] == "prompt:aligncot:base:tiny"
    expected = subject.answer(QUESTION, GenerationSettings(max_stage_tokens=4, stage_limits={"answer": 3}))
    texts = expected.stage_texts()
    message = reply["choices"][0]["message"]
    assert message["content"] == texts["answer"]
    assert message["reasoning_content"] == f"[analysis]\n{texts['analysis']}\n\n[guidance]\n{texts['guidance']}"
    assert message["mote"]["shape"] == "analysis->guidance->answer"
    assert [(s["stage"], s["expert"], s["text"]) for s in message["mote"]["stages"]] == [
        ("analysis", "analysis", texts["analysis"]), ("guidance", "guidance", texts["guidance"]), ("answer", "answer", texts["answer"])]
    assert reply["usage"]["completion_tokens"] == expected.completion_tokens > 0
    assert reply["usage"]["prompt_tokens"] == expected.prompt_tokens > 0
    assert reply["choices"][0]["finish_reason"] == expected.finish_reason


def test_streaming_a_prompting_subject_sends_each_turn_under_its_stage(aligncot_server):
    url, _ = aligncot_server
    _, whole = post(url, body())
    payloads = stream(url, body(stream_options={"include_usage": True}))
    assert payloads[-1] == "[DONE]"
    deltas = [c["choices"][0]["delta"] for c in payloads[:-1] if c["choices"] and c["choices"][0]["delta"]]
    order = [d["mote_stage"] for i, d in enumerate(deltas) if i == 0 or d["mote_stage"] != deltas[i - 1]["mote_stage"]]
    assert order == ["analysis", "guidance", "answer"]
    message = whole["choices"][0]["message"]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == message["reasoning_content"]
    assert "".join(d.get("content", "") for d in deltas) == message["content"]
    assert payloads[-2]["usage"] == whole["usage"]


def test_the_plain_pipeline_answers_with_content_only(tiny_base):
    url, stop = start_in_thread(build_app(PromptingSubject.around(tiny_base, PromptingPipeline.PLAIN), defaults=SERVER_DEFAULTS))
    try:
        status, reply = post(url, body())
    finally:
        stop()
    message = reply["choices"][0]["message"]
    assert status == 200 and message["reasoning_content"] is None and message["mote"]["shape"] == "answer"
    assert [s["stage"] for s in message["mote"]["stages"]] == ["answer"] and message["content"] == message["mote"]["stages"][0]["text"]


def test_the_serve_verb_loads_a_prompting_subject(tiny_dir, tmp_path, monkeypatch, capsys):
    from core.serving import server
    from launch import main

    served = {}
    monkeypatch.setattr(server, "serve_openai_api", lambda subject, host, port, **kwargs: served.update(subject=subject, **kwargs))
    spec = f"prompt:aligncot:base:{tiny_dir}"
    assert main(["--home", str(tmp_path), "serve", "--run", spec, "--port", "0"]) == 0
    subject = served["subject"]
    assert isinstance(subject, PromptingSubject) and subject.pipeline is PromptingPipeline.ALIGNCOT
    assert isinstance(subject.inner, BaseSubject) and served["model_id"] == spec
    assert f"Serving {spec}" in capsys.readouterr().out


def test_prompt_tokens_are_counted_with_the_writing_models_tokenizer(tiny_base):
    """Not UTF-8 bytes (the fallback for subjects without a tokenizer), which would refuse prompts
    that fit the server's max_prompt_tokens."""
    from core.serving.limits import count_prompt_tokens

    # the tiny tokenizer is bytes without merges; its ChatML specials are one token each
    messages = [{"role": "user", "content": "Is this safe?<|im_end|>" * 20}]
    subject = PromptingSubject.around(tiny_base, PromptingPipeline.ALIGNCOT)
    assert subject.tokenizer is tiny_base.tokenizer
    counted = count_prompt_tokens(subject, messages)
    assert counted == count_prompt_tokens(tiny_base, messages) < len(messages[0]["content"].encode("utf-8"))


def test_a_prompting_subjects_token_budget_counts_every_turn(tiny_base):
    """The server's total-token check counts each turn the pipeline writes, not the answer alone."""
    from core.serving.limits import completion_budget

    settings = GenerationSettings(max_stage_tokens=10, stage_limits={"answer": 7})
    aligncot = PromptingSubject.around(tiny_base, PromptingPipeline.ALIGNCOT)
    critique = PromptingSubject.around(tiny_base, PromptingPipeline.CRITIQUE_REVISE)
    assert completion_budget(tiny_base, settings) == 7
    assert completion_budget(aligncot, settings) == 10 + 10 + 7  # analysis, guidance, answer turns
    assert completion_budget(critique, settings) == sum(settings.limit(step.stage) for step in critique.steps) > 7
