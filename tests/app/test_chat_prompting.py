"""Prompting subjects in the Chat tab, through its handlers (no browser): the model lists offer each
prompting pipeline over the base model, and a pane answers with the pipeline's turns as stage
blocks, labelled with the model that wrote them, on the tiny model."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from app.chat_runtime import ChatRuntime, PaneState
from app.services import ChatSubjectChoice, Services, with_prompting_pipelines
from app.tabs.chat import ChatActions
from core.decoding.chain_programs import GenerationSettings
from core.decoding.subject_ref import PromptingPipeline
from jobs.queue import JobQueue

QUESTION = "Is this safe?"


@pytest.fixture
def actions(tmp_path, tiny_dir) -> ChatActions:
    queue = JobQueue(f"sqlite:///{tmp_path / 'mote.db'}", tmp_path / "home")
    yield ChatActions(Services(queue, default_model=str(tiny_dir)), ChatRuntime(tmp_path / "home"))
    queue.engine.dispose()


def chat(actions: ChatActions, subject_1: str | None, subject_2: str | None, question: str = QUESTION,
         turns: list | None = None, *, self_check: bool = False) -> tuple:
    """The chat handler's last update: (pane views..., turns, prompt, message)."""
    request = SimpleNamespace(session_hash="test-session")
    updates = list(actions.chat(2, subject_1, subject_2, None, question, "model's choice", 0.0, 1.0, 0, 4, 2, None,
                                self_check, True, turns, request))
    return updates[-1]


def test_the_model_lists_offer_every_pipeline_over_the_base_model(actions, tiny_dir):
    first, second, third = actions.subjects(None, None, None)
    base = f"base:{tiny_dir}"
    prompted = [(f"{p.value} prompting · base model: {Path(tiny_dir).name}", f"prompt:{p.value}:{base}") for p in PromptingPipeline]
    assert first["choices"] == [(f"base model: {Path(tiny_dir).name}", base), *prompted]
    # without a run, panes 2 and 3 stay empty: a prompting entry is not taken for a run
    assert (first["value"], second["value"], third["value"]) == (base, None, None)
    kept = actions.subjects(base, f"prompt:aligncot:{base}", None)
    assert kept[1]["value"] == f"prompt:aligncot:{base}"


def test_prompting_entries_come_only_from_base_models():
    choices = [ChatSubjectChoice("base model: m", "base:m"), ChatSubjectChoice("a run", "/runs/a")]
    extended = with_prompting_pipelines(choices)
    assert extended[:2] == choices and len(extended) == 2 + len(PromptingPipeline)
    assert {choice.spec for choice in extended[2:]} == {f"prompt:{p.value}:base:m" for p in PromptingPipeline}


def test_an_aligncot_pane_answers_with_its_turns_as_stage_blocks(actions, tiny_dir):
    base, prompted = f"base:{tiny_dir}", f"prompt:aligncot:base:{tiny_dir}"
    first, second, _third, turns, _prompt, message = chat(actions, base, prompted, self_check=True)
    assert message == "" and len(turns) == 1
    pane: PaneState = turns[0].panes[1]
    assert pane.status == "done" and pane.error is None and pane.title == prompted
    assert [(b.stage, b.label, b.expert, b.done) for b in pane.blocks] == [
        ("analysis", "Question Analysis", "base · analysis prompt", True),
        ("guidance", "Answer Guidance", "base · guidance prompt", True),
        ("answer", "Safe Answer", "base · answer prompt", True)]
    # nothing made up: the pane shows what the subject itself answers (greedy decoding)
    reply = actions.runtime.subject(prompted).answer(QUESTION, GenerationSettings(max_stage_tokens=4, min_stage_tokens=2))
    assert ["".join(b.pieces) for b in pane.blocks] == [s.text for s in reply.stages]
    assert pane.check is not None and 0.0 <= pane.check.p_unsafe <= 1.0  # the self-check runs on the base weights
    assert "Question Analysis · expert <code>base · analysis prompt</code>" in second
    assert "tok x-base" in second and prompted in second
    assert "Safe Answer · expert <code>base</code>" in first  # the plain base pane is unchanged


def test_a_prompting_pane_keeps_answering_in_a_conversation(actions, tiny_dir):
    prompted = f"prompt:critique-revise:base:{tiny_dir}"
    *_, turns, _prompt, _message = chat(actions, prompted, None)
    *_, turns, _prompt, message = chat(actions, prompted, None, "And why?", turns)
    assert message == "" and len(turns) == 2
    for turn in turns:
        pane = turn.panes[0]
        assert pane.error is None and [(b.stage, b.expert) for b in pane.blocks] == [
            ("check", "base · draft+critique prompt"), ("answer", "base · answer prompt")]
        assert "Draft answer:" in "".join(pane.blocks[0].pieces) and "Critique:" in "".join(pane.blocks[0].pieces)
