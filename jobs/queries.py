"""Read-only views of jobs and their results, for the CLI and the app: job lists, training runs
and their metrics, evaluation reports, database counts (chains: jobs.chain_queries).

Why a separate module: readers never change state, and keeping them apart from the queue lets
the UI (and the responsiveness bench) run them without starting a dispatcher. What the app gets
back are frozen snapshots (jobs.views), never rows: the app does no database work of its own.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from core.config_reference import flatten_settings
from jobs.lifecycle import dependencies
from jobs.logs import log_tail
from jobs.records import (
    Chain,
    ChainDataset,
    Checkpoint,
    Evaluation,
    Job,
    JobDependency,
    JobKind,
    JobStatus,
    Metric,
    TrainingRun,
    utcnow,
)
from jobs.durations import duration_seconds
from jobs.run_names import job_label, job_name
from jobs.views import (
    DatabaseSummary,
    EvaluationReport,
    JobRow,
    JobSort,
    LossPoint,
    ReportChart,
    RunSettings,
    TrainingMonitor,
    TrainingRunSummary,
)


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


# ---- job lists and single jobs ------------------------------------------------------------------

def _devices(job: Job) -> str:
    if job.gpus is None:
        return "-" if job.requested_gpus is None else f"wants GPU {','.join(map(str, job.requested_gpus))}"
    return "CPU" if not job.gpus else "GPU " + ",".join(map(str, job.gpus))


def _note(job: Job) -> str:
    failed = job.status in (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.INTERRUPTED)
    text = (job.error if failed and job.error else job.message) or ""
    return text.strip().splitlines()[0][:120] if text.strip() else ""


def _job_row(session: Session, job: Job) -> JobRow:
    return JobRow(job.id, job.kind, job.status, job.progress, duration_seconds(job), _devices(job), job.created_at,
                  _note(job), job.retry_of, dict(job.config or {}), job.log_path, job_name(session, job))


def _sorted(rows: list[JobRow], sort: JobSort) -> list[JobRow]:
    if sort is JobSort.OLDEST:
        return rows[::-1]
    if sort is JobSort.LONGEST:
        return sorted(rows, key=lambda r: -(r.duration_seconds or 0.0))
    if sort is JobSort.STATUS:
        order = {status: i for i, status in enumerate(JobStatus)}
        return sorted(rows, key=lambda r: (order[r.status], -r.id))
    return rows


def job_rows(sessions: sessionmaker[Session], *, kind: JobKind | None = None, status: JobStatus | None = None,
             sort: JobSort = JobSort.NEWEST, limit: int = 200) -> list[JobRow]:
    """The newest `limit` jobs matching kind and status, in `sort` order."""
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if kind is not None:
        query = query.where(Job.kind == kind)
    if status is not None:
        query = query.where(Job.status == status)
    with sessions() as session:
        rows = [_job_row(session, job) for job in session.scalars(query)]
    return _sorted(rows, sort)


def _find_job(session: Session, job_id: int, kind: JobKind | None = None) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise LookupError(f"There is no job {job_id}: pick one from the job list.")
    if kind is not None and job.kind is not kind:
        raise LookupError(f"Job {job_id} is not a {kind.value} job: pick one from the list of {kind.value} jobs.")
    return job


def job_row(sessions: sessionmaker[Session], job_id: int) -> JobRow:
    with sessions() as session:
        return _job_row(session, _find_job(session, job_id))


# ---- training runs -----------------------------------------------------------------------------

def _run_of(session: Session, job: Job | None) -> TrainingRun | None:
    if job is None or job.run_dir is None:
        return None
    return session.scalars(select(TrainingRun).where(TrainingRun.run_dir == job.run_dir)).first()


#: The most points a metric chart gets from one read. Why a bound: the Train tab re-reads its run
#: every 2 s while it trains; reading and sending every step made each poll grow with the run (a
#: 100,000-step run sent 100,000 points per chart per poll) and made the page slow while the
#: worker took the CPU. 500 points are more than a chart a few hundred pixels wide can show.
CHART_POINTS = 500


@dataclass(frozen=True)
class MetricPoint:
    """One point of a run's metric charts: a step, or the mean of a bucket of steps at its last step."""

    step: int
    loss: float
    learning_rate: float | None


