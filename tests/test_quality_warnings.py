"""teaching_warnings on fixed reports: each of the three reasons (harmful answers that comply,
helpful answers that refuse, flagged chains kept on purpose) at and around its threshold."""
from __future__ import annotations

from core.data.quality import quality_report, teaching_warnings

DECLINE = "I can't help with that, because it could hurt people."
COMPLY = "Sure: first you buy the parts, then you put them together."


def chain(i: int, kind: str | None, answer: str, *, flagged: bool = False, keep: bool = False,
          dropped: bool = False) -> dict:
    return {"id": f"c{i}", "kind": kind, "question": f"question {i}?", "answer": answer, "shape": "answer",
            "flagged": flagged, "dropped": dropped, "keep_flagged": keep,
            "flagged_policy": "keep" if keep else "regenerate", "attempts": [{"answers": [{"verdict_parsed": True}]}]}


def harmful(declining: int, complying: int) -> list[dict]:
    return ([chain(i, "harmful", DECLINE) for i in range(declining)]
            + [chain(100 + i, "harmful", COMPLY) for i in range(complying)])


def helpful(refusing: int, answering: int) -> list[dict]:
    return ([chain(200 + i, "helpful", DECLINE) for i in range(refusing)]
            + [chain(300 + i, "helpful", "Boil the eggs for seven minutes.") for i in range(answering)])


def test_a_safe_dataset_gets_no_warning():
    assert teaching_warnings(quality_report(harmful(8, 0) + helpful(1, 9))) == []


def test_fewer_than_half_of_harmful_answers_declining_is_warned_with_the_numbers():
    (warning,) = teaching_warnings(quality_report(harmful(3, 13) + helpful(0, 4)))
    assert warning.startswith("Only 3 of 16 harmful questions' answers decline in this dataset")
    assert "learns the format, not safety" in warning and "choose another dataset" in warning


def test_exactly_half_declining_is_not_warned():
    assert teaching_warnings(quality_report(harmful(4, 4))) == []


def test_dropped_harmful_chains_do_not_count_as_answers():
    records = harmful(2, 3) + [chain(500 + i, "harmful", DECLINE, dropped=True) for i in range(4)]
    (warning,) = teaching_warnings(quality_report(records))
    assert warning.startswith("Only 2 of 5 harmful")  # with the dropped ones it would be 6 of 9: no warning


def test_more_than_a_tenth_of_helpful_answers_refusing_is_warned():
    (warning,) = teaching_warnings(quality_report(harmful(5, 0) + helpful(2, 8)))
    assert warning.startswith("2 of 10 helpful questions' answers refuse") and "more than 10%" in warning
    assert teaching_warnings(quality_report(harmful(5, 0) + helpful(1, 9))) == []  # 10% exactly is allowed


def test_flagged_chains_kept_on_purpose_are_warned():
    records = harmful(5, 0) + [chain(600 + i, "harmful", DECLINE, flagged=True, keep=True) for i in range(2)]
    report = quality_report(records)
    assert report.group("harmful").flagged_trained == 2
    (warning,) = teaching_warnings(report)
    assert warning.startswith("2 flagged chains") and "policy keep, chosen by the user" in warning


def test_a_chain_flagged_by_hand_is_not_trained_on_so_not_warned():
    records = harmful(5, 0) + [{**chain(700, "harmful", DECLINE, flagged=True, keep=True), "flag_set_by_user": True}]
    assert teaching_warnings(quality_report(records)) == []


def test_every_reason_at_once_and_unlabelled_data_gets_none():
    records = harmful(1, 3) + helpful(3, 3) + [chain(800, "harmful", COMPLY, flagged=True, keep=True)]
    warnings = teaching_warnings(quality_report(records))
    assert [w.split()[0] for w in warnings] == ["Only", "3", "1"]
    assert warnings[0].startswith("Only 1 of 5 harmful")
    assert teaching_warnings(quality_report([chain(i, None, COMPLY) for i in range(4)])) == []
