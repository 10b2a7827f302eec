"""The Runs view's reads: one row per training run (name, method, chains, steps, final loss,
status and the headline figures of its newest evaluation), for the app and the CLI.

Why apart from jobs.queries: a run row joins four things (the job, its run folder's metrics,
its dataset, and evaluate jobs that scored it, whose figures live in their summary.json), and
that join is one job of its own.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.evaluation.metrics import METRIC_SPECS, MetricName
from jobs.chain_queries import training_dataset_policy
from jobs.kinds import JobKind, JobStatus
from jobs.records import Job, Metric, TrainingRun
from jobs.run_names import chains_name, dataset_name_of, job_name
from jobs.views import RunRow

#: The figures a run row shows, in this order (labels as the reports write them).
HEADLINE_METRICS = (MetricName.HARM, MetricName.HELP, MetricName.GOODNESS, MetricName.REFUSAL_BENIGN)


def headline_labels() -> list[str]:
    return [METRIC_SPECS[name].label for name in HEADLINE_METRICS]


def _lineage(session: Session, job: Job) -> set[int]:
    """The job and every job it retries (they are one run)."""
    ids, current = set(), job
    while current is not None and current.id not in ids:
        ids.add(current.id)
        current = session.get(Job, current.retry_of) if current.retry_of else None
    return ids


def _summary_figures(report_dir: Path, label: str) -> dict[str, float | None] | None:
    """The headline figures of one subject in an evaluate job's summary.json (first judge)."""
    summary = report_dir / "summary.json"
    if not summary.is_file():
        return None
    tables = json.loads(summary.read_text(encoding="utf-8")).get("tables") or {}
    for subjects in tables.values():
        table = subjects.get(label)
        if table is not None:
            metrics = table.get("metrics") or {}
            return {METRIC_SPECS[name].label: (metrics.get(name.value) or {}).get("value") for name in HEADLINE_METRICS}
    return None


def _evaluations(session: Session) -> list[tuple[int, Path, list[Mapping]]]:
    """(job id, report folder, subjects) of finished evaluate jobs, newest first."""
    query = select(Job).where(Job.kind == JobKind.EVALUATE, Job.status == JobStatus.SUCCEEDED).order_by(Job.id.desc())
    found = []
    for job in session.scalars(query):
        config = job.config or {}
        folder = Path(config["out"]) if config.get("out") else Path(job.run_dir or "") / "report"
        found.append((job.id, folder, list(config.get("subjects") or [])))
    return found


def _newest_evaluation(evaluations: list[tuple[int, Path, list[Mapping]]],
                       lineage: set[int]) -> tuple[int | None, dict[str, float | None]]:
    for eval_id, folder, subjects in evaluations:
        for subject in subjects:
            if subject.get("train_job") in lineage:
                figures = _summary_figures(folder, str(subject.get("label")))
                if figures is not None:
                    return eval_id, figures
    return None, {}


def _run_row(session: Session, job: Job, evaluations: list[tuple[int, Path, list[Mapping]]]) -> RunRow:
    config = job.config or {}
    mote = config.get("mote") or {}
    run = session.scalars(select(TrainingRun).where(TrainingRun.run_dir == job.run_dir)).first() if job.run_dir else None
    last = session.scalars(select(Metric).where(Metric.run_id == run.id).order_by(Metric.step.desc())).first() if run else None
    total = (run.total_steps if run and run.total_steps else None) or (mote.get("train") or {}).get("max_steps")
    evaluated_by, figures = _newest_evaluation(evaluations, _lineage(session, job))
    return RunRow(job.id, job_name(session, job), str(mote.get("method") or "mote"),
                  chains_name(config, dataset_name_of(session, config)), job.status,
                  last.step if last else None, total, last.loss if last else None, job.created_at, figures, evaluated_by,
                  training_dataset_policy(session, config))


def run_rows(sessions: sessionmaker[Session], limit: int = 200) -> list[RunRow]:
    """Every training run, newest first; a job that was retried is shown as its retry."""
    with sessions() as session:
        retried = set(session.scalars(select(Job.retry_of).where(Job.retry_of.is_not(None))))
        query = select(Job).where(Job.kind == JobKind.TRAIN).order_by(Job.id.desc()).limit(limit)
        evaluations = _evaluations(session)
        return [_run_row(session, job, evaluations) for job in session.scalars(query) if job.id not in retried]
