"""The CLI forms of evaluate and pipeline: flags become checked job configs (the study and
pipeline presets themselves: tests/jobs/test_pipelines.py)."""
from __future__ import annotations

import pytest

import launch
from cli.evaluate import evaluate_config, judge_from_flag, subject_from_flag
from jobs.specs import JobConfigError, parse_job_config


def test_run_and_judge_flags():
    assert subject_from_flag("job:12") == {"label": "job-12", "train_job": 12}
    assert subject_from_flag("base:smollm2-135m-instruct") == {"label": "base:smollm2-135m-instruct", "base": "smollm2-135m-instruct"}
    assert subject_from_flag("/runs/job-3/export")["label"] == "job-3"
    assert judge_from_flag("heuristic") == {"kind": "heuristic"}
    assert judge_from_flag("local:/models/judge") == {"kind": "local", "model": "/models/judge"}
    assert judge_from_flag("local:/models/judge:verdict-first") == {"kind": "local", "model": "/models/judge", "mode": "verdict-first"}
    assert judge_from_flag("local:/models/judge:verdict-first") == {"kind": "local", "model": "/models/judge", "mode": "verdict-first"}
    assert judge_from_flag("http://127.0.0.1:8000/v1#mote@MY_KEY") == {
        "kind": "http", "url": "http://127.0.0.1:8000/v1", "model_name": "mote", "api_key_env": "MY_KEY"}
    with pytest.raises(JobConfigError, match="model name after '#'"):
        judge_from_flag("http://127.0.0.1:8000/v1")
    with pytest.raises(JobConfigError, match="not known"):
        judge_from_flag("gpt-judge")
    with pytest.raises(JobConfigError, match="job: takes a training job id"):
        subject_from_flag("job:twelve")


def test_judge_from_a_yaml_file(tmp_path):
    judge = tmp_path / "judge.yaml"
    judge.write_text("kind: local\nmodel: /models/judge\n", encoding="utf-8")
    assert judge_from_flag(str(judge)) == {"kind": "local", "model": "/models/judge"}
    judge.write_text("- not a mapping\n", encoding="utf-8")
    with pytest.raises(JobConfigError, match="mapping of judge settings"):
        judge_from_flag(str(judge))


def test_evaluate_verb_builds_a_valid_config(tmp_path, monkeypatch):
    from tests.hub_cache import use_hub_cache

    use_hub_cache(monkeypatch, tmp_path / "hub", "m")  # base model "m", as if downloaded
    args = launch.build_parser().parse_args(["evaluate", "--run", "base:m", "--sets", "eval_harmful,eval_benign",
                                             "--judge", "heuristic", "--limit", "3", "--batch-size", "4", "--detach"])
    spec = parse_job_config("evaluate", evaluate_config(args))
    assert spec.settings["sets"] == ["eval_harmful", "eval_benign"] and spec.settings["limit"] == 3
    assert spec.settings["batch_size"] == 4
    assert [s.label for s in spec.subjects] == ["base:m"]


def test_rejudge_takes_subjects_and_settings_from_the_earlier_job():
    source = {"subjects": [{"label": "MoTE", "train_job": 3}], "settings": {"sets": ["eval_benign"], "limit": 2}}
    args = launch.build_parser().parse_args(["evaluate", "--rejudge", "7", "--judge", "heuristic", "--limit", "1"])
    spec = parse_job_config("evaluate", evaluate_config(args, source))
    assert spec.answers_from == 7 and [s.label for s in spec.subjects] == ["MoTE"]
    assert spec.settings["sets"] == ["eval_benign"] and spec.settings["limit"] == 1  # a flag still overrides
    args = launch.build_parser().parse_args(["evaluate"])
    with pytest.raises(JobConfigError, match="--rejudge JOB"):
        evaluate_config(args)


def test_rejudge_of_a_missing_or_non_evaluate_job_is_refused_before_submitting(tmp_path, capsys):
    home = tmp_path / "home"
    assert launch.main(["--home", str(home), "evaluate", "--rejudge", "99", "--detach"]) == 2
    assert "error: --rejudge 99" in capsys.readouterr().err
    from jobs.queue import JobQueue

    queue = JobQueue(home=home)
    train_id = queue.submit("train", {"mote": {"train": {"max_steps": 1}}, "chains": None})
    assert launch.main(["--home", str(home), "evaluate", "--rejudge", str(train_id), "--detach"]) == 2
    assert "is a train job; name an evaluate job" in capsys.readouterr().err


def test_study_preset_and_regenerate_flags(tmp_path, capsys):
    from jobs.pipelines import SHIPPED_CHAINS, study_config, study_preset_path
    from jobs.queue import JobQueue

    home = tmp_path / "home"
    args = launch.build_parser().parse_args(["study", "--preset", "cpu", "--regenerate", "--detach"])
    assert args.preset == "cpu" and args.regenerate and args.config is None
    with pytest.raises(SystemExit):  # one of --config and --preset, not both
        launch.build_parser().parse_args(["study", "--preset", "cpu", "--config", "x.yaml"])
    if not SHIPPED_CHAINS.is_file():  # refused at submit, naming the file and --regenerate
        assert launch.main(["--home", str(home), "study", "--preset", "cpu", "--detach"]) == 2
        err = capsys.readouterr().err
        assert "smollm2_safe_chains.jsonl does not exist" in err and "--regenerate" in err
    # Submitted without dispatching (launch.main --detach would start the 320-question generation).
    config = study_config(study_preset_path(args.preset), regenerate=args.regenerate)
    queue = JobQueue(home=home)
    pipeline = queue.get(queue.submit("pipeline", config)).config
    queue.engine.dispose()
    assert pipeline["sweep"]["setting"] == "train.learning_rate" and pipeline["generate"]["questions"] == "train"
    assert list(pipeline["stages"]) == ["generate", "sweep", "train:mote", "train:lora", "train:sft",
                                        "train:mote_no_shared", "evaluate"]
