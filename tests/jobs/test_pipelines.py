"""Pipeline and study configs (jobs/pipelines.py): the bundled presets parse, the user's settings
override a preset's, and a study file's mistakes are named."""
from __future__ import annotations

import pytest

from jobs.pipelines import pipeline_config, study_config
from jobs.specs import JobConfigError, parse_job_config


def test_bundled_study_and_pipeline_presets_parse():
    study = parse_job_config("pipeline", study_config("assets/studies/quick.yaml"))
    assert study.generate is None and study.methods == ["mote", "lora", "sft"] and study.include_base
    assert [j["kind"] for j in study.evaluate.judges] == ["heuristic", "local"]
    for preset in ("quick", "paper"):
        config = pipeline_config(preset, {"model": "smollm2-135m-instruct"}, {"mote": {}}, methods=None, evaluate=True)
        spec = parse_job_config("pipeline", config)
        assert spec.generate is not None and "mote" in spec.methods and spec.evaluate is not None
    assert pipeline_config("quick", {"limit": 5}, {"mote": {}}, methods=["mote"], evaluate=False)["generate"]["limit"] == 5


def test_study_file_mistakes_are_named_and_relative_chains_are_read_beside_it(tmp_path):
    with pytest.raises(JobConfigError, match="no such file"):
        study_config(tmp_path / "missing.yaml")
    study = tmp_path / "study.yaml"
    study.write_text("methods: [mote]\nmodle: x\n", encoding="utf-8")
    with pytest.raises(JobConfigError, match=r"unknown key\(s\) \['modle'\]"):
        study_config(study)
    study.write_text("methods: [mote]\nchains: data/chains.jsonl\n", encoding="utf-8")
    with pytest.raises(JobConfigError, match=r"chains.jsonl does not exist.*--regenerate"):
        study_config(study)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "chains.jsonl").write_text("", encoding="utf-8")
    config = study_config(study)
    assert config["train"]["chains"] == str((tmp_path / "data" / "chains.jsonl").resolve())
    assert config["methods"] == ["mote"]
    study.write_text("{}\n", encoding="utf-8")
    assert study_config(study)["methods"] == ["mote", "lora", "sft"]
