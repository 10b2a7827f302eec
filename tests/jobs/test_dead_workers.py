"""A job whose worker died while nothing ran the queue (the --detach path; issue 19 point 4):
every CLI command sees it as ended, it can be retried, and a cancel asked for it ends as cancelled.

The worker here is a stand-in process whose command line names jobs.worker and the job id, as
the real one's does, killed with SIGKILL: what an out-of-memory kill looks like.
"""
from __future__ import annotations

import argparse
import io
import signal
import socket
import subprocess
import sys
import threading
from datetime import timedelta

import pytest

from cli.jobs import add_parser as add_job_arguments, run_jobs_command
from jobs.lock import DispatcherLock
from jobs.records import Job, JobKind, JobStatus, utcnow


def jobs_command(queue, *argv: str) -> str:
    parser = argparse.ArgumentParser()
    add_job_arguments(parser.add_subparsers(dest="verb"))
    out = io.StringIO()
    assert run_jobs_command(parser.parse_args(["jobs", *argv]), queue, out) == 0
    return out.getvalue()


def running_job_with_dead_worker(queue, *, cancel_requested: bool = False) -> int:
    """A RUNNING row of this host whose (stand-in) worker was killed with SIGKILL."""
    with queue.sessions.begin() as session:
        job = Job(kind=JobKind.TRAIN, config={}, status=JobStatus.RUNNING, host=socket.gethostname(),
                  started_at=utcnow() - timedelta(minutes=5), run_dir=str(queue.home / "runs" / "x"),
                  log_path=str(queue.home / "logs" / "dead.log"), cancel_requested=cancel_requested,
                  message="cancelling: saving progress" if cancel_requested else "step 3/10")
        session.add(job)
        session.flush()
        job_id = job.id
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "jobs.worker", str(job_id)],
                              start_new_session=True)
    with queue.sessions.begin() as session:
        session.get(Job, job_id).pid = worker.pid
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    return job_id


def status(queue, job_id: int) -> JobStatus:
    return queue.get(job_id).status


def test_list_and_show_see_a_dead_worker_as_interrupted(make_queue):
    queue = make_queue()
    job_id = running_job_with_dead_worker(queue)
    listing = jobs_command(queue, "list")
    assert "interrupted" in listing and "running" not in listing
    assert status(queue, job_id) is JobStatus.INTERRUPTED
    assert "no dispatcher ran" in jobs_command(queue, "show", str(job_id))


def test_retry_works_without_a_dispatcher(make_queue):
    queue = make_queue()
    job_id = running_job_with_dead_worker(queue)
    assert f"Job {job_id} retried as job" in jobs_command(queue, "retry", str(job_id))


def test_cancel_of_a_dead_workers_job_ends_as_cancelled(make_queue):
    queue = make_queue()
    job_id = running_job_with_dead_worker(queue)
    jobs_command(queue, "cancel", str(job_id))
    assert status(queue, job_id) is JobStatus.CANCELLED


def test_a_cancel_asked_while_the_worker_was_gone_ends_as_cancelled(make_queue):
    """The row says 'cancelling: saving progress' for ever today; the next command settles it."""
    queue = make_queue()
    job_id = running_job_with_dead_worker(queue, cancel_requested=True)
    jobs_command(queue, "list")
    job = queue.get(job_id)
    assert job.status is JobStatus.CANCELLED and job.error.startswith("cancelled on request")


def test_logs_follow_returns_when_the_worker_is_gone(make_queue):
    queue = make_queue()
    job_id = running_job_with_dead_worker(queue)
    done = threading.Event()
    thread = threading.Thread(target=lambda: (jobs_command(queue, "logs", str(job_id), "--follow"), done.set()), daemon=True)
    thread.start()
    assert done.wait(20), "logs --follow kept waiting for a worker that is gone"


def test_a_job_being_started_by_another_process_is_left_running(make_queue):
    """Claimed a moment ago, pid not stored yet: another command is spawning its worker."""
    queue = make_queue()
    with queue.sessions.begin() as session:
        job = Job(kind=JobKind.TRAIN, config={}, status=JobStatus.RUNNING, host=socket.gethostname(), started_at=utcnow())
        session.add(job)
        session.flush()
        job_id = job.id
    jobs_command(queue, "list")
    assert status(queue, job_id) is JobStatus.RUNNING


def test_nothing_is_settled_behind_a_running_dispatchers_back(make_queue):
    queue = make_queue()
    job_id = running_job_with_dead_worker(queue)
    lock = DispatcherLock(queue.home)
    lock.acquire()
    try:
        assert queue.settle_unattended() == []
        assert status(queue, job_id) is JobStatus.RUNNING
    finally:
        lock.release()
    assert queue.settle_unattended() == [job_id]
