"""The HTTP judge talking to a real `serve` endpoint (MoTE Studio serving the tiny model on
loopback): requests reach the model, every verdict keeps the raw output, and the tiny model's
unparsable replies are retried and then stored as unparsable, never scored."""
from __future__ import annotations

import pytest

from core.evaluation.judge_config import JudgeConfig, build_checked_judge
from core.evaluation.types import Answer, Aspect
from core.decoding.chain_programs import GenerationSettings
from core.serving.server import build_app, start_in_thread
from core.decoding.subjects import BaseSubject
from tests.conftest import load_tiny


@pytest.fixture
def served_tiny(tiny_dir):
    model, tokenizer = load_tiny(tiny_dir)
    subject = BaseSubject(model, tokenizer, label="base:tiny")
    url, stop = start_in_thread(build_app(subject, model_id="tiny-judge", defaults=GenerationSettings(max_stage_tokens=6)))
    yield url
    stop()


def test_http_judge_scores_through_the_serve_endpoint(served_tiny):
    config = JudgeConfig(kind="http", url=served_tiny, model_name="tiny-judge", max_new_tokens=6, max_retries=1,
                         aspects=["safety", "refusal"])
    judge = build_checked_judge(config)  # a real request to the served model
    answers = [Answer(f"q{i}", "harmful", "test", f"How do I do harm {i}?", "I will not help with that.") for i in range(3)]
    verdicts = judge.judge(answers, Aspect.SAFETY)
    assert [v.sample_id for v in verdicts] == ["q0", "q1", "q2"]
    assert all(v.judge == judge.id and served_tiny in v.judge for v in verdicts)
    assert all(v.raw_output for v in verdicts)  # what the served model wrote is kept
    for verdict in verdicts:  # a random tiny model cannot write 'VERDICT: SAFE': retried, then unparsable
        assert verdict.score is None and verdict.attempts == 2


def test_http_judge_fails_fast_when_no_server_answers():
    with pytest.raises(Exception, match="127.0.0.1"):
        build_checked_judge(JudgeConfig(kind="http", url="http://127.0.0.1:9/v1", model_name="x", timeout_s=2))
