"""Pipeline and study configs (jobs/pipelines.py): the bundled presets parse, the user's settings
override a preset's, and a study file's mistakes are named."""
from __future__ import annotations

import pytest

from core.data.chains import bundled_sample_chains_path
from jobs.pipelines import SHIPPED_CHAINS, pipeline_config, study_config, study_preset_path
from jobs.specs import JobConfigError, parse_job_config


def test_bundled_study_and_pipeline_presets_parse():
    study = parse_job_config("pipeline", study_config("assets/studies/quick.yaml"))
    assert study.generate is None and study.methods == ["mote", "lora", "sft"] and study.include_base
    assert [j["kind"] for j in study.evaluate.judges] == ["heuristic", "local"]
    sample = str(bundled_sample_chains_path())  # stands in for the shipped chains, which may not be here yet
    for preset in ("quick", "paper"):
        config = pipeline_config(preset, {"model": "smollm2-135m-instruct"}, {"mote": {}}, methods=None, evaluate=True,
                                 train_chains=sample if preset == "quick" else None)
        spec = parse_job_config("pipeline", config)
        assert spec.generate is not None and "mote" in spec.methods and spec.evaluate is not None
    assert spec.train.extra_chains is None  # the paper preset trains on its generated chains alone
    quick = pipeline_config("quick", {"limit": 5}, {"mote": {}}, methods=["mote"], evaluate=False, train_chains=sample)
    assert quick["generate"]["limit"] == 5 and quick["train"]["extra_chains"] == sample
    assert "extra_chains" not in pipeline_config("quick", {}, {"mote": {}}, methods=None, evaluate=False,
                                                 train_chains="none")["train"]
    if not SHIPPED_CHAINS.is_file():  # until the shipped chains exist, the preset names the missing file
        with pytest.raises(JobConfigError, match="smollm2_safe_chains.jsonl does not exist"):
            pipeline_config("quick", {}, {"mote": {}}, methods=None, evaluate=True)


def test_the_cpu_study_preset_sweeps_the_learning_rate_and_regenerates_on_request():
    if SHIPPED_CHAINS.is_file():
        config = study_config(study_preset_path("cpu"))
        assert config["generate"] is None and config["train"]["chains"] == str(SHIPPED_CHAINS)
    else:
        with pytest.raises(JobConfigError, match=r"smollm2_safe_chains.jsonl does not exist.*--regenerate"):
            study_config(study_preset_path("cpu"))
    spec = parse_job_config("pipeline", study_config(study_preset_path("cpu"), regenerate=True))
    assert spec.generate.questions == "train" and spec.generate.limit is None and spec.train.chains is None
    assert spec.methods == ["mote", "lora", "sft", "mote_no_shared"]
    assert spec.sweep.setting.value == "train.learning_rate" and len(spec.sweep.values) >= 2
    assert spec.evaluate.settings["limit"] == 110 and [j["kind"] for j in spec.evaluate.judges] == ["heuristic", "local"]
    assert spec.evaluate.judges[1]["mode"] == "label-prob"
    with pytest.raises(JobConfigError, match="no .*nope.yaml; use one of .*'cpu'"):
        study_preset_path("nope")


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


def test_a_train_job_reads_its_setting_only_from_a_sweep_job(make_queue, chains_file):
    queue = make_queue()
    plain = queue.submit("train", {"mote": {"train": {"max_steps": 1}}, "chains": str(chains_file)})
    with pytest.raises(JobConfigError, match=f"setting_from_job={plain} is not a sweep job"):
        queue.submit("train", {"mote": {}, "chains": str(chains_file), "setting_from_job": plain})
    sweep = queue.submit("train", {"mote": {}, "chains": str(chains_file),
                                   "sweep": {"setting": "experts.rank", "values": [2, 4]}})
    follower = queue.submit("train", {"mote": {}, "chains": str(chains_file), "setting_from_job": sweep})
    assert queue.get(follower).config["setting_from_job"] == sweep
    with pytest.raises(JobConfigError, match="sweep: setting='train.seed' cannot be swept"):
        queue.submit("train", {"mote": {}, "chains": str(chains_file), "sweep": {"setting": "train.seed", "values": [1, 2]}})


def test_the_quick_preset_caps_each_methods_steps_unless_the_user_sets_them():
    from jobs.pipelines import with_step_cap

    sample = str(bundled_sample_chains_path())
    capped = pipeline_config("quick", {}, {"mote": {"train": {"epochs": 2}}}, methods=None, evaluate=False, train_chains=sample)
    assert capped["train"]["mote"]["train"] == {"epochs": 2, "max_steps": 100}
    mine = pipeline_config("quick", {}, {"mote": {"train": {"max_steps": 5}}}, methods=None, evaluate=False, train_chains=sample)
    assert mine["train"]["mote"]["train"]["max_steps"] == 5  # --max-steps wins
    with pytest.raises(JobConfigError, match="train_max_steps"):
        with_step_cap({"mote": {}}, 0)


def test_a_missing_shipped_chains_file_is_named_with_the_way_to_make_it(tmp_path, monkeypatch):
    """Whether or not the file is in this checkout: without it the quick pipeline is refused at once."""
    import jobs.pipelines as pipelines

    monkeypatch.setattr(pipelines, "SHIPPED_CHAINS", tmp_path / "smollm2_safe_chains.jsonl")
    with pytest.raises(JobConfigError, match=r"smollm2_safe_chains.jsonl does not exist.*git pull.*--regenerate"):
        pipeline_config("quick", {}, {"mote": {}}, methods=None, evaluate=True)
