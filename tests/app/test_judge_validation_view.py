"""The Evaluate tab's "Judge validation": the stored report of the selected judge, the heuristic
judge validated on a click, and the command to run for an LLM judge."""
from __future__ import annotations

import pytest

from app.evaluation_services import judge_spec_hint
from app.services import Services
from app.tabs.evaluate import EvaluateActions
from core.evaluation.heuristic_judge import HEURISTIC_JUDGE_ID
from core.evaluation.validation_store import validation_dir
from jobs.queue import JobQueue


@pytest.fixture
def actions(tmp_path) -> EvaluateActions:
    queue = JobQueue(f"sqlite:///{tmp_path / 'mote.db'}", tmp_path / "home")
    yield EvaluateActions(Services(queue, default_model="tiny-model").evaluation)
    queue.engine.dispose()


def test_a_stored_report_is_shown_for_its_judge(actions):
    folder = validation_dir(actions.services.queue.home, "llm:smollm2-135m-instruct:label-prob")
    folder.mkdir(parents=True)
    (folder / "report.md").write_text("# Judge validation: judge `llm:smollm2-135m-instruct:label-prob`\n| heldout | 60 |", encoding="utf-8")
    assert "| heldout | 60 |" in actions.validation("llm:smollm2-135m-instruct:label-prob")


def test_the_heuristic_judge_is_validated_on_a_click_and_then_shown(actions):
    assert "press the button" in actions.validation(HEURISTIC_JUDGE_ID)
    shown = actions.validate_heuristic()
    assert shown.startswith(f"# Judge validation: heuristic judge `{HEURISTIC_JUDGE_ID}`")
    assert "## heldout: confusion" in shown and actions.validation(HEURISTIC_JUDGE_ID) == shown


def test_an_unvalidated_llm_judge_gets_the_command_to_run(actions):
    text = actions.validation("llm:smollm2-135m-instruct:label-prob")
    assert "launch.py judges validate --judge local:smollm2-135m-instruct" in text
    assert judge_spec_hint("llm:http://127.0.0.1:8000/v1#mote:label-prob").startswith("http://HOST/v1#MODEL_NAME")
    assert "Pick a judge" in actions.validation(None)
