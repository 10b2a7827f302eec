"""A hub-style model name that is not on this machine fails at submit, naming the field and the
fix, for every job kind that loads a model (train, generate, evaluate subjects and local judges),
from the CLI's queue.submit and from the app's forms alike; a cached one passes."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.model_source import ModelSourceError, check_model_on_this_machine, hub_model_is_cached
from jobs.queries import list_jobs
from jobs.records import JobKind, JobStatus
from jobs.specs import JobConfigError
from tests.hub_cache import use_hub_cache, write_cached_hub_model
from tests.tiny_model import save_tiny_model_dir

ABSENT = "some-org/never-downloaded-7b"
NOT_HERE = "is not on this machine: give a local folder or download it first"


def test_a_hub_id_counts_as_here_only_when_its_config_is_in_the_cache(tmp_path):
    cache = tmp_path / "hub"
    with pytest.raises(ModelSourceError, match=NOT_HERE) as error:
        check_model_on_this_machine(ABSENT, hub_cache=cache)
    assert ABSENT in str(error.value) and "the app runs offline" in str(error.value)
    write_cached_hub_model(cache, ABSENT)
    assert hub_model_is_cached(ABSENT, cache)
    check_model_on_this_machine(ABSENT, hub_cache=cache)
    check_model_on_this_machine("smollm2-135m-instruct", hub_cache=cache)  # the bundled model
    check_model_on_this_machine(str(tmp_path), hub_cache=cache)  # an existing folder
    with pytest.raises(ModelSourceError, match="does not exist"):
        check_model_on_this_machine(str(tmp_path / "missing-folder"), hub_cache=cache)
    assert not hub_model_is_cached("not a//valid id", cache)


@pytest.mark.parametrize(("kind", "config", "field"), [
    (JobKind.TRAIN, {"mote": {"model": ABSENT}}, "train config: mote: model"),
    (JobKind.GENERATE, {"model": ABSENT}, "generate config: model"),
    (JobKind.EVALUATE, {"subjects": [{"base": ABSENT}]}, "evaluate config: subjects[0]: base"),
    (JobKind.EVALUATE, {"subjects": [{"base": "smollm2-135m-instruct"}], "judges": [{"kind": "local", "model": ABSENT}]},
     "evaluate config: judges[0]: model"),
])
def test_submit_names_the_field_of_a_model_that_is_not_here(make_queue, tmp_path, monkeypatch, kind, config, field):
    use_hub_cache(monkeypatch, tmp_path / "empty-hub")
    queue = make_queue()
    with pytest.raises(JobConfigError, match=NOT_HERE) as error:
        queue.submit(kind, config)
    assert str(error.value).startswith(f"{field}: '{ABSENT}' {NOT_HERE}")
    assert [j.status for j in list_jobs(queue.sessions)] == [JobStatus.FAILED]  # rejected, kept in history


def test_a_downloaded_hub_model_is_queued(make_queue, tmp_path, monkeypatch):
    use_hub_cache(monkeypatch, tmp_path / "hub", ABSENT)
    queue = make_queue()
    job_id = queue.submit(JobKind.GENERATE, {"model": ABSENT})
    assert queue.get(job_id).status is JobStatus.QUEUED


def test_the_train_form_refuses_it_before_queueing(tmp_path, monkeypatch):
    from app.services import Services
    from app.train_form import ChainSource
    from core.config import MoteConfig
    from jobs.queue import JobQueue

    use_hub_cache(monkeypatch, tmp_path / "empty-hub")
    queue = JobQueue(f"sqlite:///{tmp_path / 'mote.db'}", tmp_path / "home")
    try:
        services = Services(queue, default_model=str(save_tiny_model_dir(tmp_path / "tiny")))
        with pytest.raises(JobConfigError, match=f"mote: model: '{ABSENT}' {NOT_HERE}"):
            services.launch_training(MoteConfig(model=ABSENT), ChainSource())
        with pytest.raises(JobConfigError, match=f"model: '{ABSENT}' {NOT_HERE}"):
            services.launch_generation("train", model=ABSENT, limit=1)
    finally:
        queue.engine.dispose()


def test_the_worker_side_check_is_unchanged_for_a_folder(tmp_path: Path):
    """A local folder is checked for its files (config.json, safetensors), not against the cache."""
    folder = tmp_path / "model"
    folder.mkdir()
    check_model_on_this_machine(str(folder), hub_cache=tmp_path / "empty-hub")  # it is here ...
    from core.model_source import check_model_choice

    with pytest.raises(ModelSourceError, match="config.json"):  # ... but the full check names what is missing
        check_model_choice(str(folder))
