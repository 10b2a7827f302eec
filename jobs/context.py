"""What a job runner gets (WorkerContext) and gives back (Outcome), apart from the worker.

Why its own module: the runners of each job kind (jobs/worker.py for train and generate,
jobs/evaluation_job.py for evaluate) share these types; defining them in the worker made the
evaluation runner import the worker that imports it.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from jobs.records import Job
from jobs.reporting import StopCheck


class ExitCode(enum.IntEnum):
    """The worker process's exit status, read by the dispatcher."""

    SUCCEEDED = 0
    FAILED = 1
    BAD_REQUEST = 2
    CANCELLED = 3


@dataclass
class Outcome:
    """How a runner ended: stopped (cancelled, progress kept) or finished, with a one-line summary."""

    stopped: bool
    summary: str


@dataclass
class WorkerContext:
    """The claimed job row, the database, the data directory and the cancel check of one worker."""

    job: Job
    sessions: sessionmaker[Session]
    home: Path
    stop: StopCheck
    is_main: bool

    def say(self, text: str) -> None:
        """A line for the job log (the worker's stdout is the log file)."""
        print(text, flush=True)
