"""Metric names like "goodness@0.1" must show as text, not as the e-mail links GitHub-flavoured
Markdown (what gr.Markdown renders) makes of any `word@word.word`."""
from __future__ import annotations

import re

from app.markdown_text import AT_ENTITY, without_autolinks
from core.evaluation.report import build_comparison, comparison_markdown
from tests.evaluation.test_paired import refusal_table

#: GitHub's extended e-mail autolink (GFM spec 6.9), as the browser's renderer applies it.
GFM_EMAIL_AUTOLINK = re.compile(r"[A-Za-z0-9._+-]+@[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)+")
CODE = re.compile(r"^```.*?^```$|`[^`]+`", re.DOTALL | re.MULTILINE)


def autolinked(markdown: str) -> list[str]:
    """The texts outside code that the renderer would turn into mailto links."""
    return GFM_EMAIL_AUTOLINK.findall(CODE.sub("", markdown))


def test_an_evaluation_report_keeps_goodness_at_as_text():
    report = comparison_markdown(build_comparison({"base:smol": refusal_table({0}), "mote:run": refusal_table({0, 1})}))
    assert "goodness@0.1" in autolinked(report)  # the report as core writes it would show a mailto link
    shown = without_autolinks(report)
    assert autolinked(shown) == []
    assert f"goodness{AT_ENTITY}0.1" in shown
    assert shown.replace(AT_ENTITY, "@") == report  # nothing else changed


def test_code_stays_verbatim_and_plain_at_signs_are_left_alone():
    text = "Run `judges validate --judge q1@wrap.x` then\n```\nscore@0.1 here\n```\nmail a@b.c; @user; 5 @ 3; x@y"
    shown = without_autolinks(text)
    assert "`judges validate --judge q1@wrap.x`" in shown and "\nscore@0.1 here\n" in shown
    assert f"mail a{AT_ENTITY}b.c" in shown and "@user" in shown and "5 @ 3" in shown and "x@y" in shown
    assert autolinked(shown) == []


def test_the_evaluate_tab_shows_reports_through_it(tmp_path):
    from app.services import Services
    from app.tabs.evaluate import EvaluateActions
    from jobs.queue import JobQueue

    queue = JobQueue(f"sqlite:///{tmp_path / 'mote.db'}", tmp_path / "home")
    try:
        actions = EvaluateActions(Services(queue, default_model="tiny-model").evaluation)
        actions.services.judge_validation = lambda judge: "| goodness@0.1 | 0.5 |"
        assert actions.validation("heuristic") == f"| goodness{AT_ENTITY}0.1 | 0.5 |"
    finally:
        queue.engine.dispose()
