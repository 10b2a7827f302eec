"""The CLI forms of evaluate, study and pipeline: flags and YAML files become checked job configs."""
from __future__ import annotations

import pytest

import launch
from jobs.evaluation_cli import judge_from_flag, pipeline_config, study_config, subject_from_flag
from jobs.specs import JobConfigError, parse_job_config


def test_run_and_judge_flags():
    assert subject_from_flag("job:12") == {"label": "job-12", "train_job": 12}
    assert subject_from_flag("base:smollm2-135m-instruct") == {"label": "base:smollm2-135m-instruct", "base": "smollm2-135m-instruct"}
    assert subject_from_flag("/runs/job-3/export")["label"] == "job-3"
    assert judge_from_flag("heuristic") == {"kind": "heuristic"}
    assert judge_from_flag("local:/models/judge") == {"kind": "local", "model": "/models/judge"}
    assert judge_from_flag("local:/models/judge:verdict-first") == {"kind": "local", "model": "/models/judge", "mode": "verdict-first"}
    assert judge_from_flag("http://127.0.0.1:8000/v1#mote@MY_KEY") == {
        "kind": "http", "url": "http://127.0.0.1:8000/v1", "model_name": "mote", "api_key_env": "MY_KEY"}
    with pytest.raises(JobConfigError, match="model name after '#'"):
        judge_from_flag("http://127.0.0.1:8000/v1")
    with pytest.raises(JobConfigError, match="not known"):
        judge_from_flag("gpt-judge")


def test_evaluate_verb_builds_a_valid_config(tmp_path):
    args = launch.build_parser().parse_args(["evaluate", "--run", "base:m", "--sets", "eval_harmful,eval_benign",
                                             "--judge", "heuristic", "--limit", "3", "--batch-size", "4", "--detach"])
    from jobs.evaluation_cli import evaluate_config

    spec = parse_job_config("evaluate", evaluate_config(args))
    assert spec.settings["sets"] == ["eval_harmful", "eval_benign"] and spec.settings["limit"] == 3
    assert spec.settings["batch_size"] == 4
    assert [s.label for s in spec.subjects] == ["base:m"]


def test_rejudge_takes_subjects_and_settings_from_the_earlier_job():
    from jobs.evaluation_cli import evaluate_config

    source = {"subjects": [{"label": "MoTE", "train_job": 3}], "settings": {"sets": ["eval_benign"], "limit": 2}}
    args = launch.build_parser().parse_args(["evaluate", "--rejudge", "7", "--judge", "heuristic", "--limit", "1"])
    spec = parse_job_config("evaluate", evaluate_config(args, source))
    assert spec.answers_from == 7 and [s.label for s in spec.subjects] == ["MoTE"]
    assert spec.settings["sets"] == ["eval_benign"] and spec.settings["limit"] == 1  # a flag still overrides
    args = launch.build_parser().parse_args(["evaluate"])
    with pytest.raises(JobConfigError, match="--rejudge JOB"):
        evaluate_config(args)


def test_bundled_study_and_pipeline_presets_parse():
    study = parse_job_config("pipeline", study_config("assets/studies/quick.yaml"))
    assert study.generate is None and study.methods == ["mote", "lora", "sft"] and study.include_base
    assert [j["kind"] for j in study.evaluate.judges] == ["heuristic", "local"]
    for preset in ("quick", "paper"):
        config = pipeline_config(preset, {"model": "smollm2-135m-instruct"}, {"mote": {}}, methods=None, evaluate=True)
        spec = parse_job_config("pipeline", config)
        assert spec.generate is not None and "mote" in spec.methods and spec.evaluate is not None
    assert pipeline_config("quick", {"limit": 5}, {"mote": {}}, methods=["mote"], evaluate=False)["generate"]["limit"] == 5
