"""Read-only views of jobs and their results, for the CLI and the UI.

Why a separate module: readers never change state, and keeping them apart from the queue lets
the UI (and the responsiveness bench) run them without starting a dispatcher.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from jobs.lifecycle import dependencies
from jobs.records import Chain, ChainDataset, Checkpoint, Job, JobDependency, JobStatus, Metric, TrainingRun


def list_jobs(sessions: sessionmaker[Session], *, limit: int = 50, status: JobStatus | None = None) -> list[Job]:
    """Newest first."""
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Job.status == status)
    with sessions() as session:
        return list(session.scalars(query))


@dataclass
class JobDetail:
    job: Job
    depends_on: list[int]
    dependents: list[int]
    retries: list[int]
    training: dict[str, Any] | None = None
    chains: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def job_detail(sessions: sessionmaker[Session], job_id: int) -> JobDetail:
    with sessions() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise LookupError(f"There is no job {job_id}: see `launch.py jobs list` for ids.")
        detail = JobDetail(
            job, dependencies(session, job_id),
            list(session.scalars(select(JobDependency.job_id).where(JobDependency.depends_on_id == job_id))),
            list(session.scalars(select(Job.id).where(Job.retry_of == job_id))),
        )
        run = session.scalars(select(TrainingRun).where(TrainingRun.run_dir == job.run_dir)).first()
        if run is not None:
            last = session.scalars(select(Metric).where(Metric.run_id == run.id).order_by(Metric.step.desc())).first()
            detail.training = {
                "run_id": run.id, "method": run.method, "base_model": run.base_model, "final_step": run.final_step,
                "total_steps": run.total_steps, "export": run.export_path,
                "metrics": session.scalar(select(func.count()).where(Metric.run_id == run.id)),
                "last_step": last.step if last else None, "last_loss": last.loss if last else None,
                "checkpoints": list(session.scalars(select(Checkpoint.step).where(Checkpoint.run_id == run.id).order_by(Checkpoint.step))),
            }
        dataset = session.scalars(select(ChainDataset).where(ChainDataset.path == job.run_dir)).first()
        if dataset is not None:
            counts = dict(session.execute(select(Chain.dropped, func.count()).where(Chain.dataset_id == dataset.id).group_by(Chain.dropped)).all())
            detail.chains = {"dataset_id": dataset.id, "name": dataset.name, "kept": counts.get(False, 0),
                             "dropped": counts.get(True, 0), "path": dataset.path}
        return detail
