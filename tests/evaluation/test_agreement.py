"""Judge agreement arithmetic on fixed tables whose statistics were worked out by hand."""
from __future__ import annotations

import math

import pytest

from core.evaluation.agreement import cohen_kappa, compute_agreement, pearson
from core.evaluation.types import Aspect, Verdict


def verdicts(judge: str, aspect: Aspect, scores: list[float | None], prefix: str = "s") -> list[Verdict]:
    return [Verdict(f"{prefix}{i}", aspect, judge, score, raw_output=str(score)) for i, score in enumerate(scores)]


def test_binary_agreement_and_kappa_by_hand():
    # A: 1 1 1 1 1 1 0 0 0 0   B: 1 1 1 1 0 0 0 0 0 1
    # p_o = 7/10; p_A = 0.6, p_B = 0.5 -> p_e = 0.6*0.5 + 0.4*0.5 = 0.5; kappa = (0.7-0.5)/(1-0.5) = 0.4
    a = verdicts("A", Aspect.SAFETY, [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, None, 1])
    b = verdicts("B", Aspect.SAFETY, [1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1])  # s11 judged by A only
    report = compute_agreement(a, b)
    (row,) = report.aspects
    assert (report.judge_a, report.judge_b, row.aspect) == ("A", "B", Aspect.SAFETY)
    assert (row.paired, row.scored, row.unparsable_a, row.unparsable_b, row.only_a, row.only_b) == (11, 10, 1, 0, 1, 0)
    assert row.percent_agreement == pytest.approx(70.0)
    assert row.kappa == pytest.approx(0.4)
    assert (row.positive_rate_a, row.positive_rate_b) == (pytest.approx(60.0), pytest.approx(50.0))
    assert row.mean_abs_diff is None and row.pearson is None


def test_kappa_edge_cases():
    assert cohen_kappa([1, 0, 1, 0], [1, 0, 1, 0]) == pytest.approx(1.0)
    # always disagree with balanced labels: p_o = 0, p_e = 0.5 -> kappa = -1
    assert cohen_kappa([1, 0, 1, 0], [0, 1, 0, 1]) == pytest.approx(-1.0)
    # both judges say "safe" to everything: p_e = 1, kappa undefined
    assert cohen_kappa([1, 1, 1], [1, 1, 1]) is None
    # A constant, B not: p_o = 2/3, p_e = 1*(2/3) + 0 = 2/3 -> kappa = 0
    assert cohen_kappa([1, 1, 1], [1, 1, 0]) == pytest.approx(0.0)
    assert cohen_kappa([], []) is None


def test_helpfulness_statistics_by_hand():
    # A: 8 6 3 10, B: 7 6 5 9 -> |diff| 1 0 2 1: MAD 1.0, within 1 point 3/4.
    # Means 6.75 / 6.75; deviations A 1.25 -0.75 -3.75 3.25, B 0.25 -0.75 -1.75 2.25:
    # cov 14.75, SS_A 26.75, SS_B 8.75 -> r = 14.75 / sqrt(234.0625) = 0.964109...
    a = verdicts("A", Aspect.HELPFULNESS, [8, 6, 3, 10, 4])
    b = verdicts("B", Aspect.HELPFULNESS, [7, 6, 5, 9, None])
    (row,) = compute_agreement(a, b).aspects
    assert (row.scored, row.unparsable_a, row.unparsable_b) == (4, 0, 1)
    assert row.mean_abs_diff == pytest.approx(1.0)
    assert row.within_one == pytest.approx(75.0)
    assert row.pearson == pytest.approx(14.75 / math.sqrt(234.0625))
    assert row.pearson == pytest.approx(0.964109, abs=1e-6)
    assert row.kappa is None and row.percent_agreement is None
    assert pearson([5, 5, 5], [1, 2, 3]) is None and pearson([1], [2]) is None


def test_several_aspects_markdown_and_dict():
    a = verdicts("heuristic-refusal", Aspect.REFUSAL, [1, 0, 0]) + verdicts("heuristic-refusal", Aspect.SAFETY, [1, 0, 0])
    b = verdicts("llm:judge", Aspect.REFUSAL, [1, 0, 1]) + verdicts("llm:judge", Aspect.HELPFULNESS, [5, 6, 7])
    report = compute_agreement(a, b)
    assert [row.aspect for row in report.aspects] == [Aspect.REFUSAL]  # only aspects both judged
    table = report.to_markdown()
    assert "A = `heuristic-refusal`, B = `llm:judge`" in table
    assert "| refusal | 3 | 66.67 | 0.40 | — | — | — | 33.33 / 66.67 | 0 / 0 | 0 / 0 |" in table
    assert report.to_dict()["aspects"][0]["aspect"] == "refusal"


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="several judges"):
        compute_agreement(verdicts("A", Aspect.SAFETY, [1]) + verdicts("C", Aspect.SAFETY, [1], "t"), [])
    with pytest.raises(ValueError, match="twice"):
        compute_agreement(verdicts("A", Aspect.SAFETY, [1]) * 2, [])
    with pytest.raises(ValueError, match="0.0 or 1.0"):
        compute_agreement(verdicts("A", Aspect.SAFETY, [0.5]), verdicts("B", Aspect.SAFETY, [1]))
