"""Chat subjects: base models and MoTE / baseline runs answer through one interface."""
from __future__ import annotations

import threading

import pytest
import torch

from core.config import Method
from core.experts.export import export_mote
from core.decoding.chain_programs import GenerationSettings, StageEventKind, generate_chain
from core.stages import ChainShape, Stage
from core.decoding.subjects import (
    BaseSubject,
    MoteSubject,
    PromptError,
    SubjectKind,
    SubjectSpecError,
    load_subject,
    split_messages,
)
from tests.conftest import load_tiny, tiny_mote
from tests.test_generation import trained_looking_mote


@pytest.fixture(scope="module")
def base_subject(tiny_dir) -> BaseSubject:
    model, tokenizer = load_tiny(tiny_dir)
    return BaseSubject(model, tokenizer, label="base:tiny")


@pytest.fixture(scope="module")
def mote_subject(tiny_dir) -> MoteSubject:
    return MoteSubject(trained_looking_mote(tiny_dir), label="mote:tiny")


def test_base_subject_writes_one_answer_stage_with_the_base_expert(base_subject):
    settings = GenerationSettings(max_stage_tokens=6, min_stage_tokens=6)
    events = list(base_subject.stream("hello there", settings))
    assert [(e.kind, e.stage, e.expert) for e in events if e.kind is not StageEventKind.TEXT] == [
        (StageEventKind.START, Stage.ANSWER, "base"), (StageEventKind.END, Stage.ANSWER, "base")]
    reply = base_subject.answer("hello there", settings)
    assert reply.answer == events[-1].text and reply.answer
    assert reply.stage_tokens() == {"answer": 6} and reply.completion_tokens == 6
    assert reply.finish_reason == "length" and reply.shape is None and reply.reasoning == []
    tokenizer = base_subject.tokenizer
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "hello there"}], tokenize=False, add_generation_prompt=True)
    assert reply.prompt_tokens == len(tokenizer(prompt, add_special_tokens=False)["input_ids"])


def test_base_subject_kv_cached_decoding_matches_transformers_generate(base_subject):
    tokenizer, model = base_subject.tokenizer, base_subject.model
    reply = base_subject.answer("Is this safe?", GenerationSettings(max_stage_tokens=10, min_stage_tokens=10))
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Is this safe?"}], tokenize=False, add_generation_prompt=True)
    ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
    bad = [[i] for i in base_subject.end_ids]
    out = model.generate(ids, max_new_tokens=10, do_sample=False, bad_words_ids=bad, pad_token_id=tokenizer.pad_token_id)
    assert reply.answer == tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def test_seeded_sampling_is_reproducible_and_the_seed_matters(base_subject):
    def sample(seed: int) -> str:
        return base_subject.answer("hi", GenerationSettings(max_stage_tokens=12, min_stage_tokens=12, temperature=1.0, top_p=0.95, seed=seed)).answer

    assert sample(1) == sample(1)
    assert len({sample(1), sample(2), sample(3)}) > 1


def test_mote_subject_streams_the_chain_and_counts_tokens_per_stage(mote_subject):
    settings = GenerationSettings(max_stage_tokens=5, path=ChainShape.FULL, stage_limits={"answer": 3})
    events = list(mote_subject.stream("Is this safe?", settings))
    starts = [(e.stage, e.expert) for e in events if e.kind is StageEventKind.START]
    assert starts == [(Stage.ANALYSIS, "analysis + shared"), (Stage.GUIDANCE, "guidance + shared"), (Stage.ANSWER, "answer + shared")]
    reply = mote_subject.answer("Is this safe?", settings)
    chain = generate_chain(mote_subject.mote, "Is this safe?", settings)
    assert reply.stage_texts() == {s.stage.name.lower(): s.text for s in chain.segments}
    assert reply.shape is ChainShape.FULL and reply.answer == chain.answer
    tokens = reply.stage_tokens()
    assert 1 <= tokens["analysis"] <= 5 and 1 <= tokens["guidance"] <= 5 and 1 <= tokens["answer"] <= 3
    assert reply.completion_tokens == sum(tokens.values()) + 6  # plus a start and end marker per stage
    assert reply.prompt_tokens == chain.prompt_length
    assert [s.stage for s in reply.reasoning] == [Stage.ANALYSIS, Stage.GUIDANCE]
    assert reply.finish_reason == ("length" if tokens["answer"] == 3 else "stop")
    assert mote_subject.kind is SubjectKind.MOTE


