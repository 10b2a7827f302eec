"""How long a job has run, and that duration as text; shared by the job queries, the CLI and the app.

Why its own module: the job queries (jobs/queries.py) and the CLI's text (jobs/formatting.py,
which reads the queries) both need it, and neither may import the other for it.
"""
from __future__ import annotations

from jobs.records import Job, utcnow


def duration_seconds(job: Job) -> float | None:
    """Seconds the job has run (until now while it runs); None before it starts."""
    if job.started_at is None:
        return None
    return ((job.finished_at or utcnow()) - job.started_at).total_seconds()


def format_duration(seconds: float | None) -> str:
    """H:MM:SS, or '-' when there is no duration yet."""
    if seconds is None:
        return "-"
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
