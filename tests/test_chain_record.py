"""ChainRecord: the typed generated-chain record reads and writes generation's JSON exactly, and
its curation (flag, edit, delete) keeps the chain trainable or says why not."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from core.config import GenerateConfig
from core.data.chain_record import ChainRecord, CheckVerdict
from core.data.chain_store import JsonlChainSink
from core.config import PLAIN_PIPELINE
from core.data.chains import ChainFormatError
from core.data.questions import QuestionKind
from core.stages import ChainShape, Stage
from core.synthesis.pipeline import generate_chains
from core.synthesis.prompts import load_prompt_set
from tests.scripted_generator import ScriptedGenerator


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict[str, dict]:
    """Records as generation writes them: one per shape, and one still unsafe after every shape."""
    plan = {"q1": [" safe"], "q2": [" unsafe", " safe"], "q3": [" unsafe", " unsafe", " safe"],
            "q4": [" unsafe", " maybe", " unsafe"]}

    def script(request, count):
        return plan[request.key][count] if request.stage == "check" else f"{request.stage} text {count}"

    sink = JsonlChainSink(tmp_path_factory.mktemp("chains"))
    questions = [SimpleNamespace(id=key, text=f"question {key}", kind=QuestionKind.HARMFUL, category="crime")
                 for key in plan]
    generate_chains(questions, ScriptedGenerator(script), GenerateConfig(**PLAIN_PIPELINE),
                    load_prompt_set(), sink)
    return {r["id"]: r for r in sink.records() + sink.dropped()}


def test_a_generated_record_round_trips_key_for_key(generated):
    for record in generated.values():
        typed = ChainRecord.from_dict(record)
        assert typed.to_dict() == record  # same keys, same values (keys it does not model are kept)


def test_the_typed_record_exposes_stages_attempts_and_verdicts(generated):
    full = ChainRecord.from_dict(generated["q3"])
    assert full.shape is ChainShape.FULL and full.kind is QuestionKind.HARMFUL and full.category == "crime"
    assert full.stage_text(Stage.ANALYSIS) == "analysis text 0" and full.stage_text(Stage.ANSWER) == "answer text 2"
    assert [a.verdict for a in full.attempts[0].answers] == [CheckVerdict.UNSAFE, CheckVerdict.UNSAFE, CheckVerdict.SAFE]
    assert full.last_verdict is CheckVerdict.SAFE and not full.flagged
    unsafe = ChainRecord.from_dict(generated["q4"])
    assert unsafe.flagged and unsafe.last_verdict is CheckVerdict.UNSAFE
    assert not unsafe.attempts[0].answers[1].verdict_parsed
    assert full.to_chain().shape is ChainShape.FULL


def test_curation_marks_the_record_and_keeps_unknown_keys(generated):
    record = ChainRecord.from_dict({**generated["q1"], "reviewer": "ann"})
    flagged = record.with_flag(True)
    assert flagged.flagged and flagged.to_dict()["flag_set_by_user"] is True
    edited = record.with_stage_texts({Stage.ANALYSIS: " it asks for harm ", Stage.ANSWER: "No."})
    assert edited.shape is ChainShape.ANALYSIS_ANSWER and edited.analysis == "it asks for harm" and edited.edited
    deleted = edited.as_deleted().to_dict()
    assert deleted["dropped"] and deleted["deleted_by_user"] and deleted["edited"] and deleted["reviewer"] == "ann"
    assert "edited" not in record.to_dict()  # unset marks are not written


def test_an_edit_that_breaks_the_chain_is_refused(generated):
    full = ChainRecord.from_dict(generated["q3"])
    with pytest.raises(ChainFormatError, match="no answer stage"):
        full.with_stage_texts({Stage.ANSWER: "  "})
    # Without its analysis a full chain is a guidance-first chain, which the paper allows.
    assert full.with_stage_texts({Stage.ANALYSIS: ""}).shape is ChainShape.GUIDANCE_ANSWER


def test_a_record_with_an_unknown_shape_names_the_fix():
    with pytest.raises(ChainFormatError, match="chain 7: 'spiral' is not a valid ChainShape"):
        ChainRecord.from_dict({"id": "7", "question": "q?", "answer": "a", "shape": "spiral"}, "chain 7")
