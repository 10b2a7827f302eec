"""Job state changes shared by the queue, the dispatcher and the reaper: new jobs, retries,
cancellation, interruption, and whether a job's dependencies let it start.

Why retries are new rows: history keeps every attempt (its log, error and exit code); the
retry points at its original with `retry_of` and shares its run folder, so training resumes
from the run's latest checkpoint and generation skips the chains already stored. A dependency
is judged by its newest attempt: a dependent waits while that attempt is queued, running or
interrupted (a retry may follow), starts when it succeeded, and is cancelled when it failed
or was cancelled.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from jobs.records import Job, JobDependency, JobKind, JobStatus, utcnow

#: An interrupted job is retried by itself at most this many times (a job that keeps getting
#: killed, e.g. out of memory, should stop and tell the user).
MAX_AUTO_RETRIES = 3
#: The message of a job row that only records a config refused at submit (it never ran).
REJECTED_AT_SUBMIT = "rejected at submit"


def root_job_id(session: Session, job_id: int) -> int:
    """The first attempt of a retry chain: its id names the shared run folder and dataset."""
    current = session.get(Job, job_id)
    while current is not None and current.retry_of is not None:
        current = session.get(Job, current.retry_of)
    return current.id if current is not None else job_id


def latest_attempt(session: Session, job_id: int) -> Job | None:
    """The newest retry of `job_id` (or the job itself when it was never retried)."""
    current = session.get(Job, job_id)
    while current is not None:
        newer = session.scalars(select(Job).where(Job.retry_of == current.id).order_by(Job.id.desc())).first()
        if newer is None:
            return current
        current = newer
    return None


def attempts(session: Session, job_id: int) -> int:
    """How many attempts precede `job_id` in its retry chain."""
    count, current = 0, session.get(Job, job_id)
    while current is not None and current.retry_of is not None:
        count, current = count + 1, session.get(Job, current.retry_of)
    return count


def new_job(session: Session, home: Path, kind: JobKind, config: dict[str, Any], *, depends_on: list[int] = (),
            gpus: list[int] | None = None, auto_retry: bool = False, retry_of: Job | None = None,
            status: JobStatus = JobStatus.QUEUED, error: str | None = None) -> Job:
    """Insert a job with its log path, run folder (shared along a retry chain) and dependencies."""
    job = Job(kind=kind, config=config, requested_gpus=gpus, auto_retry=auto_retry, status=status, error=error,
              retry_of=retry_of.id if retry_of is not None else None)
    if status.finished:
        job.finished_at = utcnow()
    session.add(job)
    session.flush()
    job.log_path = str(Path(home) / "logs" / f"job-{job.id}.log")
    default_dir = str(Path(home) / "runs" / f"job-{job.id}")
    job.run_dir = retry_of.run_dir if retry_of is not None else (config.get("out") or default_dir)
    session.add_all(JobDependency(job_id=job.id, depends_on_id=d) for d in dict.fromkeys(depends_on))
    return job


def dependencies(session: Session, job_id: int) -> list[int]:
    return list(session.scalars(select(JobDependency.depends_on_id).where(JobDependency.job_id == job_id)))


def create_retry(session: Session, home: Path, job: Job) -> Job:
    """A queued copy of a finished job that resumes its work (see the module docstring)."""
    if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.INTERRUPTED):
        raise ValueError(f"Job {job.id} is {job.status.value}: only failed, cancelled or interrupted jobs can be retried.")
    if job.message == REJECTED_AT_SUBMIT and job.started_at is None:  # a retry would queue the refused config unchecked
        raise ValueError(f"Job {job.id} was rejected at submit ({job.error}): fix the config and submit it again.")
    newer = latest_attempt(session, job.id)
    if newer is not None and newer.id != job.id:
        raise ValueError(f"Job {job.id} was already retried as job {newer.id}: retry job {newer.id} instead.")
    return new_job(session, home, job.kind, job.config, depends_on=dependencies(session, job.id),
                   gpus=job.requested_gpus, auto_retry=job.auto_retry, retry_of=job)


def mark_cancelled(job: Job, reason: str) -> None:
    job.status, job.finished_at, job.error = JobStatus.CANCELLED, utcnow(), reason
    job.cancel_requested = True


def mark_interrupted(session: Session, home: Path, job: Job, reason: str, exit_code: int | None = None) -> Job | None:
    """The worker vanished without a final status; returns the automatic retry, if one is made."""
    job.status, job.finished_at, job.error, job.exit_code = JobStatus.INTERRUPTED, utcnow(), reason, exit_code
    newer = latest_attempt(session, job.id)
    if not job.auto_retry or (newer is not None and newer.id != job.id):
        return None
    if attempts(session, job.id) >= MAX_AUTO_RETRIES:
        job.error = f"{reason}\nNot retried again: {MAX_AUTO_RETRIES} automatic retries already failed."
        return None
    return create_retry(session, home, job)


def settle_vanished(session: Session, home: Path, job: Job, reason: str, exit_code: int | None = None) -> None:
    """A running job whose worker is gone: cancelled when a cancel was asked (the user's wish
    stands, even though nobody was left to signal), else interrupted (and maybe auto-retried)."""
    if job.cancel_requested:
        mark_cancelled(job, f"cancelled on request; {reason[0].lower()}{reason[1:]}")
        job.exit_code = exit_code
    else:
        mark_interrupted(session, home, job, reason, exit_code)


class Readiness(enum.Enum):
    READY = "ready"
    WAIT = "wait"
    BLOCKED = "blocked"


@dataclass
class DependencyState:
    readiness: Readiness
    reason: str = ""


def dependency_state(session: Session, job_id: int) -> DependencyState:
    """READY when every dependency's newest attempt succeeded; BLOCKED (with the reason) when
    one failed or was cancelled; WAIT otherwise."""
    waiting = False
    for dep_id in dependencies(session, job_id):
        latest = latest_attempt(session, dep_id)
        if latest is None or latest.status in (JobStatus.FAILED, JobStatus.CANCELLED):
            state = latest.status.value if latest is not None else "deleted"
            via = f" (its retry, job {latest.id})" if latest is not None and latest.id != dep_id else ""
            detail = (latest.error or "").strip().splitlines()[:1] if latest is not None else []
            return DependencyState(Readiness.BLOCKED, f"dependency job {dep_id}{via} {state}"
                                   + (f": {detail[0]}" if detail else ""))
        waiting = waiting or latest.status is not JobStatus.SUCCEEDED
    return DependencyState(Readiness.WAIT if waiting else Readiness.READY)


def pipeline_stages(job: Job) -> list[int]:
    """The stage job ids of a pipeline row, in order."""
    return [job_id for job_id in (job.config.get("stages") or {}).values()]
