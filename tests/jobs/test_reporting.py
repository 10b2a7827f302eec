"""What a worker stores while core runs: metrics upserted per step, checkpoint rows from the
run folder, progress and ETA (JobProgress), the stop check, and TensorBoard files when
tensorboard is there."""
from __future__ import annotations

import importlib.util

import pytest
from sqlalchemy import select

from jobs.lifecycle import new_job
from jobs.records import Checkpoint, Job, JobKind, Metric
from jobs.reporting import JobProgress, StopCheck, TrainingReporter
from jobs.results import run_for_dir


@pytest.fixture
def run(make_queue, tmp_path):
    queue = make_queue()
    run_dir = tmp_path / "run"
    with queue.sessions.begin() as session:
        first = new_job(session, queue.home, JobKind.TRAIN, {})
        second = new_job(session, queue.home, JobKind.TRAIN, {}, retry_of=first)
        run_id = run_for_dir(session, first.id, run_dir, "mote", "tiny")
        ids = (first.id, second.id)
    return queue, run_dir, run_id, ids


def save_fake_checkpoint(run_dir, step: int) -> None:
    folder = run_dir / "checkpoints" / f"step-{step:07d}"
    folder.mkdir(parents=True)
    (folder / "state.json").write_text("{}")


def test_a_resumed_run_overwrites_relogged_steps_instead_of_duplicating(run):
    queue, run_dir, run_id, (first, second) = run
    metrics = {"loss": 2.0, "learning_rate": 1e-3, "tokens_per_second": 100.0}
    before = TrainingReporter(queue.sessions, first, run_id, run_dir)
    for step in (1, 2, 3):
        before.on_step(step, 6, metrics)
    save_fake_checkpoint(run_dir, 2)
    (run_dir / "checkpoints" / "step-0000003.tmp").mkdir()  # a save cut short: not a checkpoint
    after = TrainingReporter(queue.sessions, second, run_id, run_dir)
    for step in (3, 4):
        after.on_step(step, 6, {**metrics, "loss": 1.0})
    after.close()
    with queue.sessions() as session:
        rows = {m.step: (m.job_id, m.loss) for m in session.scalars(select(Metric))}
        checkpoints = list(session.scalars(select(Checkpoint.step)))
    assert rows == {1: (first, 2.0), 2: (first, 2.0), 3: (second, 1.0), 4: (second, 1.0)}
    assert checkpoints == [2]


def test_a_resumed_job_estimates_from_its_own_steps_and_shows_the_loops_status_line(run):
    queue, _, _, (_, second) = run
    progress = JobProgress(queue.sessions, second)
    progress(3, 6, "step 3/6")  # resumed at step 3: the steps before are not this process's pace
    with queue.sessions() as session:
        assert session.get(Job, second).eta_seconds is None
    progress(4, 6, "step 4/6 · loss 1.0000")
    with queue.sessions() as session:
        job = session.get(Job, second)
    assert job.progress == pytest.approx(4 / 6) and job.eta_seconds is not None and job.message == "step 4/6 · loss 1.0000"


def test_stop_check_sees_a_signal_at_once_and_a_database_cancel_on_its_next_poll(run):
    queue, _, _, (first, _) = run
    stop = StopCheck(queue.sessions, first, poll_seconds=0.0)
    assert stop() is False
    with queue.sessions.begin() as session:
        session.get(Job, first).cancel_requested = True
    assert stop() is True
    signalled = StopCheck(queue.sessions, first, poll_seconds=3600)
    signalled.request()
    assert signalled()


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="tensorboard is not installed (optional)")
def test_tensorboard_event_files_are_written_when_tensorboard_is_installed(run):
    queue, run_dir, run_id, (first, _) = run
    reporter = TrainingReporter(queue.sessions, first, run_id, run_dir)
    reporter.on_step(1, 2, {"loss": 1.0, "learning_rate": 1e-3})
    reporter.close()
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
