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
