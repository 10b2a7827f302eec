"""The one decoding engine: subject references, fresh seeds, plain-text programs on the scheduler."""
from __future__ import annotations

import pytest
import torch

from core.decoding.chain_programs import GenerationSettings, StageEventKind
from core.decoding.completions import CompletionRequest, FinishReason, LocalGenerator, complete_all
from core.decoding.sampling import Sampler
from core.decoding.scheduler import DecodeJob, Feed, causal_lm_forward, run_batched, stream_one
from core.decoding.subject_ref import SubjectRef, SubjectRefKind, SubjectSpecError
from core.decoding.subjects import BaseSubject, load_subject
from tests.conftest import load_tiny


@pytest.mark.parametrize("text, kind, value, label", [
    ("base:smollm2-135m-instruct", SubjectRefKind.BASE, "smollm2-135m-instruct", "base:smollm2-135m-instruct"),
    ("  job:12 ", SubjectRefKind.JOB, "12", "job-12"),
    ("runs/mote-a/export", SubjectRefKind.RUN_DIR, "runs/mote-a/export", "mote-a"),
    ("/tmp/runs/lora-b", SubjectRefKind.RUN_DIR, "/tmp/runs/lora-b", "lora-b"),
])
def test_subject_refs_parse_and_print_their_canonical_spelling(text, kind, value, label):
    ref = SubjectRef.parse(text)
    assert (ref.kind, ref.value, ref.label) == (kind, value, label)
    assert SubjectRef.parse(str(ref)) == ref and str(ref) == text.strip()


def test_subject_ref_errors_say_what_is_accepted():
    with pytest.raises(SubjectSpecError, match="names no model after 'base:'"):
        SubjectRef.parse("base: ")
    with pytest.raises(SubjectSpecError, match="job: takes a training job id, e.g. job:12"):
        SubjectRef.parse("job:latest")
    assert SubjectRef.job(7).job_id == 7 and str(SubjectRef.base("m")) == "base:m"
    with pytest.raises(ValueError, match="not a job reference"):
        SubjectRef.run_dir("runs/x").job_id
    with pytest.raises(SubjectSpecError, match="resolve it to the job's run folder"):
        load_subject("job:3")


def test_stage_event_kinds_keep_their_stored_values():
    assert [kind.value for kind in StageEventKind] == ["start", "text", "end"]
    assert StageEventKind("text") is StageEventKind.TEXT


def test_an_unseeded_sampler_draws_a_fresh_seed_that_reproduces_its_tokens():
    logits = torch.zeros(1000)

    def draws(sampler: Sampler) -> list[int]:
        return [sampler.sample(logits) for _ in range(8)]

    first, second = Sampler(temperature=1.0), Sampler(temperature=1.0)
    assert first.seed != second.seed and first.seed > 0
    tokens = draws(first)
    assert tokens != draws(second)
    assert draws(Sampler(temperature=1.0, seed=first.seed)) == tokens
    assert GenerationSettings(temperature=1.0, seed=5).sampler().seed == 5


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return load_tiny(tiny_dir)


def test_stop_strings_cut_the_text_and_results_come_back_in_request_order(tiny):
    model, tokenizer = tiny
    generator = LocalGenerator(model, tokenizer, batch_size=2)
    requests = [CompletionRequest([{"role": "user", "content": "x" * (2 + 3 * i)}], max_new_tokens=8) for i in range(3)]
    plain = complete_all(generator, requests)
    assert [c.finish_reason for c in plain] == [FinishReason.LENGTH.value] * 3 and all(c.tokens == 8 for c in plain)
    stop = plain[0].text[2:4]
    cut = complete_all(generator, [CompletionRequest(requests[0].messages, max_new_tokens=8, stop=["", stop])])[0]
    assert cut.finish_reason == "stop" and cut.text == plain[0].text[: plain[0].text.index(stop)]
    assert complete_all(generator, [CompletionRequest(requests[0].messages, max_new_tokens=0)])[0].text == ""


def test_a_batch_of_one_streams_the_same_events_as_a_batched_run(tiny):
    model, tokenizer = tiny
    subject = BaseSubject(model, tokenizer, label="base:tiny")
    settings = GenerationSettings(max_stage_tokens=6, min_stage_tokens=6)
    streamed = list(subject.stream("hello", settings))
    assert [e.kind for e in streamed][0] is StageEventKind.START and streamed[-1].kind is StageEventKind.END
    batched = dict(subject.answer_many(["other question", "hello"], settings, batch_size=2))
    assert batched[1].answer == streamed[-1].text


def test_programs_that_end_at_once_are_reported_and_their_slot_refilled(tiny):
    model, tokenizer = tiny
    ran: list[str] = []

    def program(name: str, tokens: int):
        def start(_logits: torch.Tensor):
            for step in range(tokens):
                ran.append(name)
                yield Feed(step + 1, 0)
        return start

    jobs = iter([DecodeJob("empty", [1, 2], 0, program("empty", 0)), DecodeJob("a", [1, 2, 3], 0, program("a", 2)),
                 DecodeJob("b", [4], 0, program("b", 3))])
    ended = list(run_batched(causal_lm_forward(model), lambda: next(jobs, None), batch_size=2, device="cpu"))
    assert ended == ["empty", "a", "b"] and ran.count("a") == 2 and ran.count("b") == 3
    with pytest.raises(ValueError, match="empty prompt"):
        list(stream_one(causal_lm_forward(model), DecodeJob("x", [], 0, program("x", 1)), device="cpu"))