def _metric_points(session: Session, run_id: int, points: int = CHART_POINTS) -> list[MetricPoint]:
    """A run's loss and learning rate per step, at most `points` of them: every step while the run
    has at most that many, else the mean over buckets of `stride` consecutive steps, each drawn at
    its bucket's last step, and the run's last step as it is (the Train tab's status line reads
    its loss from the last point). Means, not every stride-th step: a noisy loss keeps its level,
    and a bucket is never drawn from one lucky step. The database does the bucketing, so a poll
    reads at most `points` + 1 rows at any run length."""
    of_run = Metric.run_id == run_id
    columns = (Metric.step, Metric.loss, Metric.learning_rate)
    count = session.scalar(select(func.count()).where(of_run)) or 0
    stride = max(1, -(-count // points))  # ceil(count / points)
    if stride == 1:
        rows = list(session.execute(select(*columns).where(of_run).order_by(Metric.step)))
    else:
        bucket = (Metric.step - 1) // stride  # steps count from 1: bucket 0 is steps 1..stride
        last_step = func.max(Metric.step)
        rows = list(session.execute(select(last_step, func.avg(Metric.loss), func.avg(Metric.learning_rate))
                                    .where(of_run).group_by(bucket).order_by(last_step)))
        rows[-1] = session.execute(select(*columns).where(of_run).order_by(Metric.step.desc()).limit(1)).one()
    return [MetricPoint(int(step), float(loss), None if rate is None else float(rate)) for step, loss, rate in rows]


def training_monitor(sessions: sessionmaker[Session], job_id: int, log_lines: int = 30) -> TrainingMonitor:
    """A training job's state, its metrics so far (at most CHART_POINTS points) and its log tail
    (read fresh on every poll)."""
    with sessions() as session:
        job = _find_job(session, job_id, JobKind.TRAIN)
        run = _run_of(session, job)
        metrics = _metric_points(session, run.id) if run is not None else []
        return TrainingMonitor(
            job.id, job.status, job.progress, job.eta_seconds, job.message or "",
            steps=tuple(m.step for m in metrics), losses=tuple(m.loss for m in metrics),
            learning_rates=tuple(m.learning_rate for m in metrics), total_steps=run.total_steps if run else None,
            export_path=run.export_path if run else None, log=log_tail(job.log_path, log_lines), error=job.error)


def exported_runs(sessions: sessionmaker[Session]) -> list[TrainingRunSummary]:
    """Training runs with an export (what can be chatted with or served), newest first."""
    query = select(TrainingRun).where(TrainingRun.export_path.is_not(None)).order_by(TrainingRun.id.desc())
    with sessions() as session:
        return [TrainingRunSummary(r.id, r.job_id, r.run_dir, r.method, r.base_model, r.export_path)
                for r in session.scalars(query)]


def loss_curves(sessions: sessionmaker[Session], job_ids: list[int]) -> list[LossPoint]:
    """(run, step, loss) of several training jobs, for one overlaid chart; unknown ids are skipped.
    The run is named by its label (jobs.run_names.job_label), as everywhere else; each run has at
    most CHART_POINTS points (see _metric_points)."""
    points: list[LossPoint] = []
    with sessions() as session:
        for job_id in job_ids:
            job = session.get(Job, job_id)
            run = _run_of(session, job)
            if run is not None:
                label = job_label(job_name(session, job), job_id)
                points += [LossPoint(label, m.step, m.loss) for m in _metric_points(session, run.id)]
    return points


def run_settings(sessions: sessionmaker[Session], job_ids: list[int]) -> list[RunSettings]:
    """Each training job's settings as dotted names; unknown ids are skipped."""
    with sessions() as session:
        jobs = [job for job in (session.get(Job, job_id) for job_id in job_ids) if job is not None]
        return [RunSettings(job.id, flatten_settings((job.config or {}).get("mote") or {})) for job in jobs]


def kinds_in_motion(sessions: sessionmaker[Session], *, finished_within_s: float) -> frozenset[JobKind]:
    """The kinds of the jobs queued or running, or ended in the last `finished_within_s` seconds.
    Why: the app's timers tick only while what they show can change; the grace lets a page's
    last refresh show how a job ended. One small indexed query, cheap enough for every tick."""
    since = utcnow() - timedelta(seconds=finished_within_s)
    moving = (Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING])) | (Job.finished_at >= since)
    with sessions() as session:
        return frozenset(session.scalars(select(Job.kind).where(moving).distinct()))


