"""Self-generated data that teaches safety (issue 14): constrained verdicts, flagged chains never
trained on by default, label-aware verification, exemplars, openings, best-of-N, quality report."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from core.config import GenerateConfig
from core.data.chain_store import JsonlChainSink
from core.decoding.completions import LocalGenerator
from core.synthesis.checkers import (CheckItem, LabelScoreChecker, Verdict, VerdictLabel, p_unsafe_from_logprobs,
                                     parse_verdict)
from core.synthesis.pipeline import generate_chains
from core.synthesis.prompts import load_prompt_set
from tests.scripted_generator import ScriptedGenerator
from tests.tiny_model import build_tiny_model, build_tiny_tokenizer

PROMPTS = load_prompt_set()
REFUSAL = "I can't help with that, because it could hurt people."


def question(i: int, kind: str | None = "harmful"):
    return SimpleNamespace(id=f"q{i}", text=f"question {i}", kind=kind, category="test")


class ScriptedChecker:
    """Unsafe when the text contains any of `unsafe_words`; P(unsafe) from `risk(text)`."""

    id = "scripted-checker"

    def __init__(self, unsafe_words: tuple[str, ...] = ("unsafe",), risk=None) -> None:
        self.unsafe_words, self.risk = unsafe_words, risk
        self.batches: list[list[CheckItem]] = []

    def check(self, items):
        self.batches.append(list(items))
        verdicts = []
        for item in items:
            p = self.risk(item.text) if self.risk else (0.9 if any(w in item.text for w in self.unsafe_words) else 0.1)
            verdicts.append(Verdict(VerdictLabel.UNSAFE if p >= 0.5 else VerdictLabel.SAFE, p, self.id, f"p={p}"))
        return verdicts


def generate(script, questions, tmp_path, checker=None, **config):
    generator = ScriptedGenerator(script, batch=4)
    sink = JsonlChainSink(tmp_path)
    settings = {"answer_openings": "off", **config}
    generate_chains(questions, generator, GenerateConfig(**settings), PROMPTS, sink, checker=checker or ScriptedChecker())
    return {r["id"]: r for r in sink.records() + sink.dropped()}, generator


# --- 1. constrained verdicts -------------------------------------------------------------------

def test_local_checker_scores_labels_sums_to_one_and_is_never_unparsable():
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(len(tokenizer), seed=5)
    checker = LabelScoreChecker(model, tokenizer, PROMPTS["check"], threshold=0.5, exemplars=2, batch_size=2, model_id="tiny")
    items = [CheckItem("How do I bake bread?", "Mix flour, water, yeast."), CheckItem("q", REFUSAL),
             CheckItem("q", ""), CheckItem("How?", "x" * 40, "analysis")]
    verdicts = checker.check(items)
    assert len(verdicts) == 4
    for verdict in verdicts:
        assert verdict.parsed and verdict.checker == "labels:tiny"
        assert 0.0 <= verdict.p_unsafe <= 1.0
        assert verdict.safe is (verdict.p_unsafe < 0.5)
    strict = LabelScoreChecker(model, tokenizer, PROMPTS["check"], threshold=0.0)
    assert all(not v.safe for v in strict.check(items[:2]))  # P(unsafe) >= 0 always: the threshold is used


def test_local_checker_in_the_pipeline_has_zero_unparsable_verdicts(tmp_path):
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(len(tokenizer), seed=5)
    generator = LocalGenerator(model, tokenizer, batch_size=4, model_id="tiny")
    checker = LabelScoreChecker(model, tokenizer, PROMPTS["check"], batch_size=4, model_id="tiny")
    config = GenerateConfig(analysis_tokens=4, guidance_tokens=4, answer_tokens=4, flagged_policy="keep", exemplars=1,
                            best_of=2)
    sink = JsonlChainSink(tmp_path)
    generate_chains([question(i, None) for i in range(3)], generator, config, PROMPTS, sink, checker=checker)
    records = sink.records()
    assert len(records) == 3
    steps = [s for r in records for a in r["attempts"] for s in a["answers"]]
    assert steps and all(s["verdict_parsed"] and s["p_unsafe"] is not None for s in steps)
    assert all(s["checker"] == "labels:tiny" for s in steps)
    assert all(len(s["candidates"]) == 2 and s["candidates"][s["chosen"]]["answer"] == s["answer"] for s in steps)


def test_endpoint_verdicts_from_logprobs_or_strict_text():
    content = [{"token": "VER", "logprob": 0.0}, {"token": " unsafe", "logprob": math.log(0.6),
               "top_logprobs": [{"token": " unsafe", "logprob": math.log(0.6)}, {"token": " safe", "logprob": math.log(0.2)},
                                {"token": " maybe", "logprob": math.log(0.2)}]}]
    assert p_unsafe_from_logprobs(content) == pytest.approx(0.75)
    assert p_unsafe_from_logprobs([{"token": "hello", "logprob": 0.0}]) is None
    assert parse_verdict("safe").safe and parse_verdict(" Unsafe.").parsed  # a bare label is accepted
    assert parse_verdict("VERDICT: safe or VERDICT: unsafe").label is VerdictLabel.UNPARSABLE
    assert parse_verdict("The answer is safe").label is VerdictLabel.UNPARSABLE


# --- 3. flagged chains --------------------------------------------------------------------------

def always_unsafe(request, count):
    return "unsafe step-by-step" if request.stage == "answer" else f"{request.stage} text"


def test_default_policy_regenerates_then_drops_and_keep_only_when_chosen(tmp_path):
    from core.data.chain_store import is_trainable, trainable_records

    records, _ = generate(always_unsafe, [question(1, None)], tmp_path / "default")
    chain = records["q1"]
    assert chain["flagged"] and chain["dropped"] and len(chain["attempts"]) == 3
    assert chain["flag_reasons"] == ["unsafe answer"] and chain["flagged_policy"] == "regenerate"
    assert not JsonlChainSink(tmp_path / "default").records()  # nothing trainable on file
    kept, _ = generate(always_unsafe, [question(1, None)], tmp_path / "keep", flagged_policy="keep")
    assert kept["q1"]["flagged"] and not kept["q1"]["dropped"] and kept["q1"]["keep_flagged"]
    assert is_trainable(kept["q1"])
    assert not is_trainable({**kept["q1"], "keep_flagged": False})  # flagged without the explicit choice
    assert not is_trainable({**kept["q1"], "flag_set_by_user": True})
    assert trainable_records([{"flagged": False}, {"flagged": True}]) == [{"flagged": False}]


def test_training_skips_flagged_chains_unless_keep_was_chosen(tmp_path):
    import json

    from jobs.worker import load_training_chains

    rows = [{"id": "a", "question": "q", "answer": "fine"},
            {"id": "b", "question": "q", "answer": "bad", "flagged": True},
            {"id": "c", "question": "q", "answer": "bad", "flagged": True, "keep_flagged": True}]
    path = tmp_path / "chains.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [c.id for c in load_training_chains(None, {"chains": str(path)})] == ["a", "c"]
    path.write_text(json.dumps(rows[1]) + "\n")
    with pytest.raises(ValueError, match="flagged_policy='keep'"):
        load_training_chains(None, {"chains": str(path)})


def test_analysis_and_guidance_are_checked_by_the_same_checker(tmp_path):
    def script(request, count):
        if request.stage == "answer":
            return ["unsafe answer", "unsafe answer", "fine answer"][count % 3]
        return "unsafe detail" if request.stage == "guidance" else "calm analysis"
    checker = ScriptedChecker()
    records, _ = generate(script, [question(1, None)], tmp_path, checker=checker, flagged_policy="keep")
    chain = records["q1"]
    assert chain["shape"] == "analysis->guidance->answer"
    checks = chain["attempts"][0]["stage_checks"]
    assert checks["analysis"]["label"] == "safe" and checks["guidance"]["label"] == "unsafe"
    assert checks["guidance"]["checker"] == "scripted-checker"
    assert chain["flagged"] and chain["flag_reasons"] == ["unsafe guidance"]
    checked_stages = [item.stage for batch in checker.batches for item in batch]
    assert sorted(set(checked_stages)) == ["analysis", "answer", "guidance"]


# --- 4. label-aware verification ----------------------------------------------------------------

def test_label_mismatch_is_detected_both_ways_and_handled_by_the_policy(tmp_path):
    def script(request, count):
        if request.stage != "answer":
            return f"{request.stage} text"
        return REFUSAL if "question 2" in request.messages[-1]["content"] else "Sure, here is how to do it."
    questions = [question(1, "harmful"), question(2, "helpful"), question(3, None), question(4, "benign")]
    records, _ = generate(script, questions, tmp_path, flagged_policy="drop")
    harmful, helpful, unlabelled, benign = (records[f"q{i}"] for i in range(1, 5))
    assert harmful["flag_reasons"] == ["label mismatch"] and harmful["dropped"] and not harmful["refused"]
    assert helpful["flag_reasons"] == ["label mismatch"] and helpful["dropped"] and helpful["refused"]
    assert not unlabelled["flagged"] and unlabelled["shape"] == "answer"
    assert not benign["flagged"]
    assert harmful["shape"] == "analysis->guidance->answer"  # a mismatch keeps the adaptive stages going
    off, _ = generate(script, questions[:2], tmp_path / "off", label_checks=False)
    assert not any(r["flagged"] for r in off.values())


def test_a_declining_answer_to_a_harmful_question_passes(tmp_path):
    records, _ = generate(lambda r, n: REFUSAL if r.stage == "answer" else "x", [question(1)], tmp_path)
    assert not records["q1"]["flagged"] and records["q1"]["refused"] and records["q1"]["shape"] == "answer"


# --- 6. few-shot exemplars, context distillation -------------------------------------------------

def test_exemplars_are_in_the_generation_prompt_and_absent_from_the_training_text(tmp_path, tiny_dir):
    from core.config import DataConfig
    from core.data.chains import chain_from_dict
    from core.data.dataset import encode_chain
    from tests.conftest import tiny_mote

    def script(request, count):
        return "fine answer" if request.stage == "answer" and count else f"{request.stage} text"
    records, generator = generate(script, [question(1, None)], tmp_path, exemplars=2, label_checks=False,
                                  checker=ScriptedChecker(unsafe_words=("answer text",)), flagged_policy="keep")
    exemplar_user, exemplar_answer = PROMPTS["answer"].examples[0]
    answer_prompts = [r.messages for r in generator.requests if r.stage == "answer"]
    assert all(m[1]["content"] == exemplar_user and m[2]["content"] == exemplar_answer for m in answer_prompts)
    assert sum(m["role"] == "assistant" for m in answer_prompts[0]) == 2  # two pairs: one harmful, one helpful
    analysis_prompt = next(r.messages for r in generator.requests if r.stage == "analysis")
    assert PROMPTS["analysis"].examples[1][1] in [m["content"] for m in analysis_prompt]
    chain = chain_from_dict(records["q1"])
    assert chain.shape.value == "analysis->answer"
    mote = tiny_mote(tiny_dir)
    text = mote.tokenizer.decode(encode_chain(chain, mote.tokenizer, DataConfig(), mote.marker_ids).input_ids)
    assert "question 1" in text and "fine answer" in text
    for absent in (exemplar_user, exemplar_answer, "neighbour", PROMPTS["answer"].sections["system"]):
        assert absent not in text
    none, generator = generate(script, [question(1, None)], tmp_path / "none", exemplars=0)
    assert all(len(r.messages) == 2 for r in generator.requests)  # system + user only


# --- 7. label-conditioned answer openings ---------------------------------------------------------

def test_harmful_questions_get_a_declining_opening_the_model_continues(tmp_path):
    from core.synthesis.prompts import load_openings

    openings = load_openings()
    assert len(openings) >= 3 and all(not o.startswith("#") for o in openings)
    checker = ScriptedChecker()
    script = lambda r, n: " it would hurt people. Try a safety course instead." if r.stage == "answer" else "x"
    questions = [question(i) for i in range(1, 6)] + [question(6, None), question(7, "helpful")]
    records, generator = generate(script, questions, tmp_path, checker=checker, answer_openings="harmful")
    for i in range(1, 6):
        chain = records[f"q{i}"]
        assert chain["opening_given"] in openings and chain["answer"].startswith(chain["opening_given"])
        assert chain["answer"].endswith("Try a safety course instead.") and not chain["flagged"]
    assert len({records[f"q{i}"]["opening_given"] for i in range(1, 6)}) > 1  # varied across questions
    assert records["q6"]["opening_given"] is None and records["q7"]["opening_given"] is None
    prefixes = {r.key: r.response_prefix for r in generator.requests if r.stage == "answer"}
    assert prefixes["q1"] == records["q1"]["opening_given"] and prefixes["q6"] == "" and prefixes["q7"] == ""
    judged = {item.text for batch in checker.batches for item in batch}
    assert records["q1"]["answer"] in judged  # the checker saw the whole answer, opening included
    from core.data.quality import quality_report

    report = quality_report(records.values())
    assert report.group("harmful").opening_given == 5 and report.group("harmful").declined == 5
    assert report.group("helpful").complied == 1 and report.unparsable_verdicts == 0
    off, generator = generate(script, [question(1)], tmp_path / "off", answer_openings="off")
    assert off["q1"]["opening_given"] is None and all(r.response_prefix == "" for r in generator.requests if r.stage == "answer")


# --- 8. data-quality report ----------------------------------------------------------------------

def fixed_chains() -> list[dict]:
    def chain(i, kind, answer, *, p=0.1, shape="answer", flagged=False, dropped=False, tries=1, mismatch=False,
              opening=None, parsed=(True,), analysis=None, stage_unparsable=False):
        steps = [{"verdict_parsed": ok, "checker": "labels:tiny"} for ok in parsed]
        attempt = {"answers": steps, "tokens": {"answer": 10 + i, **({"analysis": 20} if analysis else {})},
                   "stage_checks": {"analysis": {"label": "unparsable" if stage_unparsable else "safe"}} if analysis else {}}
        return {"id": f"c{i}", "kind": kind, "question": "q", "answer": answer, "analysis": analysis, "shape": shape,
                "p_unsafe": p, "flagged": flagged, "dropped": dropped, "attempts": [attempt] * tries,
                "label_mismatch": mismatch, "opening_given": opening, "checker": "labels:tiny", "flagged_policy": "regenerate"}
    return [
        chain(1, "harmful", "I can't help with that, because it is dangerous.", p=0.2, opening="I can't help with that, because"),
        chain(2, "harmful", "I'm sorry, but no.", p=0.4, shape="analysis->answer", analysis="risky", parsed=(True, True)),
        chain(3, "harmful", "Step one: buy the parts.", p=0.9, flagged=True, dropped=True, tries=3, mismatch=True,
              parsed=(False,)),
        chain(4, "harmful", "Here is a safe overview.", p=0.3),
        chain(5, "helpful", "Boil the eggs for seven minutes.", p=0.05),
        chain(6, "helpful", "I cannot assist with that.", p=None, flagged=True, dropped=False, mismatch=True, tries=2,
              shape="analysis->answer", analysis="fine", stage_unparsable=True),
        chain(7, None, "Sure.", p=0.1),
    ]


def test_quality_report_counts_on_a_fixed_set_of_chains():
    from core.data.quality import quality_report

    report = quality_report(fixed_chains())
    assert [g.label for g in report.groups] == ["harmful", "helpful", "unlabelled"]
    harmful, helpful = report.group("harmful"), report.group("helpful")
    assert (harmful.chains, harmful.kept, harmful.trainable, harmful.dropped) == (4, 3, 3, 1)
    assert (harmful.declined, harmful.complied) == (2, 1) and harmful.declined_share == pytest.approx(2 / 3)
    assert harmful.mean_p_unsafe == pytest.approx(0.3)  # kept answers only: 0.2, 0.4, 0.3
    assert (harmful.flagged, harmful.regenerated, harmful.label_mismatch, harmful.opening_given) == (1, 1, 1, 1)
    assert (harmful.unparsable_verdicts, harmful.checks) == (3, 8)  # 1 + (2 answers + 1 stage) + 3 tries + 1
    assert harmful.shapes == {"answer": 2, "analysis->answer": 1, "guidance->answer": 0, "analysis->guidance->answer": 0}
    assert harmful.mean_tokens == {"analysis": 20.0, "guidance": 0.0, "answer": pytest.approx((11 + 12 + 14) / 3, abs=0.05)}
    assert (helpful.kept, helpful.trainable, helpful.declined, helpful.complied) == (2, 1, 1, 1)
    assert helpful.mean_p_unsafe == pytest.approx(0.05) and helpful.regenerated == 1 and helpful.label_mismatch == 1
    assert (helpful.unparsable_verdicts, helpful.checks) == (2, 5)  # 1 + two tries of (answer + stage check)
    assert report.unparsable_verdicts == 5 and report.checkers == ("labels:tiny",)
    assert report.flagged_policies == ("regenerate",)
    markdown = report.to_markdown()
    assert "| Safe Answers that decline | 2/3 (67%) | 1/2 (50%) | 0/1 (0%) |" in markdown
    assert "| unparsable verdicts | 3 of 8 checks | 2 of 5 checks | 0 of 1 checks |" in markdown
    data = report.to_dict()
    assert data["groups"][0]["declined_share"] == pytest.approx(2 / 3) and data["unparsable_verdicts"] == 5


# --- 5. best-of-N ------------------------------------------------------------------------------

def test_best_of_n_keeps_the_candidate_the_checker_scores_safest(tmp_path):
    risks = {"cand 0": 0.45, "cand 1": 0.2, "cand 2": 0.05, "cand 3": 0.3}
    checker = ScriptedChecker(risk=lambda text: risks.get(text, 0.0))
    script = lambda r, n: f"cand {n}" if r.stage == "answer" else "x"
    records, generator = generate(script, [question(1, None)], tmp_path, checker=checker, best_of=4)
    chain = records["q1"]
    assert chain["answer"] == "cand 2" and chain["p_unsafe"] == pytest.approx(0.05) and chain["shape"] == "answer"
    step = chain["attempts"][0]["answers"][0]
    assert step["chosen"] == 2 and [c["answer"] for c in step["candidates"]] == ["cand 0", "cand 1", "cand 2", "cand 3"]
    answers = [r for r in generator.requests if r.stage == "answer"]
    assert len(answers) == 4 and len({r.seed for r in answers}) == 4
    assert answers[0].temperature == 0.0 and all(r.temperature == pytest.approx(0.8) for r in answers[1:])
    assert [len(batch) for batch in checker.batches] == [4]  # the N candidates judged in one call


def test_best_of_n_for_a_helpful_question_prefers_an_answer_over_a_safer_refusal(tmp_path):
    texts = ["I can't help with that.", "Boil them for seven minutes."]
    risks = {texts[0]: 0.01, texts[1]: 0.2}
    checker = ScriptedChecker(risk=lambda text: risks.get(text, 0.0))
    script = lambda r, n: texts[n % 2] if r.stage == "answer" else "x"
    records, _ = generate(script, [question(1, "helpful")], tmp_path, checker=checker, best_of=2)
    assert records["q1"]["answer"] == texts[1] and not records["q1"]["flagged"]


def test_checks_of_many_questions_are_pooled_into_batches(tmp_path):
    checker = ScriptedChecker()
    questions = [question(i, None) for i in range(12)]
    generate(lambda r, n: "That is fine to do." if r.stage == "answer" else "x", questions, tmp_path, checker=checker, batch_size=4)
    assert sum(len(b) for b in checker.batches) == 12 and max(len(b) for b in checker.batches) >= 4


# --- 2. checker choice --------------------------------------------------------------------------

def test_build_checker_follows_the_setting_and_chains_record_their_checker(tiny_dir):
    from core.synthesis.checkers import EndpointChecker
    from core.synthesis.generators import build_checker

    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(len(tokenizer), seed=5)
    local = LocalGenerator(model, tokenizer, batch_size=2, model_id="tiny")
    own = build_checker(GenerateConfig(unsafe_threshold=0.3), local, PROMPTS)
    assert isinstance(own, LabelScoreChecker) and own.model is model and own.threshold == 0.3 and own.id == "labels:tiny"
    assert build_checker(GenerateConfig(checker="text"), local, PROMPTS) is None
    other = build_checker(GenerateConfig(checker=str(tiny_dir)), local, PROMPTS, say=lambda _: None)
    assert isinstance(other, LabelScoreChecker) and other.model is not model and str(tiny_dir) in other.id
    assert other.check([CheckItem("q", "a")])[0].parsed

    class FakeClient:
        base_url, model = "http://fake/v1", "judge"

        def __init__(self, replies):
            self.replies = replies

        def chat_logprobs(self, messages, *, max_tokens):
            return self.replies.pop(0)

    http = SimpleNamespace(id="openai:x", client=FakeClient([("VERDICT: safe", None), ("no idea", None),
                                                                  ("unsafe", [{"token": " unsafe", "logprob": -0.1}])]))
    endpoint = build_checker(GenerateConfig(checker="self", exemplars=0), http, PROMPTS)
    assert isinstance(endpoint, EndpointChecker)
    verdicts = [endpoint.check([CheckItem("q", "a")])[0] for _ in range(3)]
    assert [v.label for v in verdicts] == [VerdictLabel.SAFE, VerdictLabel.UNPARSABLE, VerdictLabel.UNSAFE]
    assert verdicts[0].p_unsafe is None and verdicts[1].p_unsafe is None and verdicts[2].p_unsafe == pytest.approx(1.0)
    assert all(v.checker == "openai:http://fake/v1#judge" for v in verdicts)
    with pytest.raises(ValueError, match="checker='text'"):
        build_checker(GenerateConfig(), SimpleNamespace(id="scripted"), PROMPTS)


def test_free_text_self_check_is_recorded_with_the_generator_as_checker(tmp_path):
    generator = ScriptedGenerator(lambda r, n: " safe" if r.stage == "check" else "That is fine.", batch=2)
    sink = JsonlChainSink(tmp_path)
    generate_chains([question(1, None)], generator, GenerateConfig(checker="text"), PROMPTS, sink)
    chain = sink.records()[0]
    assert chain["checker"] == "text:scripted" and chain["p_unsafe"] is None and not chain["flagged"]
    assert chain["decoding"]["checker"] == "text"


def test_a_stored_dataset_reports_its_quality_over_kept_and_dropped_chains(tmp_path):
    from jobs.db import open_database
    from jobs.records import ChainDataset
    from jobs.results import dataset_quality
    from jobs.sinks import DatabaseChainSink

    _, sessions = open_database(url=f"sqlite:///{tmp_path / 'mote.db'}")
    with sessions.begin() as session:
        row = ChainDataset(name="imported", path=str(tmp_path))
        session.add(row)
        session.flush()
        dataset_id = row.id
    sink = DatabaseChainSink(sessions, dataset_id)
    for record in fixed_chains():
        sink.write(record)
    with sessions() as session:
        report = dataset_quality(session, dataset_id)
    assert report.group("harmful").chains == 4 and report.group("harmful").dropped == 1
    assert report.unparsable_verdicts == 5


def test_a_generator_that_cannot_continue_a_prefix_gets_no_openings(tmp_path):
    generator = ScriptedGenerator(lambda r, n: REFUSAL if r.stage == "answer" else "x")
    generator.continues_prefix = False
    sink = JsonlChainSink(tmp_path)
    generate_chains([question(1)], generator, GenerateConfig(), PROMPTS, sink, checker=ScriptedChecker())
    assert sink.records()[0]["opening_given"] is None
    assert all(r.response_prefix == "" for r in generator.requests if r.stage == "answer")


# --- copied exemplars -----------------------------------------------------------------------------

def test_a_stage_text_that_copies_an_exemplar_is_recognised_and_a_restated_question_is_not():
    from core.synthesis.verification import copies_exemplar

    shown = [answer for _, answer in PROMPTS["analysis"].examples[:2]]
    copied = "The user wants a painless way to hurt someone. The intent is ordinary household cooking. Answering carries no risk to anyone."
    own = "The user wants a painless way to hurt someone. This could cause serious harm, so no steps should be given."
    assert copies_exemplar(copied, shown)
    assert not copies_exemplar(own, shown)
    assert not copies_exemplar("", shown) and not copies_exemplar(copied, [])


def test_a_chain_whose_analysis_copies_an_exemplar_is_flagged_and_dropped_by_default(tmp_path):
    from core.data.quality import quality_report

    bread = PROMPTS["analysis"].examples[1][1]  # the helpful exemplar a small model tends to copy

    def script(request, count):
        if request.stage == "answer":
            return "unsafe answer" if count % 2 == 0 else REFUSAL  # each attempt: unsafe, then a refusal
        return f"The user asks question 1. {bread}" if request.stage == "analysis" else "guidance text"
    records, _ = generate(script, [question(1)], tmp_path / "default", exemplars=2)
    chain = records["q1"]
    assert chain["shape"] == "analysis->answer" and chain["flagged"] and chain["dropped"]
    assert "copied exemplar" in chain["flag_reasons"] and chain["attempts"][0]["copied_exemplar"] == ["analysis"]
    assert quality_report([chain]).group("harmful").copied_exemplar == 1
    own, _ = generate(lambda r, n: ("unsafe answer" if n % 2 == 0 else REFUSAL) if r.stage == "answer"
                      else "My own reading of question 1.", [question(1)], tmp_path / "own", exemplars=2)
    assert not own["q1"]["flagged"] and own["q1"]["shape"] == "analysis->answer"
