"""The Train tab's charts read a bounded number of points at any run length (jobs.queries):
every step of a short run, bucket means of a long one, the run's last step always last and exact."""
from __future__ import annotations

import pytest

from jobs.lifecycle import new_job
from jobs.queries import CHART_POINTS, loss_curves, training_monitor
from jobs.records import JobKind, Metric
from jobs.results import run_for_dir


@pytest.fixture
def training(make_queue, tmp_path):
    """A training job whose run has no metric rows yet; `log(steps)` stores loss = step, lr = step/1000."""
    queue = make_queue()
    with queue.sessions.begin() as session:
        job = new_job(session, queue.home, JobKind.TRAIN, {})
        job.run_dir = str(tmp_path / "run")
        job_id, run_id = job.id, run_for_dir(session, job.id, tmp_path / "run", "mote", "tiny")

    def log(steps: range, *, rate: bool = True) -> None:
        with queue.sessions.begin() as session:
            session.add_all([Metric(run_id=run_id, job_id=job_id, step=s, loss=float(s),
                                    learning_rate=s / 1000 if rate else None) for s in steps])
    return queue, job_id, log


def test_a_short_run_shows_every_step_exactly(training):
    queue, job_id, log = training
    log(range(1, CHART_POINTS + 1))
    monitor = training_monitor(queue.sessions, job_id)
    assert monitor.steps == tuple(range(1, CHART_POINTS + 1))
    assert monitor.losses == tuple(float(s) for s in range(1, CHART_POINTS + 1))
    assert monitor.learning_rates[-1] == pytest.approx(CHART_POINTS / 1000)


def test_a_long_run_shows_bucket_means_at_each_buckets_last_step(training):
    queue, job_id, log = training
    steps = 2 * CHART_POINTS + 4  # stride 3: buckets 1-3, 4-6, ..., and a last bucket of two steps
    log(range(1, steps + 1))
    monitor = training_monitor(queue.sessions, job_id)
    assert len(monitor.steps) <= CHART_POINTS
    assert monitor.steps[:2] == (3, 6) and monitor.steps[-1] == steps  # the run's last step is drawn
    assert monitor.losses[:2] == pytest.approx((2.0, 5.0))  # mean of 1, 2, 3 and of 4, 5, 6
    assert monitor.losses[-1] == steps  # the last step as it is, not its bucket's mean: the status line reads it
    assert monitor.learning_rates[0] == pytest.approx(0.002)
    assert list(monitor.steps) == sorted(monitor.steps)


def test_the_compare_chart_is_bounded_the_same_way_and_keeps_missing_learning_rates_missing(training):
    queue, job_id, log = training
    log(range(1, 10 * CHART_POINTS + 1), rate=False)
    points = loss_curves(queue.sessions, [job_id])
    assert CHART_POINTS // 2 < len(points) <= CHART_POINTS and points[-1].step == 10 * CHART_POINTS
    assert all(rate is None for rate in training_monitor(queue.sessions, job_id).learning_rates)