# ---- the system tab -----------------------------------------------------------------------------

def running_job_pids(sessions: sessionmaker[Session]) -> dict[int, int]:
    """pid -> job id of every running worker (a worker leads its own process group)."""
    query = select(Job.id, Job.pid).where(Job.status == JobStatus.RUNNING, Job.pid.is_not(None))
    with sessions() as session:
        return {pid: job_id for job_id, pid in session.execute(query)}


def database_summary(sessions: sessionmaker[Session], url: str) -> DatabaseSummary:
    parsed = make_url(url)
    size = None
    if parsed.get_backend_name() == "sqlite" and parsed.database and Path(parsed.database).exists():
        files = [Path(parsed.database), Path(f"{parsed.database}-wal")]  # recent writes sit in the WAL file
        size = sum(f.stat().st_size for f in files if f.exists()) / 1024 ** 2
    with sessions() as session:
        return DatabaseSummary(
            parsed.render_as_string(hide_password=True), parsed.get_backend_name(), size,
            jobs=session.scalar(select(func.count()).select_from(Job)),
            running_jobs=session.scalar(select(func.count()).where(Job.status == JobStatus.RUNNING)),
            chains=session.scalar(select(func.count()).select_from(Chain)),
            training_runs=session.scalar(select(func.count()).select_from(TrainingRun)))


# ---- evaluation reports -------------------------------------------------------------------------

def _report_dir(job: Job) -> Path:
    configured = (job.config or {}).get("out")
    return Path(configured) if configured else Path(job.run_dir or "") / "report"


def evaluation_report(sessions: sessionmaker[Session], job_id: int) -> EvaluationReport:
    """An evaluate job's state and the report it wrote (core.evaluation.summary), read, not recomputed."""
    with sessions() as session:
        job = _find_job(session, job_id, JobKind.EVALUATE)
        rows = session.scalars(select(Evaluation).where(Evaluation.job_id == job_id).order_by(Evaluation.id))
        base = EvaluationReport(job.id, job.status, job.message or "", tuple(r.subject or "" for r in rows))
        folder = _report_dir(job)
    summary = folder / "summary.json"
    if summary.is_file():
        data = json.loads(summary.read_text(encoding="utf-8"))
        charts = tuple(ReportChart(str(p), f"{p.parent.parent.name}: {p.stem}") for p in sorted(folder.glob("*/charts/*.png")))
        return replace(base, judges=tuple(data.get("tables") or {}), charts=charts, report_dir=str(folder),
                       markdown=(folder / "summary.md").read_text(encoding="utf-8"))
    if base.status is JobStatus.SUCCEEDED:
        return replace(base, markdown=f"The report folder {folder} is missing: it was moved or deleted.")
    return base


def evaluation_samples(sessions: sessionmaker[Session], job_id: int, judge: str | None = None,
                       subject: str | None = None, limit: int = 500) -> list[dict[str, str]]:
    """Per-sample rows of a judge's samples.csv (question, answer, each stage, scores, raw outputs);
    the columns depend on the judge, so rows stay the CSV's own."""
    with sessions() as session:
        job = session.get(Job, job_id)
        folder = _report_dir(job) if job is not None else None
    if folder is None:
        return []
    files = sorted(folder.glob("*/samples.csv"))
    chosen = next((f for f in files if judge and f.parent.name in judge.replace(":", "_")), files[0] if files else None)
    if chosen is None:
        return []
    with chosen.open(encoding="utf-8", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if not subject or row.get("subject") == subject]
    return rows[:limit]
