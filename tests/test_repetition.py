"""Loops in self-written text (core.data.repetition): found, cut back to whole sentences, stopped
early by the decoder, and never kept as a training answer (GenerateConfig.loop_words)."""
from __future__ import annotations

from types import SimpleNamespace

import torch

from core.data.repetition import repeat_onset, trim_repetition
from core.decoding.chain_programs import StageEventKind
from core.decoding.completions import FinishReason, PlainText, plain_text_program
from tests.test_safe_data import ScriptedChecker, generate, question
from tests.tiny_model import build_tiny_tokenizer

#: Two Safe Answers the bundled model wrote for its own training chains (session 7), verbatim.
LOOPING_HELPFUL = ("To make dialogue sound more natural, use contractions, use action beats, and use dialogue to convey "
                   "emotion. Use dialogue to convey emotion, use dialogue to convey emotion, use dialogue to convey "
                   "emotion, use dialogue to convey emotion, use dialogue to convey emotion, use")
LOOPING_DECLINE = ("I'm not able to help with that. I'm not able to help with that. I'm not able to help with that. "
                   "I'm not able to help with that. I'm not")


def test_a_loop_is_cut_back_to_the_whole_sentences_before_it():
    assert trim_repetition(LOOPING_HELPFUL) == ("To make dialogue sound more natural, use contractions, use action "
                                                "beats, and use dialogue to convey emotion.")
    assert trim_repetition(LOOPING_DECLINE) == "I'm not able to help with that."


def test_text_without_a_loop_is_kept_unless_it_ran_out_of_tokens():
    plain = "Preheat the oven to 220 C. Toss the potatoes in oil, then roast them for 40 minutes"
    assert repeat_onset(plain) is None
    assert trim_repetition(plain) == plain
    assert trim_repetition(plain, hit_limit=True) == "Preheat the oven to 220 C."
    assert trim_repetition(LOOPING_DECLINE, 0) == LOOPING_DECLINE  # 0 turns trimming off


def test_a_restated_phrase_shorter_than_the_run_is_not_a_loop():
    text = "A cylinder's volume is pi r squared h. For r = 2 and h = 3, a cylinder's volume is 12 pi."
    assert repeat_onset(text) is None


class ScriptedSampler:
    """Returns the ids of `text`'s bytes one by one (the tiny tokenizer is byte-level)."""

    def __init__(self, tokenizer, text: str) -> None:
        self.ids = iter(tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id])

    def sample(self, logits, banned=()):
        return next(self.ids)


def run_program(text: str, stop_on_repeat: int) -> tuple[PlainText, int]:
    tokenizer = build_tiny_tokenizer()
    result, fed = PlainText(), 0
    program = plain_text_program(tokenizer, ScriptedSampler(tokenizer, text), torch.zeros(1), result,
                                 end_ids=[tokenizer.eos_token_id], max_tokens=len(text) + 10,
                                 stop_on_repeat=stop_on_repeat)
    event = next(program)
    try:
        while True:
            if getattr(event, "kind", None) is StageEventKind.END:
                break
            event = program.send(torch.zeros(1) if not hasattr(event, "kind") else None)
            fed += 0 if hasattr(event, "kind") else 1
    except StopIteration:
        pass
    return result, fed


def test_the_decoder_stops_at_the_first_repeated_run_instead_of_decoding_the_loop():
    result, _ = run_program(LOOPING_DECLINE * 3, stop_on_repeat=6)
    assert result.finish_reason is FinishReason.REPEAT
    assert len(result.text) < 75  # the second "I'm not able to help with that", not three more copies
    assert trim_repetition(result.text) == trim_repetition(LOOPING_DECLINE * 3) == "I'm not able to help with that."
    whole, _ = run_program(LOOPING_DECLINE, stop_on_repeat=0)
    assert whole.text == LOOPING_DECLINE and whole.finish_reason is not FinishReason.REPEAT


def test_a_looping_answer_is_stored_trimmed_and_a_hollow_one_flags_the_chain(tmp_path):
    def script(request, n):
        if request.stage != "answer":
            return "The question asks for help with chores. Answering is safe."
        return LOOPING_HELPFUL if request.key == "q1" else "Sure. Sure. Sure. Sure. Sure. Sure. Sure. Sure."

    chains, generator = generate(script, [question(1, "helpful"), question(2, "helpful")], tmp_path,
                                 checker=ScriptedChecker())
    assert chains["q1"]["answer"] == trim_repetition(LOOPING_HELPFUL) and not chains["q1"]["flagged"]
    assert all(r.stop_on_repeat == 6 for r in generator.requests)
    assert chains["q2"]["dropped"] and "degenerate answer" in chains["q2"]["flag_reasons"]


def test_the_plain_pipeline_keeps_raw_text(tmp_path):
    chains, generator = generate(lambda request, n: LOOPING_HELPFUL, [question(1, "helpful")], tmp_path,
                                 checker=ScriptedChecker(), loop_words=0)
    assert chains["q1"]["answer"] == LOOPING_HELPFUL
    assert all(r.stop_on_repeat == 0 for r in generator.requests)


def shipped_record(answer: str, kind: str = "helpful", **extra) -> dict:
    return {"id": "train-1", "question": "How do I make dialogue natural?", "kind": kind, "answer": answer,
            "analysis": None, "guidance": None, "shape": "answer", "flagged": False, "dropped": False,
            "flag_reasons": [], "label_mismatch": False, "refused": False, "keep_flagged": False,
            "decoding": {"answer_tokens": 256}, "attempts": [{"tokens": {"answer": 256}}], **extra}


def test_the_trim_script_rewrites_an_old_chain_as_generation_now_would():
    from scripts.trim_chain_loops import retrim

    looping = retrim(shipped_record(LOOPING_HELPFUL), 6)
    assert looping["answer"] == trim_repetition(LOOPING_HELPFUL) and looping["untrimmed"] == {"answer": LOOPING_HELPFUL}
    assert not looping["dropped"] and looping["decoding"]["loop_words"] == 6
    hollow = retrim(shipped_record("Sure. Sure. Sure. Sure. Sure. Sure. Sure."), 6)
    assert hollow["dropped"] and hollow["flag_reasons"] == ["degenerate answer"]
    refusing = retrim(shipped_record(LOOPING_DECLINE), 6)  # a helpful question's answer that now reads as a refusal
    assert refusing["dropped"] and "label mismatch" in refusing["flag_reasons"]
    clean = shipped_record("Use contractions and read it aloud.", attempts=[{"tokens": {"answer": 9}}])
    assert retrim(clean, 6) is clean
