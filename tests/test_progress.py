"""core.progress: the helpers that adapt one reporter for a part of a larger job."""
from __future__ import annotations

from core.progress import UNKNOWN_TOTAL, announce, labelled, shifted


def test_a_later_part_reports_counts_of_the_whole_and_its_label_in_front():
    heard: list[tuple[int, int, str]] = []
    second_subject = labelled(shifted(lambda *report: heard.append(report), before=4, overall=8), "mote")
    announce(second_subject, "loading subject base:x")
    second_subject(0, 4, "answering 0/4")
    second_subject(3, 4, "answering 3/4")
    assert heard == [(0, UNKNOWN_TOTAL, "mote: loading subject base:x"), (4, 8, "mote: answering 0/4"),
                     (7, 8, "mote: answering 3/4")]


def test_a_part_with_a_width_fills_exactly_its_slice_of_the_bar_in_its_own_unit():
    heard: list[tuple[int, int, str]] = []
    judging = shifted(lambda *report: heard.append(report), before=10, overall=30, width=20)
    for done in (0, 3, 6):  # six verdicts spread over twenty bar units
        judging(done, 6, f"judging {done}/6")
    assert [done for done, _, _ in heard] == [10, 20, 30]
    assert {overall for _, overall, _ in heard} == {30}
    shifted(lambda *report: heard.append(report), before=30, overall=30, width=0)(5, 5, "string matcher")
    assert heard[-1] == (30, 30, "string matcher")  # an instant pass holds the bar where it is


def test_an_evaluation_bar_counts_answers_then_llm_verdicts_once_for_the_whole_job():
    from types import SimpleNamespace

    from jobs.evaluation_job import EvaluationPlan

    string_matcher = SimpleNamespace(heuristic=True, aspects=frozenset({"refusal", "safety"}))
    llm = SimpleNamespace(heuristic=False, aspects=frozenset({"refusal", "safety", "helpfulness"}))
    plan = EvaluationPlan(spec=None, settings=None, out=None, judges=[string_matcher, llm], prompts=[object()] * 4,
                          sources=[object()] * 2, stores={}, progress=None)
    assert (plan.judging_units(string_matcher), plan.judging_units(llm)) == (0, 12)
    assert plan.bar_units == 2 * 4 + 2 * 12  # two subjects' answers, then the LLM judge's pass over each
