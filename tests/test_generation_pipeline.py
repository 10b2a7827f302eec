"""Self-generation: adaptive shapes, strict verdicts, flagged policies, resume (issue 3)."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from core.data.chain_store import JsonlChainSink, chain_statistics, statistics_table
from core.data.chains import load_chains_jsonl
from core.config import FlaggedPolicy, GenerateConfig
from core.synthesis.pipeline import generate_chains, parse_verdict
from core.synthesis.prompts import load_prompt_set
from tests.scripted_generator import ScriptedGenerator

PROMPTS = load_prompt_set()


def question(i: int, text: str | None = None):
    """Unlabelled, so label checks and answer openings stay off (tests/test_safe_data.py covers them)."""
    return SimpleNamespace(id=f"q{i}", text=text or f"question {i}", kind=None, category="test")


#: The paper's plain pipeline: free-text self-check of the answer only (no checker passed).
PLAIN = {"check_stages": False}


def verdicts_by_question(plan: dict[str, list[str]]):
    """Script: the check of attempt-answer k of question key returns plan[key][k]."""
    def script(request, count):
        if request.stage == "check":
            return plan[request.key][count]
        return f"{request.stage} text {count}"
    return script


def run(plan, tmp_path, **config):
    generator = ScriptedGenerator(verdicts_by_question(plan))
    sink = JsonlChainSink(tmp_path)
    questions = [question(int(key[1:])) for key in plan]
    generate_chains(questions, generator, GenerateConfig(**{**PLAIN, **config}), PROMPTS, sink)
    return {r["id"]: r for r in sink.records() + sink.dropped()}, generator


def test_all_three_chain_shapes_come_from_the_adaptive_exit(tmp_path):
    plan = {"q1": [" safe"], "q2": [" unsafe", " safe"], "q3": [" unsafe", " unsafe", " safe"]}
    records, generator = run(plan, tmp_path)
    assert records["q1"]["shape"] == "answer" and records["q1"]["analysis"] is None
    assert records["q2"]["shape"] == "analysis->answer" and records["q2"]["guidance"] is None
    assert records["q3"]["shape"] == "analysis->guidance->answer"
    assert records["q3"]["analysis"] == "analysis text 0" and records["q3"]["answer"] == "answer text 2"
    assert not any(r["flagged"] for r in records.values())
    q3_stages = [r.stage for r in generator.requests if r.key == "q3"]
    assert q3_stages == ["answer", "check", "analysis", "answer", "check", "guidance", "answer", "check"]
    answer_prompt = [r for r in generator.requests if r.key == "q3" and r.stage == "answer"][2].messages[-1]["content"]
    assert "analysis text 0" in answer_prompt and "guidance text 0" in answer_prompt
    assert all(r["template_hash"] == PROMPTS.hash for r in records.values())


@pytest.mark.parametrize("raw", [" maybe", "", " safe-ish", "\nI think it is fine"])
def test_unparsable_verdict_counts_as_unsafe_and_is_recorded(raw, tmp_path):
    records, _ = run({"q1": [raw, " safe"]}, tmp_path)
    first = records["q1"]["attempts"][0]["answers"][0]
    assert first["verdict"] == "unsafe" and first["verdict_parsed"] is False
    assert first["check_raw"] == "VERDICT:" + raw
    assert records["q1"]["shape"] == "analysis->answer"


def test_verdict_parser_is_strict():
    assert parse_verdict("VERDICT: safe").safe
    assert parse_verdict("reasoning...\nverdict: Unsafe.").parsed
    assert not parse_verdict("VERDICT: safe\nVERDICT: probably").parsed  # the last verdict line counts
    assert not parse_verdict("The answer is safe").parsed


UNSAFE = [" unsafe"] * 3


def test_flagged_policy_keep(tmp_path):
    records, _ = run({"q1": UNSAFE}, tmp_path, flagged_policy="keep")
    assert records["q1"]["flagged"] and not records["q1"]["dropped"]
    assert len(load_chains_jsonl(tmp_path / "chains.jsonl")) == 1


def test_flagged_policy_drop(tmp_path):
    records, _ = run({"q1": UNSAFE, "q2": [" safe"]}, tmp_path, flagged_policy="drop")
    assert records["q1"]["dropped"]
    kept = load_chains_jsonl(tmp_path / "chains.jsonl")
    assert [c.id for c in kept] == ["q2"]
    stats = chain_statistics(JsonlChainSink(tmp_path).records(), JsonlChainSink(tmp_path).dropped())
    assert stats["dropped"] == 1 and stats["flagged_rate"] == 0.5
    assert "| full chain | 0 |" in statistics_table(stats)


def test_flagged_policy_regenerate_until_safe_or_n(tmp_path):
    plan = {"q1": UNSAFE + [" unsafe", " safe"], "q2": UNSAFE * 3}
    records, generator = run(plan, tmp_path, flagged_policy=FlaggedPolicy.REGENERATE, max_regenerations=2)
    assert len(records["q1"]["attempts"]) == 2 and not records["q1"]["flagged"]
    assert records["q1"]["attempts"][1]["temperature"] == pytest.approx(0.8)
    assert len(records["q2"]["attempts"]) == 3 and records["q2"]["flagged"] and records["q2"]["dropped"]


def test_killed_run_resumes_without_duplicates_or_losses(tmp_path):
    plan = {f"q{i}": [" unsafe", " safe"] for i in range(10)}
    questions = [question(i) for i in range(10)]
    killed = ScriptedGenerator(verdicts_by_question(plan), batch=4, crash_after=23)
    with pytest.raises(KeyboardInterrupt):
        generate_chains(questions, killed, GenerateConfig(**PLAIN), PROMPTS, JsonlChainSink(tmp_path))
    partial = JsonlChainSink(tmp_path).records()
    assert 0 < len(partial) < 10
    with (tmp_path / "chains.jsonl").open("a") as handle:
        handle.write('{"id": "q9", "quest')  # a line cut short by the kill
    summary = generate_chains(questions, ScriptedGenerator(verdicts_by_question(plan)), GenerateConfig(**PLAIN), PROMPTS, JsonlChainSink(tmp_path))
    ids = [r["id"] for r in JsonlChainSink(tmp_path).records()]
    assert sorted(ids) == sorted(f"q{i}" for i in range(10)) and len(ids) == len(set(ids))
    assert summary.skipped_done == len(partial)
    for line in (tmp_path / "chains.jsonl").read_text().splitlines():
        json.loads(line)
