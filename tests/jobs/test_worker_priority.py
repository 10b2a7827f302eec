"""Workers yield the CPU to the app (issue 20 point 1): a real worker runs nicer than the process
that started it, and a CPU job's threads leave the app a core; GPU jobs keep their threads."""
from __future__ import annotations

import os

import psutil
import pytest

from jobs.priority import DEFAULT_NICE, NICE_ENV, THREADS_ENV, WORKER_NICE_ENV, WorkerPriority
from jobs.processes import worker_environment
from jobs.queue import JobQueue
from jobs.records import JobKind
from tests.jobs.conftest import job_row, train_config, wait_for
from tests.jobs.test_training_jobs import metric_steps


def test_a_real_worker_runs_at_lower_priority_with_a_core_left_to_the_app(make_queue, tiny_dir, chains_file, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # the automatic thread count applies
    monkeypatch.delenv(NICE_ENV, raising=False)
    queue = make_queue()
    job_id = queue.submit(JobKind.TRAIN, train_config(tiny_dir, chains_file, max_steps=100_000, checkpoint_every=100_000))
    queue.start(beside_app=True)
    wait_for(lambda: metric_steps(queue, job_id), timeout=180, what="the worker's first training step")
    worker = psutil.Process(job_row(queue, job_id).pid)
    app_nice = os.getpriority(os.PRIO_PROCESS, 0)
    assert worker.nice() == min(19, app_nice + DEFAULT_NICE) > app_nice
    assert worker.environ()["OMP_NUM_THREADS"] == str(max(1, (os.cpu_count() or 1) - 1))
    queue.cancel(job_id)


def test_cpu_threads_leave_the_app_a_core_only_beside_the_app():
    assert WorkerPriority(beside_app=True).cpu_threads(1, cores=2) == 1
    assert WorkerPriority(beside_app=True).cpu_threads(1, cores=8) == 7
    assert WorkerPriority(beside_app=True).cpu_threads(2, cores=8) == 3
    assert WorkerPriority(beside_app=True).cpu_threads(1, cores=1) == 1  # never zero
    assert WorkerPriority(beside_app=False).cpu_threads(1, cores=2) == 2  # headless: every core
    assert WorkerPriority(threads=3, beside_app=True).cpu_threads(2, cores=2) == 3  # the setting wins


def test_environment_settings_and_their_errors():
    assert WorkerPriority.from_environment({NICE_ENV: "5", THREADS_ENV: "2"}) == WorkerPriority(5, 2)
    assert WorkerPriority.from_environment({}) == WorkerPriority(DEFAULT_NICE, None)
    assert WorkerPriority.from_environment({NICE_ENV: "5"}, nice=0).nice == 0  # an explicit option wins
    with pytest.raises(ValueError, match=f"{NICE_ENV}='high' is not a whole number"):
        WorkerPriority.from_environment({NICE_ENV: "high"})
    with pytest.raises(ValueError, match=f"{NICE_ENV}=25 is outside 0..19"):
        WorkerPriority.from_environment({NICE_ENV: "25"})
    with pytest.raises(ValueError, match=f"{THREADS_ENV}=0 is outside >= 1"):
        WorkerPriority.from_environment({THREADS_ENV: "0"})


def test_gpu_jobs_keep_their_threads_and_a_forced_setting_beats_omp(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "6")
    gpu = worker_environment((0,), cpu_threads=1, nice=10)
    assert gpu["OMP_NUM_THREADS"] == "6" and gpu[WORKER_NICE_ENV] == "10"  # only the priority changes
    assert worker_environment((), cpu_threads=1)["OMP_NUM_THREADS"] == "6"  # the user's own choice stays
    assert worker_environment((), cpu_threads=1, threads_forced=True)["OMP_NUM_THREADS"] == "1"


def test_queue_options_reach_the_dispatcher(tmp_path, monkeypatch):
    monkeypatch.setenv(NICE_ENV, "3")
    queue = JobQueue(f"sqlite:///{tmp_path / 'mote.db'}", tmp_path / "home", worker_threads=2)
    try:
        assert queue.settings.priority == WorkerPriority(nice=3, threads=2)
    finally:
        queue.engine.dispose()
