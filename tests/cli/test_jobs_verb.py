"""The `jobs` verb and submit-and-follow: detach, list, show, cancel, logs, gpus, work, Ctrl-C while
following, and a rejected config reported with its stored job id."""
from __future__ import annotations

import argparse
import io

import pytest

import launch
from cli.jobs import run_jobs_command
from cli.submit import follow_job, submit_and_follow
from jobs.gpus import list_gpus
from jobs.lock import DispatcherLock
from jobs.records import JobStatus
from tests.jobs.conftest import job_row, train_config


def parse(argv: list[str]) -> argparse.Namespace:
    return launch.build_parser().parse_args(argv)


def test_cli_detach_list_show_cancel_and_gpus(make_queue, tiny_dir, chains_file, monkeypatch):
    queue = make_queue()
    monkeypatch.setattr("jobs.dispatch.spawn", lambda *a: pytest.fail("no worker may start while an app runs"))
    app = DispatcherLock(queue.home)
    app.acquire()  # an app is running: the CLI only submits
    try:
        out = io.StringIO()
        assert submit_and_follow(queue, "train", train_config(tiny_dir, chains_file), detach=True, out=out) == 0
    finally:
        app.release()
    job_id = int(out.getvalue().split("job ")[1].split()[0])
    assert "jobs logs" in out.getvalue() and job_row(queue, job_id).status is JobStatus.QUEUED
    for argv, expected in ((["jobs", "list"], "queued"), (["jobs", "show", str(job_id)], "max_steps: 4"),
                           (["jobs", "cancel", str(job_id)], "cancelled"), (["jobs", "logs", str(job_id)], "no log yet"),
                           (["jobs", "gpus"], list_gpus().message)):
        out = io.StringIO()
        assert run_jobs_command(parse(argv), queue, out) == 0
        assert expected in out.getvalue()
    assert parse(["train", "--gpus", "0,1", "--detach", "--after", "3", "4"]).gpus == [0, 1]


def test_cli_reports_a_rejected_config_with_its_job_id(make_queue, tiny_dir, chains_file):
    queue = make_queue()
    config = train_config(tiny_dir, chains_file, max_steps=0)
    out = io.StringIO()
    assert submit_and_follow(queue, "train", config, detach=True, out=out) == 2
    assert "max_steps=0" in out.getvalue() and "recorded as failed job 1" in out.getvalue()


def test_ctrl_c_while_following_leaves_the_job_alone(make_queue, tiny_dir, chains_file, monkeypatch):
    queue = make_queue()
    job_id = queue.submit("train", train_config(tiny_dir, chains_file))

    def interrupted(_seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr("cli.submit.time.sleep", interrupted)
    out = io.StringIO()
    assert follow_job(queue, job_id, out) == 0
    assert f"launch.py jobs logs {job_id} --follow" in out.getvalue()
    assert job_row(queue, job_id).status is JobStatus.QUEUED


def test_jobs_work_runs_the_queue_until_it_is_idle(make_queue, tiny_dir, chains_file):
    queue = make_queue()
    first = queue.submit("train", train_config(tiny_dir, chains_file, max_steps=1))
    second = queue.submit("train", train_config(tiny_dir, chains_file, max_steps=1), depends_on=[first])
    out = io.StringIO()
    assert run_jobs_command(argparse.Namespace(jobs_action="work"), queue, out) == 0
    assert queue.get(first).status is JobStatus.SUCCEEDED and queue.get(second).status is JobStatus.SUCCEEDED
    assert "No job is queued or running" in out.getvalue()
