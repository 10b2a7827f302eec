"""Queue rules without model work: configs rejected fast and kept in history (f), dependency
waiting and cancellation (g, the rule), recovery, re-attaching and automatic retries."""
from __future__ import annotations

import socket
import subprocess
import sys
from types import SimpleNamespace

import pytest

from jobs.formatting import format_job_detail, format_job_list
from jobs.gpus import GpuStatus
from jobs.lifecycle import MAX_AUTO_RETRIES
from jobs.queries import list_jobs
from jobs.records import Job, JobKind, JobStatus
from jobs.specs import JobConfigError
from tests.hub_cache import use_hub_cache
from tests.jobs.conftest import generate_config, job_row, train_config


@pytest.fixture
def fake_spawn(monkeypatch):
    """Replace process start-up: records the command and returns a live-looking process."""
    started = []

    def spawn(command, env, log_path, header=""):
        started.append((command, env))
        return SimpleNamespace(pid=999_999, poll=lambda: None, returncode=None)

    monkeypatch.setattr("jobs.dispatch.spawn", spawn)
    return started


@pytest.mark.parametrize("bad, field", [
    ({"train": {"max_steps": 0}}, "max_steps"),
    ({"train": {"lerning_rate": 0.1}}, "lerning_rate"),
    ({"experts": {"alpha": 2.0}}, "alpha"),
    ({"method": "mote_plus"}, "method"),
])
def test_invalid_train_config_fails_fast_is_stored_and_shown(make_queue, tiny_dir, chains_file, bad, field):
    queue = make_queue()
    config = train_config(tiny_dir, chains_file)
    for key, value in bad.items():
        config["mote"][key] = {**config["mote"].get(key, {}), **value} if isinstance(value, dict) else value
    with pytest.raises(JobConfigError, match=field) as caught:
        queue.submit(JobKind.TRAIN, config)
    job = job_row(queue, caught.value.job_id)
    assert job.status is JobStatus.FAILED and field in job.error and job.finished_at is not None
    assert field in format_job_detail(queue, job.id) and "failed" in format_job_list(list_jobs(queue.sessions))


def test_invalid_generate_config_and_references_are_rejected(make_queue, tiny_dir, questions_file, tmp_path):
    queue = make_queue()
    with pytest.raises(JobConfigError, match="answer_tokens"):
        queue.submit("generate", generate_config(tiny_dir, questions_file, generate={"answer_tokens": 0}))
    with pytest.raises(JobConfigError, match="questions"):
        queue.submit("generate", generate_config(tiny_dir, tmp_path / "missing.jsonl"))
    with pytest.raises(JobConfigError, match="depends_on"):
        queue.submit("generate", generate_config(tiny_dir, questions_file), depends_on=[12345])
    with pytest.raises(JobConfigError, match="chains"):
        queue.submit("train", {"mote": {}, "chains": str(tmp_path / "nope.jsonl")})
    assert all(j.status is JobStatus.FAILED for j in list_jobs(queue.sessions))


def test_bad_evaluate_configs_fail_at_submit_with_the_setting_named(make_queue, tmp_path, monkeypatch):
    queue = make_queue()
    monkeypatch.delenv("MOTE_TEST_MISSING_KEY", raising=False)
    use_hub_cache(monkeypatch, tmp_path / "hub", "m")  # base model "m": downloaded
    cases = [
        ({}, "subjects is empty"),
        ({"subjects": [{"label": "x", "run": str(tmp_path / "nope")}]}, "is not a folder"),
        ({"subjects": [{"base": "m"}], "settings": {"sets": ["no-such-set"]}}, "no-such-set"),
        ({"subjects": [{"base": "m"}], "judges": [{"kind": "http", "url": "http://127.0.0.1:9/v1", "model_name": "j",
                                                   "api_key_env": "MOTE_TEST_MISSING_KEY"}]}, "MOTE_TEST_MISSING_KEY"),
        ({"subjects": [{"base": "m"}], "judges": [{"kind": "local", "model": str(tmp_path / "no-model")}]}, "does not exist"),
        ({"subjects": [{"base": "m"}, {"base": "m"}]}, "repeat"),
    ]
    for config, message in cases:
        with pytest.raises(JobConfigError, match=message):
            queue.submit(JobKind.EVALUATE, config)
    assert all(j.status is JobStatus.FAILED for j in list_jobs(queue.sessions))  # kept in history, as rejected


def set_status(queue, job_id: int, status: JobStatus, error: str | None = None) -> None:
    with queue.sessions.begin() as session:
        job = session.get(Job, job_id)
        job.status, job.error = status, error


