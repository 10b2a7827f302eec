"""Plain-text views of jobs: durations, the job table and one job's detail.

Why here and not in the CLI: the terminal (`launch.py jobs list|show`) and the app's job panel
print the same text, so it lives with the job records both read, and neither imports the other.
"""
from __future__ import annotations

from typing import Any

import yaml

from jobs.durations import duration_seconds, format_duration
from jobs.queries import job_detail
from jobs.queue import JobQueue
from jobs.records import Job, JobStatus, utcnow

#: Statuses whose error (not the worker's last message) is the useful note in a job table.
ENDED_BADLY = (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.INTERRUPTED)


def first_line(text: str | None, width: int = 80) -> str:
    """The first non-empty line of `text`, cut to `width` (a traceback's headline)."""
    stripped = (text or "").strip()
    return stripped.splitlines()[0][:width] if stripped else ""


def format_job_list(jobs: list[Job]) -> str:
    """A fixed-width table: id, kind, status, progress, run time and a note per job."""
    lines = [f"{'id':>5}  {'kind':9} {'status':11} {'progress':>8}  {'time':>8}  note"]
    for job in jobs:
        note = first_line(job.error) if job.status in ENDED_BADLY else (job.message or "")
        retry = f" (retry of {job.retry_of})" if job.retry_of else ""
        lines.append(f"{job.id:>5}  {job.kind.value:9} {job.status.value:11} {job.progress:>7.0%}  "
                     f"{format_duration(duration_seconds(job)):>8}  {note}{retry}")
    return "\n".join(lines)


def _devices(job: Job) -> str | None:
    if job.gpus is None:
        return None
    return "CPU" if job.gpus == [] else f"GPU {job.gpus}"


def format_job_detail(queue: JobQueue, job_id: int) -> str:
    """Everything stored about one job: status, timing, links to other jobs, training or chain
    counts, the error and the config. Raises LookupError for an unknown id."""
    detail = job_detail(queue.sessions, job_id)
    job = detail.job
    running = job.status is JobStatus.RUNNING
    rows: list[tuple[str, Any]] = [
        ("job", f"{job.id} ({job.kind.value})"), ("status", job.status.value), ("progress", f"{job.progress:.0%}"),
        ("eta", f"{job.eta_seconds:.0f} s" if job.eta_seconds is not None and running else None),
        ("message", job.message), ("created", job.created_at), ("started", job.started_at), ("finished", job.finished_at),
        ("exit code", job.exit_code), ("devices", _devices(job)), ("pid", job.pid if running else None),
        ("retry of", job.retry_of), ("retried as", detail.retries or None), ("depends on", detail.depends_on or None),
        ("needed by", detail.dependents or None), ("auto retry", job.auto_retry or None),
        ("run folder", job.run_dir), ("log", job.log_path),
    ]
    lines = [f"{name:12} {value}" for name, value in rows if value is not None]
    if detail.training:
        t = detail.training
        loss = t["last_loss"] if t["last_loss"] is None else round(t["last_loss"], 4)
        lines.append(f"{'training':12} {t['method']} on {t['base_model']}: step {t['last_step']}/{t['total_steps'] or '?'}, "
                     f"last loss {loss}, checkpoints {t['checkpoints'] or 'none'}, export {t['export'] or 'not yet'}")
    if detail.chains:
        c = detail.chains
        lines.append(f"{'chains':12} dataset {c['dataset_id']} '{c['name']}': {c['kept']} kept, {c['dropped']} dropped")
    if job.error:
        lines += ["error:", *("  " + line for line in job.error.rstrip().splitlines())]
    lines += ["config:", *("  " + line for line in yaml.safe_dump(job.config, sort_keys=False).rstrip().splitlines())]
    return "\n".join(lines)
