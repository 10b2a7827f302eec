"""What a job is and where it stands: the JobKind and JobStatus enums.

Why apart from jobs.records: the app filters, labels and compares jobs by kind and status, and
it must not import SQLAlchemy (only jobs/ touches the database); these enums need nothing.
"""
from __future__ import annotations

import enum


class JobKind(str, enum.Enum):
    GENERATE = "generate"
    TRAIN = "train"
    EVALUATE = "evaluate"
    PIPELINE = "pipeline"


class JobStatus(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def finished(self) -> bool:
        """Whether the job will not run again by itself (interrupted waits for a retry)."""
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.INTERRUPTED)
