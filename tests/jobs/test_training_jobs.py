"""Training jobs end to end in worker processes: success with stored results, cancel with a
checkpoint, kill -9 then recover and resume from the saved step (issue 4, must-show a-c)."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from sqlalchemy import func, select

from core.training.checkpoint import latest_checkpoint
from core.experts.export import read_manifest
from jobs.gpus import list_gpus
from jobs.records import Checkpoint, JobKind, JobStatus, Metric, TrainingRun
from tests.jobs.conftest import job_row, train_config, wait_finished, wait_for


def metric_steps(queue, job_id: int | None = None) -> list[int]:
    with queue.sessions() as session:
        query = select(Metric.step).order_by(Metric.step)
        if job_id is not None:
            query = query.where(Metric.job_id == job_id)
        return list(session.scalars(query))


def test_train_job_succeeds_and_stores_run_metrics_checkpoints_and_export(make_queue, tiny_dir, chains_file):
    queue = make_queue()
    job_id = queue.submit(JobKind.TRAIN, train_config(tiny_dir, chains_file, max_steps=4, checkpoint_every=2))
    assert job_row(queue, job_id).status is JobStatus.QUEUED
    queue.start()
    job = wait_finished(queue, job_id)
    assert job.status is JobStatus.SUCCEEDED, job.error
    assert job.exit_code == 0 and job.progress == 1.0 and job.finished_at >= job.started_at
    assert job.gpus == [] or list_gpus().gpus  # the CPU when the machine has no GPU
    with queue.sessions() as session:
        run = session.scalars(select(TrainingRun)).one()
        metrics = list(session.scalars(select(Metric).order_by(Metric.step)))
        checkpoints = list(session.scalars(select(Checkpoint.step).order_by(Checkpoint.step)))
    assert run.job_id == job_id and run.run_dir == job.run_dir and run.final_step == 4 and run.total_steps == 4
    assert [m.step for m in metrics] == [1, 2, 3, 4]
    assert all(m.loss > 0 and m.learning_rate > 0 and m.tokens_per_second > 0 for m in metrics)
    assert checkpoints == [2, 4]
    assert read_manifest(run.export_path)["base_model"] == str(tiny_dir)  # the export folder is complete
    log = Path(job.log_path).read_text()
    assert log.startswith(f"=== job {job_id} (train) starting") and "succeeded" in log


def test_cancel_running_training_stops_within_grace_and_saves_checkpoint(make_queue, tiny_dir, chains_file):
    queue = make_queue(grace_seconds=20.0)
    job_id = queue.submit(JobKind.TRAIN, train_config(tiny_dir, chains_file, max_steps=100_000, checkpoint_every=100_000))
    queue.start()
    wait_for(lambda: metric_steps(queue), timeout=120, what="the first metric row")
    asked = time.monotonic()
    assert queue.cancel(job_id) is JobStatus.RUNNING
    job = wait_finished(queue, job_id, timeout=30)
    assert time.monotonic() - asked < 20.0
    assert job.status is JobStatus.CANCELLED and job.exit_code == 3, job.error
    with queue.sessions() as session:
        checkpoints = list(session.scalars(select(Checkpoint)))
    assert len(checkpoints) == 1 and Path(checkpoints[0].path, "state.json").exists()
    assert checkpoints[0].step == max(metric_steps(queue))


def test_killed_worker_is_interrupted_on_restart_and_retry_resumes_from_checkpoint(make_queue, tiny_dir, chains_file):
    max_steps = 60
    first = make_queue()
    job_id = first.submit(JobKind.TRAIN, train_config(tiny_dir, chains_file, max_steps=max_steps, checkpoint_every=5))
    first.start()
    wait_for(lambda: max(metric_steps(first), default=0) >= 7, timeout=120, every=0.05, what="step 7")
    first.shutdown(wait=True)  # the app stops (the reaper must not see the kill) ...
    pid = job_row(first, job_id).pid
    os.killpg(pid, signal.SIGKILL)  # ... and the worker dies hard
    first.dispatcher.children[job_id].wait(timeout=10)
    killed_at = max(metric_steps(first))
    assert killed_at < max_steps and job_row(first, job_id).status is JobStatus.RUNNING
    saved = latest_checkpoint(Path(job_row(first, job_id).run_dir))  # the kill may land mid-save
    saved_step = int(saved.name.split("-")[1])
    assert 5 <= saved_step <= killed_at

    second = make_queue()
    assert second.recover() == [job_id]
    interrupted = job_row(second, job_id)
    assert interrupted.status is JobStatus.INTERRUPTED and "retry" in interrupted.error.lower()
    retry_id = second.retry(job_id)
    assert job_row(second, retry_id).retry_of == job_id and job_row(second, retry_id).run_dir == interrupted.run_dir
    second.start()
    retry = wait_finished(second, retry_id)
    assert retry.status is JobStatus.SUCCEEDED, retry.error
    resumed = metric_steps(second, retry_id)
    assert resumed[0] > 1 and resumed[0] == saved_step + 1  # the step after the last checkpoint
    with second.sessions() as session:
        run = session.scalars(select(TrainingRun)).one()
        assert session.scalar(select(func.count()).select_from(Metric)) == max_steps  # re-logged steps not duplicated
    assert run.final_step == max_steps and run.export_path
    logged = [json.loads(line)["step"] for line in Path(run.run_dir, "metrics.jsonl").read_text().splitlines()]
    assert logged == list(range(1, max_steps + 1))  # issue 19: replayed steps written once
    log = Path(job_row(second, retry_id).log_path).read_text()
    assert f"Resumed from step {saved_step} (checkpoint {saved})" in log
