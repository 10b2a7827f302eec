"""What the Evaluate tab reads: evaluate jobs, their reports, and run-to-run comparisons.

Why read the report files and rows, never recompute: the evaluate job wrote every number once
(core.evaluation.summary); the tab only shows it, so the browser and the CSV/Markdown a user
downloads always agree.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.config_reference import flatten_settings
from jobs.records import Evaluation, Job, JobKind, JobStatus, Metric, TrainingRun

SAMPLE_COLUMNS = ("subject", "sample_id", "kind", "category", "wrapper", "question", "answer")


@dataclass
class EvaluationResult:
    """One evaluate job as the tab shows it."""

    job_id: int
    status: JobStatus
    message: str
    subjects: list[str] = field(default_factory=list)
    judges: list[str] = field(default_factory=list)
    markdown: str = ""
    charts: list[tuple[str, str]] = field(default_factory=list)
    """(path, caption) of every chart PNG."""
    report_dir: str | None = None


def evaluation_jobs(sessions: sessionmaker[Session]) -> list[Job]:
    with sessions() as session:
        return list(session.scalars(select(Job).where(Job.kind == JobKind.EVALUATE).order_by(Job.id.desc())))


def _report_dir(job: Job) -> Path:
    configured = (job.config or {}).get("out")
    return Path(configured) if configured else Path(job.run_dir or "") / "report"


def evaluation_result(sessions: sessionmaker[Session], job_id: int) -> EvaluationResult:
    with sessions() as session:
        job = session.get(Job, job_id)
        if job is None or job.kind is not JobKind.EVALUATE:
            raise LookupError(f"Job {job_id} is not an evaluate job: pick one from the list.")
        rows = list(session.scalars(select(Evaluation).where(Evaluation.job_id == job_id).order_by(Evaluation.id)))
        result = EvaluationResult(job.id, job.status, job.message or "", [r.subject or "" for r in rows])
        folder = _report_dir(job)
    summary = folder / "summary.json"
    if summary.is_file():
        data = json.loads(summary.read_text(encoding="utf-8"))
        result.judges = list(data.get("tables") or {})
        result.markdown = (folder / "summary.md").read_text(encoding="utf-8")
        result.charts = [(str(p), f"{p.parent.parent.name}: {p.stem}") for p in sorted(folder.glob("*/charts/*.png"))]
        result.report_dir = str(folder)
    elif job.status is JobStatus.SUCCEEDED:
        result.markdown = f"The report folder {folder} is missing: it was moved or deleted."
    return result


def evaluation_samples(sessions: sessionmaker[Session], job_id: int, judge: str | None = None,
                       subject: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
    """Per-sample drill-down rows (question, answer, each stage, judge scores and raw outputs)."""
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


def loss_curves(sessions: sessionmaker[Session], job_ids: list[int]) -> list[dict[str, Any]]:
    """Long-format rows (run, step, loss) of several training jobs, for one overlaid chart."""
    rows: list[dict[str, Any]] = []
    with sessions() as session:
        for job_id in job_ids:
            job = session.get(Job, job_id)
            run = session.scalars(select(TrainingRun).where(TrainingRun.run_dir == (job.run_dir if job else None))).first()
            if run is None:
                continue
            label = f"job {job_id} ({run.method})"
            for metric in session.scalars(select(Metric).where(Metric.run_id == run.id).order_by(Metric.step)):
                rows.append({"run": label, "step": metric.step, "loss": metric.loss})
    return rows


def config_diff(sessions: sessionmaker[Session], job_ids: list[int]) -> str:
    """A Markdown table of the settings that differ between training jobs (dotted names)."""
    with sessions() as session:
        configs = {job_id: flatten_settings((session.get(Job, job_id).config or {}).get("mote") or {})
                   for job_id in job_ids if session.get(Job, job_id) is not None}
    if len(configs) < 2:
        return "Pick two or more training jobs to compare their settings."
    keys = sorted({k for c in configs.values() for k in c})
    differing = [k for k in keys if len({json.dumps(c.get(k), sort_keys=True) for c in configs.values()}) > 1]
    if not differing:
        return "The runs share every setting."
    header = "| setting | " + " | ".join(f"job {j}" for j in configs) + " |"
    lines = [header, "|---|" + "---|" * len(configs)]
    lines += [f"| {k} | " + " | ".join(str(c.get(k, "")) for c in configs.values()) + " |" for k in differing]
    return "\n".join(lines)
