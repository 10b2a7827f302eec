"""Read-only views of jobs for the Jobs and Train tabs: the history table, a training run's
metrics and progress, and the tail of a job's log.

Why everything is read from the database on each call: the page polls with a timer, so a
reloaded page (or a second browser) shows the same running jobs with no state kept in the app.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from jobs.records import Job, JobKind, JobStatus, Metric, TrainingRun, utcnow

LOG_TAIL_BYTES = 64_000


class JobSort(str, enum.Enum):
    NEWEST = "newest first"
    OLDEST = "oldest first"
    LONGEST = "longest first"
    STATUS = "by status"


@dataclass(frozen=True)
class JobRow:
    id: int
    kind: str
    status: str
    progress: float
    duration_seconds: float | None
    devices: str
    created: datetime
    message: str
    retry_of: int | None


def duration_seconds(job: Job) -> float | None:
    if job.started_at is None:
        return None
    return ((job.finished_at or utcnow()) - job.started_at).total_seconds()


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def devices(job: Job) -> str:
    if job.gpus is None:
        return "-" if job.requested_gpus is None else f"wants GPU {','.join(map(str, job.requested_gpus))}"
    return "CPU" if not job.gpus else "GPU " + ",".join(map(str, job.gpus))


def _note(job: Job) -> str:
    failed = job.status in (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.INTERRUPTED)
    text = (job.error if failed and job.error else job.message) or ""
    return text.strip().splitlines()[0][:120] if text.strip() else ""


def job_rows(sessions: sessionmaker[Session], *, kind: JobKind | None = None, status: JobStatus | None = None,
             sort: JobSort = JobSort.NEWEST, limit: int = 200) -> list[JobRow]:
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if kind is not None:
        query = query.where(Job.kind == kind)
    if status is not None:
        query = query.where(Job.status == status)
    with sessions() as session:
        rows = [JobRow(j.id, j.kind.value, j.status.value, j.progress, duration_seconds(j), devices(j), j.created_at,
                       _note(j), j.retry_of) for j in session.scalars(query)]
    if sort is JobSort.OLDEST:
        rows.reverse()
    elif sort is JobSort.LONGEST:
        rows.sort(key=lambda r: -(r.duration_seconds or 0.0))
    elif sort is JobSort.STATUS:
        order = {s.value: i for i, s in enumerate(JobStatus)}
        rows.sort(key=lambda r: (order[r.status], -r.id))
    return rows


def log_tail(path: str | Path | None, lines: int = 40) -> str:
    """The last `lines` lines of a log (read from its end, so a long log costs nothing)."""
    if not path or not Path(path).exists():
        return "(no log yet)"
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - LOG_TAIL_BYTES))
        text = handle.read().decode("utf-8", errors="replace")
    # progress bars rewrite a line with '\r': keep only the last state of each line
    cleaned = [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.rstrip("\n").split("\n")]
    return "\n".join(cleaned[-lines:])


@dataclass
class TrainingMonitor:
    """What the Train tab shows for one training job."""

    job_id: int
    status: JobStatus
    progress: float
    eta_seconds: float | None
    message: str
    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    learning_rates: list[float | None] = field(default_factory=list)
    total_steps: int | None = None
    export_path: str | None = None
    log: str = ""
    error: str | None = None


def training_monitor(sessions: sessionmaker[Session], job_id: int, log_lines: int = 30) -> TrainingMonitor:
    with sessions() as session:
        job = session.get(Job, job_id)
        if job is None or job.kind is not JobKind.TRAIN:
            raise LookupError(f"Job {job_id} is not a training job: pick one from the run list.")
        monitor = TrainingMonitor(job.id, job.status, job.progress, job.eta_seconds, job.message or "", error=job.error)
        run = session.scalars(select(TrainingRun).where(TrainingRun.run_dir == job.run_dir)).first()
        if run is not None:
            monitor.total_steps, monitor.export_path = run.total_steps, run.export_path
            for metric in session.scalars(select(Metric).where(Metric.run_id == run.id).order_by(Metric.step)):
                monitor.steps.append(metric.step)
                monitor.losses.append(metric.loss)
                monitor.learning_rates.append(metric.learning_rate)
        log_path = job.log_path
    monitor.log = log_tail(log_path, log_lines)
    return monitor


def training_jobs(sessions: sessionmaker[Session], limit: int = 100) -> list[Job]:
    """Training jobs, newest first (running ones are what a reloaded page re-attaches to)."""
    with sessions() as session:
        return list(session.scalars(select(Job).where(Job.kind == JobKind.TRAIN).order_by(Job.id.desc()).limit(limit)))