def test_dependents_wait_then_are_cancelled_with_the_reason(make_queue, tiny_dir, chains_file, fake_spawn):
    queue = make_queue(gpu_lister=GpuStatus)
    config = train_config(tiny_dir, chains_file)
    first = queue.submit("train", config)
    second = queue.submit("train", config, depends_on=[first])
    third = queue.submit("train", config, depends_on=[second])
    set_status(queue, first, JobStatus.RUNNING)
    assert queue.dispatch() == []  # one CPU slot is taken by `first`; the others wait for it anyway
    assert job_row(queue, second).status is JobStatus.QUEUED
    set_status(queue, first, JobStatus.FAILED, "ValueError: out of memory\n\ntraceback...")
    queue.dispatch()
    for dependent, cause in ((second, first), (third, second)):
        job = job_row(queue, dependent)
        assert job.status is JobStatus.CANCELLED and job.started_at is None
        assert f"dependency job {cause}" in job.error
    assert "failed: ValueError: out of memory" in job_row(queue, second).error
    assert fake_spawn == []


def test_dependent_follows_the_retry_of_its_dependency(make_queue, tiny_dir, chains_file, fake_spawn):
    queue = make_queue(gpu_lister=GpuStatus)  # a machine without GPUs
    config = train_config(tiny_dir, chains_file)
    first = queue.submit("train", config)
    second = queue.submit("train", config, depends_on=[first])
    set_status(queue, first, JobStatus.INTERRUPTED)  # waits: a retry may follow
    queue.dispatch()
    assert job_row(queue, second).status is JobStatus.QUEUED
    retry = queue.retry(first)
    set_status(queue, retry, JobStatus.SUCCEEDED)
    assert queue.dispatch() == [second]
    command, env = fake_spawn[0]
    assert command[1:4] == ["-m", "jobs.worker", str(second)] and env["CUDA_VISIBLE_DEVICES"] == ""
    with pytest.raises(ValueError, match=f"already retried as job {retry}"):
        queue.retry(first)


def insert_running(queue, pid: int, *, auto_retry: bool = False) -> int:
    with queue.sessions.begin() as session:
        job = Job(kind=JobKind.TRAIN, config={}, status=JobStatus.RUNNING, pid=pid,
                  host=socket.gethostname(), auto_retry=auto_retry, run_dir="/tmp/run", log_path="/tmp/log")
        session.add(job)
        session.flush()
        return job.id


def test_recover_marks_dead_or_foreign_pids_interrupted_and_auto_retries(make_queue):
    queue = make_queue()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = insert_running(queue, int(dead.stdout), auto_retry=True)
    foreign = insert_running(queue, pid=1)  # alive, but not a worker of ours
    assert sorted(queue.recover()) == [gone, foreign]
    assert job_row(queue, foreign).status is JobStatus.INTERRUPTED
    with queue.sessions() as session:
        retries = session.query(Job).filter(Job.retry_of == gone).all()
    assert len(retries) == 1 and retries[0].status is JobStatus.QUEUED and retries[0].run_dir == "/tmp/run"


def test_auto_retry_stops_after_the_limit(make_queue):
    queue = make_queue()
    previous = None
    for _ in range(MAX_AUTO_RETRIES + 1):
        job_id = insert_running(queue, pid=0, auto_retry=True)
        if previous is not None:
            with queue.sessions.begin() as session:
                session.get(Job, job_id).retry_of = previous
                session.get(Job, previous).status = JobStatus.INTERRUPTED
        previous = job_id
    queue.recover()
    last = job_row(queue, previous)
    assert last.status is JobStatus.INTERRUPTED and "Not retried again" in last.error


def test_a_new_queue_reattaches_to_a_live_worker_and_reaps_it_when_it_ends(make_queue):
    queue = make_queue()
    with queue.sessions.begin() as session:
        job = Job(kind=JobKind.TRAIN, config={}, status=JobStatus.RUNNING, host=socket.gethostname())
        session.add(job)
        session.flush()
        job_id = job.id
    # A stand-in worker: its command line names jobs.worker and the job id, like the real one.
    worker = subprocess.Popen([sys.executable, "-c", "import sys, time; time.sleep(float(sys.argv[1]))", "1.5",
                               "jobs.worker", str(job_id)], start_new_session=True)
    with queue.sessions.begin() as session:
        session.get(Job, job_id).pid = worker.pid
    assert queue.recover() == [] and queue.reap() == []
    assert job_row(queue, job_id).status is JobStatus.RUNNING
    worker.wait()
    assert queue.reap() == [job_id]
    assert job_row(queue, job_id).status is JobStatus.INTERRUPTED  # it never reported a result


def test_cancel_queued_job_and_pipeline_stages(make_queue, tiny_dir, chains_file, questions_file):
    queue = make_queue()
    single = queue.submit("train", train_config(tiny_dir, chains_file))
    assert queue.cancel(single) is JobStatus.CANCELLED
    assert "before it started" in job_row(queue, single).error
    with pytest.raises(ValueError, match="nothing to cancel"):
        queue.cancel(single)
    pipeline = queue.submit("pipeline", {"generate": generate_config(tiny_dir, questions_file),
                                         "train": {"mote": train_config(tiny_dir, chains_file)["mote"]}})
    stages = job_row(queue, pipeline).config["stages"]
    assert job_row(queue, stages["train"]).config["chains_from_job"] == stages["generate"]
    queue.cancel(pipeline)
    assert {job_row(queue, i).status for i in [pipeline, *stages.values()]} == {JobStatus.CANCELLED}
