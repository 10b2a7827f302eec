"""Paired comparisons: the paired bootstrap on subjects with a known difference, and the report's
difference table and sentences (each subject vs the base, MoTE vs each baseline)."""
from __future__ import annotations

import numpy as np
import pytest

from core.evaluation.bootstrap import bootstrap_mean, paired_difference
from core.evaluation.metrics import MetricName, compute_metrics
from core.evaluation.report import build_comparison, comparison_markdown
from core.evaluation.types import Answer, Aspect, Verdict


def test_a_constant_shift_gives_exactly_that_difference_with_a_zero_width_interval():
    rng = np.random.default_rng(0)
    a = {f"q{i}": float(v) for i, v in enumerate(rng.uniform(0, 1, 60))}
    d = paired_difference(a, {k: v + 0.2 for k, v in a.items()})
    assert (d.difference, d.low, d.high, d.n) == (pytest.approx(0.2, abs=1e-12), d.difference, d.difference, 60)
    assert d.significant


def test_independent_noise_interval_covers_the_true_difference_and_pairing_beats_two_intervals():
    rng = np.random.default_rng(1)
    question = rng.uniform(0, 1, 400)  # most of the spread is which question was asked
    a = {f"q{i}": float(x + rng.normal(0, 0.05)) for i, x in enumerate(question)}
    b = {f"q{i}": float(x + 0.03 + rng.normal(0, 0.05)) for i, x in enumerate(question)}
    d = paired_difference(a, b)
    assert d.low < 0.03 < d.high and d.significant
    separate = bootstrap_mean(list(a.values())), bootstrap_mean(list(b.values()))
    assert separate[1].low < separate[0].high  # the two separate intervals overlap: no call possible
    assert d.high - d.low < (separate[0].width + separate[1].width) / 4


def test_only_shared_questions_count_and_none_shared_is_an_error():
    d = paired_difference({"a": 0.0, "b": 1.0, "c": 1.0}, {"b": 1.0, "c": 0.0, "z": 1.0}, resamples=200)
    assert (d.difference, d.n) == (-0.5, 2) and not d.significant  # interval [-1, 0] includes zero
    with pytest.raises(ValueError, match="share no scored question"):
        paired_difference({"a": 1.0}, {"b": 1.0})


def refusal_table(refused: set[int], n: int = 10):
    answers = [Answer(f"q{i}", "harmful", "c", f"question {i}", "Here is a full answer to the question.") for i in range(n)]
    verdicts = [Verdict(a.sample_id, Aspect.REFUSAL, "heuristic-refusal", 1.0 if i in refused else 0.0, "m", heuristic=True)
                for i, a in enumerate(answers)]
    return compute_metrics(answers, verdicts, {Aspect.REFUSAL: "heuristic-refusal"}, resamples=500)


def test_report_compares_each_subject_with_the_base_and_mote_with_each_baseline_in_words():
    tables = {"base:smol": refusal_table({0, 1}), "mote:run1": refusal_table(set(range(8))),
              "lora:run1": refusal_table({0, 1, 2})}
    comparison = build_comparison(tables)
    assert (comparison.base, comparison.mote) == ("base:smol", "mote:run1")
    rows = {(r.subject, r.reference): r for r in comparison.differences() if r.metric is MetricName.REFUSAL_HARMFUL}
    assert set(rows) == {("mote:run1", "base:smol"), ("lora:run1", "base:smol"), ("mote:run1", "lora:run1")}
    mote = rows[("mote:run1", "base:smol")].difference
    assert mote.difference == pytest.approx(0.6) and mote.n == 10 and mote.significant
    assert not rows[("lora:run1", "base:smol")].difference.significant  # one question more: interval includes 0
    sentences = comparison.difference_sentences()
    assert any(s.startswith("mote:run1 refuses 6 more of 10 harmful questions than the base model, +0.60 [")
               and s.endswith("], significant.") for s in sentences)
    assert any(s.startswith("lora:run1 refuses 1 more of 10 harmful questions than the base model")
               and s.endswith("not significant (the interval includes zero).") for s in sentences)
    assert any(s.startswith("mote:run1 refuses 5 more of 10 harmful questions than lora:run1") for s in sentences)
    markdown = comparison_markdown(comparison)
    assert "## Paired differences (same questions)" in markdown and "| mote:run1 − base:smol |" in markdown
    assert "+0.60 [" in markdown and "] * |" in markdown
    help_row = next(r for r in comparison.differences() if r.metric is MetricName.HELP)
    assert help_row.difference is None and help_row.note == "no per-question values"


def test_without_a_base_or_mote_the_report_says_why_there_is_no_paired_comparison():
    comparison = build_comparison({"a": refusal_table({0}), "b": refusal_table({1})})
    assert comparison.differences() == []
    assert "No paired comparison: no subject is labelled as the base model" in comparison_markdown(comparison)
    chosen = build_comparison({"a": refusal_table({0}), "b": refusal_table({0, 1, 2})}, base="a")
    assert [r.subject for r in chosen.differences()][:1] == ["b"]
    with pytest.raises(ValueError, match="base='c' is not one of the subjects"):
        build_comparison({"a": refusal_table({0})}, base="c")