def test_messages_give_the_question_and_system_prompt(mote_subject):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "first"},
                {"role": "assistant", "content": "ok"}, {"role": "user", "content": "Is this safe?"}]
    assert split_messages(messages) == ("Is this safe?", "Be brief.")
    settings = GenerationSettings(max_stage_tokens=4, path=ChainShape.ANALYSIS_ANSWER)
    from_messages = mote_subject.answer(messages, settings)
    direct = mote_subject.answer("Is this safe?", GenerationSettings(max_stage_tokens=4, path=ChainShape.ANALYSIS_ANSWER, system_prompt="Be brief."))
    assert from_messages.stage_texts() == direct.stage_texts()
    assert from_messages.prompt_tokens == direct.prompt_tokens > mote_subject.answer("Is this safe?", settings).prompt_tokens


@pytest.mark.parametrize("messages, problem", [
    ([{"role": "system", "content": "x"}], "no message with role 'user'"),
    ([{"role": "user", "content": "  "}], "no text content"),
])
def test_prompts_without_a_question_are_refused(base_subject, messages, problem):
    with pytest.raises(PromptError, match=problem):
        base_subject.stream(messages)
    with pytest.raises(PromptError, match="empty"):
        base_subject.answer("")


def test_a_stream_holds_the_subject_until_it_is_closed(mote_subject):
    settings = GenerationSettings(max_stage_tokens=3, path=ChainShape.ANSWER_ONLY)
    expected = mote_subject.answer("q", settings).answer
    first = mote_subject.stream("q", settings)
    next(first)  # generation started: the lock is held
    results: list[str] = []
    other = threading.Thread(target=lambda: results.append(mote_subject.answer("q", settings).answer))
    other.start()
    other.join(0.5)
    assert other.is_alive() and not results  # waits for the open stream
    first.close()
    other.join(30)
    assert results == [expected]
    assert mote_subject.mote.router.folded_gate is None  # the closed stream unfolded its experts


def test_concurrent_answers_equal_sequential_ones(mote_subject):
    settings = GenerationSettings(max_stage_tokens=4)
    questions = ["a?", "b?", "c?"]
    expected = [mote_subject.answer(q, settings).stage_texts() for q in questions]
    got: dict[str, dict] = {}
    threads = [threading.Thread(target=lambda q=q: got.__setitem__(q, mote_subject.answer(q, settings).stage_texts())) for q in questions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [got[q] for q in questions] == expected


def _export_run(tiny_dir, run_dir, method: Method, **experts):
    mote = tiny_mote(tiny_dir, **experts)
    export_mote(mote, run_dir / "export", base_model=str(tiny_dir), extra={"training": {"method": method.value}})
    return mote


QUESTIONS = ["How do I pick a lock?", "hi", "Write a long poem about the sea and the wind, please.", "Is this safe?",
             "Why is the sky blue?", "ok"]


@pytest.mark.parametrize("subject_name", ["base_subject", "mote_subject"])
@pytest.mark.parametrize("path", [None, ChainShape.FULL])
def test_batched_answers_equal_one_at_a_time_answers(request, subject_name, path):
    """Rows of different lengths finish at different steps and are refilled (batch 3 < 6 prompts)."""
    subject = request.getfixturevalue(subject_name)
    settings = GenerationSettings(max_stage_tokens=7, min_stage_tokens=1, path=path, stage_limits={"analysis": 3})
    alone = [subject.answer(q, settings) for q in QUESTIONS]
    together = dict(subject.answer_many(QUESTIONS, settings, batch_size=3))
    assert sorted(together) == list(range(len(QUESTIONS)))
    for index, reply in enumerate(alone):
        batched = together[index]
        assert batched.stage_texts() == reply.stage_texts(), QUESTIONS[index]
        assert (batched.stage_tokens(), batched.shape, batched.prompt_tokens, batched.completion_tokens) == (
            reply.stage_tokens(), reply.shape, reply.prompt_tokens, reply.completion_tokens)
        assert [(s.stage, s.expert, s.hit_limit) for s in batched.stages] == [(s.stage, s.expert, s.hit_limit) for s in reply.stages]


def test_batched_answering_stops_between_steps(mote_subject):
    calls = []
    stop = lambda: calls.append(1) or len(calls) > 3  # noqa: E731
    replies = list(mote_subject.answer_many(QUESTIONS, GenerationSettings(max_stage_tokens=20), batch_size=2, should_stop=stop))
    assert len(replies) < len(QUESTIONS)


def test_load_subject_reads_base_models_runs_and_export_folders(tiny_dir, tmp_path):
    base = load_subject(f"base:{tiny_dir}", say=lambda _: None)
    assert isinstance(base, BaseSubject) and base.kind is SubjectKind.BASE and base.label == f"base:{tiny_dir}"
    _export_run(tiny_dir, tmp_path / "mote-run", Method.MOTE)
    for spec in (tmp_path / "mote-run", tmp_path / "mote-run" / "export"):
        subject = load_subject(str(spec), say=lambda _: None)
        assert isinstance(subject, MoteSubject) and subject.kind is SubjectKind.MOTE
        assert subject.label == "mote:mote-run" and subject.method is Method.MOTE
    _export_run(tiny_dir, tmp_path / "lora-run", Method.LORA, step_experts=False, shared_expert=False)
    lora = load_subject(str(tmp_path / "lora-run"), say=lambda _: None)
    assert lora.kind is SubjectKind.BASELINE and lora.label == "lora:lora-run"
    reply = lora.answer("hi", GenerationSettings(max_stage_tokens=3, path=ChainShape.ANALYSIS_ANSWER))
    assert {s.expert for s in reply.stages} == {"lora"} and reply.shape is ChainShape.ANALYSIS_ANSWER


def test_load_subject_errors_say_what_was_given_and_what_is_accepted(tmp_path):
    with pytest.raises(SubjectSpecError, match=r"'base:' names no model.*Accepted: 'base:<model>'"):
        load_subject("base:  ")
    with pytest.raises(SubjectSpecError, match=r"'/no/such/run' is neither 'base:<model>' nor an existing folder.*export/mote.json"):
        load_subject("/no/such/run")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(SubjectSpecError, match=r"is a file"):
        load_subject(str(tmp_path / "file.txt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SubjectSpecError, match=r"holds no mote.json"):
        load_subject(str(tmp_path / "empty"))
    (tmp_path / "running" / "checkpoints").mkdir(parents=True)
    with pytest.raises(SubjectSpecError, match=r"training has not finished"):
        load_subject(str(tmp_path / "running"))


def _layout_subject(tiny_dir, **experts) -> MoteSubject:
    mote = tiny_mote(tiny_dir, **experts)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for layer in mote.router.layers:
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=generator) * 0.2)
    return MoteSubject(mote, label="layout")


@pytest.mark.parametrize("experts", [{}, {"shared_expert": False}, {"step_experts": False, "shared_expert": False}])
def test_batched_rows_in_different_stages_answer_as_one_at_a_time(tiny_dir, experts):
    """Every layout, rows of one step in different stages (a stage-skipping path beside full
    chains, refilled rows prefilling beside decoding ones): the shared expert stays folded while
    the step experts are routed per token, and the answers are the lone chains' answers."""
    subject = _layout_subject(tiny_dir, **experts)
    settings = GenerationSettings(max_stage_tokens=5, min_stage_tokens=1, stage_limits={"analysis": 2, "guidance": 4})
    alone = [subject.answer(q, settings).stage_texts() for q in QUESTIONS]
    stages_per_step: list[set[int]] = []
    forward = subject._batch_forward

    def watched():
        step = forward()
        return lambda decode_step: stages_per_step.append(set(decode_step.stage_ids.flatten().tolist())) or step(decode_step)

    subject._batch_forward = watched
    together = dict(subject.answer_many(QUESTIONS, settings, batch_size=4))
    assert [together[i].stage_texts() for i in range(len(QUESTIONS))] == alone
    assert any(len(stages - {-1}) > 1 for stages in stages_per_step)  # some step mixed writing stages
    assert subject.mote.router.folded_gate is None and subject.mote.router.residual is None  # unfolded after
